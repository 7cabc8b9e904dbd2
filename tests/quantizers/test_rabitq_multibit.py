"""Extended RaBitQ, b = 2..8 bits per dimension (medqk.quantizers.rabitq, ``bits`` > 1): the rescaled codes,
their bit-plane layout, the estimator (more accurate with every bit; unbiased over rotations: in
tests/quantizers/test_rabitq.py, with the 1-bit case), the scan's exact
integers on every backend and the deterministic bound on the scan's estimate that includes the query's
quantization (also where the 8-plane limit coarsens the lowest segments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import medqk
from medqk import kernels
from medqk.quantizers.rabitq import (
    RaBitQCodec,
    code_sums,
    extended_codes,
    pack_code_planes,
    query_shift,
    unpack_bits,
    unpack_code_planes,
)

from .test_rabitq import _unit


def _exact_best_cosine(o: np.ndarray, bits: int) -> float:
    """The largest cosine over every rescaling t (paper: the optimum is one of the critical points m / |o_i|,
    where a coordinate moves up one level), by enumerating all of them."""
    a, top = np.abs(o), (1 << (bits - 1)) - 1
    t = np.concatenate([[0.0], (np.arange(1, top + 1)[:, None] / a[None, a > 0]).ravel()])
    mag = 2 * np.minimum(np.floor(t[:, None] * a[None, :] * (1 + 1e-12)), top) + 1
    return float(np.max(mag @ a / np.sqrt(np.einsum("td,td->t", mag, mag))))


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_extended_codes_reach_the_best_cosine(bits):
    """The codes' cosine to o' is within 1e-3 of the exact optimum over all rescalings (never above it), the top
    bit of each x_i is the sign of o'_i, and the 1-bit (sign) code is never better. Fails with a fixed
    rescaling (tau = 2^(b - 1): gaps ~1e-2) or the sign convention flipped. (The fine grid lowers the largest
    gap here from 3.5e-4 to 2.4e-4: no threshold of this test tells them apart.)"""
    rng = np.random.default_rng(bits)
    d = 24
    o = _unit(rng.standard_normal((60, d)))
    x = extended_codes(o.astype(np.float32), bits)
    assert x.dtype == np.uint8 and x.max() <= (1 << bits) - 1
    np.testing.assert_array_equal(x >> (bits - 1), (o.astype(np.float32) > 0).astype(np.uint8))
    y = 2 * x.astype(np.float64) - ((1 << bits) - 1)
    cos = np.einsum("ij,ij->i", y, o) / np.linalg.norm(y, axis=1)
    best = np.array([_exact_best_cosine(row, bits) for row in o])
    assert np.all(cos <= best + 1e-9) and np.all(best - cos <= 1e-3), (best - cos).max()
    assert np.all(cos >= np.abs(o).sum(axis=1) / math.sqrt(d) - 1e-9)  # at least the sign code's cosine


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("d", [7, 13, 64])
def test_code_planes_round_trip_and_sums(bits, d):
    """bit k of x_i sits at bit k d + i of ceil(b d / 8) bytes (padding 0); unpacking gives x back; code_sums
    is sum_i x_i. Fails with planes interleaved per dimension instead of one after the other."""
    rng = np.random.default_rng(d + bits)
    x = rng.integers(0, 1 << bits, size=(9, d), dtype=np.uint8)
    codes = pack_code_planes(x, bits)
    assert codes.shape == (9, (bits * d + 7) // 8)
    flat = unpack_bits(codes, bits * d)
    for k in range(bits):
        np.testing.assert_array_equal(flat[:, k * d : (k + 1) * d], (x >> k) & 1)
    if (bits * d) % 8:
        assert np.all(codes[:, -1] >> ((bits * d) % 8) == 0)
    np.testing.assert_array_equal(unpack_code_planes(codes, d, bits), x)
    np.testing.assert_array_equal(code_sums(codes, d, bits), x.sum(axis=1))


def test_error_shrinks_with_every_bit():
    """On the same data and rotation, the mean |error| of the estimate of <o, q> (unquantized query) and the
    mean eps0 bound fall with every bit from 1 (the paper's sign code) to 8, the error about halving per bit
    from 2 on. Fails when the rescaling search is replaced by a fixed t (the error stalls at high b)."""
    d, n, nq = 64, 400, 20
    rng = np.random.default_rng(12)
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    errors, bounds = [], []
    for bits in range(1, 9):
        codec = RaBitQCodec(d, bits=bits, aware_passes=0).train(x)
        codes, query = codec.encode(x), codec.quantize_queries(q)
        true = query.rotated.astype(np.float64) @ (_unit(x - codec.centroid) @ codec.rotation).T.astype(np.float64)
        errors.append(np.abs(codec.estimate_float(codes, query.rotated) - true).mean())
        bounds.append(codec.error_bound(codes).mean())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert all(a > b for a, b in zip(bounds, bounds[1:])), bounds
    assert all(0.3 < b / a < 0.7 for a, b in zip(errors[1:], errors[2:])), errors


def _scan_ints(codec, codes, query):
    """(ip, S) of the active backend's scan over the b d-bit codes."""
    packed = kernels.pack_rabitq(codes.codes, codec.bits * codec.dim)
    return kernels.rabitq_scan_ints(packed, query.planes), code_sums(codes.codes, codec.dim, codec.bits)


def _ints_reference(codec, codes, q):
    """sum_k 2^(k - s) x_ik u_i (k >= s) + x_ik rint(U_i 2^(k - s)) (k < s), from unpacked codes and U (the
    codec's float32 rotated query, its lo and delta: a float64 U would round a few U_i near .5 the other way)."""
    bits, shift = codec.bits, query_shift(codec.bits, codec.query_bits)
    rot = codec.quantize_queries(q).rotated
    query = codec.quantize_queries(q)
    big_u = ((rot - rot.min(axis=1, keepdims=True)) / query.delta[:, None]).astype(np.float64)
    u = np.clip(np.rint(big_u), 0, (1 << codec.query_bits) - 1)
    planes = unpack_bits(codes.codes, bits * codec.dim).reshape(len(codes.codes), bits, codec.dim).astype(np.int64)
    ip = np.zeros((len(q), len(planes)), dtype=np.int64)
    for k in range(bits):
        v = u * 2 ** (k - shift) if k >= shift else np.rint(big_u * 2.0 ** (k - shift))
        ip += v.astype(np.int64) @ planes[:, k].T
    return ip


@pytest.mark.parametrize("bits,query_bits", [(2, 6), (3, 4), (4, 8), (5, 8), (8, 8), (8, 3)])
@pytest.mark.parametrize("d", [9, 64, 100])
def test_scan_integers_equal_the_brute_force(backend, bits, query_bits, d):
    """The scan's integers over the b d-bit code (every backend) equal the plane-by-plane sum from unpacked
    codes and query, including the coarsened low segments (b + B - 1 > 8: (4, 8), (5, 8), (8, 8)); S is
    sum_i x_i. Fails when a segment's query is shifted by k instead of k - s (the 8-plane limit)."""
    rng = np.random.default_rng(bits * 100 + d)
    x = rng.standard_normal((41, d)).astype(np.float32)
    q = rng.standard_normal((6, d)).astype(np.float32)
    codec = RaBitQCodec(d, bits=bits, query_bits=query_bits).train(x)
    codes = codec.encode(x)
    query = codec.quantize_queries(q)
    assert query.planes.shape == (6, min(8, query_bits + bits - 1), (bits * d + 7) // 8)
    ip, sums = _scan_ints(codec, codes, query)
    np.testing.assert_array_equal(ip, _ints_reference(codec, codes, q))
    np.testing.assert_array_equal(sums, unpack_code_planes(codes.codes, d, bits).sum(axis=1))


@pytest.mark.skipif(not medqk.info()["native_available"], reason="the native module is not built")
def test_native_and_numba_integers_are_equal():
    """The same multi-bit codes and queries give identical integers on the native scan and its Numba twin."""
    d, bits = 384, 4
    rng = np.random.default_rng(21)
    x = rng.standard_normal((200, d)).astype(np.float32)
    codec = RaBitQCodec(d, bits=bits).train(x)
    codes, query = codec.encode(x), codec.quantize_queries(rng.standard_normal((5, d)).astype(np.float32))
    with medqk.use_backend("native"):
        native = _scan_ints(codec, codes, query)[0]
    with medqk.use_backend("numba"):
        numba = _scan_ints(codec, codes, query)[0]
    np.testing.assert_array_equal(native, numba)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("bits,query_bits", [(2, 4), (3, 8), (5, 8)])
def test_scan_estimate_within_the_always_true_bound(metric, bits, query_bits):
    """The scan's estimate of <o, q> (from its integers and constants) is within the always-true bound
    sqrt(1 - a^2) / a * sqrt(1 - <o, q>^2) plus the query term of error_bound, for every pair; and the eps0
    bound with the query term covers all but its failure share. Fails when c1 drops the factor 2^s of the
    coarsened segments (bits 5, query_bits 8: estimates 16x off); the query term itself is a worst case over
    the rounding that random data stays far inside, so a query term too small by 2^s passes here."""
    d, n, nq = 80, 300, 25
    rng = np.random.default_rng(bits + 7 * query_bits)
    x = (rng.standard_normal((n, d)) + 0.5).astype(np.float32)
    q = (rng.standard_normal((nq, d)) + 0.5).astype(np.float32)
    codec = RaBitQCodec(d, metric, bits=bits, query_bits=query_bits, eps0=2.5).train(x)
    codes, query = codec.encode(x), codec.quantize_queries(q)
    true = query.rotated.astype(np.float64) @ (_unit(x - codec.centroid) @ codec.rotation).T.astype(np.float64)
    with medqk.use_backend("numba"):
        ip, sums = _scan_ints(codec, codes, query)
    t = query.c1[:, None].astype(np.float64) * ip + query.c2[:, None] * sums[None, :] + query.c3[:, None]
    c = query.norm.astype(np.float64) * (1 if metric == "ip" else 2)
    est = t / c[:, None] * (codes.mult.astype(np.float64) / codes.norm)[None, :]  # <y_hat, q_hat'> / <y_hat, o'>
    a = codes.dot.astype(np.float64)
    query_term = codec.error_bound(codes, query) - codec.error_bound(codes)[None, :]
    always = np.sqrt(1 - a * a)[None, :] / a[None, :] * np.sqrt(np.maximum(1 - true * true, 0))
    assert np.all(np.abs(est - true) <= always + query_term + 1e-4)
    assert np.mean(np.abs(est - true) > codec.error_bound(codes, query)) <= 2 * math.exp(-2.5 ** 2 / 2)


def test_state_round_trip_and_config():
    """A multi-bit codec's state restores it bit for bit; its config has no score-aware options."""
    d = 30
    x = np.random.default_rng(5).standard_normal((40, d)).astype(np.float32)
    codec = RaBitQCodec(d, "l2", bits=3, query_bits=7, seed=8).train(x)
    config, arrays = codec.state()
    assert config == {"query_bits": 7, "seed": 8, "eps0": 1.9} and set(arrays) == {"rotation", "centroid"}
    loaded = RaBitQCodec(d, "l2", bits=3, **config)
    loaded.load_state(arrays)
    a, b = codec.encode(x), loaded.encode(x)
    for f in ("codes", "mult", "add", "dot"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()


def test_bad_bits_name_the_argument():
    with pytest.raises(ValueError, match="bits must be an int in 1..8"):
        RaBitQCodec(8, bits=9)
    with pytest.raises(ValueError, match="bits must be an int in 1..8"):
        RaBitQCodec(8, bits=0)
    with pytest.raises(ValueError, match="bits must be an int in 1..8"):
        RaBitQCodec(8, bits=2.0)
    with pytest.raises(ValueError, match="aware_passes must be 0 with bits=3"):
        RaBitQCodec(8, bits=3, aware_passes=1)
    assert RaBitQCodec(8, bits=3).aware_passes == 0 and RaBitQCodec(8).aware_passes == 2
