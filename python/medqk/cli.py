"""The ``medqk`` command."""

from __future__ import annotations

import argparse
import json
import sys


def _print_info(as_json: bool) -> int:
    from . import info

    data = info()
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    features = data["cpu_features"]
    arch = features.pop("arch", data["machine"])
    present = [name for name, on in features.items() if on]
    absent = [name for name, on in features.items() if not on]
    lines = [
        f"medqk {data['version']} (Python {data['python']}, {data['machine']})",
        f"  backend        {data['backend']}"
        + ("" if data["native_available"] else f"  (native unavailable: {data['native_error']})"),
        f"  active ISA     {data['isa']}",
        f"  ISAs built     {', '.join(data['isas_built']) or '-'}",
        f"  ISAs usable    {', '.join(data['isas_supported']) or '-'}",
        f"  CPU ({arch})   has: {', '.join(present) or '-'}" + (f"; lacks: {', '.join(absent)}" if absent else ""),
        "  kernels",
    ]
    width = max(len(op) for op in data["kernels"])
    lines += [f"    {op:<{width}} {kernel}" for op, kernel in data["kernels"].items()]
    t = data["threads"]
    lines.append(f"  threads        native {t['native']}, numba {t['numba']}, cpus {t['cpu_count']}")
    if data["env"]:
        lines.append("  environment    " + ", ".join(f"{k}={v}" for k, v in data["env"].items()))
    print("\n".join(lines))
    return 0


def _run_eval(args) -> int:
    from .eval import DataError, evaluate, load_files, load_folder, load_sample, report
    from .index.spec import split_specs
    if args.data and (args.docs or args.queries):
        raise ValueError("give either --data DIR or --docs/--queries, not both")
    if bool(args.docs) != bool(args.queries):
        raise ValueError("--docs and --queries go together")
    schemes = [s for part in args.schemes for s in split_specs(part)] if args.schemes else None
    out = report.check_writable(args.out)
    try:
        if args.data:
            data = load_folder(args.data)
        elif args.docs:
            data = load_files(args.docs, args.queries, args.qrels, args.fields)
        else:
            data = load_sample()
        if args.qrels and args.data:
            from .eval.data import read_qrels

            data.qrels = read_qrels(args.qrels, data.queries.shape[0], data.docs.shape[0])
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if args.max_queries:
        data.queries = data.queries[: args.max_queries]
        if data.qrels is not None:
            data.qrels = data.qrels[: args.max_queries]
    try:
        result = evaluate(
            data,
            schemes,  # None: the default list for this data's dimension and size
            k=args.k,
            metric=args.metric,
            threads=args.threads,
            recall_target=args.recall_target,
            seed=args.seed,
            cv=args.cv,
            shift=args.shift,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:  # before the first scheme finished: nothing to report
        print("medqk: interrupted before the first scheme finished; no report written", file=sys.stderr)
        return 130
    if result.meta.get("partial"):  # Ctrl-C: keep what finished, say so in one line
        report.write(result, out)
        print(f"medqk: interrupted: wrote the partial report of {len(result.schemes)} of "
              f"{len(result.meta['schemes_planned'])} schemes to {out}", file=sys.stderr)
        return 130
    print(report.table(result))
    for entry in result.skipped:
        print(f"skipped {entry['spec']}: {entry['reason']}")
    for message in result.meta.get("warnings", []):
        print(f"warning: {message}")
    print()
    print("Recommendation:", result.recommendation["statement"])
    written = report.write(result, out)
    print("Wrote " + ", ".join(str(p) for p in written))
    if not any(p.name == "pareto.png" for p in written):
        print("(pareto.png skipped: install matplotlib to get the plot)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medqk", description="medqk: quantization kernels for embedding retrieval")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="show the backend, CPU features and the kernel chosen for each operation")
    p_info.add_argument("--json", action="store_true", help="print the info() dict as JSON")
    from .index.spec import valid_specs

    p_eval = sub.add_parser(
        "eval",
        help="measure recall, relevance, size and speed of quantization schemes (default: bundled MedQuAD sample)",
        description="Evaluate index specs against exact float search. With no data arguments it runs on the "
        "bundled MedQuAD sample (5,000 docs, 500 queries; CC BY 4.0).",
    )
    src = p_eval.add_argument_group("data (default: the bundled MedQuAD sample)")
    src.add_argument("--data", metavar="DIR", help="folder laid out like MedQuAD: docs.npy, queries.npy, qrels.json")
    src.add_argument("--docs", metavar="FILE", help="document vectors (.npy, .fvecs, .bvecs, .ivecs, .hdf5)")
    src.add_argument("--queries", metavar="FILE", help="query vectors (same formats)")
    src.add_argument("--qrels", metavar="FILE", help="relevance judgements: JSON list of lists, or TREC lines")
    src.add_argument("--fields", metavar="FILE", help="docs.jsonl with one JSON object per doc (for --shift)")
    p_eval.add_argument("--schemes", action="append", metavar="SPECS",
                        help=f"comma-separated index specs (repeatable); valid: {', '.join(valid_specs())}")
    p_eval.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    p_eval.add_argument("--metric", choices=("ip", "l2", "cos"), default=None,
                        help="inner product, squared L2 distance or cosine (default: the metric the data file "
                        "declares, e.g. an ann-benchmarks .hdf5 'distance', else ip)")
    p_eval.add_argument("--threads", type=int, default=None, help="threads for search (default: all cores)")
    p_eval.add_argument("--recall-target", type=float, default=0.95, help="recall@k target (default 0.95)")
    p_eval.add_argument("--out", default="medqk-report", help="output folder (default ./medqk-report)")
    p_eval.add_argument("--seed", type=int, default=0, help="seed for bootstrap and folds (default 0)")
    p_eval.add_argument("--cv", type=int, default=None, metavar="K", help="K-fold cross-validation of codec training")
    p_eval.add_argument("--shift", metavar="FIELD", help="calibrate on one group of FIELD, evaluate on the others")
    p_eval.add_argument("--max-queries", type=int, default=None, help="use only the first N queries")
    p_eval.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return _print_info(args.json)
        if args.command == "eval":
            return _run_eval(args)
    except (RuntimeError, ValueError, OSError, ImportError) as exc:
        print(f"medqk: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
