"""evaluate() on the user's own data: default schemes that fit the dimension, skipped schemes with their
reason, the metric (ip / l2 / cos, the file's neighbours as a check), Ctrl-C and the recorded versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from medqk import cli
from medqk.eval import Dataset, default_schemes, evaluate, runner
from medqk.index.spec import parse_ivf, parse_pq

PYTHON_DIR = Path(runner.__file__).resolve().parents[2]


def gaussian(n=1500, nq=30, d=256, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset("gauss", rng.standard_normal((n, d)).astype(np.float32),
                   rng.standard_normal((nq, d)).astype(np.float32))


def top10(scores: np.ndarray) -> np.ndarray:
    """Best-first top-10 rows of a higher-is-better float64 score matrix (ties: lower row)."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    return order[:, :10]


# -- default schemes ---------------------------------------------------------------------------------------------

def test_default_schemes_without_arguments_is_the_medquad_list():
    expected = list(runner.DEFAULT_SCHEMES)  # hnswlib is a dependency: hnsw is among them
    assert default_schemes() == expected == default_schemes(384) == default_schemes(384, 5000)


def test_default_schemes_leave_hnsw_out_without_hnswlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "hnswlib", None)  # `import hnswlib` raises ImportError, as when absent
    assert default_schemes() == [s for s in runner.DEFAULT_SCHEMES if s != "hnsw"]
    with pytest.raises(ValueError, match=r"scheme 'hnsw' needs hnswlib \(pip install hnswlib\)"):
        evaluate(gaussian(n=50, nq=2, d=8), ["hnsw"])


@pytest.mark.parametrize("dim", [64, 100, 128, 256, 384, 512, 768, 1024, 1536, 3072, 4096])
def test_default_pq_fits_the_dimension_at_one_bit_per_dimension(dim):
    specs = default_schemes(dim, 20_000)
    pqs = [parse_pq(s.split("+")[0]) for s in specs if s.startswith("pq")]
    assert {nbits for _, nbits, _ in pqs} == {4, 8}, specs
    for m, nbits, _ in pqs:
        assert dim % m == 0
        dims_per_subspace = 4 if nbits == 4 else 8  # pq96x4fs and pq48x8 at 384-d: 1 bit per dimension
        target = dim / dims_per_subspace
        if nbits == 8 and target > runner.PQ8_MAX_M:  # the uint16 tables of pq<M>x8 hold at most 256 subspaces
            assert m == max(mm for mm in range(1, runner.PQ8_MAX_M + 1) if dim % mm == 0)
        elif target == int(target):
            assert m == target
        else:  # d = 100, 8-bit: no M = 12.5; the divisor nearest by ratio is 10
            assert max(m / target, target / m) <= runner.PQ_MAX_RATIO
    assert not any(s.startswith("ivf") for s in specs)  # 20,000 documents: a flat scan is fast enough


def test_default_pq_rule_at_awkward_dimensions():
    assert [s for s in default_schemes(100) if "pq" in s] == ["pq25x4fs", "pq10x8", "pq25x4fs+rerank:int8"]
    assert [s for s in default_schemes(4096) if "x8" in s] == ["pq256x8"]  # M <= 256
    # a prime d has no divisor near the budget: no PQ default, and evaluate says why
    assert not [s for s in default_schemes(97) if "pq" in s]
    _, left_out = runner._default_plan(97, 500)
    assert {e["spec"] for e in left_out} == {"pq96x4fs", "pq48x8", "pq96x4fs+rerank:int8"}
    assert all("no divisor M of d=97" in e["reason"] for e in left_out)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        default_schemes(0)


def test_default_ivf_only_for_large_collections():
    assert not any(s.startswith("ivf") for s in default_schemes(384, runner.IVF_MIN_DOCS - 1))
    for n in (runner.IVF_MIN_DOCS, 1_000_000):
        ivf = [s for s in default_schemes(384, n) if s.startswith("ivf")]
        assert len(ivf) == 1
        nlist, codec = parse_ivf(ivf[0].split("+")[0])
        assert codec == "pq96x4fs" and nlist & (nlist - 1) == 0
        assert n >= runner.MIN_TRAIN_PER_CENTROID * nlist
    assert runner.ivf_nlist(1_000_000) == 4096  # 4 sqrt(n) = 4000


def test_evaluate_defaults_adapt_to_the_dimension(monkeypatch):
    # the 384-d PQ entries of the default list, at d = 256 (where pq96x4fs raised and ended the run)
    monkeypatch.setattr(runner, "DEFAULT_SCHEMES", ("int8", "pq96x4fs", "pq48x8", "hnsw"))
    res = evaluate(gaussian())
    specs = [s["spec"] for s in res.schemes]
    assert specs[:3] == ["int8", "pq64x4fs", "pq32x8"] and res.skipped == []
    assert res.scheme("pq64x4fs")["bytes_per_vector"] == res.scheme("pq32x8")["bytes_per_vector"] == 32


def test_a_rerank_scheme_reuses_the_codes_trained_for_its_base(monkeypatch):
    data = gaussian(n=600, nq=20, d=32)
    alone = evaluate(data, ["cb2+rerank:int8"]).scheme("cb2+rerank:int8")
    build, built = runner._build, []
    monkeypatch.setattr(runner, "_build", lambda spec, *a, **kw: built.append(spec) or build(spec, *a, **kw))
    res = evaluate(data, ["cb2", "int8", "cb2+rerank:int8", "float32"])
    assert built == ["cb2", "int8", "float32"]  # each part trained once
    shared = res.scheme("cb2+rerank:int8")
    assert shared["recall"] == alone["recall"] and shared["index_bytes"] == alone["index_bytes"]
    assert shared["train_s"] >= res.scheme("cb2")["train_s"]  # the cost of building it, reused parts included


# -- skipped schemes ---------------------------------------------------------------------------------------------

def test_a_scheme_that_fails_on_the_data_is_skipped_with_its_reason():
    res = evaluate(gaussian(), ["float32", "pq96x4fs", "int8"])
    assert [s["spec"] for s in res.schemes] == ["float32", "int8"]
    assert res.skipped == [{"spec": "pq96x4fs", "reason": "M=96 does not divide the dimension 256: use an M that "
                                                          "divides 256"}]
    assert res.to_dict()["skipped"] == res.skipped
    json.dumps(res.to_dict())
    with pytest.raises(ValueError, match="PQ nbits must be 4 or 8"):  # unparseable: an error before any work
        evaluate(gaussian(), ["float32", "pq96x5"])


def test_cli_reports_skipped_schemes(tmp_path, capsys):
    data = gaussian(n=600, nq=20, d=256)
    np.save(tmp_path / "d.npy", data.docs)
    np.save(tmp_path / "q.npy", data.queries)
    out = tmp_path / "out"
    code = cli.main(["eval", "--docs", str(tmp_path / "d.npy"), "--queries", str(tmp_path / "q.npy"),
                     "--schemes", "pq96x4fs,int8", "--out", str(out), "--quiet"])
    assert code == 0
    out_text = capsys.readouterr().out
    assert "Skipped (1, not built for this data):" in out_text
    assert "  pq96x4fs  M=96 does not divide the dimension 256" in out_text
    report = json.loads((out / "report.json").read_text())
    assert [s["spec"] for s in report["schemes"]] == ["int8"]
    assert report["skipped"][0]["spec"] == "pq96x4fs"
    assert report["meta"]["partial"] is False


# -- metric ------------------------------------------------------------------------------------------------------

def l2_world(seed=0, n=800, nq=25, d=16):
    """Docs whose norms span 0.05-20: the inner-product top-10 (long vectors) and the L2 top-10 (near
    vectors) of queries placed next to short docs have nothing in common."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    x *= np.geomspace(0.05, 20, n)[:, None] / np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n // 4, nq)] + 0.01 * rng.standard_normal((nq, d))
    x, q = x.astype(np.float32), q.astype(np.float32)
    xd, qd = x.astype(np.float64), q.astype(np.float64)
    l2_top = top10(-((qd[:, None, :] - xd[None]) ** 2).sum(-1))
    ip_top = top10(qd @ xd.T)
    return Dataset("l2world", x, q), l2_top, ip_top


def test_l2_data_is_evaluated_against_the_l2_truth():
    data, l2_top, ip_top = l2_world()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(l2_top, ip_top)])
    assert overlap < 0.05  # the premise: inner product would measure against the wrong neighbours
    data.metric = "l2"  # what the file declares (ann-benchmarks distance = euclidean)
    data.neighbors = l2_top
    res = evaluate(data, ["float32", "fp16"])
    assert res.meta["metric"] == res.reference["metric"] == "l2"
    # the indexes search by L2 too: exact float search finds the L2 truth
    assert res.scheme("float32")["recall"]["recall@10"]["mean"] == 1.0
    assert res.scheme("fp16")["recall"]["recall@10"]["mean"] > 0.9
    check = res.reference["neighbors_check"]
    assert check["ok"] and check["agreement"] == 1.0 and check["k"] == 10
    assert res.meta["warnings"] == []

    forced = evaluate(data, ["float32"], metric="ip")  # the wrong metric: the file's neighbours disagree
    check = forced.reference["neighbors_check"]
    assert forced.meta["metric"] == "ip" and not check["ok"] and check["agreement"] < 0.05
    assert "disagree" in check["message"] and check["message"] in forced.meta["warnings"]


def test_l2_exact_scores_are_negated_float64_distances():
    data, _, _ = l2_world(n=50, nq=3)
    ids = np.array([[0, 7, -1], [3, 3, 49], [10, 11, 12]])
    got = runner._exact_scores(data.docs, data.queries, ids, "l2")
    x, q = data.docs.astype(np.float64), data.queries.astype(np.float64)
    want = -((q[:, None, :] - x[np.maximum(ids, 0)]) ** 2).sum(-1)
    assert got[0, 2] == -np.inf
    mask = ids >= 0
    # float64 sums of d squares in another order: each partial sum rounds by at most one ulp
    np.testing.assert_allclose(got[mask], want[mask], rtol=x.shape[1] * np.finfo(np.float64).eps, atol=0)


def test_cosine_normalizes_and_refuses_zero_vectors():
    data, _, _ = l2_world(seed=1)
    xd, qd = data.docs.astype(np.float64), data.queries.astype(np.float64)
    cos = (qd / np.linalg.norm(qd, axis=1, keepdims=True)) @ (xd / np.linalg.norm(xd, axis=1, keepdims=True)).T
    data.neighbors = top10(cos)
    res = evaluate(data, ["float32", "int8"], metric="cos")
    assert res.meta["metric"] == "cos"
    assert res.reference["neighbors_check"]["ok"] and res.reference["neighbors_check"]["agreement"] == 1.0
    assert res.scheme("float32")["recall"]["recall@10"]["mean"] == 1.0
    data.docs[5] = 0
    with pytest.raises(ValueError, match=r"1 of the docs are zero vectors \(first: row 5\)"):
        evaluate(data, ["float32"], metric="cos")
    with pytest.raises(ValueError, match="metric must be one of ip, l2, cos"):
        evaluate(data, ["float32"], metric="euclidean")


def test_cli_metric_flag(tmp_path, capsys):
    data, _, _ = l2_world()
    np.save(tmp_path / "d.npy", data.docs)
    np.save(tmp_path / "q.npy", data.queries)
    out = tmp_path / "out"
    code = cli.main(["eval", "--docs", str(tmp_path / "d.npy"), "--queries", str(tmp_path / "q.npy"),
                     "--metric", "l2", "--schemes", "float32", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["metric"] == "l2" and report["schemes"][0]["recall"]["recall@10"]["mean"] == 1.0


def test_cli_takes_the_metric_and_neighbors_of_an_ann_benchmarks_file(tmp_path, capsys):
    import h5py  # the [test] extra
    data, l2_top, _ = l2_world()
    with h5py.File(tmp_path / "set.hdf5", "w") as f:
        f.attrs["distance"] = "euclidean"
        f["train"], f["test"], f["neighbors"] = data.docs, data.queries, l2_top.astype(np.int32)
    out = tmp_path / "out"
    code = cli.main(["eval", "--docs", str(tmp_path / "set.hdf5"), "--queries", str(tmp_path / "set.hdf5"),
                     "--schemes", "float32", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["metric"] == "l2" and report["reference"]["neighbors_check"]["ok"]
    assert report["schemes"][0]["recall"]["recall@10"]["mean"] == 1.0


# -- warnings ----------------------------------------------------------------------------------------------------

def test_specs_that_do_not_suit_the_data_are_warned_about():
    # the indexes' own SpecDataWarnings (IVF lists, 8-bit PQ codebooks) reach the report, one per spec
    res = evaluate(gaussian(n=400, nq=10, d=32), ["ivf64,pq8x4fs", "pq4x8", "int8"])
    text = "\n".join(res.meta["warnings"])
    assert "ivf64,pq8x4fs: ivf64 trained on 400 vectors, 6.2 per list" in text
    assert "pq4x8: pq4x8 (256 centroids per subspace) trained on 400 vectors (1.6 per centroid" in text
    assert len(res.meta["warnings"]) == 2 and [s["spec"] for s in res.schemes] == ["ivf64,pq8x4fs", "pq4x8", "int8"]


def test_pca_with_fewer_vectors_than_dimensions_is_warned_about():
    res = evaluate(gaussian(n=200, nq=5, d=256), ["pca4", "int8"])
    assert res.meta["warnings"] == [("pca4: 200 training vectors in 256 dimensions: the PCA covariance has "
                                     "rank < 256, its last directions are noise")]


def test_spec_data_warnings_from_training_are_recorded(monkeypatch):
    from medqk.index import SpecDataWarning

    build = runner._build

    def noisy_build(spec, docs, *args, **kwargs):
        if spec == "int8":
            warnings.warn("int8: calibration saw a constant dimension", SpecDataWarning, stacklevel=1)
        return build(spec, docs, *args, **kwargs)

    monkeypatch.setattr(runner, "_build", noisy_build)
    res = evaluate(gaussian(n=300, nq=5, d=16), ["float32", "int8"])
    assert res.meta["warnings"] == ["int8: int8: calibration saw a constant dimension"]


# -- Ctrl-C ------------------------------------------------------------------------------------------------------

def interrupt_on_build(monkeypatch, call: int):
    build, calls = runner._build, []

    def build_until_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return build(*args, **kwargs)

    monkeypatch.setattr(runner, "_build", build_until_ctrl_c)


def test_ctrl_c_returns_the_finished_schemes_marked_partial(monkeypatch):
    interrupt_on_build(monkeypatch, 3)
    res = evaluate(gaussian(n=300, nq=10, d=16), ["float32", "int8", "fp16", "int4"])
    assert [s["spec"] for s in res.schemes] == ["float32", "int8"]
    assert res.meta["partial"] is True
    assert res.meta["partial_reason"] == "interrupted by Ctrl-C after 2 of 4 schemes (during fp16)"
    assert res.recommendation["smallest"] == "int8"


def test_cli_ctrl_c_writes_the_partial_report_and_exits_130(monkeypatch, tmp_path, capsys):
    interrupt_on_build(monkeypatch, 3)
    out = tmp_path / "out"
    code = cli.main(["eval", "--schemes", "float32,int8,fp16,int4", "--max-queries", "20", "--out", str(out),
                     "--quiet"])
    assert code == 130
    captured = capsys.readouterr()
    assert captured.err == f"medqk: interrupted: wrote the partial report of 2 of 4 schemes to {out}\n"
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["partial"] is True and [s["spec"] for s in report["schemes"]] == ["float32", "int8"]

    interrupt_on_build(monkeypatch, 1)
    code = cli.main(["eval", "--schemes", "float32,int8", "--max-queries", "20", "--out", str(tmp_path / "o2"),
                     "--quiet"])
    assert code == 130
    assert capsys.readouterr().err == "medqk: interrupted before the first scheme finished; no report written\n"
    assert not (tmp_path / "o2" / "report.json").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_sigint_in_a_real_process_prints_one_line(tmp_path):
    # the second build blocks until the signal arrives, so the test does not race the evaluation
    driver = textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from medqk import cli
        from medqk.eval import runner
        build, calls = runner._build, []
        def slow_build(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                print("BLOCKED", file=sys.stderr, flush=True)
                time.sleep(120)
            return build(*args, **kwargs)
        runner._build = slow_build
        sys.exit(cli.main(["eval", "--schemes", "float32,int8", "--max-queries", "10", "--quiet",
                           "--out", {str(tmp_path / "out")!r}]))
    """)
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with subprocess.Popen([sys.executable, "-c", driver], stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stderr.readline() == "BLOCKED\n"
            proc.send_signal(signal.SIGINT)
            err = proc.stderr.read()
            assert proc.wait(timeout=60) == 130
        finally:
            proc.kill()
    assert err == f"medqk: interrupted: wrote the partial report of 1 of 2 schemes to {tmp_path / 'out'}\n"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["partial"] is True


# -- versions ----------------------------------------------------------------------------------------------------

def test_versions_come_from_the_installed_distributions():
    versions = evaluate(gaussian(n=200, nq=3, d=8), ["float32"]).meta["versions"]
    assert "unknown" not in versions.values()
    # medqk's dependencies and h5py (the [test] extra) are installed wherever the tests run
    for dist in ("numpy", "numba", "hnswlib", "matplotlib", "tqdm", "h5py"):
        assert versions[dist] == metadata.version(dist)


def test_versions_leave_out_a_distribution_that_is_not_installed(monkeypatch):
    real = metadata.version

    def version(dist):
        if dist == "h5py":
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(metadata, "version", version)
    versions = runner._versions("1.2.3")
    assert "h5py" not in versions and versions["numpy"] == real("numpy") and versions["medqk"] == "1.2.3"
