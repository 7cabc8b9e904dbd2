"""Quantized flat search on real medical embeddings, medqk vs faiss, measured in one run.

    python bench/compare_search.py [--data ../shared/data/medquad] [--queries N] [--threads 1] [--specs ...]
        [--repeat 3]

R@10 = overlap with the exact float top-10 (gt_dev_top100.npy); MRR@10 against qrels_dev.json; QPS over
all queries in one batch, the median of --repeat rounds that each search every index once. Ratios are
against faiss Flat float32 and faiss's scalar quantizers measured in the same run (pip install faiss-cpu;
columns show "-" without it).
"""

from __future__ import annotations

import argparse
import json
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

SPECS = ["float32", "fp16", "int8", "int4", "cb4", "cb3", "cb2", "pca4", "pca3", "pca2", "cb4+rerank:int8",
         "pca3+rerank:int8", "pca2+rerank:int8", "int8+rerank:float32", "pq96x4fs", "pq48x8", "opq,pq96x4fs",
         "opq,pq48x8", "pq96x4fs+rerank:int8"]


def _refine(faiss, d):
    index = faiss.IndexRefineFlat(faiss.IndexPQFastScan(d, 96, 4, faiss.METRIC_INNER_PRODUCT))
    index.k_factor = 4
    return index


def recall10(ids, gt):
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ids, gt)]))


def mrr10(ids, qrels):
    out = []
    for row, rel in zip(ids, qrels):
        rel = set(rel)
        hit = [r for r, i in enumerate(row[:10]) if int(i) in rel]
        out.append(1.0 / (hit[0] + 1) if hit else 0.0)
    return float(np.mean(out))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "medquad"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default))
    ap.add_argument("--queries", type=int, default=None, help="first N dev queries (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds over all indexes (median quoted)")
    args = ap.parse_args()
    d = Path(args.data)
    X = np.load(d / "docs.npy").astype(np.float32)
    Q = np.load(d / "queries_dev.npy").astype(np.float32)
    gt = np.load(d / "gt_dev_top100.npy")
    qrels = json.loads((d / "qrels_dev.json").read_text())
    if args.queries:
        Q, gt, qrels = Q[: args.queries], gt[: args.queries], qrels[: args.queries]
    nq = len(Q)
    info = medqk.info()
    print(f"{len(X)} docs, {nq} queries, dim {X.shape[1]}, k=10, threads {args.threads}; medqk {info['backend']} "
          f"({info['isa']})")
    # every index is built first, then timed in --repeat rounds that search each one once (interleaved, so
    # a noisy moment of the host hits all alike); the median round is quoted
    contenders = []  # (name, bytes/vector, search(Q) -> ids)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        for name, make in (
            ("faiss Flat", lambda: faiss.IndexFlatIP(X.shape[1])),
            ("faiss SQ8", lambda: faiss.IndexScalarQuantizer(X.shape[1], faiss.ScalarQuantizer.QT_8bit,
                                                             faiss.METRIC_INNER_PRODUCT)),
            ("faiss SQ4", lambda: faiss.IndexScalarQuantizer(X.shape[1], faiss.ScalarQuantizer.QT_4bit,
                                                             faiss.METRIC_INNER_PRODUCT)),
            ("faiss PQ48x8", lambda: faiss.IndexPQ(X.shape[1], 48, 8, faiss.METRIC_INNER_PRODUCT)),
            ("faiss PQ96x4fs", lambda: faiss.IndexPQFastScan(X.shape[1], 96, 4, faiss.METRIC_INNER_PRODUCT)),
            ("faiss PQ96x4fs+RefineFlat k4", lambda: _refine(faiss, X.shape[1])),
        ):
            index = make()
            index.train(X)
            index.add(X)
            index.search(Q[:50], 10)
            bpv = {"faiss Flat": 1536, "faiss SQ8": 384, "faiss SQ4": 192, "faiss PQ96x4fs": 48, "faiss PQ48x8": 48,
                   "faiss PQ96x4fs+RefineFlat k4": 48 + 1536}[name] * X.shape[1] / 384
            contenders.append((name, bpv, lambda index=index: index.search(Q, 10)[1]))
    except ImportError:
        print("(faiss-cpu not installed: no peer columns)")
    for spec in split_specs(args.specs):
        index = mi.create(spec, X.shape[1]).train(X).add(X)
        index.search(Q[:50], 10, threads=args.threads)
        contenders.append((f"medqk {spec}", index.bytes_per_vector,
                           lambda index=index: index.search(Q, 10, threads=args.threads)[1]))
    times = {name: [] for name, _, _ in contenders}
    found = {}
    for _ in range(args.repeat):
        for name, _, search in contenders:
            found[name], dt = timed(search)
            times[name].append(dt)
    rows = [(name, bpv, recall10(found[name], gt), mrr10(found[name], qrels),
             nq / float(np.median(times[name]))) for name, bpv, _ in contenders]
    ref = {name: qps for name, _, _, _, qps in rows if name.startswith("faiss")}
    peers = ("faiss Flat", "faiss SQ8", "faiss SQ4", "faiss PQ48x8", "faiss PQ96x4fs")
    print(f"\n{'index':<30} {'B/vec':>6} {'R@10':>7} {'MRR@10':>7} {'QPS':>8} {'/Flat':>7} {'/SQ8':>7} {'/SQ4':>7} "
          f"{'/PQ48x8':>7} {'/PQfs':>7}")
    for name, bpv, r, m, qps in rows:
        ratios = [f"{qps / ref[p]:>7.2f}" if p in ref else f"{'-':>7}" for p in peers]
        print(f"{name:<30} {bpv:>6.0f} {r:>7.4f} {m:>7.4f} {qps:>8.0f} " + " ".join(ratios))


if __name__ == "__main__":
    main()
