"""The cross-ISA harness: every kernel variant built into the module that this CPU can run, pinned and called
through its front end, equals a numpy reference: integers, ids and the tie rule exactly; float outputs on
data whose sums are exact in float32 (small integers), so every summation order gives the same bits.

The dispatch runs one variant per operation and ISA path, so a variant no path picks on this CPU (the
vpshufb 4-bit scan where VBMI exists, the AVX2 8-bit group scan under avx512vnni with VBMI) is run here.
A new kernel operation registers its check in CHECKS; test_every_operation_has_a_check fails until it does.
Shapes sweep odd sizes and every tail (blocks of 32 / 64 vectors, odd numbers of 4-bit subspace pairs,
more than 256 pairs where 16-bit lanes are flushed) and edge values (-128, 127, zeros, all-127 tables).
"""

from __future__ import annotations

import numpy as np
import pytest

import medqk
from medqk import _backend
from tests.variants import runnable_variants

pytestmark = pytest.mark.skipif(_backend._core is None, reason="native module not built")
core = _backend._core


def topk_ref(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per row by (score desc, id asc), padded with (-inf, -1) past the row length."""
    n = scores.shape[1]
    ids = np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)[:, :k]
    s = np.take_along_axis(scores, ids, axis=1)
    pad = max(0, k - n)
    return (np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf),
            np.pad(ids, ((0, 0), (0, pad)), constant_values=-1))


def check_gemm(isa: str) -> None:
    rng = np.random.default_rng(1)
    for m, n, k in [(1, 1, 1), (3, 5, 7), (17, 33, 65), (2, 31, 129), (5, 67, 4), (33, 17, 300)]:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (n, k), dtype=np.int8)
        a[0, :] = -128  # the products that saturate 16-bit pair sums elsewhere: (-128)(-128) * 2 = 2^15
        b[0, :] = -128
        if n > 1:
            b[1, :] = 127
        with medqk.use_isa(isa):
            for threads in (1, 2):
                got = core.gemm_s8s8_s32(a, b, threads)
                np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64).T,
                                              err_msg=f"{isa} {m}x{n}x{k}")


def lut4_case(rng, n, d, nq, fill):
    codes = rng.integers(0, 16, (n, d)).astype(np.uint8)
    luts = np.zeros((nq, d + (d & 1), 16), dtype=np.uint8)
    luts[:, :d] = {"random": lambda: rng.integers(0, 128, (nq, d, 16)), "max": lambda: 127,
                   "ties": lambda: rng.integers(0, 2, (nq, d, 16))}[fill]()
    sums = np.stack([luts[q, np.arange(d)[None, :], codes].astype(np.int64).sum(axis=1) for q in range(nq)])
    return codes, luts, sums


def check_lut4_scan(variant: str) -> None:
    rng = np.random.default_rng(2)
    # (n, d, nq, k): d = 5, 17, 33 subspaces are odd numbers of pairs once padded; n around the 32-row
    # blocks; nq past the 4 queries a scan call takes; d = 513 and 1025 pass 256 pairs (the 16-bit flush)
    cases = [(1, 1, 1, 1), (33, 5, 1, 5), (65, 17, 3, 5), (97, 33, 5, 10), (300, 34, 4, 3), (31, 2, 9, 40),
             (32, 6, 2, 32), (40, 513, 2, 5), (70, 1025, 1, 9)]
    for n, d, nq, k in cases:
        for fill in ("random", "max", "ties"):
            codes, luts, sums = lut4_case(rng, n, d, nq, fill)
            packed = core.lut4_pack(codes)
            alpha = np.full(nq, 0.5, np.float32)
            beta = np.full(nq, -1.0, np.float32)
            want_s, want_i = topk_ref(sums.astype(np.float64), k)
            with medqk.use_kernel("lut4_scan", variant):
                for threads in (1, 2):
                    s, i = core.lut4_search_topk(luts, packed, n, d, alpha, beta, k, threads)
                    msg = f"{variant} n={n} d={d} nq={nq} {fill} threads={threads}"
                    np.testing.assert_array_equal(i, want_i, err_msg=msg)
                    np.testing.assert_array_equal(s, (0.5 * want_s.astype(np.float32) - 1.0).astype(np.float32),
                                                  err_msg=msg)


def check_lut4_scan_ivf(variant: str) -> None:
    """The IVF front end drives the same scan over lists of any length (tails inside every list)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((700, 34)).astype(np.float32)
    q = rng.standard_normal((7, 34)).astype(np.float32)
    index = medqk.index.create("ivf8,pq17x4fs", 34, coarse_iter=3)
    index.train(x)
    index.add(x)
    with medqk.use_kernel("lut4_scan", "scalar"):
        want = index.search(q, 10, nprobe=3)
    with medqk.use_kernel("lut4_scan", variant):
        got = index.search(q, 10, nprobe=3)
    np.testing.assert_array_equal(got[1], want[1], err_msg=variant)
    np.testing.assert_array_equal(got[0], want[0], err_msg=variant)


def pack_pq8(codes: np.ndarray) -> np.ndarray:
    return core.pq8_pack(codes)


def check_pq8_scan(variant: str) -> None:
    rng = np.random.default_rng(4)
    for m in (1, 3, 17, 48):
        for n in (1, 63, 64, 65, 130):
            codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
            codes[0] = 255
            lut = rng.integers(0, 128, (m, 256), dtype=np.uint8)
            lut[:, 255] = 127  # vector 0 reaches the largest sum, 127 m
            packed = pack_pq8(codes)
            padded = np.zeros((-(-n // 64) * 64, m), np.uint8)
            padded[:n] = codes
            want = lut[np.arange(m)[None, :], padded].astype(np.int64).sum(axis=1)
            lut_t = rng.integers(0, 128, (m, 256, 16), dtype=np.uint8)
            group_sums = lut_t[np.arange(m)[None, :], padded].sum(axis=1, dtype=np.int64)
            with medqk.use_kernel("pq8_scan", variant):
                for thr in (0, int(np.median(want)), 127 * m, 65535):
                    sums, masks = core.pq8_scan(lut, packed, n, thr)
                    bits = (want >= thr).reshape(-1, 64).astype(np.uint64)
                    np.testing.assert_array_equal(sums, want, err_msg=f"{variant} m={m} n={n}")
                    np.testing.assert_array_equal(
                        masks, (bits << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64))
                thr16 = rng.integers(0, 128 * m, 16).astype(np.uint16)
                thr16[:2] = [0, 65535]
                hits, hit_sums = core.pq8_scan_group(lut_t, packed, n, thr16)
            v, g = np.nonzero(group_sums >= thr16[None, :].astype(np.int64))
            np.testing.assert_array_equal(hits, (v * 16 + g).astype(np.uint32), err_msg=f"{variant} group")
            np.testing.assert_array_equal(hit_sums, group_sums[v, g].astype(np.uint16))
    # the search: 1 to 17 queries (one at a time, and the 16-query group where the variant has one), two
    # chunks of 1,024 vectors (the threshold is refreshed between them), small-integer tables: exact floats
    for n, m, nq, k in [(1, 1, 1, 3), (65, 3, 5, 7), (1100, 17, 17, 10), (300, 48, 16, 1), (129, 7, 4, 130)]:
        codes = rng.integers(0, 256, (n, m), dtype=np.uint8)
        codes[n // 2:] = codes[: n - n // 2]  # duplicate vectors: equal scores, ids decide
        t = rng.integers(-20, 21, (nq, m, 256)).astype(np.float32)
        want_s, want_i = topk_ref(t[:, np.arange(m)[None, :], codes].sum(axis=2, dtype=np.float64), k)
        with medqk.use_kernel("pq8_scan", variant):
            for threads in (1, 2):
                s, i = core.pq8_search_topk(t, pack_pq8(codes), n, k, threads)
                np.testing.assert_array_equal(i, want_i, err_msg=f"{variant} n={n} m={m} nq={nq}")
                np.testing.assert_array_equal(s, want_s.astype(np.float32))


def check_f16_scores(variant: str) -> None:
    rng = np.random.default_rng(5)
    for nq, n, d, k in [(1, 1, 1, 1), (3, 15, 7, 20), (2, 17, 16, 5), (5, 100, 33, 10), (1, 64, 129, 64)]:
        # integers up to 8: every product and sum is exact in float32, so any order gives the same bits
        x = rng.integers(-8, 9, (n, d)).astype(np.float16)
        x[n // 2:] = x[: n - n // 2]  # ties: lower id first
        q = rng.integers(-8, 9, (nq, d)).astype(np.float32)
        bias = rng.integers(-4, 5, n).astype(np.float32)
        for b in (None, bias):
            exact = q.astype(np.float64) @ x.astype(np.float64).T * 2.0 + (0 if b is None else b)
            want_s, want_i = topk_ref(exact, k)
            with medqk.use_kernel("f16_scores", variant):
                for threads in (1, 2):
                    s, i = core.f16_search_topk(q, x.view(np.uint16), 2.0, b, k, threads)
                    np.testing.assert_array_equal(i, want_i, err_msg=f"{variant} n={n} d={d}")
                    np.testing.assert_array_equal(s, want_s.astype(np.float32))


def check_s8_score_candidates(variant: str) -> None:
    rng = np.random.default_rng(6)
    for nq, n, d, kc in [(1, 1, 1, 1), (3, 20, 7, 5), (2, 50, 16, 9), (4, 40, 33, 17), (1, 30, 129, 30)]:
        codes = rng.integers(-128, 128, (n, d), dtype=np.int8)
        cand = rng.integers(-1, n + 1, (nq, kc)).astype(np.int64)  # -1 and n: invalid ids score -inf
        qi = rng.integers(-64, 65, (nq, d)).astype(np.float32)  # exact sums: the numpy value itself
        qf = rng.standard_normal((nq, d)).astype(np.float32)  # every variant adds in the documented order
        valid = (cand >= 0) & (cand < n)
        want = np.einsum("qd,qcd->qc", qi.astype(np.float64), codes[np.clip(cand, 0, n - 1)].astype(np.float64))
        want[~valid] = -np.inf
        with medqk.use_kernel("s8_score_candidates", "scalar"):
            ref_f = core.s8_score_candidates(qf, codes, cand, 1)
        with medqk.use_kernel("s8_score_candidates", variant):
            for threads in (1, 2):
                np.testing.assert_array_equal(core.s8_score_candidates(qi, codes, cand, threads),
                                              want.astype(np.float32), err_msg=f"{variant} d={d}")
                np.testing.assert_array_equal(core.s8_score_candidates(qf, codes, cand, threads), ref_f,
                                              err_msg=f"{variant} d={d}: not the documented order")


def check_pq_assign(variant: str) -> None:
    rng = np.random.default_rng(7)
    for n, m, k, dsub in [(1, 1, 1, 1), (9, 3, 5, 2), (33, 2, 17, 3), (70, 4, 256, 4), (20, 5, 9, 1)]:
        # small integers: every distance is exact, so each variant finds the same minimum, and duplicate
        # centroids tie (the lowest index wins)
        centroids = rng.integers(-4, 5, (m, k, dsub)).astype(np.float32)
        centroids[:, k // 2:] = centroids[:, : k - k // 2]
        x = rng.integers(-6, 7, (n, m * dsub)).astype(np.float32)
        xs = x.reshape(n, m, dsub).astype(np.float64)
        c = centroids.astype(np.float64)
        score = (c**2).sum(-1)[None] - 2 * np.einsum("nmd,mkd->nmk", xs, c)
        want_codes = score.argmin(-1)  # the first minimum: the lowest index
        want_dist = np.maximum(score.min(-1) + (xs**2).sum(-1), 0)
        with medqk.use_kernel("pq_assign", variant):
            for threads in (1, 2):
                codes, dist = core.pq_assign(x, centroids, threads)
                np.testing.assert_array_equal(codes, want_codes, err_msg=f"{variant} k={k} dsub={dsub}")
                np.testing.assert_array_equal(dist, want_dist.astype(np.float32))


def check_quantize_rows_s8(variant: str) -> None:
    rng = np.random.default_rng(8)
    for m, k in [(1, 1), (3, 7), (5, 31), (4, 33), (2, 257)]:
        x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
        x[0, :] = 0.0  # an all-zero row: scale 1, zeros
        if k > 2:  # amax 127: the multiplier is exactly 1, so .5 rounds to the even neighbour
            x[-1, :3] = [127.0, 2.5, -3.5]
        amax = np.abs(x).max(axis=1)
        inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
        want_q = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
        want_s = np.where(amax > 0, amax / np.float32(127), 1).astype(np.float32)
        with medqk.use_kernel("quantize_rows_s8", variant):
            q, scales = core.quantize_rows_s8(x)
        np.testing.assert_array_equal(q, want_q, err_msg=f"{variant} {m}x{k}")
        np.testing.assert_array_equal(scales, want_s)


def check_gemm_w4a8(variant: str) -> None:
    rng = np.random.default_rng(9)
    # (m, n, k, group): the one-row tile and every row-tile height, odd n (half panels), partial last groups
    for m, n, k, g in [(1, 1, 1, 32), (1, 9, 100, 32), (5, 7, 257, 64), (17, 33, 300, 128), (3, 5, 64, 96)]:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
        levels = rng.integers(-127, 128, (n, 16), dtype=np.int8)
        a[0] = -128  # with levels -127: the pair sums that saturate u8 x s8 multiply-adds elsewhere
        levels[0] = -127
        w = np.take_along_axis(levels, codes.astype(np.intp), axis=1).astype(np.int64)
        want = np.stack([a[:, i:i + g].astype(np.int64) @ w[:, i:i + g].T for i in range(0, k, g)], axis=-1)
        with medqk.use_kernel("gemm_w4a8", variant):
            packed = core.pack_w4(codes, levels, g)
            for threads in (1, 2):
                np.testing.assert_array_equal(core.gemm_w4a8_s32(a, packed, threads), want,
                                              err_msg=f"{variant} {m}x{n}x{k} g{g}")


def check_attention(variant: str) -> None:
    """Small integer q and k, power-of-two scale and v: every score, weight ratio and sum is checked against
    float64 within the bound tests/kernels/test_attention.py derives (here mostly the exp's error)."""
    from tests.float_bounds import attention_reference

    rng = np.random.default_rng(8)
    for batch, length, heads, dh, lengths in [(1, 1, 1, 1, [1]), (2, 9, 3, 5, [9, 0]), (3, 19, 2, 17, [19, 8, 1])]:
        q, k = (rng.integers(-2, 3, (batch * length, heads * dh)).astype(np.float32) for _ in range(2))
        v = rng.integers(-4, 5, (batch * length, heads * dh)).astype(np.float32)
        lengths = np.array(lengths)
        with medqk.use_kernel("attention_f32", variant):
            for threads in (1, 2):
                got = core.attention_f32(q, k, v, lengths, heads, 0.5, threads)
                want, bound = attention_reference(q, k, v, lengths, heads, 0.5)
                assert (np.abs(got - want) <= bound).all(), f"{variant} {batch}x{length} dh={dh}"


def check_gelu(variant: str) -> None:
    from tests.float_bounds import gelu_reference

    x = np.concatenate([np.linspace(-12, 12, 997), [0.0, 127.0, -128.0]]).astype(np.float32)
    want, bound = gelu_reference(x)
    with medqk.use_kernel("gelu_f32", variant):
        for threads in (1, 2):
            assert (np.abs(core.gelu_f32(x, threads) - want) <= bound).all(), variant


def rabitq_case(rng, n, dim, bits, nq):
    """Codes (random, all ones, all zeros; padding bits set, which the scan must ignore), query planes, and
    the exact integers sum_j 2^j popcount(code & plane_j) over the dim dimensions."""
    nbytes = (dim + 7) // 8
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    codes[0] = 255
    if n > 1:
        codes[1] = 0
    planes = rng.integers(0, 256, (nq, bits, nbytes), dtype=np.uint8)
    planes[0] = 255  # every u_i = 2^bits - 1: the largest sums
    b = np.unpackbits(codes, axis=1, bitorder="little", count=dim).astype(np.int64)
    u = sum(np.unpackbits(planes[:, j], axis=1, bitorder="little", count=dim).astype(np.int64) << j
            for j in range(bits))
    return codes, planes, u @ b.T, b.sum(axis=1)


def check_rabitq_scan(variant: str) -> None:
    from medqk.quantizers.rabitq import scan_scores

    rng = np.random.default_rng(12)
    with medqk.use_kernel("rabitq_scan", variant):
        # d around the 64-bit words and the bytes, n around the blocks of 8 and the chunks of 512, 1..8 planes
        # (AVX2 / NEON sum up to 4 planes in bytes: 5 and 8 take a second group)
        for n, dim, bits in [(1, 1, 1), (7, 7, 4), (8, 63, 8), (9, 64, 5), (17, 65, 4), (65, 130, 3), (520, 384, 4),
                             (33, 200, 8), (3, 1000, 2)]:
            codes, planes, want, pop = rabitq_case(rng, n, dim, bits, 3)
            packed, got_pop = core.rabitq_pack(codes, dim)
            np.testing.assert_array_equal(got_pop, pop, err_msg=f"{variant} pop n={n} d={dim}")
            for threads in (1, 2):
                np.testing.assert_array_equal(core.rabitq_scan_ints(packed, n, dim, planes, threads), want,
                                              err_msg=f"{variant} n={n} d={dim} bits={bits}")
        # the search: float scores in the scan's order (numpy gives the same bits), duplicate codes and factors
        # (equal scores: ids decide), k past n, an allow-bitmap, one and two threads, more queries than a group
        for n, dim, bits, nq, k in [(1, 5, 1, 1, 3), (70, 64, 4, 9, 7), (1100, 100, 4, 17, 10), (129, 384, 8, 2, 130)]:
            codes, planes, ip, pop = rabitq_case(rng, n, dim, bits, nq)
            codes[n // 2:] = codes[: n - n // 2]
            mult = rng.standard_normal(n).astype(np.float32)
            add = rng.standard_normal(n).astype(np.float32)
            mult[n // 2:], add[n // 2:] = mult[: n - n // 2], add[: n - n // 2]
            ip = np.concatenate([ip[:, : n // 2], ip[:, : n - n // 2]], axis=1)
            pop = np.concatenate([pop[: n // 2], pop[: n - n // 2]])
            a, c1, c2, c3 = (rng.standard_normal(nq).astype(np.float32) for _ in range(4))
            scores = scan_scores(ip, pop, a, c1, c2, c3, mult, add)
            mask = rng.random(n) < 0.6
            allow = np.packbits(mask, bitorder="little")
            packed, _ = core.rabitq_pack(codes, dim)
            for bitmap, visible in ((None, scores), (allow, np.where(mask[None, :], scores, -np.inf))):
                want_s, want_i = topk_ref(visible, k)
                if bitmap is not None:  # the rows allow clears are never returned: padding past the allowed ones
                    cut = min(k, int(mask.sum()))
                    want_s[:, cut:], want_i[:, cut:] = -np.inf, -1
                for threads in (1, 2):
                    s, i = core.rabitq_search_topk(packed, pop.astype(np.int32), mult, add, dim, planes, a, c1, c2, c3,
                                                   k, threads, bitmap)
                    np.testing.assert_array_equal(i, want_i, err_msg=f"{variant} n={n} d={dim} nq={nq}")
                    np.testing.assert_array_equal(s, want_s)


CHECKS = {"gemm_s8s8_s32": [check_gemm], "lut4_scan": [check_lut4_scan, check_lut4_scan_ivf],
          "pq8_scan": [check_pq8_scan], "f16_scores": [check_f16_scores],
          "s8_score_candidates": [check_s8_score_candidates], "pq_assign": [check_pq_assign],
          "quantize_rows_s8": [check_quantize_rows_s8], "gemm_w4a8": [check_gemm_w4a8],
          "attention_f32": [check_attention], "gelu_f32": [check_gelu], "rabitq_scan": [check_rabitq_scan]}


def _params():
    out = [pytest.param(check, isa, id=f"gemm_s8s8_s32-{isa}") for check in CHECKS["gemm_s8s8_s32"]
           for isa in medqk.available_isas()]
    for op, checks in CHECKS.items():
        if op != "gemm_s8s8_s32":
            out += [pytest.param(check, v, id=f"{check.__name__[6:]}-{v}") for check in checks
                    for v in runnable_variants(op)]
    return out


@pytest.mark.parametrize("check,variant", _params())
def test_variant_equals_reference(check, variant):
    check(variant)


def test_every_operation_has_a_check():
    assert sorted(core.kernel_operations()) == sorted(CHECKS)
    for op in CHECKS:  # every variant this CPU can run is reached (the GEMM's through its ISA)
        names = set(runnable_variants(op))
        reached = set(medqk.available_isas()) if op == "gemm_s8s8_s32" else names
        assert names <= reached and "scalar" in names
