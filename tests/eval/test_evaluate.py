"""evaluate() and `medqk eval`: the report's schema, the recommendation, data loading and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medqk.index as mi
from medqk import cli
from medqk.eval import Dataset, evaluate, load_sample, runner
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
    data = small()
    res = evaluate(data, ["float32", "int8", "int8+rerank:float32"], k=10, cv=2, shift="group")
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
    # sizes at d = 32, 400 docs: the codes (4, 1, 4 + 1 bytes per dimension) and, in index_bytes, every stored
    # array: float32 vectors + a float32 norm per vector; int8 codes + a float32 |x_hat|^2 per vector + the
    # per-dimension float32 scale and offset
    rerank = res.scheme("int8+rerank:float32")
    assert [s["bytes_per_vector"] for s in (f32, i8, rerank)] == [128, 32, 160]
    f32_bytes, i8_bytes = 400 * (32 * 4 + 4), 400 * (32 + 4) + 2 * 32 * 4
    assert [s["index_bytes"] for s in (f32, i8, rerank)] == [f32_bytes, i8_bytes, f32_bytes + i8_bytes]
    # reconstruction error of the stored int8 codes (training is deterministic: the same index again)
    i8_vectors = mi.create("int8", 32).train(data.docs).add(data.docs).vectors().astype(np.float64)
    assert i8["recon_mse"] == pytest.approx(np.mean((i8_vectors - data.docs) ** 2), rel=1e-12)
    # QPS and latencies: test_speed_is_measured_by_the_clock
    assert res.reference["n_judged_queries"] == 39
    assert set(d["robustness"]) == {"cv", "shift"}
    assert len(d["robustness"]["cv"]["schemes"]["int8"]["recall@10"]) == 2
    assert set(d["robustness"]["shift"]["groups"]["int8"]["per_group"]) == {"a", "b"}


def test_recommendation_picks_smallest_and_fastest():
    res = evaluate(small(1), ["float32", "int8"], recall_target=0.5)
    assert [s["recall"]["recall@10"]["ci95"][0] >= 0.5 for s in res.schemes] == [True, True]
    assert res.recommendation["smallest"] == "int8"
    # whichever ran faster on this machine: the reported fastest is the one with the highest reported QPS
    # (test_speed_is_measured_by_the_clock fixes the speeds)
    assert res.recommendation["fastest"] == max(res.schemes, key=lambda s: s["qps"])["spec"]
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
    # matplotlib is a dependency: the plot is always drawn (test_report covers a machine without it)
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](pareto.png)" in (out / "report.md").read_text()
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
    import h5py  # the [test] extra
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


# -- recall from exact scores, speed from the clock: evaluate() over indexes whose answers are fixed ---------

class ScriptedIndex:
    """An index whose answers are given: per query, the ids it returns best first and the approximate scores
    it reports for them (as a quantized index would), then the other ids, in id order, with lower scores."""

    bytes_per_vector = 1.0
    nbytes = 6

    def __init__(self, queries: np.ndarray, ids: list[list[int]], scores: list[list[float]], n: int):
        self.queries = queries
        self.rows = []
        for row_ids, row_scores in zip(ids, scores):
            rest = [i for i in range(n) if i not in row_ids]
            lower = [min(row_scores) - 1 - j for j in range(len(rest))]
            self.rows.append((row_ids + rest, row_scores + lower))

    def search(self, q, k, *, threads=None):
        found = [next(i for i, row in enumerate(self.queries) if np.array_equal(row, v)) for v in q]
        return (np.array([self.rows[i][1][:k] for i in found], np.float32),
                np.array([self.rows[i][0][:k] for i in found], np.int64))


def test_recall_comes_from_the_exact_scores_of_the_returned_ids(monkeypatch):
    # exact inner products (queries x docs), no ties among the top 3 of any query:
    #   q0 = (1, 0):   4    3    2    1   -1   -2     top-3 d0 d1 d2, 3rd score 2
    #   q1 = (0, 1):   1   -1    2   -2    3    4     top-3 d5 d4 d2, 3rd score 2
    #   q2 = (1, .5):  4.5  2.5  3    0    0.5  0     top-3 d0 d2 d1, 3rd score 2.5
    docs = np.array([[4, 1], [3, -1], [2, 2], [1, -2], [-1, 3], [-2, 4]], np.float32)
    queries = np.array([[1, 0], [0, 1], [1, 0.5]], np.float32)
    qrels = [[1], [4, 3], []]
    scripted = ScriptedIndex(
        queries,
        ids=[[0, 1, 2],  # the true top-3, reported with scores far below the true ones
             [5, 4, 3],  # d3 (exact -2) instead of d2, with flattering scores
             [2, 1, 3]],  # d0 (the best) missed, d3 (exact 0) returned
        scores=[[0.5, 0.4, 0.3], [9.0, 8.0, 7.0], [3.0, 2.9, 2.8]],
        n=6,
    )
    monkeypatch.setattr(runner, "_build", lambda spec, docs, train_docs=None, metric="ip": (scripted, 0, 0))
    res = evaluate(Dataset("handmade", docs, queries, qrels), ["int8"], k=3, metric="ip")
    row = res.scheme("int8")
    exact = pytest.approx  # a few float64 sums of small integers and thirds
    # recall@1: q0 d0 (4 = best), q1 d5 (4 = best), q2 d2 (3 < 4.5)            -> 1, 1, 0
    # recall@3: q0 all three; q1 d5 d4 (d3: -2 < 2); q2 d2 d1 (d3: 0 < 2.5)     -> 1, 2/3, 2/3
    # (from the reported scores it would be 0, 1, 0 and 0, 1, 1)
    assert list(row["recall"]) == ["recall@1", "recall@3"]  # 10 and 100 exceed the 6 docs
    assert row["recall"]["recall@1"]["mean"] == exact(2 / 3, rel=1e-12)
    assert row["recall"]["recall@3"]["mean"] == exact(7 / 9, rel=1e-12)
    assert row["recall"]["recall@3"]["ci95"][0] == exact(2 / 3, rel=1e-12)  # 30% of resamples: q1, q2 only
    assert row["threshold_recall"] == exact(7 / 9, rel=1e-12)  # no returned score within 1e-3 of a k-th
    assert row["full_topk_kept"] == exact(1 / 3, rel=1e-12)  # q0 only
    # relevance over the judged queries q0, q1 (q2 has none); exact float search returns d0 d1 d2, d5 d4 d2:
    #   MRR        index 1/2, 1/2      float 1/2, 1/2      delta 0
    #   precision  index 1/3, 2/3      float 1/3, 1/3      delta 1/6, per query 0 and 1/3
    #   recall     index 1, 1          float 1, 1/2        delta 1/4, per query 0 and 1/2
    # with two queries each resample mean is an extreme with probability 1/4 >> 2.5%: the CI is the extremes
    assert res.reference["n_judged_queries"] == 2
    assert res.reference["relevance"]["precision"] == exact(1 / 3, rel=1e-12)
    rel = row["relevance"]
    assert (rel["mrr"]["value"], rel["mrr"]["delta_vs_float"]) == (0.5, 0.0)
    assert rel["mrr"]["delta_ci95"] == [0.0, 0.0]
    assert rel["precision"]["value"] == exact(1 / 2, rel=1e-12)
    assert rel["precision"]["delta_vs_float"] == exact(1 / 6, rel=1e-12)
    assert rel["precision"]["delta_ci95"] == [0.0, exact(1 / 3, rel=1e-12)]
    assert (rel["recall"]["value"], rel["recall"]["delta_vs_float"]) == (1.0, 0.25)
    assert rel["recall"]["delta_ci95"] == [0.0, 0.5]
    assert (row["bytes_per_vector"], row["index_bytes"], row["recon_mse"]) == (1.0, 6, None)


class FakeClock:
    """Stands in for the runner's ``time`` module: ``perf_counter`` moves only when a TimedIndex searches.
    Every duration is a multiple of 2^-12 s, so every clock reading and difference is exact in float64."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class TimedIndex:
    """A real index whose searches take a given time on a FakeClock: ``batch_s`` per multi-query search,
    ``single_s[i]`` for the i-th single-query search."""

    def __init__(self, index, clock: FakeClock, batch_s: float, single_s: list[float]):
        self.index, self.clock, self.batch_s, self.single_s = index, clock, batch_s, single_s
        self.singles = 0

    def __getattr__(self, name):  # sizes, vectors(): the real index's
        return getattr(self.index, name)

    def search(self, q, k, *, threads=None):
        if q.shape[0] == 1:
            self.clock.now += self.single_s[self.singles]
            self.singles += 1
        else:
            self.clock.now += self.batch_s
        return self.index.search(q, k, threads=threads)


def test_speed_is_measured_by_the_clock(monkeypatch):
    data = small(1)
    nq = data.queries.shape[0]
    tick = 2.0**-12
    # int8 answers each query in (1..40) ticks in a shuffled order, float32 in twice that; a 40-query batch
    # takes float32 1/64 s and int8 1/16 s: float32 is the fastest by QPS, int8 the smallest
    int8_single = [float(t) * tick for t in np.random.default_rng(5).permutation(np.arange(1, nq + 1))]
    timing = {"float32": (2.0**-6, [2 * t for t in int8_single]), "int8": (2.0**-4, int8_single)}
    clock, build = FakeClock(), runner._build

    def timed_build(spec, docs, *args, **kwargs):
        index, t_train, t_add = build(spec, docs, *args, **kwargs)
        return TimedIndex(index, clock, *timing[spec]), t_train, t_add

    monkeypatch.setattr(runner, "time", clock)
    monkeypatch.setattr(runner, "_build", timed_build)
    res = evaluate(data, ["float32", "int8"], recall_target=0.5)
    assert runner.LATENCY_QUERIES >= nq  # every query is timed alone
    for spec, (batch_s, single_s) in timing.items():
        row = res.scheme(spec)
        assert row["qps"] == nq / batch_s
        assert row["latency_ms"] == {"p50": np.percentile(single_s, 50) * 1e3,
                                     "p99": np.percentile(single_s, 99) * 1e3}
    assert [res.scheme(s)["qps"] for s in ("float32", "int8")] == [2560.0, 640.0]
    # by hand for int8: the median of 1..40 ticks is 20.5 ticks, the 99th percentile 39 + 0.61 ticks
    assert res.scheme("int8")["latency_ms"]["p50"] == 20.5 * tick * 1e3
    assert res.scheme("int8")["latency_ms"]["p99"] == pytest.approx(39.61 * tick * 1e3, rel=1e-12)
    assert (res.recommendation["smallest"], res.recommendation["fastest"]) == ("int8", "float32")
    assert "fastest: float32 (2560 QPS)" in res.recommendation["statement"]
