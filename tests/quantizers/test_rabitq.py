"""1-bit RaBitQ (medqk.quantizers.rabitq) and its Numba AND-popcount scan (medqk.kernels._numba_rabitq).

The statistical tests take their tolerances from the codec's own bounds: Hoeffding over the always-true
bound ``sqrt(1 - a^2) / a * sqrt(1 - <o, q>^2)`` for the mean error, and the eps0 bound's failure
probability for the error bound's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medqk.quantizers.rabitq import (
    RaBitQCodec,
    bound_failure_probability,
    code_bytes,
    pack_bits,
    random_rotation,
    unpack_bits,
)

from ..twins import NumbaTwin

kern = NumbaTwin("_numba_rabitq")


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _estimates_over_rotations(o, q, seeds, bits=1):
    """(estimates of <o, q>, factors a) of the unit vectors o, q (d,) under the rotations of ``seeds`` with
    ``bits``-bit codes (1: the paper's sign codes); the codec is trained on {o, -o} so that its centroid is
    exactly 0."""
    est, dots = [], []
    for seed in seeds:
        codec = RaBitQCodec(o.shape[0], seed=seed, aware_passes=0, bits=bits).train(np.stack([o, -o]))
        codes = codec.encode(o[None])
        est.append(codec.estimate_float(codes, codec.quantize_queries(q[None]).rotated)[0, 0])
        dots.append(float(codes.dot[0]))
    return np.array(est), np.array(dots)


@pytest.mark.parametrize("bits,d,trials,seed", [(1, 32, 3000, 5), (2, 24, 1000, 6), (4, 24, 1000, 6)])
def test_estimator_is_unbiased_over_rotations(bits, d, trials, seed):
    """Mean of <y_hat, q'> / <y_hat, o'> (1 bit: <o_bar, q'> / a) over the rotations equals <o, q> within the
    Hoeffding bound of the estimator's range (delta 1e-6), and the estimate of <o, o> is exactly 1 (the
    estimator is exact along o'), for the sign code and for b-bit codes (medqk.quantizers.rabitq multi-bit).
    Fails when the division by a is dropped (1 bit: the estimate shrinks by ~0.8, the mean sees it; b bits:
    by a ~ 0.95, which only the <o, o> check sees: the mean's tolerance is wider)."""
    cos = 0.6
    rng = np.random.default_rng(seed)
    o = _unit(rng.standard_normal(d))
    perp = rng.standard_normal(d)
    perp = _unit(perp - (perp @ o) * o)
    q = cos * o + math.sqrt(1 - cos * cos) * perp
    self_est, _ = _estimates_over_rotations(o.astype(np.float32), o.astype(np.float32), range(5), bits)
    np.testing.assert_allclose(self_est, 1.0, atol=1e-5)
    est, a = _estimates_over_rotations(o.astype(np.float32), q.astype(np.float32), range(trials), bits)
    # each error lies in [-R_t, R_t] (Cauchy-Schwarz), so Hoeffding bounds the mean's deviation
    half_range = np.sqrt(1 - a * a) / a * math.sqrt(1 - cos * cos)
    slack = 1e-5  # float32 rotation and inputs: errors within a few ulp of the exact bound
    assert np.all(np.abs(est - cos) <= half_range + slack)
    delta = 1e-6
    tol = math.sqrt(np.sum((2 * (half_range + slack)) ** 2) * math.log(2 / delta) / (2 * trials * trials))
    assert abs(est.mean() - cos) <= tol, (est.mean(), cos, tol)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_error_bound_holds_at_its_confidence(metric):
    """On random data the share of (query, vector) pairs whose error of <o, q> exceeds error_bound is at most
    the bound's failure probability (eps0 = 2.5: 2 exp(-3.125) = 8.8%; typical rate ~1%), with and without the
    query quantized to 4 bits. Fails with the bound divided by (d - 1) instead of sqrt(d - 1)."""
    d, n, nq = 96, 1500, 40
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((n, d)) + 0.7).astype(np.float32)
    q = (rng.standard_normal((nq, d)) + 0.7).astype(np.float32)
    codec = RaBitQCodec(d, metric, eps0=2.5, aware_passes=0).train(x)  # the paper's codes
    codes, query = codec.encode(x), codec.quantize_queries(q)
    true = _unit(q - codec.centroid).astype(np.float64) @ _unit(x - codec.centroid).astype(np.float64).T
    allowed = bound_failure_probability(codec.eps0)
    err = np.abs(codec.estimate_float(codes, query.rotated) - true)
    assert np.mean(err > codec.error_bound(codes)[None, :]) <= allowed
    # the scan's estimate from its integers: t = c1 ip + c2 pop + c3 = C_q <o_bar, q_hat'>
    words, planes = kern.to_words(codes.codes, d), kern.to_words(query.planes, d)
    ip = np.empty((nq, n), dtype=np.int32)
    kern.rabitq_scan_ints(words, planes, ip)
    pop = unpack_bits(codes.codes, d).sum(axis=1)
    t = query.c1[:, None] * ip + query.c2[:, None] * pop[None, :] + query.c3[:, None]
    c = query.norm if metric == "ip" else 2 * query.norm
    est = t / c[:, None] / codes.dot[None, :]
    assert np.mean(np.abs(est - true) > codec.error_bound(codes, query)) <= allowed


def _planes_reference(planes, d):
    """u (nq, d) int64 back from its bit planes (nq, B, bytes)."""
    return sum(unpack_bits(planes[:, j], d).astype(np.int64) << j for j in range(planes.shape[1]))


@pytest.mark.parametrize("d", [2, 7, 8, 9, 63, 64, 65, 100, 127, 129, 200])
@pytest.mark.parametrize("bits", [1, 4, 8])
def test_popcount_integers_equal_numpy_and_ignore_padding(d, bits):
    """ip_int and pop of the Numba scan equal sum(b u) and sum(b) from unpacked bits exactly, also after every
    padding bit of the codes (in the last byte and the word padding) is set to 1. Fails when the scan does not
    mask pop with the dimension mask (padding counted) or skips the last word."""
    rng = np.random.default_rng(d * 10 + bits)
    n, nq = 37, 5
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[3] = x[4]  # equal codes
    codec = RaBitQCodec(d, query_bits=bits).train(x)
    codes = codec.encode(x).codes
    query = codec.quantize_queries(rng.standard_normal((nq, d)).astype(np.float32))
    b = unpack_bits(codes, d).astype(np.int64)
    u = _planes_reference(query.planes, d)
    assert u.max() <= (1 << bits) - 1
    words = kern.to_words(codes, d).copy()
    words |= ~kern.to_words(pack_bits(np.ones((1, d), dtype=bool)), d)  # every padding bit set
    assert np.all(np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, d:] == 1) or d % 64 == 0
    ip = np.empty((nq, n), dtype=np.int32)
    kern.rabitq_scan_ints(words, kern.to_words(query.planes, d), ip)
    np.testing.assert_array_equal(ip, u @ b.T)
    pop = np.empty(n, dtype=np.int32)
    kern.rabitq_popcounts(words, kern.dim_mask(d), pop)
    np.testing.assert_array_equal(pop, b.sum(axis=1))


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_fused_topk_equals_numpy_scores_with_tie_rule(metric):
    """The fused scan's scores are bit-identical to the numpy float32 evaluation of its integers, and its ids
    are the numpy top-k (higher score first, equal -> lower id; duplicated vectors make exact ties). Fails with
    the float terms added in another order or a heap that lets an equal score replace a lower id."""
    d, n, nq, k = 70, 300, 9, 12
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[200:260] = x[100:160]  # exact ties
    q = rng.standard_normal((nq, d)).astype(np.float32)
    q[0] = x[100]
    codec = RaBitQCodec(d, metric).train(x)
    enc, query = codec.encode(x), codec.quantize_queries(q)
    words, planes = kern.to_words(enc.codes, d), kern.to_words(query.planes, d)
    pop = np.empty(n, dtype=np.int32)
    kern.rabitq_popcounts(words, kern.dim_mask(d), pop)
    ip = np.empty((nq, n), dtype=np.int32)
    kern.rabitq_scan_ints(words, planes, ip)
    ref = kern.scores_reference(ip, pop, query.a, query.c1, query.c2, query.c3, enc.mult, enc.add)
    scores = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    kern.rabitq_search_topk(words, pop, planes, query.a, query.c1, query.c2, query.c3, enc.mult, enc.add, k,
                            scores, ids, np.empty(0, np.uint8))
    order = np.lexsort((np.broadcast_to(np.arange(n), (nq, n)), -ref), axis=1)[:, :k]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(scores, np.take_along_axis(ref, order, axis=1))
    assert ids[0, 0] == 100 and ids[0, 1] == 200  # the query's own vector and its copy: a tie, lower id first
    # a tie at the k-th place: with k = 1 the copy (id 200) must not replace the kept vector 100
    top_s, top_i = np.empty((nq, 1), dtype=np.float32), np.empty((nq, 1), dtype=np.int64)
    kern.rabitq_search_topk(words, pop, planes, query.a, query.c1, query.c2, query.c3, enc.mult, enc.add, 1,
                            top_s, top_i, np.empty(0, np.uint8))
    np.testing.assert_array_equal(top_i[:, 0], order[:, 0])


@pytest.mark.parametrize("d", [2, 33, 384])
def test_rotation_is_orthogonal_and_seeded(d):
    """P^T P = I within float32 rounding (|error| <= d * 2 eps32 per entry), the same for a seed and different
    for another; the codec stores it as float32. Fails for a rotation left as the Gaussian matrix before QR."""
    p = RaBitQCodec(d, seed=7).train(np.zeros((1, d), dtype=np.float32)).rotation
    assert p.dtype == np.float32 and p.shape == (d, d)
    p64 = p.astype(np.float64)
    assert np.abs(p64.T @ p64 - np.eye(d)).max() <= d * 2 * np.finfo(np.float32).eps
    np.testing.assert_array_equal(p, random_rotation(d, 7).astype(np.float32))
    assert not np.array_equal(p, random_rotation(d, 8).astype(np.float32))


def test_codes_layout_and_factors():
    """8 dimensions per byte, padding 0; a = <o_bar, o> in (0, 1]; a zero residual scores exactly (M_v = 0)."""
    d = 13
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, d)).astype(np.float32)
    codec = RaBitQCodec(d, aware_passes=0).train(x)
    x[5] = codec.centroid
    enc = codec.encode(x)
    assert enc.codes.shape == (20, code_bytes(d)) == (20, 2) and codec.bytes_per_vector == 2 + 8
    assert np.all(enc.codes[:, 1] >> 5 == 0)  # bits 13..15 are padding
    rot = _unit((x - codec.centroid)[np.arange(20) != 5]) @ codec.rotation
    np.testing.assert_array_equal(unpack_bits(enc.codes, d)[np.arange(20) != 5], (rot > 0).astype(np.uint8))
    assert np.all((enc.dot > 0) & (enc.dot <= 1 + 1e-6)) and enc.mult[5] == 0 and enc.dot[5] == 1


@pytest.mark.parametrize("mix", [0.0, 0.3])
def test_score_aware_codes_lower_the_query_weighted_error(mix):
    """Per vector, the score-aware code's mean square error over the training directions, e^T S_mix e with
    e = x / <x, o'> - o', is at most the paper's code's (and lower on average), its factor a is <x, o'> of
    the code it stores, and the always-true bound sqrt(1 - a^2) / a * sqrt(1 - <o, q>^2) holds for it. Fails
    with the flip test reversed (flips that raise the error)."""
    d, n = 48, 400
    rng = np.random.default_rng(8)
    scales = np.linspace(3, 0.3, d)  # anisotropic data: a few directions dominate
    x = (rng.standard_normal((n, d)) * scales).astype(np.float32)
    q = (rng.standard_normal((30, d)) * scales).astype(np.float32)
    plain = RaBitQCodec(d, aware_passes=0).train(x)
    aware = RaBitQCodec(d, aware_passes=2, aware_mix=mix).train(x)
    cov = aware.query_cov.astype(np.float64)
    rot = _unit(x - aware.centroid) @ aware.rotation

    def weighted_error(enc):
        xs = (unpack_bits(enc.codes, d).astype(np.float64) * 2 - 1) / math.sqrt(d)
        e = xs / enc.dot.astype(np.float64)[:, None] - rot
        return np.einsum("ij,jk,ik->i", e, cov, e), xs

    before, _ = weighted_error(plain.encode(x))
    enc = aware.encode(x)
    after, xs = weighted_error(enc)
    assert np.all(after <= before * (1 + 1e-5)) and after.mean() < 0.9 * before.mean()
    np.testing.assert_allclose(enc.dot, np.einsum("ij,ij->i", xs, rot), rtol=1e-5)
    query = aware.quantize_queries(q)
    true = query.rotated.astype(np.float64) @ rot.T.astype(np.float64)
    a = enc.dot.astype(np.float64)
    bound = np.sqrt(1 - a * a)[None, :] / a[None, :] * np.sqrt(np.maximum(1 - true * true, 0))
    assert np.all(np.abs(aware.estimate_float(enc, query.rotated) - true) <= bound + 1e-5)


def test_state_round_trip_is_bit_exact():
    """state() / load_state() restore the rotation and centroid bit for bit, so the codes and query constants
    are identical. Fails if the rotation is saved in a narrower type or rebuilt from the seed in float64."""
    d = 45
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, d)).astype(np.float32)
    codec = RaBitQCodec(d, "l2", query_bits=5, seed=99).train(x)
    config, arrays = codec.state()
    loaded = RaBitQCodec(d, "l2", **config)
    loaded.load_state({k: np.frombuffer(v.tobytes(), v.dtype).reshape(v.shape) for k, v in arrays.items()})
    for name in ("rotation", "centroid", "query_cov"):
        assert getattr(loaded, name).tobytes() == getattr(codec, name).tobytes()
    a, b = codec.encode(x), loaded.encode(x)
    for f in ("codes", "mult", "add", "dot"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    qa, qb = codec.quantize_queries(x[:3]), loaded.quantize_queries(x[:3])
    for f in ("planes", "a", "c1", "c2", "c3"):
        assert getattr(qa, f).tobytes() == getattr(qb, f).tobytes()


def test_bad_input_names_the_argument():
    d = 10
    x = np.random.default_rng(0).standard_normal((30, d)).astype(np.float32)
    with pytest.raises(ValueError, match="dim"):
        RaBitQCodec(1)
    with pytest.raises(ValueError, match="metric"):
        RaBitQCodec(d, "cos")
    with pytest.raises(ValueError, match="query_bits"):
        RaBitQCodec(d, query_bits=9)
    with pytest.raises(ValueError, match="eps0"):
        RaBitQCodec(d, eps0=float("nan"))
    codec = RaBitQCodec(d)
    with pytest.raises(RuntimeError, match="train"):
        codec.encode(x)
    with pytest.raises(ValueError, match="x is empty"):
        codec.train(x[:0])
    codec.train(x)
    bad = x.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        codec.encode(bad)
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        codec.quantize_queries(bad)
    with pytest.raises(ValueError, match="q has dimension 9"):
        codec.quantize_queries(x[:, :9])
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        codec.encode(x.astype(np.int32))
