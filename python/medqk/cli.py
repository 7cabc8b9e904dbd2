"""The ``medqk`` command.

Every error is one ``medqk: error: ...`` line on stderr and exit status 2 (a bad flag value, a bad
``MEDQK_BACKEND`` / ``MEDQK_ISA``, unreadable data). ``medqk`` with no command is a usage error too: it prints
the help to stderr and exits 2, so a script running ``medqk "$CMD"`` with an empty command fails;
``medqk --help`` prints the help to stdout and exits 0, ``medqk --version`` prints ``medqk X.Y.Z``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


class _UsageError(Exception):
    """A command-line mistake found by argparse; main() prints it as one error line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse prints the usage and "medqk eval: error: ..." and exits; medqk's rule is one error line
        raise _UsageError(message)


def _int_at_least(low: int, meaning: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {text!r}")
        return value

    return parse


def _recall(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a recall in (0, 1], got {text!r}")
    return value


def _error(message) -> int:
    # one line, even for an exception text that spans several
    print("medqk: error: " + " ".join(str(message).split()), file=sys.stderr)
    return 2


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
    ]
    if data["kernels"]:
        lines.append("  kernels")
        width = max(len(op) for op in data["kernels"])
        lines += [f"    {op:<{width}} {kernel}" for op, kernel in data["kernels"].items()]
    else:
        lines.append("  kernels        the Numba twins (no native module)")
    t = data["threads"]
    lines.append(f"  threads        native {t['native']}, numba {t['numba']}, cpus {t['cpu_count']}")
    if data["env"]:
        lines.append("  environment    " + ", ".join(f"{k}={v}" for k, v in data["env"].items()))
    print("\n".join(lines))
    return 0


def _run_eval(args) -> int:
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is for --engine ray")
    from .eval import DataError, evaluate, load_files, load_folder, load_sample
    from .index.spec import split_specs
    if args.model:
        return _run_eval_model(args)
    for flag in ("precisions", "docs_text", "queries_text", "batch_size", "max_seq_length", "max_docs", "calib"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} goes with --model (the model that embeds the texts)")
    if args.data and (args.docs or args.queries):
        raise ValueError("give either --data DIR or --docs/--queries, not both")
    if args.queries and not args.docs:
        raise ValueError("--docs and --queries go together")
    if args.docs and not args.queries and not args.docs.lower().endswith((".hdf5", ".h5")):
        raise ValueError("--docs and --queries go together (only an ann-benchmarks .hdf5 file holds both)")
    schemes = [s for part in args.schemes for s in split_specs(part)] if args.schemes else None
    out = Path(args.out)  # made and proved writable by _eval_command before any work
    try:
        if args.docs:
            data = load_files(args.docs, args.queries, args.qrels, args.fields, doc_ids=args.doc_ids,
                              query_ids=args.query_ids)
        else:  # --data DIR or the bundled sample; --doc-ids / --query-ids / --qrels override its files
            from .eval.data import attach_ids, attach_qrels

            ids = {"doc_ids": args.doc_ids, "query_ids": args.query_ids}
            if args.data:
                data = load_folder(args.data, **ids)
            else:
                data = load_sample()
                attach_ids(data, **ids)
            if args.qrels:
                attach_qrels(data, args.qrels)
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if args.max_queries:
        data.first_queries(args.max_queries)
    from ._progress import bars

    try:
        with bars(False if args.quiet else None):  # --quiet: no training bars either
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
                engine=args.engine,
                address=args.address,
            )
    except KeyboardInterrupt:  # before the first scheme finished: nothing to report
        print("medqk: interrupted before the first scheme finished; no report written", file=sys.stderr)
        return 130
    return _write_report(result, out)


def _run_eval_model(args) -> int:
    """``medqk eval --model``: texts embedded at each model precision (here), then every index scheme on them
(with --engine ray, each precision's scheme x fold grid as Ray tasks)."""
    from .eval import DataError, evaluate_model, load_sample_texts, load_texts
    from .eval.model import load_encoders, parse_precisions
    from .index.spec import split_specs

    if args.data or args.docs or args.queries:
        raise ValueError("--model embeds texts: give --docs-text and --queries-text (or neither, for the bundled "
                         "sample), not --data, --docs or --queries vectors")
    if bool(args.docs_text) != bool(args.queries_text):
        raise ValueError("--docs-text and --queries-text go together")
    precisions = parse_precisions(args.precisions) if args.precisions is not None else None
    schemes = [s for part in args.schemes for s in split_specs(part)] if args.schemes else None
    try:
        if args.docs_text:
            texts = load_texts(args.docs_text, args.queries_text, args.qrels, args.fields, doc_ids=args.doc_ids,
                               query_ids=args.query_ids)
        else:
            from .eval.data import attach_ids, attach_qrels

            texts = load_sample_texts()
            attach_ids(texts.data, doc_ids=args.doc_ids, query_ids=args.query_ids)
            if args.qrels:
                attach_qrels(texts.data, args.qrels)
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if args.max_queries:
        texts.first_queries(args.max_queries)
    if args.max_docs:
        texts.keep_docs(args.max_docs)
    calib = _read_texts(args.calib, "--calib") if args.calib else None
    encoders = load_encoders(args.model, precisions, max_seq_length=args.max_seq_length, calib=calib,
                             progress=False if args.quiet else None)  # every model ready before any embedding
    from ._progress import bars

    try:
        with bars(False if args.quiet else None):
            result = evaluate_model(args.model, texts, precisions, schemes, k=args.k, metric=args.metric,
                                    threads=args.threads, recall_target=args.recall_target, seed=args.seed,
                                    cv=args.cv, shift=args.shift, batch_size=args.batch_size or 32,
                                    max_seq_length=args.max_seq_length, progress=not args.quiet,
                                    encoders=encoders, calib=calib, engine=args.engine, address=args.address)
    except KeyboardInterrupt:
        print("medqk: interrupted before the first model precision finished; no report written", file=sys.stderr)
        return 130
    return _write_report(result, Path(args.out))


def _write_report(result, out: Path) -> int:
    from .eval import report

    if result.meta.get("partial"):  # Ctrl-C: keep what finished, say so in one line
        report.write(result, out)
        print(f"medqk: interrupted: wrote the partial report of {len(result.schemes)} of "
              f"{len(result.meta['schemes_planned'])} schemes to {out}", file=sys.stderr)
        return 130
    print(report.table(result))
    print()
    print("Recommendation:", result.recommendation["statement"])
    written = report.write(result, out)
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0


def _make_out_folder(out: Path) -> list[Path]:
    """Creates ``out`` (and its missing parents) and proves it writable, before the long work starts.

    Returns the folders it created, outermost first: :func:`_remove_empty` takes them back when the run ends
    without writing into them. Folders that existed before are never created, so never removed.
    """
    missing = []
    folder = out
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        fd, probe = tempfile.mkstemp(prefix=".medqk-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_empty(created)
        raise OSError(f"--out {str(out)!r} is not a writable folder ({exc.strerror or exc})") from None
    return created


def _remove_empty(created: list[Path]) -> None:
    """Removes the folders of ``created`` (outermost first) that are still empty, innermost first: a folder
    that holds anything, a report or part of one, stays with its parents."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _read_texts(path: str, flag: str) -> list[str]:
    """Texts from a .jsonl file (a "text" field per line) or a plain text file (one per line), blank lines
    skipped; a clear error naming ``flag`` otherwise."""
    from .eval.data import read_text_records

    return read_text_records(path, flag)[0]


def _quantize_command(args) -> int:
    from .encoder import PRECISIONS, SentenceEncoder, propose_plan

    precision = args.precision or ("int4" if args.budget is not None else "int8")
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    calib = _read_texts(args.calib, "--calib") if args.calib else None
    if args.budget is not None:
        if calib is None:
            raise ValueError("--budget measures layers on calibration texts: give --calib")
        if args.max_seq_length is not None:
            raise ValueError("--budget uses the model's own max_seq_length: leave out --max-seq-length")
        found = propose_plan(args.model, calib, budget=args.budget, low=precision, high=args.high,
                             max_bits_per_weight=args.max_bits)
        encoder = found.encoder
        high = sum(1 for key in found.plan if key != "default")
        capped = args.max_bits is not None and high < len(found.sensitivity)
        short = "" if found.met else (f", NOT met within --max-bits {args.max_bits}" if capped else
                                      f", NOT met even with every layer at {args.high}")
        print(f"Plan: {high} of {len(found.sensitivity)} linear layers at {args.high}, the rest {precision}: mean "
              f"cosine {found.mean_cosine:.5f} on the {len(calib)} calibration texts (budget {args.budget}{short}), "
              f"{found.bits_per_weight:.2f} bits/weight")
    else:
        if args.high != "int8" or args.max_bits is not None:
            raise ValueError(f"{'--high' if args.high != 'int8' else '--max-bits'} goes with --budget")
        encoder = SentenceEncoder.load(args.model, precision=precision, max_seq_length=args.max_seq_length,
                                       calib=calib)
    encoder.save(args.out)
    print(f"Wrote {args.out}: {encoder!r}, {encoder.nbytes / 1e6:.1f} MB of parameters")
    return 0


def _eval_command(args) -> int:
    created = _make_out_folder(Path(args.out))
    try:
        return _run_eval(args)
    finally:
        _remove_empty(created)  # a failed run leaves no empty --out behind; a written report keeps its folder


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .index.spec import spec_help

    parser = _Parser(prog="medqk", description="medqk: quantization kernels for embedding retrieval",
                     epilog="With no COMMAND, medqk prints this help to stderr and exits with status 2.")
    parser.add_argument("--version", action="version", version=f"medqk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="show the backend, CPU features and the kernel chosen for each operation")
    p_info.add_argument("--json", action="store_true", help="print the info() dict as JSON")
    p_quant = sub.add_parser(
        "quantize", help="quantize a sentence encoder (a BERT-family model folder) into one model file",
        description="Read a local sentence-transformers model folder (config.json, model.safetensors, "
        "tokenizer.json; no network), quantize its linear layers and write one checksummed model file, "
        "atomically. medqk.encoder.SentenceEncoder.load(FILE) runs it without the folder.")
    p_quant.add_argument("model", metavar="MODEL_DIR", help="the model folder")
    p_quant.add_argument("--precision", default=None,
                         help="float32, int8 (default), int4, nf4, codebook4, codebook3 or codebook2; with --budget "
                         "the low precision (default int4)")
    p_quant.add_argument("--budget", type=float, default=None, metavar="COS",
                         help="mixed precision by measurement: the fewest layers at --high (the rest at --precision) "
                         "whose mean cosine to the float model on the --calib texts is at least COS (e.g. 0.999)")
    p_quant.add_argument("--max-bits", type=float, default=None, metavar="BITS",
                         help="with --budget: never above BITS bits per weight of the linear layers (e.g. 4.6); the "
                         "most sensitive layers that fit stay at --high when the budget needs more")
    p_quant.add_argument("--high", default="int8", metavar="PRECISION",
                         help="with --budget: the precision of the sensitive layers (default int8)")
    p_quant.add_argument("--out", required=True, metavar="FILE", help="the model file to write (e.g. model.mqm)")
    p_quant.add_argument("--calib", metavar="FILE", help="calibration texts for GPTQ rounding of the 4-, 3- and "
                         "2-bit layers and the smoothing of the int8 ones: a .jsonl file with a \"text\" field per "
                         "line, or a text file, one per line")
    p_quant.add_argument("--max-seq-length", type=_int_at_least(2, "an integer >= 2"), default=None, metavar="N",
                         help="longest input in tokens (default: the folder's sentence_bert_config.json)")
    p_eval = sub.add_parser(
        "eval",
        help="measure recall, relevance, size and speed of quantization schemes (default: bundled MedQuAD sample)",
        description="Evaluate index specs against exact float search. With no data arguments it runs on the "
        "bundled MedQuAD sample (5,000 docs, 500 queries; CC BY 4.0). With --model, texts are embedded by the "
        "model at each precision first and every model precision x index spec is evaluated against the float32 "
        "model + exact search (the sample's texts by default).",
    )
    src = p_eval.add_argument_group("data (default: the bundled MedQuAD sample)")
    src.add_argument("--data", metavar="DIR", help="folder laid out like MedQuAD: docs.npy, queries.npy, qrels.json")
    src.add_argument("--docs", metavar="FILE", help="document vectors (.npy, .fvecs, .bvecs, .ivecs, or an "
                     "ann-benchmarks .hdf5: its train set, with its queries, metric and neighbors)")
    src.add_argument("--queries", metavar="FILE",
                     help="query vectors (same formats; not needed with a .hdf5 --docs)")
    src.add_argument("--qrels", metavar="FILE", help="relevance judgements: JSON list of lists of rows, "
                     "BEIR JSON {qid: {docid: rel}}, TREC lines 'qid iter docid rel' or BEIR TSV")
    src.add_argument("--doc-ids", metavar="FILE[:FIELD]", help="id of each doc row, for string ids in "
                     "--qrels: .txt one id a line, .jsonl field _id or id (or FIELD), .json list")
    src.add_argument("--query-ids", metavar="FILE[:FIELD]", help="id of each query row (same formats)")
    src.add_argument("--fields", metavar="FILE", help="docs.jsonl with one JSON object per doc (for --shift)")
    txt = p_eval.add_argument_group(
        "model axis: embed texts with a sentence encoder at each precision (default texts: the bundled sample's)")
    txt.add_argument("--model", metavar="MODEL_DIR_OR_MQM", help="a sentence-transformers model folder (BERT "
                     "family) or a medqk model file; schemes are then evaluated on its embeddings, against the "
                     "float32 model + exact search")
    txt.add_argument("--precisions", metavar="LIST", help="comma-separated model precisions (default "
                     "float32,int8,int4 for a folder, a model file's own); float32, the reference, always runs "
                     "when the model has float weights")
    txt.add_argument("--docs-text", metavar="FILE", help="document texts: .jsonl with a \"text\" field per line "
                     "(its _id/id fields name rows for --qrels, its fields serve --shift), or one text a line")
    txt.add_argument("--queries-text", metavar="FILE", help="query texts (same formats)")
    txt.add_argument("--batch-size", type=_int_at_least(1, "a positive integer"), default=None, metavar="N",
                     help="texts embedded per batch (default 32)")
    txt.add_argument("--max-seq-length", type=_int_at_least(2, "an integer >= 2"), default=None, metavar="N",
                     help="longest input in tokens (default: the model's)")
    txt.add_argument("--calib", metavar="FILE", help="calibration texts (.jsonl with a \"text\" field per line, or "
                     "one text a line): the float32 model runs over them once, then the 4-, 3- and 2-bit layers "
                     "are rounded by GPTQ and the int8 layers smoothed (as medqk quantize --calib)")
    txt.add_argument("--max-docs", type=_int_at_least(1, "a positive integer"), default=None, metavar="N",
                     help="embed only N docs: every doc judged relevant to the queries kept, then the first others "
                     "(a quick run; fewer distractors make retrieval easier)")
    p_eval.add_argument("--schemes", action="append", metavar="SPECS",
                        help=f"comma-separated index specs (repeatable); valid specs: {spec_help()}")
    p_eval.add_argument("--k", type=_int_at_least(1, "a positive integer"), default=10,
                        help="results per query (default 10)")
    p_eval.add_argument("--metric", choices=("ip", "l2", "cos"), default=None,
                        help="inner product, squared L2 distance or cosine (default: the metric the data file "
                        "declares, e.g. an ann-benchmarks .hdf5 'distance', else ip)")
    p_eval.add_argument("--threads", type=_int_at_least(1, "a positive integer"), default=None,
                        help="threads for search (default: all cores)")
    p_eval.add_argument("--recall-target", type=_recall, default=0.95,
                        help="recall@k target in (0, 1] (default 0.95)")
    p_eval.add_argument("--out", default="medqk-report",
                        help="output folder (default ./medqk-report); one this run creates is removed again "
                        "if the run fails before writing into it")
    p_eval.add_argument("--seed", type=_int_at_least(0, "an integer >= 0"), default=0,
                        help="seed for bootstrap and folds (default 0)")
    p_eval.add_argument("--cv", type=_int_at_least(2, "an integer >= 2 (the number of folds)"), default=None,
                        metavar="K", help="K-fold cross-validation of codec training, K >= 2")
    p_eval.add_argument("--shift", metavar="FIELD", help="calibrate on one group of FIELD, evaluate on the others")
    p_eval.add_argument("--max-queries", type=_int_at_least(1, "a positive integer"), default=None,
                        metavar="N", help="use only the first N queries")
    p_eval.add_argument("--quiet", action="store_true", help="no progress lines")
    p_eval.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where the schemes and cross-validation folds run: here (default) or as Ray tasks "
                        "(pip install 'medqk[ray]'); the report differs only in its timing fields")
    p_eval.add_argument("--address", default=None,
                        help="with --engine ray: the Ray cluster to join (default: a new local instance)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs ``medqk`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _error(exc)
    except SystemExit as exc:  # --help or --version printed their text
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from . import _backend

    if _backend.env_error is not None:  # a bad MEDQK_BACKEND / MEDQK_ISA, left to us by the package import
        return _error(_backend.env_error)
    try:
        if args.command == "info":
            return _print_info(args.json)
        if args.command == "quantize":
            return _quantize_command(args)
        return _eval_command(args)
    except KeyboardInterrupt:  # outside the schemes (loading, the exact reference): nothing to report yet
        print("medqk: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, OSError, ImportError) as exc:
        return _error(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
