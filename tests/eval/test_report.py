"""eval/report.py: headers follow the k measured, the console and report.md show the metric, skipped schemes,
a PARTIAL banner, the neighbors check and warnings (old results without those keys still render), report.md
links pareto.png only when it was written, and the plot draws CIs with labels and ticks that do not overlap.

Every EvalResult here is built by hand: no evaluation runs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from medqk.eval import report
from medqk.eval.runner import EvalResult

# (spec, bytes/vector, recall@10 mean, 95% CI, QPS): the MedQuAD sample's 14 default schemes as measured by
# `medqk eval` (5,000 docs, 500 queries, dim 384); they crowd near recall 1 and at 192 and 384-576 bytes.
SAMPLE = [
    ("float32", 1536, 1.0, (1.0, 1.0), 12081), ("fp16", 768, 1.0, (1.0, 1.0), 9264),
    ("int8", 384, 0.9952, (0.9932, 0.9970), 18105), ("int4", 192, 0.9378, (0.9316, 0.9432), 9679),
    ("cb4", 192, 0.9512, (0.9462, 0.9558), 10524), ("pca4", 192, 0.9744, (0.9702, 0.9784), 2810),
    ("cb4+rerank:int8", 576, 0.9952, (0.9932, 0.9970), 7129),
    ("pca2+rerank:int8", 480, 0.9952, (0.9932, 0.9970), 4699), ("cb2", 96, 0.8494, (0.8406, 0.8582), 10079),
    ("pca2", 96, 0.9158, (0.9094, 0.9222), 2583), ("pq96x4fs", 48, 0.7058, (0.6926, 0.7176), 19276),
    ("pq48x8", 48, 0.7214, (0.7080, 0.7338), 3428),
    ("pq96x4fs+rerank:int8", 432, 0.9936, (0.9914, 0.9956), 12309),
    ("hnsw", 1685, 0.9898, (0.9862, 0.9926), 2378),
]


def scheme(spec, nbytes=128.0, mean=0.99, ci=(0.98, 1.0), qps=1000.0, *, ks=(1, 10, 100), k=10,
           relevance=False):
    s = {
        "spec": spec, "bytes_per_vector": float(nbytes), "index_bytes": int(nbytes) * 1000, "train_s": 0.5,
        "add_s": 0.1, "qps": float(qps), "latency_ms": {"p50": 0.2, "p99": 0.9}, "peak_rss_mib": 50.0,
        "recon_mse": 1e-4, "threshold_recall": mean, "full_topk_kept": 0.9,
        "recall": {f"recall@{kk}": {"mean": mean if kk == k else min(1.0, mean + 0.001), "ci95": list(ci)}
                   for kk in ks},
    }
    if relevance:
        rel = {"value": 0.8, "delta_vs_float": -0.001, "delta_ci95": [-0.002, 0.0]}
        s["relevance"] = {m: dict(rel) for m in ("mrr", "ndcg", "precision", "recall", "f1")}
    return s


def result(schemes=None, *, k=10, ks=(1, 10, 100), relevance=False, meta=None, reference=None, n_queries=500):
    """A small EvalResult in the shape the runner writes; ``meta``/``reference`` add or override keys."""
    schemes = schemes if schemes is not None else [scheme("float32", 512, 1.0, (1.0, 1.0), 900, ks=ks, k=k,
                                                          relevance=relevance),
                                                   scheme("int8", 128, 0.99, (0.98, 0.995), 3000, ks=ks, k=k,
                                                          relevance=relevance)]
    m = {"dataset": "toy", "source": {}, "date": "2026-01-01T00:00:00+00:00",
         "versions": {"medqk": "1.0", "numpy": "2", "python": "3.11"}, "cpu": "cpu", "backend": "native",
         "isa": "avx2", "threads": 2, "seed": 0, "bootstrap_resamples": 1000}
    m.update(meta or {})
    ref = {"k": k, "recall_ks": list(ks), "n_docs": 1000, "n_queries": n_queries, "dim": 128}
    if relevance:
        ref["relevance"] = {n: 0.8 for n in ("mrr", "ndcg", "precision", "recall", "f1")}
        ref["n_judged_queries"] = n_queries
    ref.update(reference or {})
    ok = [s for s in schemes if s["recall"][f"recall@{k}"]["ci95"][0] >= 0.95]
    rec = {"recall_target": 0.95, "criterion": f"lower 95% bootstrap bound of recall@{k} >= 0.95",
           "smallest": min(ok, key=lambda s: s["bytes_per_vector"])["spec"] if ok else None,
           "fastest": max(ok, key=lambda s: s["qps"])["spec"] if ok else None,
           "statement": "chosen by the test"}
    return EvalResult(m, ref, schemes, rec)


def sample_result(n=None):
    rows = SAMPLE if n is None else [SAMPLE[i % len(SAMPLE)] for i in range(n)]
    schemes = []
    for i, (spec, nbytes, mean, ci, qps) in enumerate(rows):
        if i >= len(SAMPLE):  # more schemes than the sample: variants with nearby numbers, as a sweep gives
            spec, qps, shift = f"{spec}-v{i}", qps * (0.8 + 0.4 * ((i * 7) % 11) / 10), -0.0004 * (i % 7)
            mean, ci = max(0.0, mean + shift), (max(0.0, ci[0] + shift), min(1.0, ci[1] + shift))
        schemes.append(scheme(spec, nbytes, mean, ci, qps))
    return result(schemes)


# --- point 7: headers use the k and the recall depths measured ----------------------------------------------


def header(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("spec "))].split()


def test_console_headers_follow_k_5():
    res = result(k=5, ks=(1, 5, 10, 100), relevance=True)
    head = header(report.table(res))
    assert head[:4] == ["spec", "B/vec", "R@5", "95%"]
    assert {"R@1", "R@10", "R@100", "MRR@5", "nDCG@5"} <= set(head)
    assert not {"MRR@10", "nDCG@10"} & set(head)


def test_markdown_headers_follow_k_5():
    md = report.markdown(result(k=5, ks=(1, 5, 10, 100), relevance=True))
    table_head = next(line for line in md.splitlines() if line.startswith("| spec | bytes/vector"))
    cells = [c.strip() for c in table_head.strip("|").split("|")]
    assert "recall@5 [95% CI]" in cells and "top-5 fully kept" in cells
    assert [c for c in cells if c.startswith("recall@")] == ["recall@5 [95% CI]", "recall@1", "recall@10",
                                                            "recall@100"]
    assert "mrr@5 (change [95% CI])" in md and "@10 (change" not in md


def test_only_measured_recall_depths_get_columns():
    res = result(k=5, ks=(5,))
    head = header(report.table(res))
    assert [h for h in head if h.startswith("R@")] == ["R@5"]
    md = report.markdown(res)
    assert "recall@1 " not in md and "recall@100" not in md and "| recall@1 |" not in md


def test_results_without_recall_ks_take_the_depths_from_the_schemes():
    res = result(k=5, ks=(1, 5, 100))
    del res.reference["recall_ks"]
    head = header(report.table(res))
    assert [h for h in head if h.startswith("R@")] == ["R@5", "R@1", "R@100"]


# --- display contract: metric, skipped, partial, neighbors check, warnings ----------------------------------


@pytest.mark.parametrize(("metric", "shown"), [("ip", "inner product (ip)"), ("l2", "L2 distance (l2)"),
                                                ("cos", "cosine similarity (cos)")])
def test_metric_is_shown(metric, shown):
    res = result(meta={"metric": metric})
    console = report.table(res)
    assert shown in console.splitlines()[0]
    md = report.markdown(res)
    assert f"metric {shown}" in md
    if metric != "ip":
        assert "inner product" not in console and "inner product" not in md


def test_skipped_schemes_are_listed_with_their_reason():
    res = result()
    res.skipped = [{"spec": "pq96x4fs", "reason": "M=96 does not divide the dimension 100"},
                   {"spec": "ivf1024,pq8x8", "reason": "needs >= 39 training vectors per list | got 2"}]
    console = report.table(res)
    assert "Skipped (2, not built for this data):" in console
    assert "pq96x4fs  " in console and "M=96 does not divide the dimension 100" in console
    md = report.markdown(res)
    assert "## Skipped" in md
    assert "| `pq96x4fs` | M=96 does not divide the dimension 100 |" in md
    # a '|' in a reason must not split the markdown row
    assert "| `ivf1024,pq8x8` | needs >= 39 training vectors per list \\| got 2 |" in md


def test_partial_banner_comes_first():
    reason = "interrupted by Ctrl-C after 3 of 14 schemes"
    res = result(meta={"partial": True, "partial_reason": reason})
    console = report.table(res)
    assert console.splitlines()[0].startswith(f"PARTIAL: {reason}")
    md = report.markdown(res)
    assert md.index("PARTIAL report: " + reason) < md.index("Dataset **toy**")
    assert "PARTIAL" in md.splitlines()[2]
    complete = result(meta={"partial": False})
    assert "PARTIAL" not in report.table(complete) and "PARTIAL" not in report.markdown(complete)


def test_neighbors_check_and_warnings_are_shown():
    check = {"k": 10, "agreement": 0.41, "ok": False,
             "message": "the file's neighbors agree with medqk's exact top-10 on 41% only: is the metric "
                        "right?"}
    warnings = ["ivf1024 over 2,000 vectors: under 2 vectors per list", "pq48x8 trained on 300 vectors"]
    res = result(meta={"warnings": warnings}, reference={"neighbors_check": check})
    console = report.table(res)
    md = report.markdown(res)
    for out in (console, md):
        assert "Neighbors check (FAILED): " + check["message"] in out
        for w in warnings:
            assert "Warning: " + w in out
    assert "## Checks and warnings" in md
    good = result(reference={"neighbors_check": {**check, "ok": True, "agreement": 1.0,
                                                 "message": "all 100% agree"}})
    assert "Neighbors check (ok): all 100% agree" in report.table(good)


def test_old_results_without_the_new_keys_render(tmp_path):
    old = result()
    for key in ("metric", "partial", "partial_reason", "warnings"):
        old.meta.pop(key, None)
    del old.reference["recall_ks"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old.to_dict()))
    loaded = report.load(tmp_path)  # the folder, as --out names it
    console, md = report.table(loaded), report.markdown(loaded)
    assert "inner product (ip)" in console and "metric inner product (ip)" in md
    for out in (console, md):
        assert "PARTIAL" not in out and "Skipped" not in out and "Warning" not in out and "check" not in out


def test_load_round_trip_keeps_skipped(tmp_path):
    res = result(meta={"metric": "l2"})
    saved = res.to_dict() | {"skipped": [{"spec": "pq96x4fs", "reason": "M=96 does not divide 100"}]}
    (tmp_path / "report.json").write_text(json.dumps(saved))
    loaded = report.load(tmp_path / "report.json")
    assert loaded.schemes == res.schemes and loaded.meta["metric"] == "l2"
    assert loaded.skipped == saved["skipped"]
    assert "M=96 does not divide 100" in report.markdown(loaded)


def test_load_refuses_what_is_not_a_report(tmp_path):
    (tmp_path / "x.json").write_text('{"meta": {}}')
    with pytest.raises(ValueError, match="x.json.*not a medqk report.json"):
        report.load(tmp_path / "x.json")
    with pytest.raises(ValueError, match="missing.json"):
        report.load(tmp_path / "missing.json")


# --- point 4: pareto.png linked only when written; a failed plot never stops the report ---------------------


def test_write_links_the_plot_it_wrote(tmp_path):
    warned = []
    written = report.write(result(), tmp_path, warn=warned.append)
    assert [p.name for p in written] == ["report.json", "report.md", "pareto.png"]
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](pareto.png)" in (tmp_path / "report.md").read_text()
    assert warned == []
    assert json.loads((tmp_path / "report.json").read_text())["meta"]["dataset"] == "toy"


def block_matplotlib(monkeypatch):
    """Makes every `import matplotlib...` fail, as on a machine without it (even if a test imported it)."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_without_matplotlib_the_report_says_so_and_links_nothing(tmp_path, monkeypatch):
    (tmp_path / "pareto.png").write_bytes(b"a picture of an earlier run")
    block_matplotlib(monkeypatch)
    warned = []
    written = report.write(result(), tmp_path, warn=warned.append)
    assert [p.name for p in written] == ["report.json", "report.md"]
    md = (tmp_path / "report.md").read_text()
    assert "](pareto.png)" not in md
    assert "pareto.png was not written: matplotlib is not installed (pip install matplotlib)." in md
    assert warned == ["pareto.png not written: matplotlib is not installed (pip install matplotlib)"]
    # the earlier run's picture does not sit next to this report as if it showed it
    assert not (tmp_path / "pareto.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_an_error_while_drawing_is_reported_on_the_console_and_in_the_report(tmp_path, monkeypatch, capsys):
    def broken(*_args, **_kwargs):
        raise RuntimeError("font cache is corrupt")

    monkeypatch.setattr(report, "_draw", broken)
    written = report.write(result(), tmp_path)
    assert [p.name for p in written] == ["report.json", "report.md"]
    err = capsys.readouterr().err
    assert err == ("medqk: warning: pareto.png not written: drawing it failed "
                   "(RuntimeError: font cache is corrupt)\n")
    md = (tmp_path / "report.md").read_text()
    assert "](pareto.png)" not in md and "RuntimeError: font cache is corrupt" in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]  # no temp file left


def test_markdown_alone_links_no_picture():
    md = report.markdown(result())
    assert "pareto.png" not in md
    assert "![" in report.markdown(result(), plot_file="pareto.png")


def test_no_scheme_means_no_plot_but_a_report(tmp_path):
    res = result([], meta={"partial": True, "partial_reason": "interrupted by Ctrl-C after 0 of 3 schemes"})
    warned = []
    written = report.write(res, tmp_path, warn=warned.append)
    assert [p.name for p in written] == ["report.json", "report.md"]
    assert warned == ["pareto.png not written: no scheme finished, so there is nothing to plot"]
    assert "PARTIAL" in report.table(res)


# --- point 14: the plot -------------------------------------------------------------------------------------


def drawn(res):
    fig = report.pareto_figure(res)
    fig.canvas.draw()
    key = [t.get_text() for t in fig.texts if t.get_gid() == "medqk-numbered-key"]
    numbered = [(int(n), spec) for text in key
                for n, spec in (item.split(": ") for item in text.split("   "))]
    return fig, numbered


def boxes_overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def text_box(annotation, renderer):
    """The box of an annotation's text alone (Annotation.get_window_extent adds its leader line)."""
    from matplotlib.text import Text

    return Text.get_window_extent(annotation, renderer)


def labels(ax):
    from matplotlib.text import Annotation

    return [t for t in ax.get_children() if isinstance(t, Annotation)]


@pytest.fixture(scope="module")
def sample_plot():
    """The 14-scheme sample result and its figure, drawn once for the tests that only read it."""
    res = sample_result()
    return res, drawn(res)


@pytest.mark.parametrize("n", [14, 20, 2])
def test_plot_labels_do_not_overlap_each_other_or_markers(n, sample_plot):
    res = sample_plot[0] if n == len(SAMPLE) else sample_result(n)
    fig, numbered = sample_plot[1] if n == len(SAMPLE) else drawn(res)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        texts = labels(ax)
        assert sorted(t.get_text() for t in texts) == sorted(s["spec"] for s in res.schemes)
        extents = [text_box(t, renderer) for t in texts]
        axes_box = ax.get_window_extent(renderer)
        for i, a in enumerate(extents):
            assert axes_box.x0 <= a.x0 and a.x1 <= axes_box.x1 and axes_box.y0 <= a.y0 and a.y1 <= axes_box.y1
            for b in extents[i + 1:]:
                assert not boxes_overlap(a, b), (texts[i].get_text(), [t.get_text() for t in texts])
        # no label covers a marker centre
        for coll in ax.collections:
            for x, y in ax.transData.transform(coll.get_offsets()):
                assert not any(a.x0 < x < a.x1 and a.y0 < y < a.y1 for a in extents)
    assert numbered == []


def test_plot_draws_the_95_ci_of_every_scheme(sample_plot):
    from matplotlib.container import ErrorbarContainer

    res, (fig, _) = sample_plot
    for ax in fig.axes:
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == len(res.schemes)
        for container, s in zip(bars, res.schemes):
            segment = container.lines[2][0].get_segments()[0]
            lo, hi = s["recall"]["recall@10"]["ci95"]
            np.testing.assert_allclose(sorted(segment[:, 1]), [lo, hi], rtol=0, atol=1e-12)


def test_plot_marks_the_recommended_schemes(sample_plot):
    res, (fig, _) = sample_plot
    assert (res.recommendation["smallest"], res.recommendation["fastest"]) == ("pca4", "int8")
    for ax in fig.axes:
        bold = {t.get_text() for t in labels(ax) if t.get_fontweight() == "bold"}
        assert bold == {"pca4", "int8"}
        from matplotlib.collections import PathCollection

        rings = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_facecolors()) == 0]
        assert len(rings) == 2
    assert "recommended: pca4 (smallest), int8 (fastest)" in "\n".join(t.get_text() for t in fig.texts)
    both = result()  # int8 is the smallest and the fastest scheme meeting the target
    fig, _ = drawn(both)
    assert "recommended: int8 (smallest and fastest)" in "\n".join(t.get_text() for t in fig.texts)


def test_plot_ticks_are_plain_and_do_not_crowd(sample_plot):
    fig, _ = sample_plot[1]
    renderer = fig.canvas.get_renderer()
    bytes_ax, qps_ax = fig.axes
    bytes_ticks = [t.get_text() for t in bytes_ax.get_xticklabels() if t.get_visible()]
    assert bytes_ticks[:4] == ["48", "96", "192", "384"] and "1536" in bytes_ticks
    assert [t.get_text() for t in qps_ax.get_xticklabels()] == ["2k", "5k", "10k", "20k"]
    y_ticks = [t.get_text() for t in bytes_ax.get_yticklabels()]
    assert {"1", "0.99", "0.95", "0.9"} <= set(y_ticks)
    for tick_labels in (bytes_ax.get_xticklabels(), qps_ax.get_xticklabels(), bytes_ax.get_yticklabels()):
        extents = [t.get_window_extent(renderer) for t in tick_labels if t.get_text()]
        for i, a in enumerate(extents):
            for b in extents[i + 1:]:
                assert not boxes_overlap(a, b)
    assert bytes_ax.get_xaxis().get_minor_locator().tick_values(1, 2) == []


def test_recall_axis_spreads_the_crowd_near_one(sample_plot):
    fig, _ = sample_plot[1]
    ax = fig.axes[0]
    def to_px(y):
        return ax.transData.transform((100.0, y))[1]
    # 0.99 to 1 takes as much height as 0.9 to 0.99, instead of a tenth of it on a linear axis
    assert to_px(1.0) - to_px(0.99) > 0.6 * (to_px(0.99) - to_px(0.9))
    assert np.isfinite(to_px(1.0)) and to_px(1.0) < ax.get_window_extent().y1  # recall 1 is inside the panel


@pytest.mark.parametrize(("value", "text"), [(500, "500"), (1000, "1k"), (20000, "20k"), (1.5e6, "1.5M")])
def test_si_labels(value, text):
    assert report._si(value) == text


def test_place_labels_keeps_dense_labels_apart():
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.uniform(100, 220, size=(12, 2))]  # 12 markers in 120 x 120 px
    sizes = [(50.0, 10.0)] * len(points)
    boxes = report._place_labels(points, sizes, (0, 0, 400, 300), [(0, 0, 400, 20)])
    assert all(b is not None for b in boxes)
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= 400 and 20 < a[1] and a[3] <= 300
        for b in boxes[i + 1:]:
            assert not report._overlaps(a, b, pad=0)
        for x, y in points:
            assert not report._overlaps(a, (x - 6, y - 6, x + 6, y + 6), pad=0)


def test_place_labels_reports_what_cannot_fit():
    boxes = report._place_labels([(10, 10), (12, 10)], [(30.0, 10.0), (30.0, 10.0)], (0, 0, 60, 25), [])
    assert boxes[0] is not None and boxes[1] is None


def test_many_schemes_fall_back_to_a_numbered_key():
    res = sample_result(30)
    fig, numbered = drawn(res)
    # whatever did not fit is numbered (one number per scheme, shown on the plot), the others keep their name
    assert numbered and [n for n, _ in numbered] == list(range(1, len(numbered) + 1))
    assert len({spec for _, spec in numbered}) == len(numbered)
    texts = [t.get_text() for ax in fig.axes for t in labels(ax)]
    assert {str(n) for n, _ in numbered} <= set(texts)
    assert {spec for _, spec in numbered} | set(texts) >= {s["spec"] for s in res.schemes}
