"""IVF over 4-bit PQ, medqk vs faiss, R@10 and QPS at several nprobe, measured side by side in one run.

    python bench/compare_ivf.py [--data /work/shared/data/medquad] [--nlist 128,256,1024] [--threads 1]
    python bench/compare_ivf.py --random 1000000 [--nlist 1024]     # seeded random unit vectors

For each nlist: medqk ``ivf<nlist>,pq96x4fs`` and faiss ``IVF<nlist>,PQ96x4fs`` (IndexIVFPQFastScan, by
residual; faiss.index_factory(d, ..., METRIC_INNER_PRODUCT)), both trained on the same vectors, searched
with k=10 for all queries in one batch; QPS = queries / median time of --repeat samples after a warm-up,
the two libraries sampled in turn within each round (a sample: as many batches as fill 50 ms).
R@10 is against the exact float top-10 (gt_dev_top100.npy for MedQuAD, brute force for --random).
The last table matches each faiss nprobe with the smallest medqk nprobe reaching at least the same R@10
and prints the QPS ratio medqk / faiss.
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

FAISS_NPROBES = (1, 2, 4, 8, 16, 32, 64, 128)
MEDQK_NPROBES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)  # finer: nprobe is the knob to match R@10


def load(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    if args.random:
        rng = np.random.default_rng(1234)
        x = np.empty((args.random, args.dim), dtype=np.float32)
        for i in range(0, args.random, 65536):
            part = rng.standard_normal((min(65536, args.random - i), args.dim), dtype=np.float32)
            x[i : i + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
        q = rng.standard_normal((args.nq, args.dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        gt = np.empty((len(q), 10), dtype=np.int64)
        for i in range(0, len(q), 64):
            s = q[i : i + 64] @ x.T
            part = np.argpartition(-s, 10, axis=1)[:, :10]
            order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
            gt[i : i + 64] = np.take_along_axis(part, order, 1)
        return x, q, gt, f"random N={args.random:,}"
    x = np.load(os.path.join(args.data, "docs.npy"))
    q = np.load(os.path.join(args.data, "queries_dev.npy"))[: args.nq]
    gt = np.load(os.path.join(args.data, "gt_dev_top100.npy"))[: args.nq, :10]
    return x, q, gt, f"MedQuAD N={len(x):,}"


def recall10(ids: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ids, gt)]))


def sample(search, q: np.ndarray, min_seconds: float = 0.05) -> float:
    """Seconds per search(q), over as many calls as fill min_seconds (a MedQuAD batch takes ~10 ms)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        search(q)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return elapsed / calls


def interleaved_qps(searches: dict, q: np.ndarray, repeat: int) -> tuple[dict, dict]:
    """QPS (median of repeat samples) and ids of each contender, timed round-robin: every round samples each
    contender once, so a slow spell of the machine hits both libraries alike."""
    ids = {name: search(q) for name, search in searches.items()}  # warm-up, and the results
    times = {name: [] for name in searches}
    for _ in range(repeat):
        for name, search in searches.items():
            times[name].append(sample(search, q))
    return {name: len(q) / float(np.median(t)) for name, t in times.items()}, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/medquad")
    ap.add_argument("--random", type=int, default=0, help="use N seeded random unit vectors instead")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nq", type=int, default=2000)
    ap.add_argument("--nlist", default="128,256,1024")
    ap.add_argument("--pq", default="pq96x4fs")
    ap.add_argument("--train", type=int, default=65536, help="training vectors (a prefix of the data)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    x, q, gt, label = load(args)
    train = x[: args.train]
    info = medqk.info()
    M = int(args.pq[2:].split("x")[0])
    print(f"{label} nq={len(q)} dim={x.shape[1]} k=10 threads={args.threads}; medqk {info['backend']} "
          f"({info['isa']}); faiss {faiss.__version__}", flush=True)
    matches = []
    for nlist in (int(v) for v in args.nlist.split(",")):
        t0 = time.perf_counter()
        ours = mi.create(f"ivf{nlist},{args.pq}", x.shape[1]).train(train).add(x)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = faiss.index_factory(x.shape[1], f"IVF{nlist},PQ{M}x4fs", faiss.METRIC_INNER_PRODUCT)
        theirs.train(train)
        theirs.add(x)
        fbuild = time.perf_counter() - t0
        print(f"\nnlist={nlist}: build medqk {build:.1f} s, faiss {fbuild:.1f} s", flush=True)
        print(f"{'nprobe':>6} {'medqk R@10':>10} {'medqk QPS':>10} {'faiss R@10':>10} {'faiss QPS':>10}")
        ours_rows, faiss_rows = {}, {}
        for nprobe in sorted(set(MEDQK_NPROBES) | set(FAISS_NPROBES)):
            if nprobe > nlist:
                continue
            cells = [f"{'-':>10} {'-':>10}"] * 2
            searches = {}
            if nprobe in MEDQK_NPROBES:
                searches["medqk"] = lambda b, ix=ours, p=nprobe: ix.search(b, 10, threads=args.threads, nprobe=p)[1]
            if nprobe in FAISS_NPROBES:
                theirs.nprobe = nprobe
                searches["faiss"] = lambda b, ix=theirs: ix.search(b, 10)[1]
            rates, ids = interleaved_qps(searches, q, args.repeat)
            if "medqk" in rates:
                ours_rows[nprobe] = (recall10(ids["medqk"], gt), rates["medqk"])
                cells[0] = f"{ours_rows[nprobe][0]:>10.4f} {rates['medqk']:>10.0f}"
            if "faiss" in rates:
                faiss_rows[nprobe] = (recall10(ids["faiss"], gt), rates["faiss"])
                cells[1] = f"{faiss_rows[nprobe][0]:>10.4f} {rates['faiss']:>10.0f}"
            print(f"{nprobe:>6} {cells[0]} {cells[1]}", flush=True)
        for fp, (f_r, f_q) in faiss_rows.items():
            reach = [(mp, r, qs) for mp, (r, qs) in ours_rows.items() if r >= f_r]
            if reach:
                mp, m_r, m_q = min(reach)
                matches.append((nlist, fp, f_r, f_q, mp, m_r, m_q))
    print(f"\n{'nlist':>6} {'faiss nprobe':>12} {'faiss R@10':>10} {'faiss QPS':>10} {'medqk nprobe':>12} "
          f"{'medqk R@10':>10} {'medqk QPS':>10} {'QPS ratio':>9}")
    for nlist, fp, f_r, f_q, mp, m_r, m_q in matches:
        print(f"{nlist:>6} {fp:>12} {f_r:>10.4f} {f_q:>10.0f} {mp:>12} {m_r:>10.4f} {m_q:>10.0f} {m_q / f_q:>8.2f}x")


if __name__ == "__main__":
    main()
