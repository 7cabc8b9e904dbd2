"""Writing an evaluation: console summary, report.json, report.md and pareto.png.

Every view reads the optional keys of newer results (``meta["metric"]``, ``meta["partial"]``,
``meta["warnings"]``, ``reference["neighbors_check"]``, ``EvalResult.skipped``) with defaults, so a
report.json written by an older medqk still renders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .._files import atomic_file
from .runner import EvalResult

PLOT_NAME = "pareto.png"
_REFERENCE_SPECS = {"float32", "float32/float32"}  # the reference's row: plain, or the float model's pipeline
METRIC_NAMES = {"ip": "inner product", "l2": "L2 distance", "cos": "cosine similarity"}


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def load(path) -> EvalResult:
    """Rebuilds the :class:`EvalResult` saved in a report.json (the file, or the folder holding it), to redraw
    the plot or rewrite report.md without running the evaluation again."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        saved = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"path {str(p)!r} is not a readable report.json ({exc})") from None
    required = ("meta", "reference", "schemes", "recommendation")
    if not isinstance(saved, dict) or any(key not in saved for key in required):
        raise ValueError(f"path {str(p)!r} is not a medqk report.json: it needs the keys "
                         f"{', '.join(required)}")
    fields = {f.name for f in dataclasses.fields(EvalResult)}
    result = EvalResult(**{key: value for key, value in saved.items() if key in fields})
    for key, value in saved.items():  # keys this EvalResult has no field for yet (e.g. "skipped")
        if key not in fields:
            setattr(result, key, value)
    return result


# --- what every view shows ----------------------------------------------------------------------------------


def _recall_ks(result: EvalResult) -> list[int]:
    """The recall@kk depths measured, ascending (results without ``recall_ks`` name them in each scheme)."""
    ks = result.reference.get("recall_ks")
    if ks is None:
        names = {name for s in result.schemes for name in s["recall"]}
        ks = [int(name.split("@", 1)[1]) for name in names if name.startswith("recall@")]
    return sorted(int(kk) for kk in ks)


def _extra_ks(result: EvalResult) -> list[int]:
    """The recall depths shown next to recall@k (which has its own column with the CI)."""
    k = result.reference["k"]
    return [kk for kk in _recall_ks(result) if kk != k]


def _recall_cell(rec: dict, kk: int) -> str:
    value = rec.get(f"recall@{kk}")
    return f"{value['mean']:.4f}" if value is not None else "-"


def metric_description(result: EvalResult) -> str:
    """The similarity every recall is measured in, e.g. ``inner product (ip)``; results from before the metric
    was recorded were all inner product."""
    metric = result.meta.get("metric") or "ip"
    name = METRIC_NAMES.get(metric)
    return f"{name} ({metric})" if name else str(metric)


def _skipped(result: EvalResult) -> list[dict]:
    return list(getattr(result, "skipped", None) or [])


def _partial_reason(result: EvalResult) -> str | None:
    if not result.meta.get("partial"):
        return None
    return result.meta.get("partial_reason") or "the evaluation stopped before every scheme finished"


def _notes(result: EvalResult) -> list[str]:
    """The neighbors check and the warnings, one sentence each."""
    notes = []
    check = result.reference.get("neighbors_check")
    if check and check.get("message"):
        status = "ok" if check.get("ok", True) else "FAILED"
        notes.append(f"neighbors check ({status}): {check['message']}")
    notes += [f"warning: {w}" for w in result.meta.get("warnings") or []]
    return notes


def _reference_name(result: EvalResult) -> str:
    """What recall is measured against: exact float search, or the reference model's pipeline."""
    model = result.meta.get("model")
    if not model:
        return "exact float search"
    return f"the {model.get('reference_precision', 'float32')} model's embeddings + exact search"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _model_axis(result: EvalResult) -> bool:
    return any("model_precision" in s for s in result.schemes)


def _headline(result: EvalResult) -> str:
    ref, k = result.reference, result.reference["k"]
    return (f"{result.meta.get('dataset', 'data')}: {ref['n_docs']} docs, {ref['n_queries']} queries, dim "
            f"{ref['dim']}; metric {metric_description(result)}; recall@{k} against {_reference_name(result)}")


def table(result: EvalResult) -> str:
    """The console summary: a PARTIAL banner when the run stopped early, a headline with the metric, one row
    per scheme, then the skipped schemes with their reason, the neighbors check and the warnings."""
    k = result.reference["k"]
    extra = _extra_ks(result)
    has_rel = "relevance" in result.reference
    models = _model_axis(result)
    head = ["spec", *(["model MB", "sent/s"] if models else []), "B/vec", f"R@{k}", "95% CI",
            *(f"R@{kk}" for kk in extra), "kept", "QPS", "p50 ms"]
    if has_rel:
        head += [f"MRR@{k}", "dMRR", f"nDCG@{k}"]
    rows = [head]
    for s in result.schemes:
        rec = s["recall"]
        r = [
            s["spec"],
            *([f"{s['model_bytes'] / 1e6:.2f}", f"{s['sentences_per_s']:.1f}"] if models else []),
            f"{s['bytes_per_vector']:.0f}",
            f"{rec[f'recall@{k}']['mean']:.4f}",
            "[{:.4f}, {:.4f}]".format(*rec[f"recall@{k}"]["ci95"]),
            *(_recall_cell(rec, kk) for kk in extra),
            f"{s['full_topk_kept']:.3f}",
            f"{s['qps']:.0f}",
            f"{s['latency_ms']['p50']:.2f}",
        ]
        if has_rel:
            rel = s["relevance"]
            r += [f"{rel['mrr']['value']:.4f}", f"{rel['mrr']['delta_vs_float']:+.4f}",
                  f"{rel['ndcg']['value']:.4f}"]
        rows.append(r)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    partial = _partial_reason(result)
    top = [f"PARTIAL: {partial}; only the schemes that finished are shown."] if partial else []
    lines = top + [_headline(result)] + lines
    skipped = _skipped(result)
    if skipped:
        width = max(len(str(s.get("spec", "?"))) for s in skipped)
        lines += ["", f"Skipped ({len(skipped)}, not built for this data):"]
        lines += [f"  {str(s.get('spec', '?')).ljust(width)}  {s.get('reason', 'no reason given')}"
                  for s in skipped]
    notes = _notes(result)
    if notes:
        lines += [""] + [n[0].upper() + n[1:] for n in notes]
    return "\n".join(lines)


def _models_section(result: EvalResult) -> list[str]:
    """report.md's table of the model precisions (``medqk eval --model``), empty without a model axis."""
    models = getattr(result, "models", None) or {}
    if not models:
        return []
    info = result.meta.get("model", {})
    out = ["## Model precisions", "",
           (f"Model `{_md_cell(info.get('path', '?'))}`, max_seq_length {info.get('max_seq_length')}, batch "
            f"{info.get('batch_size')}; the reference is {info.get('reference_precision', 'float32')}; "
            + (f"quantized with calibration on {info['calibration_texts']} texts (GPTQ for the 4-, 3- and 2-bit "
               "layers, smoothing for int8)" if info.get("calibration_texts") else "quantized without calibration "
               "(round to nearest)")
            + ". Cosine: each text's embedding against its reference embedding (docs and queries)."), "",
           "| precision | model MB | bits/weight (linear layers) | sentences/s | cosine mean | cosine min | "
           "best index for this model |", "|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        cos = m.get("cosine_to_reference", {})
        out.append(f"| {name} | {m['model_bytes'] / 1e6:.2f} | {m['bits_per_weight']:.2f} | "
                   f"{m['sentences_per_s']:.1f} | {cos.get('mean', float('nan')):.5f} | "
                   f"{cos.get('min', float('nan')):.5f} | {_md_cell(m.get('index_recommendation', '-'))} |")
    return out + [""]


def _md_cell(text) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(result: EvalResult, *, plot_file: str | None = None, plot_error: str | None = None) -> str:
    """report.md. ``plot_file`` is the picture written next to it (linked only when given); ``plot_error``
    says why no picture was written."""
    m, ref, k = result.meta, result.reference, result.reference["k"]
    versions = m.get("versions", {})
    out = ["# medqk quantization report", ""]
    partial = _partial_reason(result)
    if partial:
        out += [(f"> **PARTIAL report: {partial}.** Only the schemes that finished are shown, and the "
                 "recommendation is chosen among them."), ""]
    out += [
        (f"Dataset **{m.get('dataset', 'data')}**: {ref['n_docs']} documents, {ref['n_queries']} queries, "
         f"dim {ref['dim']}, k={k}, metric {metric_description(result)}. CPU {m.get('cpu')}, backend "
         f"{m.get('backend')} ({m.get('isa')}), threads {m.get('threads')}, seed {m.get('seed')}, medqk "
         f"{versions.get('medqk', 'unknown')}, {m.get('date')}."),
        "",
    ]
    hosts = sorted({row["measured_on"]["host"] for row in result.schemes if "measured_on" in row})
    if hosts:  # medqk eval --engine ray: the timings are the tasks' (the CPU above is the driver's)
        out += [f"Schemes built, searched and timed in Ray tasks on {', '.join(hosts)} (each row's "
                f"`measured_on` in report.json).", ""]
    notes = _notes(result)
    if notes:
        out += ["## Checks and warnings", ""] + [f"- {n[0].upper() + n[1:]}" for n in notes] + [""]
    out += [
        "## Recommendation",
        "",
        f"Target: {result.recommendation['criterion']}.",
        "",
        f"**{result.recommendation['statement']}.**",
        "",
    ]
    out += _models_section(result)
    out += ["## Quality and cost per scheme", ""]
    if _model_axis(result):
        out += [f"Spec: model precision / index scheme. Recall against {_reference_name(result)}.", ""]
    models = _model_axis(result)
    extra = _extra_ks(result)
    head = ["spec", *(["model MB", "sentences/s"] if models else []), "bytes/vector", "index MiB",
            f"recall@{k} [95% CI]", *(f"recall@{kk}" for kk in extra), "threshold recall", f"top-{k} fully kept",
            "QPS", "latency p50/p99 ms", "train s", "add s", "peak RSS MiB", "recon. MSE"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.schemes:
        rec = s["recall"]
        r = rec[f"recall@{k}"]
        cells = [
            f"`{s['spec']}`", *([f"{s['model_bytes'] / 1e6:.2f}", f"{s['sentences_per_s']:.1f}"] if models else []),
            f"{s['bytes_per_vector']:.0f}", f"{s['index_bytes'] / 2**20:.2f}",
            f"{r['mean']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]",
            *(_recall_cell(rec, kk) for kk in extra),
            f"{s['threshold_recall']:.4f}", f"{s['full_topk_kept']:.3f}", f"{s['qps']:.0f}",
            f"{s['latency_ms']['p50']:.2f} / {s['latency_ms']['p99']:.2f}", f"{s['train_s']:.2f}",
            f"{s['add_s']:.2f}",
            f"{s['peak_rss_mib']:.0f}" if s.get("peak_rss_mib") is not None else "-",
            f"{s['recon_mse']:.2e}" if s.get("recon_mse") is not None else "-",
        ]
        out.append("| " + " | ".join(cells) + " |")
    skipped = _skipped(result)
    if skipped:
        out += ["", "## Skipped", "", "These schemes were asked for but cannot be built for this data:", "",
                "| spec | reason |", "|---|---|"]
        out += [f"| `{_md_cell(s.get('spec', '?'))}` | {_md_cell(s.get('reason', 'no reason given'))} |"
                for s in skipped]
    if "relevance" in ref:
        out += ["", "## Relevance (qrels)", "",
                _capital(_reference_name(result)) + ": "
                + ", ".join(f"{m_}@{k} {v:.4f}" for m_, v in ref["relevance"].items())
                + f" over {ref['n_judged_queries']} judged queries. Change vs float: paired bootstrap over "
                f"queries, {m.get('bootstrap_resamples')} resamples, 95% CI.", ""]
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
                f"Codecs trained on the other folds, evaluated on the held-out fold: recall@{k} mean ± std.",
                ""]
        out += [f"- `{spec}`: {v['mean']:.4f} ± {v['std']:.4f}" for spec, v in rob["cv"]["schemes"].items()]
    if "shift" in rob:
        out += ["", f"## Calibration shift (field `{rob['shift']['field']}`)", "",
                (f"Codecs trained on one group only, evaluated on the other groups' documents; drop = "
                 f"recall@{k} with in-distribution training minus recall with the shifted training."), ""]
        out += [f"- `{spec}`: mean drop {v['mean_drop']:+.4f}, worst {v['max_drop']:+.4f}"
                for spec, v in rob["shift"]["groups"].items()]
    if plot_file is not None:
        out += ["", "## Pareto plot", "",
                f"![recall@{k} against bytes per vector and against QPS]({plot_file})"]
    elif plot_error is not None:
        out += ["", "## Pareto plot", "", f"{PLOT_NAME} was not written: {plot_error}."]
    out.append("")
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


# --- the Pareto plot ----------------------------------------------------------------------------------------

_DPI = 110
_FIG_INCHES = (12.0, 5.4)
_LABEL_SIZE = 8.0  # points
_MARKER_HALF_PX = 6.0  # half the side of the box a marker covers, in pixels at _DPI
# Tick values of the recall axis, most wanted first: the thinning keeps as many as fit without crowding.
_RECALL_TICKS = (1.0, 0.9, 0.99, 0.999, 0.5, 0.95, 0.995, 0.9995, 0.8, 0.98, 0.998, 0.9999, 0.0, 0.7, 0.6,
                 0.3)
# Candidate label spots: radii (px) from the marker, nearest first, and directions (degrees), right first.
_RADII = (4, 10, 18, 28, 40, 54, 70, 88, 108, 130)
_ANGLES = (0, 25, -25, 55, -55, 90, -90, 180, 155, -155, 125, -125)
_LEADER_FROM_PX = 12  # labels farther than this from their marker get a leader line


class _MissScale:
    """recall -> -log10(1 - recall + floor). Equal steps from 0.9 to 0.99 to 0.999, so the schemes that crowd
    near recall 1 on a linear axis spread out and their confidence intervals become visible. ``floor`` keeps
    recall 1 finite: a third of the smallest miss any scheme shows, so recall 1 sits a little above the best
    imperfect scheme, and never less than a third of one miss over all queries (the finest step measured)."""

    def __init__(self, misses: list[float], n_queries: int, k: int):
        resolution = 1.0 / max(1, n_queries * k)
        nonzero = [m for m in misses if m > 0]
        self.floor = max(resolution / 3, min(nonzero) / 3) if nonzero else resolution / 3

    def forward(self, y):
        # above 1 + floor (never data, only a view limit pushed too far) the log is clamped instead of NaN
        return -np.log10(np.maximum(1.0 - np.asarray(y, dtype=np.float64) + self.floor, 1e-300))

    def inverse(self, t):
        return 1.0 + self.floor - 10.0 ** (-np.asarray(t, dtype=np.float64))


def _si(value: float) -> str:
    """1k / 20k / 1.5M: short tick labels for a log axis of queries per second."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _thin(values: list[float], to_px: Callable[[float], float], widths: list[float],
          gap: float) -> list[float]:
    """Keeps values (in priority order) whose labels, ``widths`` px wide and centred at ``to_px(v)``, stay at
    least ``gap`` px apart from every label kept before."""
    kept: list[tuple[float, float, float]] = []
    for v, w in zip(values, widths):
        c = to_px(v)
        if all(abs(c - c2) >= (w + w2) / 2 + gap for _, c2, w2 in kept):
            kept.append((v, c, w))
    return sorted(v for v, _, _ in kept)


def _overlaps(a, b, pad=1.5) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _segment_hits(p, q, box) -> bool:
    """Whether the segment p-q passes through ``box`` (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for step, start, lo, hi in ((dx, p[0], box[0], box[2]), (dy, p[1], box[1], box[3])):
        if step == 0:
            if not lo <= start <= hi:
                return False
            continue
        a, b = (lo - start) / step, (hi - start) / step
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True


def _square(center, half: float) -> tuple[float, float, float, float]:
    return center[0] - half, center[1] - half, center[0] + half, center[1] + half


def _nearest_on_box(p, box) -> tuple[float, float]:
    return min(max(p[0], box[0]), box[2]), min(max(p[1], box[1]), box[3])


def _place_labels(points, sizes, bounds, obstacles, *, order=None, own=None, marker_half=None):
    """Greedy label placement in pixel space.

    ``points``: (x, y) of each marker; ``sizes``: (w, h) of each label; ``bounds``: (x0, y0, x1, y1) every
    label stays inside; ``obstacles``: boxes (x0, y0, x1, y1) no label may cover (the legend, say);
    ``own[i]``: boxes that belong to point i (its error bar): no label covers them, but i's own leader line
    may cross them; ``marker_half[i]``: half the side of the box marker i covers (default
    ``_MARKER_HALF_PX``). Labels are placed in ``order`` (default: as given). Each goes to the first free spot
    on rings of growing radius around its marker, right of it first, so it sits next to its marker when there
    is room and farther out otherwise (the caller draws a leader line then); a spot is free when the box
    covers no obstacle, marker or label placed before, and the line from the marker to it crosses no other
    label, marker or error bar. Returns each label's box, or None where no free spot exists.
    """
    n = len(points)
    own = own if own is not None else [[] for _ in range(n)]
    half = marker_half if marker_half is not None else [_MARKER_HALF_PX] * n
    markers = [(x - h, y - h, x + h, y + h) for (x, y), h in zip(points, half)]
    # (owner, box): owner None for obstacles of nobody, -1 for placed labels
    boxes = [(None, tuple(b)) for b in obstacles]
    boxes += [(i, m) for i, m in enumerate(markers)] + [(i, tuple(b)) for i in range(n) for b in own[i]]
    # a leader line may cross the markers and bars of points drawn on top of its own (equal or nearly equal
    # values): no line from under a pile could leave it otherwise
    piled = [{j for j in range(n) if _overlaps(markers[i], markers[j], pad=0)} for i in range(n)]
    placed: list[tuple[float, float, float, float] | None] = [None] * n
    for i in order if order is not None else range(n):
        (px, py), (w, h) = points[i], sizes[i]
        for r in _RADII:
            found = None
            for angle in _ANGLES:
                c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                ax_, ay_ = px + (r + half[i]) * c, py + (r + half[i]) * s
                x0 = ax_ if c > 0.35 else (ax_ - w if c < -0.35 else ax_ - w / 2)
                y0 = ay_ if s > 0.35 else (ay_ - h if s < -0.35 else ay_ - h / 2)
                box = (x0, y0, x0 + w, y0 + h)
                if box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2] or box[3] > bounds[3]:
                    continue
                if any(_overlaps(box, b) for _, b in boxes):
                    continue
                if r > _LEADER_FROM_PX:
                    end = _nearest_on_box((px, py), box)
                    if any(_segment_hits((px, py), end, b) for owner, b in boxes if owner not in piled[i]):
                        continue
                found = box
                break
            if found is not None:
                placed[i] = found
                boxes.append((-1, found))
                break
    return placed


def _text_px(fig, renderer, text: str, size: float, weight: str = "normal") -> tuple[float, float]:
    t = fig.text(0, 0, text, fontsize=size, fontweight=weight)
    bb = t.get_window_extent(renderer)
    t.remove()
    return bb.width, bb.height


def _draw(result: EvalResult, bottom_px: float):
    """The figure (matplotlib's object API, no pyplot: no global state changes in the caller's process) and
    the numbered labels that found no free spot, as [(number, spec)]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, NullLocator

    k = result.reference["k"]
    key = f"recall@{k}"
    schemes = result.schemes
    specs = [s["spec"] for s in schemes]
    rec = [s["recall"][key]["mean"] for s in schemes]
    lo = [s["recall"][key]["ci95"][0] for s in schemes]
    hi = [s["recall"][key]["ci95"][1] for s in schemes]
    recommendation = result.recommendation
    recommended = {recommendation.get("smallest"), recommendation.get("fastest")} - {None}
    target = recommendation.get("recall_target")

    fig = Figure(figsize=_FIG_INCHES, dpi=_DPI)
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    height_px = _FIG_INCHES[1] * _DPI
    fig.subplots_adjust(left=100 / (_FIG_INCHES[0] * _DPI), right=0.99, top=1 - 62 / height_px,
                        bottom=bottom_px / height_px, wspace=0.16)
    axes = fig.subplots(1, 2, sharey=True)

    scale = _MissScale([1 - v for v in rec + lo + hi], result.reference["n_queries"], k)
    y_min_t = float(scale.forward(min(lo + ([target] if target is not None else []))))
    y_max_t = float(scale.forward(1.0))
    pad_t = 0.06 * max(y_max_t - y_min_t, 0.3)

    # with a model axis the size that matters is the whole pipeline's: model + index
    pipeline = _model_axis(result)
    sizes = [s["pipeline_bytes"] / 1e6 if pipeline else s["bytes_per_vector"] for s in schemes]
    panel_xs = [sizes, [s["qps"] for s in schemes]]
    # scales of both panels first, then limits (fixed: drawing must not rescale, the label placement works in
    # pixels), then ticks: the shared y axis resets its limits and ticks on every set_yscale
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("function", functions=(scale.forward, scale.inverse))
    for ax, xs in zip(axes, panel_xs):
        ax.set_autoscale_on(False)
        span = math.log10(max(xs) / min(xs)) if min(xs) > 0 else 1.0
        margin = 10 ** max(0.08, 0.06 * span)
        ax.set_xlim(min(xs) / margin, max(xs) * margin)
        ax.set_ylim(scale.inverse(y_min_t - pad_t), scale.inverse(y_max_t + pad_t))
    y_lo, y_hi = axes[0].get_ylim()
    # recall 1 and the target first, then the round values that stay clear of 1's squeezed neighbourhood
    cand_y = [1.0] + ([target] if target is not None and target != 1.0 else [])
    cand_y += [v for v in _RECALL_TICKS
               if v not in cand_y and y_lo <= v <= y_hi and 1.0 - v >= 1.5 * scale.floor]
    def to_px_y(v):
        return axes[0].transData.transform((1.0, v))[1]
    yticks = _thin(cand_y, to_px_y, [_text_px(fig, renderer, "0", 9)[1]] * len(cand_y), 6)
    axes[0].yaxis.set_major_locator(FixedLocator(yticks))
    axes[0].yaxis.set_major_formatter(lambda v, _pos: "1" if v == 1.0 else f"{v:g}")
    axes[0].yaxis.set_minor_locator(NullLocator())
    versus = (f"the {result.meta['model'].get('reference_precision', 'float32')} pipeline" if pipeline
              else "exact float search")
    axes[0].set_ylabel(f"recall@{k} vs {versus}\n(spaced by 1 − recall, log)")

    numbered: list[tuple[int, str]] = []
    numbers: dict[str, int] = {}
    for panel, (ax, xs) in enumerate(zip(axes, panel_xs)):
        front = set(pareto_front(list(zip(xs, rec)), minimize_x=panel == 0))
        ax.grid(alpha=0.25, lw=0.6)
        ax.set_axisbelow(True)

        # error bars first, markers over them
        for i, x in enumerate(xs):
            ax.errorbar([x], [rec[i]], yerr=[[rec[i] - lo[i]], [hi[i] - rec[i]]], fmt="none", ecolor="0.45",
                        elinewidth=1.0, capsize=3, zorder=2)
        fx = sorted((xs[i], rec[i]) for i in front)
        ax.plot([p[0] for p in fx], [p[1] for p in fx], "-", color="C0", alpha=0.45, lw=1.4, zorder=1)
        for i, x in enumerate(xs):
            is_ref = specs[i] in _REFERENCE_SPECS
            ax.scatter([x], [rec[i]], s=90 if is_ref else (48 if i in front else 30),
                       marker="*" if is_ref else "o", zorder=4, linewidths=0,
                       color="C3" if is_ref else ("C0" if i in front else "0.55"))
            if specs[i] in recommended:
                ax.scatter([x], [rec[i]], s=210, facecolors="none", edgecolors="C2", linewidths=1.8, zorder=5)
        if target is not None:
            ax.axhline(target, color="C2", ls="--", lw=1, zorder=1)

        # ticks: the recall values (most wanted first) and x values whose labels do not crowd
        if panel == 0:
            cand = sorted({float(f"{x:.2g}") if pipeline else round(x, 1) for x in xs})  # MB may be < 0.1
            def fmt(v):
                return f"{v:.0f}" if v >= 10 else f"{v:g}"
        else:
            e0, e1 = math.floor(math.log10(ax.get_xlim()[0])), math.ceil(math.log10(ax.get_xlim()[1]))
            x0, x1 = ax.get_xlim()
            cand = [m * 10.0**e for m in (1, 2, 5) for e in range(e0, e1 + 1) if x0 <= m * 10.0**e <= x1]
            if len(cand) < 3:  # a narrow range: the other leading digits too, so there are ticks to read
                cand += [m * 10.0**e for m in (3, 4, 6, 7, 8, 9, 1.5, 2.5) for e in range(e0, e1 + 1)
                         if x0 <= m * 10.0**e <= x1]
            fmt = _si
        def to_px_x(v, ax=ax):
            return ax.transData.transform((v, 1.0))[0]
        ticks = _thin(cand, to_px_x, [_text_px(fig, renderer, fmt(v), 9)[0] for v in cand], 10)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(lambda v, _pos, fmt=fmt: fmt(v))
        ax.xaxis.set_minor_locator(NullLocator())
        size_label = "model + index MB (log)" if pipeline else "bytes / vector (log)"
        ax.set_xlabel(size_label if panel == 0 else "queries / s, batch search (log)")
        ax.tick_params(labelsize=9)

        legend = None
        if panel == 0:
            # only what this plot shows
            handles = [Line2D([], [], color="C0", alpha=0.45, lw=1.4, marker="o", markerfacecolor="C0",
                              markeredgewidth=0, label="Pareto front")]
            if any(i not in front and specs[i] not in _REFERENCE_SPECS for i in range(len(specs))):
                handles.append(Line2D([], [], color="0.55", lw=0, marker="o", markeredgewidth=0,
                                      label="other schemes"))
            if _REFERENCE_SPECS & set(specs):
                handles.append(Line2D([], [], color="C3", lw=0, marker="*", markersize=10, markeredgewidth=0,
                                      label="float32 (reference)"))
            handles.append(Line2D([], [], color="0.45", lw=1.0, marker="_", markersize=7,
                                  label="95% CI (bootstrap)"))
            if recommended & set(specs):
                handles.append(Line2D([], [], color="C2", lw=0, marker="o", markersize=12,
                                      markerfacecolor="none", markeredgewidth=1.8, label="recommended"))
            if target is not None:
                handles.append(Line2D([], [], color="C2", ls="--", lw=1, label=f"recall target {target:g}"))
            legend = ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)

        # labels: placed in pixels around the markers, avoiding markers, error bars, the legend and each other
        pts = [tuple(ax.transData.transform((x, r))) for x, r in zip(xs, rec)]
        bars = [[(px - 4, ax.transData.transform((x, lo[i]))[1] - 1,
                  px + 4, ax.transData.transform((x, hi[i]))[1] + 1)]
                for i, ((px, _py), x) in enumerate(zip(pts, xs))]
        half = [12.0 if sp in recommended else _MARKER_HALF_PX for sp in specs]  # the ring is larger
        obstacles = [tuple(legend.get_window_extent(renderer).extents)] if legend is not None else []
        bb = ax.get_window_extent(renderer)
        bounds = (bb.x0 + 2, bb.y0 + 2, bb.x1 - 2, bb.y1 - 2)
        weights = ["bold" if sp in recommended else "normal" for sp in specs]
        sizes = [_text_px(fig, renderer, sp, _LABEL_SIZE, w) for sp, w in zip(specs, weights)]
        # recommended and front first (they matter most), then from the top of the plot, where schemes crowd
        order = sorted(range(len(specs)),
                       key=lambda i: (specs[i] not in recommended, i not in front, -rec[i]))
        boxes = _place_labels(pts, sizes, bounds, obstacles, order=order, own=bars, marker_half=half)
        missing = [i for i, b in enumerate(boxes) if b is None]
        number: dict[int, int] = {}
        if missing:
            # no room for the names: short numbers take their place and a key under the panel names them
            # one number per scheme, the same in both panels
            for i in missing:
                if specs[i] not in numbers:
                    numbers[specs[i]] = len(numbers) + 1
                    numbered.append((numbers[specs[i]], specs[i]))
            number.update({i: numbers[specs[i]] for i in missing})
            placed = [b for b in boxes if b is not None]
            num_sizes = [_text_px(fig, renderer, str(number[i]), _LABEL_SIZE, "bold") for i in missing]
            others = obstacles + placed + [half_box for j in range(len(pts)) if j not in number
                                           for half_box in bars[j] + [_square(pts[j], half[j])]]
            num_boxes = _place_labels([pts[i] for i in missing], num_sizes, bounds, others,
                                      own=[bars[i] for i in missing], marker_half=[half[i] for i in missing])
            for i, b, (w, h) in zip(missing, num_boxes, num_sizes):
                # last resort: right of the marker even if crowded
                px, py = pts[i]
                boxes[i] = b if b is not None else (px + 7, py - h / 2, px + 7 + w, py + h / 2)
        for i, b in enumerate(boxes):
            text = str(number[i]) if i in number else specs[i]
            px, py = pts[i]
            far = math.hypot(*(np.subtract(_nearest_on_box((px, py), b), (px, py)))) > _LEADER_FROM_PX + 1
            ax.annotate(text, (xs[i], rec[i]), xytext=(b[0] - px, b[1] - py), textcoords="offset pixels",
                        ha="left", va="bottom", fontsize=_LABEL_SIZE, zorder=6,
                        fontweight="bold" if (specs[i] in recommended or i in number) else "normal",
                        color="C2" if specs[i] in recommended else "0.1",
                        arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 0, "shrinkB": 4}
                        if far else None)

    ref = result.reference
    title = (f"medqk eval: {result.meta.get('dataset', 'data')} ({ref['n_docs']} docs, "
             f"{ref['n_queries']} queries, dim {ref['dim']}, metric {metric_description(result)})")
    partial = _partial_reason(result)
    if partial:
        title = f"PARTIAL ({partial}). " + title
    smallest, fastest = recommendation.get("smallest"), recommendation.get("fastest")
    if smallest and smallest == fastest:
        chosen = [f"{smallest} (smallest and fastest)"]
    else:
        chosen = [f"{name} ({role})" for name, role in ((smallest, "smallest"), (fastest, "fastest")) if name]
    sub = (f"recommended: {', '.join(chosen)}; " if chosen else "no scheme meets the target; ")
    sub += f"target: {recommendation.get('criterion', '')}"
    fig.text(0.5, 1 - 16 / height_px, title, ha="center", va="center", fontsize=10.5)
    fig.text(0.5, 1 - 36 / height_px, sub, ha="center", va="center", fontsize=9, color="0.25")
    return fig, numbered


def pareto_figure(result: EvalResult):
    """The Pareto plot as a matplotlib Figure (Agg canvas, no pyplot), e.g. to show in a notebook.

    Left: recall@k with its bootstrap 95% CI against bytes per vector; right: against batch QPS; the Pareto
    front, the recall target and the recommended schemes are marked. Raises ImportError without matplotlib,
    ValueError when there is no scheme to draw."""
    if not result.schemes:
        raise ValueError("no scheme finished, so there is nothing to plot")
    base_px = 52.0
    fig, numbered = _draw(result, base_px)
    if numbered:
        # some names had no room: a key under the panels names their numbers, so redraw with room for it
        # (the panels get shorter, so the second placement may number different schemes)
        key = "   ".join(f"{n}: {spec}" for n, spec in numbered)
        key_px = _text_px(fig, fig.canvas.get_renderer(), key, 8)[0]
        lines = int(key_px // (_FIG_INCHES[0] * _DPI * 0.95)) + 2  # one spare: wrapping breaks at spaces
        fig, numbered = _draw(result, base_px + 14 * lines)
        if numbered:
            key = "   ".join(f"{n}: {spec}" for n, spec in numbered)
            fig.text(0.5, 6 / (_FIG_INCHES[1] * _DPI), key, ha="center", va="bottom", fontsize=8, wrap=True,
                     gid="medqk-numbered-key")
    return fig


def plot(result: EvalResult, path) -> None:
    """Writes :func:`pareto_figure` to ``path`` as PNG, atomically. Raises as :func:`pareto_figure` does."""
    fig = pareto_figure(result)
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=_DPI)


def _plot_failure(exc: Exception) -> str:
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "matplotlib":
        return "matplotlib is not installed (pip install matplotlib)"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"drawing it failed ({type(exc).__name__}: {exc})"


def _warn_stderr(message: str) -> None:
    print(f"medqk: warning: {message}", file=sys.stderr)


def write(result: EvalResult, out_dir, *, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Writes report.json, then pareto.png, then report.md, each atomically, and returns the paths written.

    report.md links the picture only when it was written. A plot that cannot be drawn (no matplotlib, or any
    error while drawing) never stops the report: report.md says why, ``warn`` (default: a line on stderr)
    is told, and a pareto.png left by an earlier run in ``out_dir`` is removed, so the folder never shows a
    picture of other results.
    """
    out = Path(out_dir)
    warn = warn if warn is not None else _warn_stderr
    json_path, md_path, plot_path = out / "report.json", out / "report.md", out / PLOT_NAME
    _write_atomic(json_path, json.dumps(result.to_dict(), indent=2).encode())
    plot_error = None
    try:
        plot(result, plot_path)
    except Exception as exc:  # noqa: BLE001 - the picture is optional, the numbers are not
        plot_error = _plot_failure(exc)
        with contextlib.suppress(OSError):
            plot_path.unlink()
        warn(f"{PLOT_NAME} not written: {plot_error}")
    _write_atomic(md_path, markdown(result, plot_file=None if plot_error else PLOT_NAME,
                                    plot_error=plot_error).encode())
    return [json_path, md_path] + ([plot_path] if plot_error is None else [])
