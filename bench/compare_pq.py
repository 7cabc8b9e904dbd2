"""PQ scan kernels at scale, medqk vs faiss, measured side by side in one run.

    python bench/compare_pq.py [--n 1000000] [--dim 384] [--threads 1] [--repeat 5] [--only fastscan|adc]

N seeded random vectors (standard normal, normalized; inner product), k=10. Prints codes scanned per
second (N * nq / time, median of --repeat runs after a warm-up, the two libraries taking turns within each
run) at nq=1 (one query at a time, the latency case: bound by memory bandwidth) and nq=32 (a batch: bound by
lookups), for
  - 4-bit fast scan, M=96 (48 B/vector): medqk pq96x4fs vs faiss IndexPQFastScan(d, 96, 4)
  - 8-bit ADC, M=48 (48 B/vector): medqk pq48x8 vs faiss IndexPQ(d, 48, 8)
and the ratios. Both libraries train on the same 65,536-vector sample. faiss columns show "-" without
faiss-cpu (pip install faiss-cpu, or the bench extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

import medqk  # noqa: E402
import medqk.index as mi  # noqa: E402

TRAIN = 65536


def data(n: int, dim: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 65536):  # in pieces: no float64 copy of the whole set
        part = rng.standard_normal((min(65536, n - i), dim), dtype=np.float32)
        x[i : i + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    q = rng.standard_normal((32, dim), dtype=np.float32)
    return x, q / np.linalg.norm(q, axis=1, keepdims=True)


def codes_per_s(searches: list, q: np.ndarray, n: int, nq: int, repeat: int) -> list[float]:
    """Median codes/s of `repeat` runs of each search; nq=1 runs the queries one at a time (8 of them per
    run). The searches take turns within every repeat, so that a slower or faster spell of a shared machine
    falls on all of them alike (their ratio is what this script reports)."""
    batches = [q[i : i + 1] for i in range(8)] if nq == 1 else [q[:nq]]
    for search in searches:
        for b in batches:
            search(b)  # warm-up
    times = [[] for _ in searches]
    for _ in range(repeat):
        for search, t in zip(searches, times):
            t0 = time.perf_counter()
            for b in batches:
                search(b)
            t.append(time.perf_counter() - t0)
    return [n * sum(len(b) for b in batches) / float(np.median(t)) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=("fastscan", "adc"), help="run one of the two kernels")
    args = ap.parse_args()
    t0 = time.perf_counter()
    x, q = data(args.n, args.dim)
    train = x[:TRAIN]
    info = medqk.info()
    print(f"N={args.n:,} dim={args.dim} k=10 threads={args.threads}; medqk {info['backend']} ({info['isa']}); "
          f"data {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        faiss = None
        print("(faiss-cpu not installed: no peer columns)")

    rows = []
    for label, spec, make_faiss in (
        ("fast scan M=96 (48 B)", "pq96x4fs",
         lambda: faiss.IndexPQFastScan(args.dim, 96, 4, faiss.METRIC_INNER_PRODUCT)),
        ("8-bit ADC M=48 (48 B)", "pq48x8", lambda: faiss.IndexPQ(args.dim, 48, 8, faiss.METRIC_INNER_PRODUCT)),
    ):
        if args.only and (args.only == "adc") != spec.endswith("x8"):
            continue
        t0 = time.perf_counter()
        index = mi.create(spec, args.dim).train(train).add(x)
        build = time.perf_counter() - t0
        ours_search = lambda b: index.search(b, 10, threads=args.threads)  # noqa: E731
        peer = {}
        if faiss is None:
            ours = {nq: codes_per_s([ours_search], q, args.n, nq, args.repeat)[0] for nq in (1, 32)}
        else:
            t0 = time.perf_counter()
            findex = make_faiss()
            findex.train(train)
            findex.add(x)
            fbuild = time.perf_counter() - t0
            ours = {}
            for nq in (1, 32):
                ours[nq], peer[nq] = codes_per_s([ours_search, lambda b: findex.search(b, 10)], q, args.n, nq,
                                                 args.repeat)
            # the same neighbours, roughly: both are PQ of the same data (R@10 of each vs exact is printed too)
            exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
            r_ours = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(index.search(q, 10)[1], exact)])
            r_faiss = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(findex.search(q, 10)[1], exact)])
            print(f"{label}: build medqk {build:.1f} s, faiss {fbuild:.1f} s; R@10 vs exact medqk {r_ours:.3f}, "
                  f"faiss {r_faiss:.3f}", flush=True)
        rows.append((label, ours, peer))

    print(f"\n{'kernel':<24} {'nq':>3} {'medqk Gcodes/s':>15} {'faiss Gcodes/s':>15} {'ratio':>7}")
    for label, ours, peer in rows:
        for nq in (1, 32):
            f = peer.get(nq)
            print(f"{label:<24} {nq:>3} {ours[nq] / 1e9:>15.3f} " + (f"{f / 1e9:>15.3f} {ours[nq] / f:>7.2f}x"
                                                                      if f else f"{'-':>15} {'-':>7}"))


if __name__ == "__main__":
    main()
