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
    lines += [f"    {op:<18} {kernel}" for op, kernel in data["kernels"].items()]
    t = data["threads"]
    lines.append(f"  threads        native {t['native']}, numba {t['numba']}, cpus {t['cpu_count']}")
    if data["env"]:
        lines.append("  environment    " + ", ".join(f"{k}={v}" for k, v in data["env"].items()))
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medqk", description="medqk: quantization kernels for embedding retrieval")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="show the backend, CPU features and the kernel chosen for each operation")
    p_info.add_argument("--json", action="store_true", help="print the info() dict as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            return _print_info(args.json)
    except (RuntimeError, ValueError) as exc:
        print(f"medqk: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
