"""How each codec's calibration choice trades recall in distribution against robustness under shift.

Measures, on the MedQuAD embeddings (shared/data/medquad, or --data DIR laid out like it):
- R@10 against exact float search on two halves of the dev queries (a seeded split: "dev" picks, "held-out"
  confirms), codecs trained on all documents;
- calibration shift: for each MedQuAD collection, the codec trained on that collection's documents only and
  the other collections' documents searched ("shifted": R@10, mean and worst over collections), against the
  same codec trained on those documents themselves (drop = in-distribution R@10 - shifted R@10).

    python bench/calibration_study.py                       # int8, int4 and cb4 variants
    python bench/calibration_study.py --codecs int8 --threads 2

The defaults in medqk.index.create were chosen from this table (see the README's "Defaults" note).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import medqk.index as mi
from medqk.eval import metrics as M
from medqk.eval.runner import _exact_scores, _reference

VARIANTS = {
    "int8": [
        {"calibration": "minmax"},
        {"calibration": "percentile", "percentile": 0.1},
        {"calibration": "mse"},
        {"calibration": "minmax", "margin": 0.25},
        {"calibration": "minmax", "margin": 0.5},
        {"calibration": "minmax", "margin": 1.0},
        {"calibration": "mse", "margin": 0.5},
        {"calibration": "minmax", "per_dim": False},
    ],
    "int4": [
        {"calibration": "minmax"},
        {"calibration": "percentile", "percentile": 0.3},
        {"calibration": "mse"},
        {"calibration": "percentile", "percentile": 0.3, "margin": 0.1},
        {"calibration": "percentile", "percentile": 0.3, "margin": 0.25},
    ],
    "cb4": [
        {},
        {"calibration": "percentile", "percentile": 0.1},
        {"per_dim": False},
    ],
}


def _recall(spec, options, train, docs, queries, ref_scores, k, threads) -> np.ndarray:
    index = mi.create(spec, docs.shape[1], **options)
    index.train(train).add(docs)
    _, ids = index.search(queries, k, threads=threads)
    return M.recall_at_k(_exact_scores(docs, queries, ids), ref_scores, k)


def main() -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(here.parent.parent / "shared" / "data" / "medquad"))
    p.add_argument("--codecs", default="int8,int4,cb4")
    p.add_argument("--variants", default=None, help="comma-separated variant numbers per codec (default all)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    folder = Path(args.data)
    docs = np.load(folder / "docs.npy").astype(np.float32)
    qfile = folder / "queries_dev.npy" if (folder / "queries_dev.npy").exists() else folder / "queries.npy"
    queries = np.load(qfile).astype(np.float32)
    with open(folder / "docs.jsonl") as f:
        groups = np.array([json.loads(line)["id"].split("/", 1)[0] for line in f])
    perm = np.random.default_rng(args.seed).permutation(len(queries))
    halves = {"dev": np.sort(perm[: len(perm) // 2]), "held-out": np.sort(perm[len(perm) // 2 :])}
    k = args.k

    t0 = time.perf_counter()
    ref_all, _ = _reference(docs, queries, k, "ip")
    shift_sets = []
    for g in sorted(set(groups), key=lambda s: (len(s), s)):
        own = np.flatnonzero(groups == g)
        others = np.flatnonzero(groups != g)
        if len(own) < 50:
            continue
        ref_g, _ = _reference(docs[others], queries, k, "ip")
        shift_sets.append((g, own, others, ref_g))
    print(f"# {len(docs)} docs, {len(queries)} queries, d={docs.shape[1]}, k={k}; "
          f"references in {time.perf_counter() - t0:.1f} s; shift groups: {[s[0] for s in shift_sets]}")
    print(f"{'spec':6} {'options':40} {'R@10 dev':>9} {'held-out':>9} {'shifted':>8} {'worst':>8} "
          f"{'drop':>8} {'worst':>8}")
    for spec in args.codecs.split(","):
        chosen = [int(i) for i in args.variants.split(",")] if args.variants else range(len(VARIANTS[spec]))
        for options in (VARIANTS[spec][i] for i in chosen):
            r = _recall(spec, options, docs, docs, queries, ref_all, k, args.threads)
            drops, shifts = [], []
            for _, own, others, ref_g in shift_sets:
                shifted = _recall(spec, options, docs[own], docs[others], queries, ref_g, k, args.threads).mean()
                in_dist = _recall(spec, options, docs[others], docs[others], queries, ref_g, k, args.threads).mean()
                drops.append(in_dist - shifted)
                shifts.append(shifted)
            opts = ", ".join(f"{a}={b}" for a, b in options.items()) or "(default)"
            print(f"{spec:6} {opts:40} {r[halves['dev']].mean():9.4f} {r[halves['held-out']].mean():9.4f} "
                  f"{np.mean(shifts):8.4f} {np.min(shifts):8.4f} {np.mean(drops):8.4f} {np.max(drops):8.4f}",
                  flush=True)


if __name__ == "__main__":
    main()
