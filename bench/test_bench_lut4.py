"""4-bit table scans (int4, cb*, pca*, pq<M>x4fs and IVF codes), per ISA the CPU has: lut4_search_topk,
ivf_lut4_search, and the portable steps around them (lut4_pack, lut4_quantize_tables, ivf_quantize_tables,
lut4_score_candidates, lut4_decode_s8, select_topk_f32).

Each result is checked whole against numpy: the scans rank by exact integer sums of table entries (medqk.h),
so the reference is integer math; the table quantizers and the candidates' float scores are the documented
float32 operations in their documented order, repeated here operation for operation.
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import variants

import medqk
from medqk import _backend

K = 10
# (sub-codes per vector, vectors): pq96x4fs-like, and an odd count (int4 / cb4 of 385-d: a padded subspace), each
# with a last partial block of 32 vectors
LUT4_SHAPES = [(96, 50_003), (385, 12_011)]
LUT4_IDS = [f"d{d}xN{n}" for d, n in LUT4_SHAPES]
NQ = 32


def rng_for(*key):
    return np.random.default_rng(list(key))


def sums_of(luts, codes):
    """Exact sums (nq, n) int64 of each query's uint8 tables over each vector's sub-codes."""
    nq = luts.shape[0]
    out = np.zeros((nq, codes.shape[0]), np.int64)
    for s in range(codes.shape[1]):
        out += luts[:, s, :][:, codes[:, s]]
    return out


@pytest.fixture(scope="module", params=LUT4_SHAPES, ids=LUT4_IDS)
def lut4_case(request):
    d, n = request.param
    rng = rng_for(4, d, n)
    codes = rng.integers(0, 16, (n, d), dtype=np.uint8)
    d_even = d + (d & 1)
    luts = np.zeros((NQ, d_even, 16), np.uint8)
    luts[:, :d] = rng.integers(0, 128, (NQ, d, 16), dtype=np.uint8)  # padded subspace: zero, as required
    alpha = (rng.random(NQ) * 1e-3 + 1e-4).astype(np.float32)
    beta = rng.standard_normal(NQ).astype(np.float32)
    packed = _backend._core.lut4_pack(codes)
    return d, n, codes, packed, luts, alpha, beta, sums_of(luts, codes)


def lut4_reference(sums, alpha, beta, k):
    """Top k by (sum desc, id asc); score alpha * float32(sum) + beta in float32."""
    ids = np.lexsort((np.broadcast_to(np.arange(sums.shape[1]), sums.shape), -sums), axis=1)[:, :k]
    best = np.take_along_axis(sums, ids, axis=1).astype(np.float32)
    return alpha[:, None] * best + beta[:, None], ids


@pytest.mark.benchmark(group="lut4_search_topk")
@pytest.mark.parametrize("nq", [1, NQ])
@pytest.mark.parametrize("variant", variants("lut4_scan"))
def test_lut4_search_topk(benchmark, lut4_case, variant, nq):
    d, n, _, packed, luts, alpha, beta, sums = lut4_case
    luts, alpha, beta, sums = luts[:nq], alpha[:nq], beta[:nq], sums[:nq]
    with medqk.use_kernel("lut4_scan", variant):
        scores, ids = benchmark(_backend._core.lut4_search_topk, luts, packed, n, d, alpha, beta, K, 1)
    want_s, want_i = lut4_reference(sums, alpha, beta, K)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)


@pytest.mark.benchmark(group="lut4_search_topk unsorted, k=200 (the candidates of a re-scoring)")
@pytest.mark.parametrize("variant", variants("lut4_scan"))
def test_lut4_search_topk_unsorted(benchmark, lut4_case, variant):
    d, n, _, packed, luts, alpha, beta, sums = lut4_case
    with medqk.use_kernel("lut4_scan", variant):
        scores, ids = benchmark(_backend._core.lut4_search_topk, luts, packed, n, d, alpha, beta, 200, 2, False)
    # the same hits in no particular order: sorted by (score desc, id asc) they are the reference
    order = np.lexsort((ids, -scores), axis=1)
    want_s, want_i = lut4_reference(sums, alpha, beta, 200)
    np.testing.assert_array_equal(np.take_along_axis(ids, order, axis=1), want_i)
    np.testing.assert_array_equal(np.take_along_axis(scores, order, axis=1), want_s)


@pytest.mark.benchmark(group="lut4_pack")
def test_lut4_pack(benchmark, lut4_case):
    d, n, codes, _, _, _, _, _ = lut4_case
    packed = benchmark(_backend._core.lut4_pack, codes)
    # the layout of medqk.h: blocks of 32 vectors, sub-codes s in row s // 2, half s & 1, vectors 16..31 in the
    # high nibbles; padding zero
    d_even = d + (d & 1)
    padded = np.zeros(((n + 31) // 32 * 32, d_even), np.uint8)
    padded[:n, :d] = codes
    blocks = padded.reshape(-1, 2, 16, d_even // 2, 2)  # block, half of the block, lane, row, sub-code in the row
    want = blocks[:, 0] | (blocks[:, 1] << 4)  # block, lane, row, s & 1
    np.testing.assert_array_equal(packed, want.transpose(0, 2, 3, 1).reshape(-1))


def float_tables(nq, s, seed):
    t = rng_for(5, nq, s, seed).standard_normal((nq, s, 16)).astype(np.float32)
    t[0, 1] = 0.25  # a flat subspace: its span is 0
    return t


@pytest.mark.benchmark(group="lut4_quantize_tables")
@pytest.mark.parametrize("s", [96, 385])
def test_lut4_quantize_tables(benchmark, s):
    t = float_tables(256, s, 0)
    luts, alpha, beta = benchmark(_backend._core.lut4_quantize_tables, t)
    # medqk.h: lo = min_c t, step = max_j (max_c - lo) / 127, luts = clamp(rint((t - lo) / step), 0, 127),
    # beta = sum_j lo in float32, in subspace order; a padded subspace is zero
    lo, hi = t.min(axis=2), t.max(axis=2)
    step = (hi - lo).max(axis=1) / np.float32(127)
    want = np.clip(np.rint((t - lo[:, :, None]) / step[:, None, None]), 0, 127).astype(np.uint8)
    offset = np.zeros(t.shape[0], np.float32)
    for j in range(s):
        offset += lo[:, j]
    np.testing.assert_array_equal(luts[:, :s], want)
    assert (luts[:, s:] == 0).all() and luts.shape[1] == s + (s & 1)
    np.testing.assert_array_equal(alpha, step)
    np.testing.assert_array_equal(beta, offset)


@pytest.mark.benchmark(group="lut4_score_candidates 256 x 200 candidates")
def test_lut4_score_candidates(benchmark, lut4_case):
    d, n, codes, packed, _, _, _, _ = lut4_case
    rng = rng_for(6, d)
    t = float_tables(256, d, 1)
    cand = rng.integers(0, n, (256, 200), dtype=np.int64)
    cand[::5, 7] = -1  # padding: -inf
    scores = benchmark(_backend._core.lut4_score_candidates, t, packed, n, cand)
    # exact float32 sums in subspace order (medqk.h)
    rows = codes[np.maximum(cand, 0)]  # (256, 200, d)
    want = np.zeros(cand.shape, np.float32)
    for s in range(d):
        want += np.take_along_axis(t[:, s, :], rows[:, :, s].astype(np.intp), axis=1)
    want[cand < 0] = -np.inf
    np.testing.assert_array_equal(scores, want)


@pytest.mark.benchmark(group="lut4_decode_s8 (the batched search's int8 view)")
def test_lut4_decode_s8(benchmark, lut4_case):
    d, n, codes, packed, _, _, _, _ = lut4_case
    rng = rng_for(7, d)
    # two entries per output dimension from different sub-codes (the additive views of pca*), large enough that
    # some sums clamp at +-127
    e, d_out = 2 * d, d
    sub = rng.integers(0, d, e).astype(np.int32)
    dim = np.repeat(np.arange(d_out, dtype=np.int32), 2)
    table = rng.integers(-100, 101, (e, 16)).astype(np.int16)
    v0, m = 32 * 3 + 5, min(8192, n - 101)
    out = benchmark(_backend._core.lut4_decode_s8, packed, n, d, sub, dim, table, d_out, v0, m)
    acc = np.zeros((m, d_out), np.int64)
    for j in range(e):
        acc[:, dim[j]] += table[j, codes[v0 : v0 + m, sub[j]]]
    assert (np.abs(acc) > 127).any()
    np.testing.assert_array_equal(out, np.clip(acc, -127, 127).astype(np.int8))


# -- IVF ---------------------------------------------------------------------------------------------
IVF_S, IVF_NLIST, IVF_NPROBE, IVF_N = 96, 64, 8, 65_536


@pytest.fixture(scope="module")
def ivf_case():
    """Inverted lists as IVFLUT4Index lays them out: list l's vectors at positions list_starts[l].., its codes
    from block list_blocks[l] on (each list starts on a block of 32), some lists empty."""
    rng = rng_for(8)
    sizes = rng.multinomial(IVF_N, rng.dirichlet(np.ones(IVF_NLIST)))
    sizes[[5, 17]] = 0
    sizes[0] += IVF_N - sizes.sum()
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blocks = np.concatenate([[0], np.cumsum((sizes + 31) // 32)]).astype(np.int64)
    list_ids = rng.permutation(IVF_N).astype(np.int64)
    codes = rng.integers(0, 16, (IVF_N, IVF_S), dtype=np.uint8)  # in list order
    slots = np.repeat(blocks[:-1] * 32, sizes) + (np.arange(IVF_N) - np.repeat(starts[:-1], sizes))
    padded = np.zeros((blocks[-1] * 32, IVF_S), np.uint8)
    padded[slots] = codes
    packed = _backend._core.lut4_pack(padded)
    probes = np.stack([rng.choice(IVF_NLIST, IVF_NPROBE, replace=False) for _ in range(NQ)]).astype(np.int64)
    probes[3, -1] = -1  # fewer lists than nprobe
    probes[4, :2] = [5, 17]  # the empty lists
    keys = rng.integers(0, 1 << 12, (NQ, IVF_NPROBE)).astype(np.int32)
    return {"sizes": sizes, "starts": starts, "blocks": blocks, "list_ids": list_ids, "codes": codes,
            "packed": packed, "probes": probes, "keys": keys}


def ivf_reference(c, luts, probes, keys, k):
    """ivf_lut4_search by its contract: key = sum + probe key; the k best keys kept (equal keys: lower storage
    position), written by key desc, then lower id; -inf / -1 past the hits."""
    nq = luts.shape[0]
    out_k = np.full((nq, k), -np.inf, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    for q in range(nq):
        key_l, pos_l = [], []
        for p, lst in enumerate(probes[q]):
            if lst < 0:
                continue
            pos = np.arange(c["starts"][lst], c["starts"][lst + 1])
            table = luts[q, p if luts.shape[1] > 1 else 0]
            s = np.zeros(len(pos), np.int64)
            for j in range(IVF_S):
                s += table[j, c["codes"][pos, j]]
            key_l.append(s + keys[q, p])
            pos_l.append(pos)
        key, pos = np.concatenate(key_l), np.concatenate(pos_l)
        keep = np.lexsort((pos, -key))[:k]
        key, ids = key[keep], c["list_ids"][pos[keep]]
        order = np.lexsort((ids, -key))
        out_k[q, : len(keep)], out_i[q, : len(keep)] = key[order], ids[order]
    return out_k, out_i


@pytest.mark.benchmark(group="ivf_lut4_search ivf64,pq96x4fs N=65536 nprobe=8")
@pytest.mark.parametrize("nlut", [1, IVF_NPROBE], ids=["shared-tables", "per-list-tables"])
@pytest.mark.parametrize("nq", [1, NQ])
@pytest.mark.parametrize("variant", variants("lut4_scan"))
def test_ivf_lut4_search(benchmark, ivf_case, variant, nq, nlut):
    c = ivf_case
    rng = rng_for(9, nlut)
    luts = np.zeros((NQ, nlut, IVF_S, 16), np.uint8)
    luts[:] = rng.integers(0, 128, luts.shape, dtype=np.uint8)
    luts, probes, keys = luts[:nq], c["probes"][:nq], c["keys"][:nq]
    args = (luts, probes, keys, c["packed"], c["blocks"], c["starts"], c["list_ids"], K, 1)
    with medqk.use_kernel("lut4_scan", variant):
        got_k, got_i = benchmark(_backend._core.ivf_lut4_search, *args)
    want_k, want_i = ivf_reference(c, luts, probes, keys, K)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_k, want_k)


@pytest.mark.benchmark(group="ivf_quantize_tables")
@pytest.mark.parametrize("nlut", [1, IVF_NPROBE])
def test_ivf_quantize_tables(benchmark, nlut):
    t = rng_for(10, nlut).standard_normal((256, nlut, 95, 16)).astype(np.float32)
    luts, step, offsets = benchmark(_backend._core.ivf_quantize_tables, t)
    # medqk.h (and the Numba twin's float32 steps): lo = min_c, one step per query over all its table sets,
    # luts = clamp(rint((t - lo) * float32(1 / step))), offsets = sum_j lo in float64, in subspace order
    lo, hi = t.min(axis=3), t.max(axis=3)
    st = (hi - lo).max(axis=(1, 2)) / np.float32(127)
    inv = np.float32(1) / st
    want = np.clip(np.rint((t - lo[..., None]) * inv[:, None, None, None]), 0, 127).astype(np.uint8)
    off = np.zeros(lo.shape[:2], np.float64)
    for j in range(lo.shape[2]):
        off += lo[:, :, j].astype(np.float64)
    np.testing.assert_array_equal(luts[:, :, :95], want)
    assert (luts[:, :, 95:] == 0).all()
    np.testing.assert_array_equal(step, st)
    np.testing.assert_array_equal(offsets, off)


@pytest.mark.benchmark(group="select_topk_f32 (IVF's list choice, the float searches' top-k)")
@pytest.mark.parametrize("nprobe", [16, 256])
def test_select_topk_f32(benchmark, nprobe):
    # scores on a coarse grid: many ties, which go to the lower list id
    s = (np.round(rng_for(11).standard_normal((512, 4096)) * 8) / 8).astype(np.float32)
    best, lists = benchmark(_backend._core.select_topk_f32, s, nprobe, 1)
    want = np.lexsort((np.broadcast_to(np.arange(4096), s.shape), -s), axis=1)[:, :nprobe]
    np.testing.assert_array_equal(lists, want)
    np.testing.assert_array_equal(best, np.take_along_axis(s, want, axis=1))
