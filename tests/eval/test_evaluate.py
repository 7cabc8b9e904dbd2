"""evaluate() and `medqk eval`: the report's schema, the recommendation, data loading and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medqk import cli
from medqk.eval import Dataset, evaluate, load_sample
from medqk.eval.data import DataError, load_files, read_qrels
from medqk.eval.report import pareto_front


def small(seed=0, n=400, nq=40, d=32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, nq)] + 0.1 * rng.standard_normal((nq, d)).astype(np.float32)
    qrels = [[int(i)] for i in np.argmax(q @ x.T, axis=1)]
    qrels[0] = []  # a query with no judgements
    fields = [{"group": "a" if i % 2 else "b"} for i in range(n)]
    return Dataset("small", x, q, qrels, fields)


def test_report_schema_and_values():
    res = evaluate(small(), ["float32", "int8", "int8+rerank:float32"], k=10, cv=2, shift="group")
    d = res.to_dict()
    assert set(d) == {"meta", "reference", "schemes", "skipped", "recommendation", "robustness"}
    for key in ("dataset", "versions", "cpu", "backend", "isa", "threads", "seed", "bootstrap_resamples", "metric",
                "partial", "warnings"):
        assert key in d["meta"]
    assert d["meta"]["metric"] == d["reference"]["metric"] == "ip" and d["meta"]["partial"] is False
    assert d["skipped"] == [] and d["meta"]["warnings"] == []
    json.dumps(d)
    f32 = res.scheme("float32")
    assert f32["recall"]["recall@10"]["mean"] == 1.0 and f32["recall"]["recall@100"]["mean"] == 1.0
    assert f32["relevance"]["mrr"]["delta_vs_float"] == 0.0 and f32["recon_mse"] == 0.0
    i8 = res.scheme("int8")
    assert 0.9 < i8["recall"]["recall@10"]["mean"] <= 1.0
    lo, hi = i8["recall"]["recall@10"]["ci95"]
    assert lo <= i8["recall"]["recall@10"]["mean"] <= hi
    assert i8["bytes_per_vector"] == 32 and f32["bytes_per_vector"] == 128
    assert i8["recon_mse"] > 0 and i8["qps"] > 0 and i8["latency_ms"]["p99"] >= i8["latency_ms"]["p50"]
    assert res.reference["n_judged_queries"] == 39
    assert set(d["robustness"]) == {"cv", "shift"}
    assert len(d["robustness"]["cv"]["schemes"]["int8"]["recall@10"]) == 2
    assert set(d["robustness"]["shift"]["groups"]["int8"]["per_group"]) == {"a", "b"}


def test_recommendation_picks_smallest_and_fastest():
    res = evaluate(small(1), ["float32", "int8"], recall_target=0.5)
    assert res.recommendation["smallest"] == "int8"
    assert res.recommendation["fastest"] in ("float32", "int8")
    none = evaluate(small(1), ["int8"], recall_target=1.0)
    assert none.recommendation["smallest"] is None and "no scheme reaches" in none.recommendation["statement"]


def test_pareto_front():
    pts = [(1536, 1.0), (768, 1.0), (384, 0.99), (400, 0.98), (192, 0.9)]
    assert sorted(pareto_front(pts, minimize_x=True)) == [1, 2, 4]


def test_bad_arguments():
    data = small()
    with pytest.raises(ValueError, match="unknown index spec 'int3'; valid specs"):
        evaluate(data, ["int3"])
    with pytest.raises(ValueError, match="k=1000 is larger than the 400 documents"):
        evaluate(data, ["float32"], k=1000)
    with pytest.raises(ValueError, match="no group has enough"):
        evaluate(Dataset("t", data.docs, data.queries, None, [{"g": i} for i in range(400)]), ["int8"], shift="g")
    with pytest.raises(ValueError, match="needs document fields"):
        evaluate(Dataset("t", data.docs, data.queries), ["int8"], shift="g")


def test_sample_ships_with_the_package():
    ds = load_sample()
    assert ds.docs.shape == (5000, 384) and ds.queries.shape == (500, 384) and len(ds.qrels) == 500
    assert ds.docs.dtype == np.float32
    from medqk.data import sample_path

    assert "CC BY 4.0" in (sample_path() / "README.md").read_text()


def test_file_formats(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    # fvecs: int32 dim then float32 values, per vector
    rows = np.concatenate([np.full((20, 1), 8, np.int32).view(np.float32), x], axis=1)
    rows.tofile(tmp_path / "docs.fvecs")
    np.save(tmp_path / "q.npy", x[:3].astype(np.float64))
    (tmp_path / "qrels.txt").write_text("0 0 0 1\n1 Q0 1 1\n2 0 5 0\n")
    ds = load_files(tmp_path / "docs.fvecs", tmp_path / "q.npy", tmp_path / "qrels.txt")
    np.testing.assert_array_equal(ds.docs, x)
    assert ds.qrels == [[0], [1], []]
    (tmp_path / "bad.fvecs").write_bytes(rows.tobytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        load_files(tmp_path / "bad.fvecs", tmp_path / "q.npy")
    np.save(tmp_path / "q7.npy", x[:3, :7])
    with pytest.raises(DataError, match="docs have dimension 8 but queries have dimension 7"):
        load_files(tmp_path / "docs.fvecs", tmp_path / "q7.npy")
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_qrels(tmp_path / "empty.json", 3, 20)
    (tmp_path / "past.json").write_text("[[0], [25], []]")
    with pytest.raises(DataError, match="points to document 25, past the 20 docs"):
        read_qrels(tmp_path / "past.json", 3, 20)
    (tmp_path / "short.json").write_text("[[0]]")
    with pytest.raises(DataError, match="has 1 entries but there are 3 queries"):
        read_qrels(tmp_path / "short.json", 3, 20)


def test_cli_eval_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    code = cli.main(["eval", "--schemes", "float32,int8", "--max-queries", "60", "--out", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Recommendation:" in text and "int8" in text
    report = json.loads((out / "report.json").read_text())
    assert [s["spec"] for s in report["schemes"]] == ["float32", "int8"]
    assert report["meta"]["dataset"] == "medquad_sample"
    assert "# medqk quantization report" in (out / "report.md").read_text()
    try:
        import matplotlib  # noqa: F401

        assert (out / "pareto.png").stat().st_size > 1000
    except ImportError:
        pass
    assert not [p for p in out.iterdir() if p.name.startswith(".medqk-")]  # no temporary files left


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--schemes", "int3"], "unknown index spec 'int3'; valid specs: float32"),
        (["--docs", "/nonexistent/d.npy", "--queries", "/nonexistent/q.npy"], "does not exist"),
        (["--docs", "x.npy"], "--docs and --queries go together"),
        (["--data", "/nonexistent"], "is not a folder"),
    ],
)
def test_cli_eval_errors(tmp_path, capsys, argv, message):
    code = cli.main(["eval", "--out", str(tmp_path / "o"), "--quiet"] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "report.json").exists()


def test_cli_eval_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = cli.main(["eval", "--out", str(blocker / "sub"), "--quiet", "--schemes", "float32"])
    assert code == 2
    assert "is not a writable folder" in capsys.readouterr().err


def test_ann_benchmarks_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    q = rng.standard_normal((4, 6)).astype(np.float32)
    with h5py.File(tmp_path / "set.hdf5", "w") as f:
        f["train"] = x
        f["test"] = q
    ds = load_files(tmp_path / "set.hdf5", tmp_path / "set.hdf5")
    np.testing.assert_array_equal(ds.docs, x)
    np.testing.assert_array_equal(ds.queries, q)
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f["other"] = x
    with pytest.raises(DataError, match="has no 'train' dataset"):
        load_files(tmp_path / "bad.hdf5", tmp_path / "set.hdf5")
