"""1-bit RaBitQ on MedQuAD dev, medqk vs faiss, measured side by side in one run.

    python bench/compare_rabitq.py [--data /work/shared/data/medquad] [--threads 1] [--single 1000]
                                   [--query-bits 4] [--rounds 3] [--backends native,numba]

docs.npy (normalized embeddings), queries_dev.npy and gt_dev_top100.npy (the exact top 100 by inner
product). For medqk ``rabitq`` (the paper's sign codes and the default score-aware ones) and
``rabitq+rerank:int8``, faiss ``IndexRaBitQ`` and ``IndexRaBitQFastScan``
(both 1 bit per dimension, each with its own random rotation "RR<d>," in front, as the paper prescribes;
``qb`` = --query-bits): bytes per vector (codes and per-vector factors), R@10 against the exact top 10,
queries per second for the whole dev set in one call (batch) and for the first --single queries one at a
time, and medqk / faiss ratios against the fast-scan index. R@10 does not depend on the machine's load;
QPS do: the indexes are timed in --rounds interleaved rounds (every index once per round, one after the
other in the same process), and the table gives each index's median over the rounds and the median of the
per-round ratios (a round's ratio compares runs made seconds apart, under about the same load).
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


def recall_at_10(ids: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ids, gt)]))


def measure(search, q: np.ndarray, single: int) -> tuple[np.ndarray, float, float]:
    """(ids of all queries, QPS of the batch, QPS of the first `single` queries one at a time)."""
    t0 = time.perf_counter()
    ids = search(q)
    batch = len(q) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(single):
        search(q[i : i + 1])
    return ids, batch, single / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/medquad")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--single", type=int, default=1000)
    ap.add_argument("--query-bits", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="native",
                    help="medqk backends to time, comma-separated (numba: the Numba twin of the scan)")
    args = ap.parse_args()
    x = np.load(os.path.join(args.data, "docs.npy")).astype(np.float32)
    q = np.load(os.path.join(args.data, "queries_dev.npy")).astype(np.float32)
    gt = np.load(os.path.join(args.data, "gt_dev_top100.npy"))
    d = x.shape[1]
    entries = []  # (label, bytes per vector, search)
    # aware_passes=0: the paper's sign codes; the default: score-aware codes (medqk.quantizers.rabitq)
    for backend in args.backends.split(","):
        for spec, aware, label in (("rabitq", 0, "paper codes"), ("rabitq", 2, "score-aware"),
                                   ("rabitq+rerank:int8", 2, "score-aware")):
            with medqk.use_backend(backend):
                index = mi.create(spec, d, "ip", query_bits=args.query_bits, aware_passes=aware).train(x).add(x)

            def search(b, index=index, backend=backend):
                with medqk.use_backend(backend):
                    return index.search(b, 10, threads=args.threads)[1]

            entries.append((f"medqk {backend} {spec}, {label} (qb {args.query_bits})", index.bytes_per_vector, search))
    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss not installed: medqk rows only")
    if faiss is not None:
        faiss.omp_set_num_threads(args.threads)
        for name, factory in (("IndexRaBitQ", "RaBitQ"), ("IndexRaBitQFastScan", "RaBitQfs")):
            index = faiss.index_factory(d, f"RR{d},{factory}", faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_index(index.index).qb = args.query_bits
            index.train(x)
            index.add(x)
            entries.append((f"faiss RR,{name} (qb {args.query_bits})", faiss.downcast_index(index.index).code_size,
                            lambda b, index=index: index.search(b, 10)[1]))
    for _, _, search in entries:
        search(q[:8])  # warm-up (Numba's first call compiles)
    timings = [[] for _ in entries]  # per entry: (batch, single) per round
    recalls = [0.0] * len(entries)
    for _ in range(args.rounds):
        for e, (_, _, search) in enumerate(entries):
            ids, batch, single = measure(search, q, args.single)
            recalls[e] = recall_at_10(ids, gt)
            timings[e].append((batch, single))
    times = np.array(timings)  # (entries, rounds, 2)
    ref = times[-1] if faiss is not None else None
    print(f"MedQuAD dev: {len(x)} docs, {len(q)} queries, d={d}, inner product, {args.threads} thread(s); "
          f"single-query QPS over the first {args.single} queries; medians of {args.rounds} interleaved rounds")
    ratio_heads = " x faiss fs batch | x faiss fs single |" if ref is not None else ""
    print(f"| spec | B/vec | R@10 | QPS batch | QPS single |{ratio_heads}")
    print(f"|---|---|---|---|---|{'---|---|' if ref is not None else ''}")
    for (name, nbytes, _), r10, t in zip(entries, recalls, times):
        batch, single = np.median(t, axis=0)
        ratios = ""
        if ref is not None:
            rb, rs = np.median(t / ref, axis=0)
            ratios = f" {rb:.2f} | {rs:.2f} |"
        print(f"| {name} | {nbytes:g} | {r10:.4f} | {batch:,.0f} | {single:,.0f} |{ratios}")


if __name__ == "__main__":
    main()
