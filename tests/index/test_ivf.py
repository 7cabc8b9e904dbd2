"""ivf<nlist>,<pq>x4fs: backends agree, scores are ADC within the table quantization, recall vs nprobe, add,
save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.index import SpecDataWarning
from medqk.index.io import IndexFileError
from medqk.index.ivf import IVFLUT4Index

from .test_flat import data, exact, recall

D = 32


def _adc(index, q, ids, metric):
    """Scores of the reconstructed vectors c_l + r_hat (float64): the PQ scores the index approximates."""
    rec = index.vectors(ids.reshape(-1)).reshape(ids.shape + (D,)).astype(np.float64)
    q64 = q.astype(np.float64)
    return np.einsum("qd,qkd->qk", q64, rec) if metric == "ip" else ((q64[:, None] - rec) ** 2).sum(-1)


def _assert_adc_within_quantization(index, q, scores, ids, metric, nprobe):
    """Returned scores are the PQ scores up to the uint8 table quantization: S entries and the list constant
    each rounded to the query's step, so at most (S + 1) / 2 steps off (l2: twice that, -2 x the score)."""
    probes, bias = index._probe(q, nprobe)
    step = index._tables(q, probes, bias, 1)[2]
    bound = (index.n_sub + 1) / 2 * step[:, None] * (2 if metric == "l2" else 1)
    err = np.abs(scores - _adc(index, q, ids, metric))
    assert (err <= bound * (1 + 1e-3) + 1e-5).all(), (err / bound).max()
    return err / bound


@pytest.fixture(scope="module")
def built():
    """Trained indexes shared by the tests below (training is the slow part)."""
    out = {}
    for metric in ("ip", "l2"):
        x, q = data(n=1500, nq=40, d=D, normalize=metric == "ip")
        for spec in ("ivf16,pq8x4fs", "ivf16,opq,pq8x4fs"):
            out[spec, metric] = (mi.create(spec, D, metric, coarse_iter=10).train(x).add(x[:700]).add(x[700:]), x, q)
    return out


@pytest.mark.parametrize("spec", ["ivf16,pq8x4fs", "ivf16,opq,pq8x4fs"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("nprobe", [1, 5, 16])
def test_every_backend_gives_the_same_adc_results(backend, built, spec, metric, nprobe):
    index, x, q = built[spec, metric]
    scores, ids = index.search(q, 10, nprobe=nprobe)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and scores.shape == ids.shape == (len(q), 10)
    _assert_adc_within_quantization(index, q, scores, ids, metric, nprobe)
    # results come from the probed lists only: each id's list is among the nprobe best centroids
    x_ids = x[ids.reshape(-1)]
    if metric == "ip":  # the list a vector went to: largest x.c (ip), nearest c (l2)
        lists = np.argmax(x_ids @ index.centroids.T, axis=1)
    else:
        lists = np.argmin(((x_ids[:, None] - index.centroids[None]) ** 2).sum(-1), axis=1)
    probes, _ = index._probe(q, nprobe)
    assert all(lst in set(p) for lst, p in zip(lists.reshape(ids.shape).tolist(), probes) for lst in lst)
    # identical to the native scalar reference, bit for bit (the candidates are exact integer keys)
    import medqk

    with medqk.use_backend("native"), medqk.use_isa("scalar"):
        ref_s, ref_i = index.search(q, 10, nprobe=nprobe)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_array_equal(scores, ref_s)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("nprobe", [1, 5, 16])
def test_candidates_for_rerank_are_the_best_keys(backend, built, metric, nprobe):
    import medqk

    index, x, q = built["ivf16,pq8x4fs", metric]
    with medqk.use_backend("native"), medqk.use_isa("scalar"):
        ref_s, ref_cand = index.search(q, 20, nprobe=nprobe)
    old = index.nprobe
    index.nprobe = nprobe
    try:
        cand = index._candidates(q, 20, 1)
        raw, raw_ids = index._scores_topk(q, 20, 1)  # before search() turns l2 scores into distances
    finally:
        index.nprobe = old
    np.testing.assert_array_equal(cand, ref_cand)  # every backend and ISA: the search's own ranking
    np.testing.assert_array_equal(raw_ids, ref_cand)
    # scores are integer keys in float units: step * (key + shift), best first
    probes, bias = index._probe(q, nprobe)
    _, _, step, shift = index._tables(q, probes, bias, 1)
    valid = ref_cand >= 0
    assert valid[:, 0].all()
    keys = raw / step[:, None] - shift[:, None]
    assert np.abs(keys - np.rint(keys))[valid].max() < 1e-3
    assert all((np.diff(k[v]) <= 0).all() for k, v in zip(raw, valid))


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_all_lists_and_all_vectors_give_the_exhaustive_adc_ranking(backend, built, metric):
    # nprobe = nlist and k = ntotal: every vector is a candidate, so the result is the exhaustive ADC
    # ranking (up to the table quantization): every id once, scores monotone, equal scores by increasing id
    index, x, q = built["ivf16,pq8x4fs", metric]
    scores, ids = index.search(q[:5], len(x), nprobe=16)
    assert (np.sort(ids, axis=1) == np.arange(len(x))).all()
    d = np.diff(scores, axis=1)
    assert (d <= 0).all() if metric == "ip" else (d >= 0).all()
    tied = d == 0
    assert tied.any() and (np.diff(ids, axis=1)[tied] > 0).all()
    rel = _assert_adc_within_quantization(index, q[:5], scores, ids, metric, 16)
    assert np.median(rel) < 0.5  # independent roundings: typically far inside the worst-case bound


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_recall_grows_with_nprobe_and_reaches_flat_pq(metric):
    # 200 small clusters over 32 lists: a query's neighbours straddle list borders
    rng = np.random.default_rng(0)
    c = rng.standard_normal((200, D))
    x = (c[rng.integers(0, 200, 3000)] + 0.5 * rng.standard_normal((3000, D))).astype(np.float32)
    q = (c[rng.integers(0, 200, 40)] + 0.5 * rng.standard_normal((40, D))).astype(np.float32)
    if metric == "ip":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    ref = exact(x, q, 10, metric)[1]
    index = mi.create("ivf32,pq16x4fs", D, metric, coarse_iter=10).train(x).add(x)
    r = [recall(index.search(q, 10, nprobe=p)[1], ref) for p in (1, 2, 4, 8, 16, 32)]
    assert all(b >= a - 0.01 for a, b in zip(r, r[1:])), r
    assert r[-1] > r[0] + 0.1, r  # measured: ip 0.67 -> 0.81, l2 0.71 -> 0.85
    # flat PQ with the same encoding as IVF's residual codes: nearest centroids (eta=1; flat ip PQ defaults
    # to score-aware codes, which IVF does not use)
    flat = mi.create("pq16x4fs", D, metric, eta=1.0).train(x).add(x)
    r_flat = recall(flat.search(q, 10)[1], ref)
    # residuals are smaller than the vectors: the same M codes them at least as well (measured +0.005/+0.025)
    assert r[-1] >= r_flat - 0.02, (r, r_flat)


def test_table_quantization_is_identical_on_every_backend(backend):
    # random tables, exact halves of the step (round half even), a constant set (span 0), odd S
    rng = np.random.default_rng(3)
    cases = [rng.standard_normal((5, 3, 7, 16)).astype(np.float32) * 4,
             (rng.integers(0, 511, (4, 1, 96, 16)) * 0.5).astype(np.float32),
             np.full((2, 2, 5, 16), 1.25, dtype=np.float32)]
    for t in cases:
        luts, step, off = IVFLUT4Index._quantize(t)
        lo = t.min(-1)
        span = (t.max(-1) - lo).max(axis=(1, 2))
        want_step = np.where(span > 0, span / np.float32(127), np.float32(1)).astype(np.float32)
        np.testing.assert_array_equal(step, want_step)
        inv = (np.float32(1) / want_step).astype(np.float32)
        want = np.clip(np.rint((t - lo[..., None]) * inv[:, None, None, None]), 0, 127).astype(np.uint8)
        S = t.shape[2]
        np.testing.assert_array_equal(luts[:, :, :S], want)
        assert (luts[:, :, S:] == 0).all() and luts.shape[2] == S + (S & 1)
        np.testing.assert_allclose(off, lo.astype(np.float64).sum(-1), rtol=1e-12)


def test_nprobe_option_property_and_per_call(built):
    index, _, q = built["ivf16,pq8x4fs", "ip"]
    assert mi.create("ivf16,pq8x4fs", D).nprobe == 16 and mi.create("ivf4,pq8x4fs", D).nprobe == 4
    assert mi.create("ivf16,pq8x4fs", D, nprobe=3).nprobe == 3
    old = index.nprobe
    try:
        index.nprobe = 2
        two = index.search(q, 10)
        assert index.search(q, 10, nprobe=9)[1].tolist() != two[1].tolist()
        assert index.nprobe == 2  # a per-call nprobe does not stick
        np.testing.assert_array_equal(index.search(q, 10)[1], two[1])
    finally:
        index.nprobe = old
    for bad in (0, 17, -1, 2.0, True, "4"):
        with pytest.raises(ValueError, match="nprobe"):
            index.nprobe = bad
        with pytest.raises(ValueError, match="nprobe"):
            index.search(q, 10, nprobe=bad)
        with pytest.raises(ValueError, match="nprobe"):
            mi.create("ivf16,pq8x4fs", D, nprobe=bad)


def test_add_in_parts_equals_one_add_and_ids_continue():
    x, q = data(n=900, nq=20, d=D)
    a = mi.create("ivf8,pq8x4fs", D, nprobe=3).train(x)
    b = mi.create("ivf8,pq8x4fs", D, nprobe=3).train(x)
    a.add(x)
    for part in np.array_split(x, 4):
        b.add(part)
    assert a.ntotal == b.ntotal == 900 and a.list_sizes().sum() == 900
    for u, v in zip(a.search(q, 10), b.search(q, 10)):
        np.testing.assert_array_equal(u, v)


def test_ties_padding_and_rerank():
    x, q = data(n=400, nq=10, d=D)
    xx = np.concatenate([x, x[:50]])  # ids 400..449 duplicate 0..49: equal scores, lower id first
    index = mi.create("ivf4,pq8x4fs", D, nprobe=4).train(xx).add(xx)
    s, i = index.search(q, len(xx))
    pos = np.argsort(i, axis=1)  # pos[r, id] = rank of id in row r
    assert (pos[:, :50] < pos[:, 400:]).all()
    np.testing.assert_array_equal(np.take_along_axis(s, pos[:, :50], 1), np.take_along_axis(s, pos[:, 400:], 1))
    for spec in ("ivf2,pq8x4fs", "ivf2,pq8x4fs+rerank:float32", "ivf2,pq8x4fs+rerank:int8"):
        for metric, pad in (("ip", -np.inf), ("l2", np.inf)):
            # k = ntotal = 6 but one list probed: a row holds the vectors of its query's list, then pads
            small = mi.create(spec, D, metric).train(x).add(x[:6])
            ivf = small.base if "rerank" in spec else small
            found = ivf.list_sizes()[ivf._probe(q, 1)[0][:, 0]]
            assert (found < 6).any()
            ivf.nprobe = 1
            s, i = small.search(q, 6)
            assert s.shape == i.shape == (len(q), 6)
            np.testing.assert_array_equal((i >= 0).sum(axis=1), found)
            for r, f in enumerate(found):  # found ids first; -1 (score -inf / +inf) after, also after rerank
                assert (i[r, :f] >= 0).all() and np.isfinite(s[r, :f]).all()
                assert (i[r, f:] == -1).all() and (s[r, f:] == pad).all()
    rr = mi.create("ivf8,pq8x4fs+rerank:int8", D, nprobe=8).train(x).add(x)
    assert rr.rerank_factor == 20 and rr.bytes_per_vector == 4 + 8 + 32
    assert recall(rr.search(q, 10)[1], exact(x, q, 10, "ip")[1]) >= 0.95


@pytest.mark.parametrize("spec", ["ivf16,pq8x4fs", "ivf16,opq,pq8x4fs", "ivf16,pq8x4fs+rerank:int8"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_save_load_gives_identical_results(tmp_path, spec, metric):
    x, q = data(n=800, nq=20, d=D, normalize=metric == "ip")
    index = mi.create(spec, D, metric, nprobe=5, coarse_iter=5).train(x).add(x)
    index.save(tmp_path / "ivf.mqk")
    for mmap in (False, True):
        back = mi.load(tmp_path / "ivf.mqk", mmap=mmap)
        ivf = back.base if "rerank" in spec else back
        assert isinstance(ivf, IVFLUT4Index) and ivf.nprobe == 5 and back.ntotal == 800
        for u, v in zip(index.search(q, 10), back.search(q, 10)):
            np.testing.assert_array_equal(u, v)
    # an untrained index round-trips too
    mi.create(spec, D, metric).save(tmp_path / "empty.mqk")
    assert not mi.load(tmp_path / "empty.mqk").is_trained


def test_corrupt_files_and_inconsistent_lists(tmp_path):
    x, _ = data(n=300, nq=1, d=D)
    index = mi.create("ivf4,pq8x4fs", D).train(x).add(x)
    path = tmp_path / "ivf.mqk"
    index.save(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.mqk").write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match="checksum"):
        mi.load(tmp_path / "bad.mqk")
    config, arrays = index._state()
    for name, bad in (("list_starts", arrays["list_starts"][:-1]), ("list_ids", arrays["list_ids"][::-1][1:]),
                      ("list_blocks", arrays["list_blocks"] + 1), ("packed", arrays["packed"][:-16]),
                      ("coarse_centroids", arrays["coarse_centroids"][:2])):
        fresh = mi.create("ivf4,pq8x4fs", D)
        with pytest.raises(IndexFileError, match="corrupt"):
            fresh._load_state(config, {**arrays, name: bad})


def test_bad_specs_inputs_and_training():
    for spec, match in (("ivf0,pq8x4fs", "nlist"), ("ivf16,pq4x8", "4-bit"), ("ivf16,int8", "4-bit"),
                        ("ivf16", "ivf<nlist>"), ("ivfx,pq8x4fs", "ivf<nlist>"), ("ivf16,opq,int8", "opq"),
                        ("int8+rerank:ivf16,pq8x4fs", "rerank")):
        with pytest.raises(ValueError, match=match):
            mi.create(spec, D)
    with pytest.raises(ValueError, match="divide"):
        mi.create("ivf16,pq5x4fs", D)
    with pytest.raises(TypeError, match="ef_search"):
        mi.create("ivf16,pq8x4fs", D, ef_search=3)
    with pytest.raises(TypeError, match="opq_iter"):
        mi.create("ivf16,pq8x4fs", D, opq_iter=3)
    for opt in ("coarse_iter", "coarse_max_train"):
        with pytest.raises(ValueError, match=opt):
            mi.create("ivf16,pq8x4fs", D, **{opt: 0})
    x, q = data(n=100, nq=2, d=D)
    index = mi.create("ivf128,pq8x4fs", D)
    with pytest.raises(ValueError, match="at least nlist=128"):
        index.train(x)
    with pytest.raises(RuntimeError, match="trained"):
        index.add(x)
    with pytest.warns(SpecDataWarning, match="ivf4 trained on 100 vectors, 25.0 per list"):
        index = mi.create("ivf4,pq8x4fs", D).train(x)
    with pytest.raises(RuntimeError, match="empty"):
        index.search(q, 3)
    index.add(x)
    with pytest.raises(ValueError, match="q has dimension"):
        index.search(q[:, :5], 3)
    with pytest.raises(ValueError, match="k must"):
        index.search(q, 0)
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((2, D), np.nan, dtype=np.float32))


def test_spec_lists_keep_commas_inside_specs():
    from medqk.index.spec import split_specs

    assert split_specs("int8, ivf1024,pq96x4fs,opq,pq48x8,ivf16,opq,pq8x4fs+rerank:int8,cb4") == [
        "int8", "ivf1024,pq96x4fs", "opq,pq48x8", "ivf16,opq,pq8x4fs+rerank:int8", "cb4"]


def test_coarse_kmeans_repairs_empty_lists_and_is_seeded():
    # 10 distinct points repeated, 10 lists: random seeds can pick duplicates; every list must get its point
    rng = np.random.default_rng(1)
    base = rng.standard_normal((10, D)).astype(np.float32)
    x = np.repeat(base, 40, axis=0)  # 40 per list: enough for IVF (39), no SpecDataWarning
    a = mi.create("ivf10,pq8x4fs", D, seed=5).train(x).add(x)
    assert (a.list_sizes() == 40).all()
    b = mi.create("ivf10,pq8x4fs", D, seed=5).train(x)
    np.testing.assert_array_equal(a.centroids, b.centroids)


def test_native_scan_refuses_bad_arguments(built):
    # the binding checks what the scan kernel relies on: table entries <= 127, probes in range and distinct,
    # list keys in 0..2^23, k >= 1
    from medqk import _backend

    core = _backend._core
    if core is None:
        pytest.skip("needs the native module")
    index, _, q = built["ivf16,pq8x4fs", "ip"]
    probes, bias = index._probe(q, 3)
    luts, keys, _, _ = index._tables(q, probes, bias, 1)
    lists = (index._packed, index._list_blocks, index._list_starts, index._list_ids)
    ok = core.ivf_lut4_search(luts, probes, keys, *lists, 5)
    np.testing.assert_array_equal(ok[1], index._scan(luts, probes, keys, 5, 1)[1])
    bad = luts.copy()
    bad[-1, 0, -1, -1] = 128  # the very last byte: the check covers every entry
    with pytest.raises(ValueError, match="<= 127"):
        core.ivf_lut4_search(bad, probes, keys, *lists, 5)
    dup = probes.copy()
    dup[0, 1] = dup[0, 0]
    with pytest.raises(ValueError, match="repeats"):
        core.ivf_lut4_search(luts, dup, keys, *lists, 5)
    out = probes.copy()
    out[0, 0] = index.nlist
    with pytest.raises(ValueError, match="bad list id"):
        core.ivf_lut4_search(luts, out, keys, *lists, 5)
    big = keys.copy()
    big[0, 0] = (1 << 23) + 1
    with pytest.raises(ValueError, match="probe_keys"):
        core.ivf_lut4_search(luts, probes, big, *lists, 5)
    with pytest.raises(ValueError, match="k must be"):
        core.ivf_lut4_search(luts, probes, keys, *lists, 0)


def test_scan_allow_bitmap_is_over_ids_on_every_backend(built):
    # the scan takes the allow-bitmap over the vectors' ids (list_ids values), not their storage positions,
    # and tests it for its candidates only: native and the Numba twin keep exactly the allowed ids, equal
    # to the unfiltered scan of a bitmap-free index restricted by hand; ids outside the stored range are
    # never allowed (a corrupt list cannot read past the bitmap)
    from medqk import _backend
    from medqk.kernels import _numba_ivf

    index, x, q = built["ivf16,pq8x4fs", "ip"]
    n = index.ntotal
    assert not np.array_equal(index._list_ids, np.arange(n))  # positions and ids differ: the test can tell
    probes, bias = index._probe(q, 16)
    luts, keys, _, _ = index._tables(q, probes, bias, 1)
    allowed = np.random.default_rng(3).random(n) < 0.3
    bits = np.packbits(allowed, bitorder="little")
    lists = (index._packed, index._list_blocks, index._list_starts, index._list_ids)

    def twin(list_ids, allow):
        kf = np.empty((len(q), 5), np.float32)
        ids = np.empty((len(q), 5), np.int64)
        _numba_ivf.ivf_lut4_search(luts, probes, keys, *lists[:3], list_ids, 5, kf, ids, allow)
        return kf, ids

    got = [twin(index._list_ids, bits)]
    if _backend._core is not None:
        got.append(_backend._core.ivf_lut4_search(luts, probes, keys, *lists, 5, 1, bits))
    full_i = twin(index._list_ids, np.empty(0, np.uint8))[1]
    # the reference: every key of the unfiltered scan (k = n), the allowed ones in its order
    ref_k = np.empty((len(q), n), np.float32)
    ref_i = np.empty((len(q), n), np.int64)
    _numba_ivf.ivf_lut4_search(luts, probes, keys, *lists, n, ref_k, ref_i, np.empty(0, np.uint8))
    for kf, ids in got:
        assert allowed[ids].all()
        for r in range(len(q)):
            keep = allowed[ref_i[r]]
            np.testing.assert_array_equal(ids[r], ref_i[r][keep][:5])
            np.testing.assert_array_equal(kf[r], ref_k[r][keep][:5])
        assert not np.array_equal(ids, full_i)  # the filter changed the results
    bad = index._list_ids.copy()
    bad[::2] = n + 3  # ids past the bitmap: never allowed, never read
    kf, ids = twin(bad, bits)
    assert (ids != n + 3).all()
    if _backend._core is not None:
        nk, ni = _backend._core.ivf_lut4_search(luts, probes, keys, *lists[:3], bad, 5, 1, bits)
        np.testing.assert_array_equal(ni, ids)
        np.testing.assert_array_equal(nk, kf)


def test_spec_data_warning_for_too_many_lists():
    import warnings

    x, _ = data(n=2000, nq=1, d=D)
    with pytest.warns(SpecDataWarning, match=r"ivf1024 trained on 2,000 vectors, 2\.0 per list") as caught:
        mi.create("ivf1024,pq8x4fs", D, coarse_iter=2).train(x)
    message = str(caught[0].message)
    assert "39,936" in message and "use ivf32 (or fewer lists) or a flat spec" in message
    assert caught[0].filename == __file__  # attributed to the caller's train(), not to medqk's internals
    with pytest.warns(SpecDataWarning, match="use a flat spec"):  # 60 vectors: too few for any IVF
        mi.create("ivf2,pq8x4fs", D).train(x[:60])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sane setup warns about nothing
        mi.create("ivf32,pq8x4fs", D, coarse_iter=2).train(x)  # 62.5 per list
    # enough vectors, but a coarse sample capped below 39 per list is too small all the same
    with pytest.warns(SpecDataWarning, match="ivf32 trained on 640 vectors"):
        mi.create("ivf32,pq8x4fs", D, coarse_iter=2, coarse_max_train=640).train(x)


def test_progress_bars_and_chunked_encoding(monkeypatch, capsys):
    from medqk.index import ivf as ivf_module

    x, q = data(n=1000, nq=10, d=D)
    quiet = mi.create("ivf8,pq8x4fs", D, progress=False, coarse_iter=3, max_iter=3).train(x).add(x)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(ivf_module, "_ENCODE_CHUNK", 300)  # 4 encoding steps
    shown = mi.create("ivf8,pq8x4fs", D, progress=True, coarse_iter=3, max_iter=3).train(x).add(x)
    err = capsys.readouterr().err
    for bar in ("ivf8 coarse k-means:", "pq8x4fs k-means:", "ivf8 encode:"):  # tqdm bars on stderr
        assert bar in err, bar
    np.testing.assert_array_equal(quiet._packed, shown._packed)  # chunks encode exactly as one batch
    for a, b in zip(quiet.search(q, 10), shown.search(q, 10)):
        np.testing.assert_array_equal(a, b)
    mi.create("ivf8,pq8x4fs", D, coarse_iter=3, max_iter=3).train(x).add(x)  # None: not a terminal
    assert capsys.readouterr().err == ""
