"""Writing an evaluation: terminal table, report.json, report.md and pareto.png."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .._files import atomic_file
from .runner import EvalResult


def check_writable(out_dir) -> Path:
    """Creates ``out_dir`` if needed and proves it is writable, before any long work starts."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".medqk-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"--out {str(out)!r} is not a writable folder ({exc.strerror or exc})") from None
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def table(result: EvalResult) -> str:
    k = result.reference["k"]
    has_rel = "relevance" in result.reference
    head = ["spec", "B/vec", f"R@{k}", "95% CI", "R@1", "R@100", "kept", "QPS", "p50 ms"]
    if has_rel:
        head += ["MRR@10", "dMRR", "nDCG@10"]
    rows = [head]
    for s in result.schemes:
        rec = s["recall"]
        r = [
            s["spec"],
            f"{s['bytes_per_vector']:.0f}",
            f"{rec[f'recall@{k}']['mean']:.4f}",
            "[{:.4f}, {:.4f}]".format(*rec[f"recall@{k}"]["ci95"]),
            f"{rec['recall@1']['mean']:.4f}" if "recall@1" in rec else "-",
            f"{rec['recall@100']['mean']:.4f}" if "recall@100" in rec else "-",
            f"{s['full_topk_kept']:.3f}",
            f"{s['qps']:.0f}",
            f"{s['latency_ms']['p50']:.2f}",
        ]
        if has_rel:
            rel = s["relevance"]
            r += [f"{rel['mrr']['value']:.4f}", f"{rel['mrr']['delta_vs_float']:+.4f}", f"{rel['ndcg']['value']:.4f}"]
        rows.append(r)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(result: EvalResult) -> str:
    m, ref, k = result.meta, result.reference, result.reference["k"]
    out = [
        "# medqk quantization report",
        "",
        f"Dataset **{m['dataset']}**: {ref['n_docs']} documents, {ref['n_queries']} queries, dim {ref['dim']}, "
        f"k={k}, inner product. CPU {m['cpu']}, backend {m['backend']} ({m['isa']}), threads {m['threads']}, "
        f"seed {m['seed']}, medqk {m['versions']['medqk']}, {m['date']}.",
        "",
        "## Recommendation",
        "",
        f"Target: {result.recommendation['criterion']}.",
        "",
        f"**{result.recommendation['statement']}.**",
        "",
        "## Quality and cost per scheme",
        "",
    ]
    head = ["spec", "bytes/vector", "index MiB", f"recall@{k} [95% CI]", "recall@1", "recall@100",
            "threshold recall", f"top-{k} fully kept", "QPS", "latency p50/p99 ms", "train s", "add s",
            "peak RSS MiB", "recon. MSE"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.schemes:
        rec = s["recall"]
        r = rec[f"recall@{k}"]
        cells = [
            f"`{s['spec']}`", f"{s['bytes_per_vector']:.0f}", f"{s['index_bytes'] / 2**20:.2f}",
            f"{r['mean']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]",
            f"{rec['recall@1']['mean']:.4f}" if "recall@1" in rec else "-",
            f"{rec['recall@100']['mean']:.4f}" if "recall@100" in rec else "-",
            f"{s['threshold_recall']:.4f}", f"{s['full_topk_kept']:.3f}", f"{s['qps']:.0f}",
            f"{s['latency_ms']['p50']:.2f} / {s['latency_ms']['p99']:.2f}", f"{s['train_s']:.2f}", f"{s['add_s']:.2f}",
            f"{s['peak_rss_mib']:.0f}" if s["peak_rss_mib"] is not None else "-",
            f"{s['recon_mse']:.2e}" if s["recon_mse"] is not None else "-",
        ]
        out.append("| " + " | ".join(cells) + " |")
    if "relevance" in ref:
        out += ["", "## Relevance (qrels)", "",
                "Exact float search: " + ", ".join(f"{m_}@{k} {v:.4f}" for m_, v in ref["relevance"].items())
                + f" over {ref['n_judged_queries']} judged queries. Change vs float: paired bootstrap over queries, "
                f"{m['bootstrap_resamples']} resamples, 95% CI.", ""]
        names = ["mrr", "ndcg", "precision", "recall", "f1"]
        out += ["| spec | " + " | ".join(f"{n}@{k} (change [95% CI])" for n in names) + " |",
                "|---|" + "---|" * len(names)]
        for s in result.schemes:
            cells = []
            for n in names:
                v = s["relevance"][n]
                cells.append(f"{v['value']:.4f} ({v['delta_vs_float']:+.4f} [{v['delta_ci95'][0]:+.4f}, "
                             f"{v['delta_ci95'][1]:+.4f}])")
            out.append(f"| `{s['spec']}` | " + " | ".join(cells) + " |")
    rob = result.robustness
    if "cv" in rob:
        out += ["", f"## Cross-validation ({rob['cv']['folds']} folds of documents)", "",
                f"Codecs trained on the other folds, evaluated on the held-out fold: recall@{k} mean ± std.", ""]
        out += [f"- `{spec}`: {v['mean']:.4f} ± {v['std']:.4f}" for spec, v in rob["cv"]["schemes"].items()]
    if "shift" in rob:
        out += ["", f"## Calibration shift (field `{rob['shift']['field']}`)", "",
                f"Codecs trained on one group only, evaluated on the other groups' documents; drop = recall@{k} "
                "with in-distribution training minus recall with the shifted training.", ""]
        out += [f"- `{spec}`: mean drop {v['mean_drop']:+.4f}, worst {v['max_drop']:+.4f}"
                for spec, v in rob["shift"]["groups"].items()]
    out += ["", "![Pareto front](pareto.png)", ""]
    return "\n".join(out)


def pareto_front(points: list[tuple[float, float]], *, minimize_x: bool) -> list[int]:
    """Indices of points not dominated (higher y, and lower x if minimize_x else higher x)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (x2, y2) in enumerate(points):
            if j == i:
                continue
            better_x = x2 <= x if minimize_x else x2 >= x
            strictly = (x2 < x if minimize_x else x2 > x) or y2 > y
            if better_x and y2 >= y and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front


def plot(result: EvalResult, path: Path) -> bool:
    """Writes pareto.png; returns False (writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    k = result.reference["k"]
    specs = [s["spec"] for s in result.schemes]
    rec = [s["recall"][f"recall@{k}"]["mean"] for s in result.schemes]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for ax, xs, label, minimize in (
        (axes[0], [s["bytes_per_vector"] for s in result.schemes], "bytes / vector (log)", True),
        (axes[1], [s["qps"] for s in result.schemes], "queries / s (log)", False),
    ):
        front = set(pareto_front(list(zip(xs, rec)), minimize_x=minimize))
        for i, (x, y) in enumerate(zip(xs, rec)):
            is_ref = specs[i] == "float32"
            ax.scatter([x], [y], s=70 if i in front else 35, marker="*" if is_ref else "o",
                       color="C3" if is_ref else ("C0" if i in front else "0.6"), zorder=3)
            ax.annotate(specs[i], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        fx = sorted((xs[i], rec[i]) for i in front)
        ax.plot([p[0] for p in fx], [p[1] for p in fx], "-", color="C0", alpha=0.5, zorder=2, label="Pareto front")
        ax.axhline(result.recommendation["recall_target"], color="C2", ls="--", lw=1, label="recall target")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"recall@{k} vs exact float")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"medqk eval: {result.meta['dataset']} ({result.reference['n_docs']} docs, "
                 f"{result.reference['n_queries']} queries); * = float32 reference", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)
    return True


def write(result: EvalResult, out_dir) -> list[Path]:
    out = Path(out_dir)
    written = []
    _write_atomic(out / "report.json", json.dumps(result.to_dict(), indent=2).encode())
    written.append(out / "report.json")
    _write_atomic(out / "report.md", markdown(result).encode())
    written.append(out / "report.md")
    if plot(result, out / "pareto.png"):
        written.append(out / "pareto.png")
    return written
