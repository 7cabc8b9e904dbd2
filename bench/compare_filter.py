"""Filtered search speed on MedQuAD: QPS with a random allow-list of 50% and 1% of the documents, against
the unfiltered search of the same index, per spec, in one run.

    python bench/compare_filter.py [--data ../shared/data/medquad] [--queries N] [--threads 1] [--specs ...]
        [--repeat 3] [--remove 1000000]

Columns: unfiltered QPS; QPS and ratio to unfiltered at 50% (the masked scan) and at 1% (the exact scan of
the allowed rows the search switches to below the index's ``exact_scan_fraction``, see
medqk.index.flat.EXACT_SCAN_FRACTION), and at 1% forced through the masked scan ("1% scan"), which is what
those fractions are chosen from: the exact scan of a fraction f of the rows costs about f times a fixed
per-row price, the masked scan about the unfiltered time, so they break even near
f = 1% x (1% ratio) / (1% scan ratio), printed as "even". Every
filtered result is checked to lie in its allow-list, and to fill k (more than k are allowed). Recall is R@10
against the exact top-10 of the allowed subset (float32 brute force), for medqk and faiss alike.

With faiss-cpu installed (a bench extra), the same filters run through faiss's ``IDSelectorBitmap`` (passed in
``SearchParameters``, faiss's filtered search) on its matching indexes (Flat, SQ8, PQ48x8, PQ96x4 fast scan,
IVF64,PQ96x4fs at medqk's nprobe), same queries, same threads; the second table prints faiss's QPS and
medqk's QPS over faiss's at each selectivity (where faiss refuses a selector on that index, its fast-scan PQ and
8-bit PQ: medqk's filtered QPS over faiss's unfiltered, marked *), and both recalls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

import medqk  # noqa: E402
import medqk.index as mi  # noqa: E402
from medqk.index.spec import split_specs  # noqa: E402

SPECS = ["float32", "fp16", "int8", "cb4", "pca4", "pq96x4fs", "pq48x8", "pq96x4fs+rerank:int8", "ivf64,pq96x4fs"]
K = 10
FAISS = {"float32": "Flat", "int8": "SQ8", "pq48x8": "PQ48x8", "pq96x4fs": "PQ96x4fs",
         "ivf64,pq96x4fs": "IVF64,PQ96x4fs"}  # medqk spec -> the faiss factory string of its counterpart


def qps(index, q, threads, repeat, **kw):
    """(queries per second, median of repeat rounds; the last results)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = index.search(q, K, threads=threads, **kw)
        times.append(time.perf_counter() - t0)
    return len(q) / float(np.median(times)), out


def check(ids, allowed):
    assert np.isin(ids, allowed).all(), "a filtered search returned an id outside its allow-list"
    assert (ids >= 0).all(), "a filtered search did not fill k"


def exact_top(X, Q, allowed):
    """The exact top-K ids of each query among ``allowed`` (None: all), float32 inner products."""
    s = Q @ X.T
    if allowed is not None:
        keep = np.zeros(X.shape[0], dtype=bool)
        keep[allowed] = True
        s[:, ~keep] = -np.inf
    return np.argpartition(-s, K, axis=1)[:, :K]


def recall(ids, truth) -> float:
    """Mean fraction of the exact filtered top-K found (R@K against the allowed subset's own top-K)."""
    return float(np.mean([np.intersect1d(a, b).size for a, b in zip(ids, truth)])) / K


def faiss_qps(index, q, allowed, repeat, nprobe=None):
    """faiss's QPS (median of repeat rounds) with an IDSelectorBitmap over ``allowed`` (None: no filter), and
    the ids of the last round."""
    import faiss

    params = None
    if allowed is not None:
        bits = np.packbits(np.isin(np.arange(index.ntotal), allowed), bitorder="little")
        sel = faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(bits))
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe) if nprobe else faiss.SearchParameters(sel=sel)
    elif nprobe:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, ids = index.search(q, K, params=params)
        times.append(time.perf_counter() - t0)
    return len(q) / float(np.median(times)), ids


def faiss_table(X, Q, specs, medqk_qps, half, one, threads, repeat, truth, medqk_recall):
    try:
        import faiss
    except ImportError:
        print("(faiss rows skipped: pip install faiss-cpu)")
        return
    faiss.omp_set_num_threads(threads)
    print(f"\nfaiss {faiss.__version__} IDSelectorBitmap, same filters; medqk / faiss QPS at each selectivity (where "
          f"faiss takes no selector, medqk filtered / faiss unfiltered, marked *); R@{K} of each against the "
          f"allowed subset's exact top-{K}, medqk/faiss")
    print(f"{'medqk spec':18s} {'faiss':16s} {'QPS':>8s} {'50% QPS':>8s} {'1% QPS':>8s} {'x none':>7s} {'x 50%':>7s} "
          f"{'x 1%':>7s}  {'R none':>11s} {'R 50%':>11s} {'R 1%':>11s}")
    for spec in specs:
        if spec not in FAISS:
            continue
        index = faiss.index_factory(X.shape[1], FAISS[spec], faiss.METRIC_INNER_PRODUCT)
        index.train(X)
        index.add(X)
        nprobe = mi.create(spec, X.shape[1]).nprobe if spec.startswith("ivf") else None
        row, rec = [], []
        for allowed, gt in zip((None, half, one), truth):
            try:
                speed, ids = faiss_qps(index, Q, allowed, repeat, nprobe)
                if allowed is not None and not spec.startswith("ivf"):
                    check(ids, allowed)
                row.append(speed)
                rec.append(recall(ids, gt))
            except RuntimeError:  # faiss: this index takes no selector
                row.append(None)
                rec.append(None)
        ratios = [f"{m / f:7.2f}" if f else f"{m / row[0]:6.2f}*" for m, f in zip(medqk_qps[spec], row)]
        cells = [f"{f:8.0f}" if f else "     n/a" for f in row]
        recs = [f"{m:.3f}/{f:.3f}" if f is not None else f"{m:.3f}/  -  " for m, f in zip(medqk_recall[spec], rec)]
        print(f"{spec:18s} {FAISS[spec]:16s} {' '.join(cells)} {' '.join(ratios)}  {' '.join(recs)}", flush=True)


def removal(n: int, threads: int, repeat: int) -> None:
    """remove() of 10% of an n-vector int8 index (random unit vectors, d = 384): its time, and the search QPS
    after it over an identical index without the removal, timed in alternating rounds (medians)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 384), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    kept = mi.create("int8", 384).train(x[:20000]).add(x)
    cut = mi.create("int8", 384).train(x[:20000]).add(x)
    t0 = time.perf_counter()
    removed = cut.remove(rng.choice(n, n // 10, replace=False))
    took = time.perf_counter() - t0
    print(f"\nremove({removed} of {n}) on int8: {took:.3f} s")
    for nq in (1, 200):
        q = rng.standard_normal((nq, 384), dtype=np.float32)
        times = {"kept": [], "cut": []}
        for r in range(2 * repeat + 1):
            for name in (("kept", "cut") if r % 2 == 0 else ("cut", "kept")):
                t0 = time.perf_counter()
                (kept if name == "kept" else cut).search(q, K, threads=threads)
                times[name].append(time.perf_counter() - t0)
        ratio = np.median(times["kept"]) / np.median(times["cut"])
        print(f"  {nq:3d} queries: QPS after / before the removal {ratio:.3f}")


def main():
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "medquad"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default))
    ap.add_argument("--queries", type=int, default=2000, help="first N dev queries (default 2000)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--remove", type=int, default=0, metavar="N",
                    help="also time remove() of 10%% of an N-vector int8 index and the search after it (1000000)")
    args = ap.parse_args()
    d = Path(args.data)
    X = np.load(d / "docs.npy").astype(np.float32)
    Q = np.load(d / "queries_dev.npy").astype(np.float32)[: args.queries]
    rng = np.random.default_rng(0)
    half = np.sort(rng.choice(len(X), len(X) // 2, replace=False))
    one = np.sort(rng.choice(len(X), len(X) // 100, replace=False))
    info = medqk.info()
    print(f"{len(X)} docs, {len(Q)} queries, dim {X.shape[1]}, k={K}, threads {args.threads}; medqk "
          f"{info['backend']} ({info['isa']})")
    print(f"{'spec':24s} {'QPS':>8s} {'50% QPS':>8s} {'ratio':>6s} {'1% QPS':>8s} {'ratio':>6s} "
          f"{'1% scan':>8s} {'ratio':>6s} {'even':>6s} {'exact at':>8s}")
    measured, recalls = {}, {}
    truth = [exact_top(X, Q, allowed) for allowed in (None, half, one)]
    for spec in split_specs(args.specs):
        index = mi.create(spec, X.shape[1]).train(X).add(X)
        base, (_, i0) = qps(index, Q, args.threads, args.repeat)
        q50, (_, i50) = qps(index, Q, args.threads, args.repeat, filter=half)
        check(i50, half)
        q1, (_, i1) = qps(index, Q, args.threads, args.repeat, filter=one)
        check(i1, one)
        index.exact_scan_fraction = 0.0  # this index only: every filter through the masked scan
        q1s, (_, i1s) = qps(index, Q, args.threads, args.repeat, filter=one)
        del index.exact_scan_fraction
        if not spec.startswith("ivf"):  # IVF probes some lists: its masked scan may find fewer than k allowed
            check(i1s, one)
        even = 0.01 * q1 / q1s
        print(f"{spec:24s} {base:8.0f} {q50:8.0f} {q50 / base:6.2f} {q1:8.0f} {q1 / base:6.2f} {q1s:8.0f} "
              f"{q1s / base:6.2f} {even:6.1%} {index.exact_scan_fraction:8.1%}", flush=True)
        measured[spec] = (base, q50, q1)
        recalls[spec] = tuple(recall(i, gt) for i, gt in zip((i0, i50, i1), truth))
    faiss_table(X, Q, list(measured), measured, half, one, args.threads, args.repeat, truth, recalls)
    if args.remove:
        removal(args.remove, args.threads, args.repeat)


if __name__ == "__main__":
    main()
