"""``medqk eval --model``: texts embedded by the tiny BERT of test_encoder at each precision, index schemes
evaluated on them against the float32 model + exact search; the bundled sample's texts as default data; bad
input as one error line."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the encoder reads model.safetensors (pip install 'medqk[encoder]')")
pytest.importorskip("tokenizers", reason="the encoder tokenizes with tokenizers (pip install 'medqk[encoder]')")

from medqk import cli  # noqa: E402
from medqk.encoder import SentenceEncoder  # noqa: E402
from medqk.eval import evaluate, load_sample_texts  # noqa: E402
from medqk.eval.data import Dataset  # noqa: E402

from .test_encoder import WORDS, write_model  # noqa: E402

K = 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A model folder, 40 distinct doc texts and 12 query texts of the model's words (seeded), JSON-list qrels."""
    root = tmp_path_factory.mktemp("evalmodel")
    folder, _ = write_model(root / "bert")
    words = [w for w in WORDS if not w.startswith("##")]
    rng = random.Random(7)
    docs = list(dict.fromkeys(" ".join(rng.sample(words, rng.randint(3, 8))) for _ in range(80)))[:40]
    queries = [" ".join(rng.sample(words, rng.randint(2, 4))) for _ in range(12)]
    (root / "docs.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": t, "half": i % 2}) + "\n"
                                             for i, t in enumerate(docs)))
    (root / "queries.txt").write_text("\n".join(queries) + "\n")
    (root / "qrels.json").write_text(json.dumps([[i, (3 * i + 1) % len(docs)] for i in range(len(queries))]))
    return root, folder, docs, queries


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = cli.main(["eval", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _top(docs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries.astype(np.float64) @ docs.T.astype(np.float64)), axis=1, kind="stable")[:, :k]


def test_eval_model_end_to_end(tmp_path, capsys, corpus):
    root, folder, docs, queries = corpus
    out = tmp_path / "report"
    status, text, err = _run(capsys, "--model", folder, "--precisions", "float32,int4", "--docs-text",
                             root / "docs.jsonl", "--queries-text", root / "queries.txt", "--qrels",
                             root / "qrels.json", "--schemes", "float32,int8", "--k", K, "--out", out, "--quiet")
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    rows = {s["spec"]: s for s in report["schemes"]}
    assert list(rows) == ["float32/float32", "float32/int8", "int4/float32", "int4/int8"]
    assert list(report["models"]) == ["float32", "int4"]
    assert report["reference"]["model_precision"] == "float32"

    # the float pipeline against itself: every top-k kept, relevance unchanged to the last digit
    ref = rows["float32/float32"]
    assert ref["recall"][f"recall@{K}"] == {"mean": 1.0, "ci95": [1.0, 1.0]}
    for metric in ("mrr", "ndcg", "precision", "recall", "f1"):
        assert ref["relevance"][metric]["delta_vs_float"] == 0.0
        assert ref["relevance"][metric]["value"] == report["reference"]["relevance"][metric]

    # the int4 model's exact search against the float model's top-k, computed here from the encoders directly
    f32, i4 = SentenceEncoder.load(folder), SentenceEncoder.load(folder, precision="int4")
    want = _top(f32.encode(docs), f32.encode(queries), K)
    got = _top(i4.encode(docs), i4.encode(queries), K)
    overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(want, got)])
    quant = rows["int4/float32"]
    assert 0.3 < overlap < 1.0  # the 4-bit model moves some of the top-k: the check below can tell
    assert quant["recall"][f"recall@{K}"]["mean"] == pytest.approx(overlap)
    lo, hi = quant["recall"][f"recall@{K}"]["ci95"]
    assert lo <= overlap <= hi and lo < hi

    # model axis: sizes, bits, speed and fidelity are the models' own
    f32_info, i4_info = report["models"]["float32"], report["models"]["int4"]
    assert f32_info["model_bytes"] == f32.nbytes and i4_info["model_bytes"] == i4.nbytes < f32.nbytes
    assert f32_info["bits_per_weight"] > 32 and 4 < i4_info["bits_per_weight"] < 9
    assert f32_info["cosine_to_reference"]["min"] == pytest.approx(1.0, abs=1e-6)
    assert 0.9 < i4_info["cosine_to_reference"]["min"] < 0.9999
    assert all(m["sentences_per_s"] > 0 and np.isfinite(m["sentences_per_s"]) for m in report["models"].values())
    assert quant["pipeline_bytes"] == i4.nbytes + quant["index_bytes"]
    assert quant["model_precision"] == "int4" and quant["index_spec"] == "float32"

    # the recommendation only picks pipelines none of whose relevance metrics is significantly worse
    rec = report["recommendation"]
    ok = [s for s in report["schemes"]
          if all(v["delta_ci95"][1] >= 0 for v in s["relevance"].values())]
    assert rec["smallest"] == min(ok, key=lambda s: s["pipeline_bytes"])["spec"]
    assert rec["smallest"].startswith("int4/")

    md = (out / "report.md").read_text()
    assert "## Model precisions" in md and "| int4 |" in md and "`int4/int8`" in md
    assert "model MB" in text and "int4/int8" in text and "float32 model's embeddings" in text


def test_eval_model_file_and_cv(tmp_path, capsys, corpus):
    root, folder, docs, queries = corpus
    mqm = tmp_path / "model.mqm"
    assert cli.main(["quantize", str(folder), "--precision", "int8", "--out", str(mqm)]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    status, _, err = _run(capsys, "--model", mqm, "--docs-text", root / "docs.jsonl", "--queries-text",
                          root / "queries.txt", "--schemes", "float32", "--k", K, "--out", out, "--quiet",
                          "--cv", 2, "--recall-target", "0.9")
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert list(report["models"]) == ["int8"] and report["meta"]["model"]["reference_precision"] == "int8"
    assert [s["spec"] for s in report["schemes"]] == ["int8/float32"]
    assert report["schemes"][0]["recall"][f"recall@{K}"]["mean"] == 1.0  # its own reference
    assert "relevance" not in report["reference"]  # no qrels: the recall rule recommends
    assert report["recommendation"]["smallest"] == "int8/float32"
    assert list(report["robustness"]["cv"]["schemes"]) == ["int8/float32"]


def test_eval_model_calibrates_once_for_every_precision(tmp_path, capsys, corpus):
    root, folder, docs, queries = corpus
    calib = docs[::3]
    (tmp_path / "calib.txt").write_text("\n".join(calib) + "\n")
    out = tmp_path / "report"
    status, _, err = _run(capsys, "--model", folder, "--precisions", "int8,int4", "--docs-text", root / "docs.jsonl",
                          "--queries-text", root / "queries.txt", "--schemes", "float32", "--k", K, "--out", out,
                          "--quiet", "--calib", tmp_path / "calib.txt")
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["model"]["calibration_texts"] == len(calib)
    assert "calibration on 14 texts" in (out / "report.md").read_text()
    f32 = SentenceEncoder.load(folder)
    ref = np.concatenate([f32.encode(docs), f32.encode(queries)]).astype(np.float64)

    def mean_cosine(enc):
        got = np.concatenate([enc.encode(docs), enc.encode(queries)]).astype(np.float64)
        return float(np.mean(np.einsum("nd,nd->n", ref, got) / np.linalg.norm(got, axis=1)
                             / np.linalg.norm(ref, axis=1)))

    for precision in ("int8", "int4"):  # the report's models are the calibrated ones, not round-to-nearest
        calibrated = mean_cosine(SentenceEncoder.load(folder, precision=precision, calib=calib))
        plain = mean_cosine(SentenceEncoder.load(folder, precision=precision))
        got = report["models"][precision]["cosine_to_reference"]["mean"]
        assert got == pytest.approx(calibrated, abs=1e-9) and abs(got - plain) > 1e-7, precision


def test_eval_model_on_the_bundled_sample(tmp_path, capsys, corpus):
    _, folder, _, _ = corpus
    full = load_sample_texts()
    out = tmp_path / "report"
    status, _, err = _run(capsys, "--model", folder, "--precisions", "int8", "--schemes", "int8", "--max-queries",
                          8, "--max-docs", 60, "--out", out, "--quiet")
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["dataset"] == "medquad_sample"
    assert report["reference"]["n_docs"] == 60 and report["reference"]["n_queries"] == 8
    assert report["reference"]["n_judged_queries"] == 8
    assert [s["spec"] for s in report["schemes"]] == ["float32/int8", "int8/int8"]
    # the kept docs hold every doc judged relevant to the kept queries, under their new rows
    kept = load_sample_texts()
    kept.first_queries(8)
    kept.keep_docs(60)
    assert len(kept.doc_texts) == 60 and kept.query_texts == full.query_texts[:8]
    for q in range(8):
        assert [kept.doc_texts[d] for d in kept.data.qrels[q]] == [full.doc_texts[d] for d in full.data.qrels[q]]
        assert [kept.data.doc_ids[d] for d in kept.data.qrels[q]] == [full.data.doc_ids[d]
                                                                     for d in full.data.qrels[q]]


def test_evaluate_reference_vectors():
    rng = np.random.default_rng(3)
    ref_docs, ref_queries = rng.standard_normal((50, 8), dtype=np.float32), rng.standard_normal((6, 8),
                                                                                                 dtype=np.float32)
    docs, queries = ref_docs + 0.4 * rng.standard_normal((50, 8), dtype=np.float32), ref_queries
    result = evaluate(Dataset("t", docs, queries), ["float32"], k=K, reference_vectors=(ref_docs, ref_queries))
    want, got = _top(ref_docs, ref_queries, K), _top(docs, queries, K)
    overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(want, got)])
    assert overlap < 1.0
    assert result.schemes[0]["recall"][f"recall@{K}"]["mean"] == pytest.approx(overlap)
    with pytest.raises(ValueError, match="reference_vectors: docs must have shape"):
        evaluate(Dataset("t", docs, queries), ["float32"], k=K, reference_vectors=(ref_docs[:49], ref_queries))


def test_eval_model_bad_input(tmp_path, capsys, corpus):
    root, folder, _, _ = corpus
    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "qrels3.json").write_text(json.dumps([[0]] * 3))
    mqm = tmp_path / "model.mqm"
    assert cli.main(["quantize", str(folder), "--precision", "int8", "--out", str(mqm)]) == 0
    capsys.readouterr()
    texts = ["--docs-text", root / "docs.jsonl", "--queries-text", root / "queries.txt"]
    cases = [
        (["--model", tmp_path / "nope", *texts], "does not exist"),
        (["--model", folder, "--precisions", "float32,int5", *texts], "--precisions: unknown model precision 'int5'"),
        (["--model", folder, "--docs-text", tmp_path / "empty.jsonl", "--queries-text", root / "queries.txt"],
         "holds no texts"),
        (["--model", folder, *texts, "--qrels", tmp_path / "qrels3.json"], "has 3 entries but there are 12 queries"),
        (["--model", folder, "--docs-text", root / "docs.jsonl"], "--docs-text and --queries-text go together"),
        (["--precisions", "int8"], "--precisions goes with --model"),
        (["--calib", root / "queries.txt"], "--calib goes with --model"),
        (["--model", mqm, "--calib", root / "queries.txt", *texts], "quantized already"),
        (["--model", folder, "--calib", tmp_path / "empty.jsonl", *texts], "--calib"),
        (["--model", folder, "--data", root], "not --data, --docs or --queries"),
        (["--model", mqm, "--precisions", "int4", *texts], "holds a int8 model (no float weights)"),
        (["--model", folder, *texts, "--shift", "ward"], "--shift 'ward': no document has this field"),
        (["--model", folder, "--docs-text", root / "queries.txt", "--queries-text", root / "queries.txt",
          "--shift", "half"], "--shift needs document fields"),
    ]
    for argv, message in cases:
        out = tmp_path / "out"
        status, _, err = _run(capsys, *argv, "--out", out, "--quiet")
        assert status == 2, (argv, err)
        assert err.startswith("medqk: error:") and message in err and err.count("\n") == 1, (argv, err)
        assert not out.exists()  # nothing half-written


def _row(spec, model_bytes, index_bytes, mrr_ci, recall_lo, speed):
    relevance = {m: {"value": 0.5, "delta_vs_float": sum(mrr_ci) / 2 if m == "mrr" else 0.0,
                     "delta_ci95": list(mrr_ci) if m == "mrr" else [0.0, 0.0]}
                 for m in ("mrr", "ndcg", "precision", "recall", "f1")}
    return {"spec": spec, "model_bytes": model_bytes, "index_bytes": index_bytes,
            "pipeline_bytes": model_bytes + index_bytes, "sentences_per_s": speed, "qps": 100.0,
            "recall": {f"recall@{K}": {"mean": recall_lo + 0.01, "ci95": [recall_lo, recall_lo + 0.02]}},
            "relevance": relevance}


def test_pipeline_recommendation_rule():
    from medqk.eval.model import _recommend_pipeline

    rows = [_row("float32/float32", 90e6, 7e6, (0.0, 0.0), 1.0, 10.0),
            _row("int8/int8", 23e6, 2e6, (-0.02, 0.01), 0.96, 30.0),      # worse, not significantly: kept
            _row("int4/pq48x8", 12e6, 0.2e6, (-0.05, -0.01), 0.90, 40.0)]  # significantly worse: out
    rec = _recommend_pipeline(rows, K, 0.95, True, "float32")
    assert (rec["smallest"], rec["fastest"]) == ("int8/int8", "int8/int8")
    assert "float32 pipeline" in rec["statement"] and rec["recall_target"] is None
    # without qrels: the recall rule, against the target
    rec = _recommend_pipeline(rows, K, 0.95, False, "float32")
    assert rec["smallest"] == "int8/int8" and rec["recall_target"] == 0.95
    rec = _recommend_pipeline(rows, K, 0.999, False, "float32")
    assert rec["smallest"] == "float32/float32"
    rec = _recommend_pipeline(rows[2:], K, 0.95, True, "float32")
    assert rec["smallest"] is None and rec["statement"].startswith("no model precision")
