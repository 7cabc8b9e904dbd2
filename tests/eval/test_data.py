"""Data loading for `medqk eval`: ann-benchmarks metric and neighbors, id files, every qrels format, and a
clear DataError (naming the file and the line) for every malformed input."""

import json

import numpy as np
import pytest

from medqk import cli
from medqk.eval import Dataset, load_files, load_folder, load_sample
from medqk.eval.data import DataError, attach_ids, attach_qrels, read_ids, read_qrels


def _vectors(n, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _ann_file(path, h5py, *, distance="angular", n=40, nq=5, d=6, neighbors=True, kn=10):
    x, q = _vectors(n, d, 1), _vectors(nq, d, 2)
    with h5py.File(path, "w") as f:
        f["train"] = x
        f["test"] = q
        if distance is not None:
            f.attrs["distance"] = distance
        if neighbors:
            # ann-benchmarks stores int32 rows, best first (here: the exact L2 order)
            dist = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
            f["neighbors"] = np.argsort(dist, axis=1, kind="stable")[:, :kn].astype(np.int32)
    return x, q


# ------------------------------------------------------------------------------------------ HDF5


@pytest.mark.parametrize(
    "distance,metric",
    [("angular", "cos"), ("euclidean", "l2"), ("dot", "ip"), ("ip", "ip"), ("inner product", "ip"),
     (b"euclidean", "l2"), (np.bytes_(b"angular"), "cos"), (None, None)],
)
def test_hdf5_distance_becomes_the_metric(tmp_path, distance, metric):
    import h5py  # the [test] extra
    _ann_file(tmp_path / "set.hdf5", h5py, distance=distance)
    ds = load_files(tmp_path / "set.hdf5", tmp_path / "set.hdf5")
    assert ds.metric == metric
    assert ds.source.get("metric") == metric


@pytest.mark.parametrize("distance", ["hamming", "jaccard"])
def test_hdf5_set_distances_are_refused(tmp_path, distance):
    import h5py  # the [test] extra
    _ann_file(tmp_path / "set.hdf5", h5py, distance=distance)
    with pytest.raises(DataError, match=f"declares distance '{distance}'.*angular.*euclidean.*dot"):
        load_files(tmp_path / "set.hdf5")


def test_hdf5_neighbors_and_docs_alone(tmp_path):
    import h5py  # the [test] extra
    x, q = _ann_file(tmp_path / "set.hdf5", h5py, distance="euclidean")
    ds = load_files(tmp_path / "set.hdf5")  # --docs f.hdf5 alone: queries from its test set
    np.testing.assert_array_equal(ds.docs, x)
    np.testing.assert_array_equal(ds.queries, q)
    assert ds.neighbors.dtype == np.int64 and ds.neighbors.shape == (5, 10)
    with h5py.File(tmp_path / "set.hdf5", "r") as f:
        np.testing.assert_array_equal(ds.neighbors, f["neighbors"][...])
    assert ds.source["neighbors"] == str(tmp_path / "set.hdf5")
    ds.first_queries(2)  # --max-queries keeps queries and their neighbors together
    assert ds.queries.shape == (2, 6) and ds.neighbors.shape == (2, 10)


def test_hdf5_neighbors_only_from_the_docs_own_file(tmp_path):
    import h5py  # the [test] extra
    x, _ = _ann_file(tmp_path / "a.hdf5", h5py)
    _ann_file(tmp_path / "b.hdf5", h5py)
    np.save(tmp_path / "docs.npy", x)
    # b's neighbors are rows of b's train set, which are not these docs
    assert load_files(tmp_path / "a.hdf5", tmp_path / "b.hdf5").neighbors is None
    ds = load_files(tmp_path / "docs.npy", tmp_path / "b.hdf5")
    assert ds.neighbors is None and ds.metric == "cos"
    _ann_file(tmp_path / "c.hdf5", h5py, distance="euclidean")
    with pytest.raises(DataError, match="declares metric cos but queries file .*c.hdf5' declares l2"):
        load_files(tmp_path / "a.hdf5", tmp_path / "c.hdf5")


def test_hdf5_bad_neighbors(tmp_path):
    import h5py  # the [test] extra
    x, q = _vectors(30, 4), _vectors(3, 4)
    cases = [
        (np.array([[0, 1], [2, 30], [1, 2]], np.int32), "query 1 neighbor 1 is row 30, outside the 30 rows"),
        (np.array([[0, 1], [2, -1], [1, 2]], np.int32), "query 1 neighbor 1 is row -1"),
        (np.zeros((2, 5), np.int32), "has 2 rows but 'test' has 3 queries"),
        (np.zeros((3, 5), np.float32), "has dtype float32; expected integer"),
        (np.zeros(3, np.int32), "must be 2-D"),
    ]
    for i, (nb, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.hdf5"
        with h5py.File(path, "w") as f:
            f["train"], f["test"], f["neighbors"] = x, q, nb
        with pytest.raises(DataError, match=f"bad{i}.hdf5' dataset 'neighbors'.*{message}"):
            load_files(path)


def test_hdf5_damaged_and_missing_sets(tmp_path):
    import h5py  # the [test] extra
    (tmp_path / "fake.hdf5").write_bytes(b"not an HDF5 file at all")
    with pytest.raises(DataError, match="fake.hdf5' could not be read"):
        load_files(tmp_path / "fake.hdf5")
    with h5py.File(tmp_path / "notest.hdf5", "w") as f:
        f["train"] = _vectors(10, 4)
    with pytest.raises(DataError, match="has no 'test' dataset"):
        load_files(tmp_path / "notest.hdf5")
    with h5py.File(tmp_path / "nan.hdf5", "w") as f:
        x = _vectors(10, 4)
        x[7, 2] = np.nan
        f["train"], f["test"] = x, _vectors(2, 4)
    with pytest.raises(DataError, match=r"docs file .*nan.hdf5' contains NaN or Inf \(first in row 7\)"):
        load_files(tmp_path / "nan.hdf5")
    with h5py.File(tmp_path / "dims.hdf5", "w") as f:
        f["train"], f["test"] = _vectors(10, 6), _vectors(2, 5)
    with pytest.raises(DataError, match="docs have dimension 6 but queries have dimension 5"):
        load_files(tmp_path / "dims.hdf5")


def test_queries_are_needed_without_hdf5(tmp_path):
    np.save(tmp_path / "d.npy", _vectors(10))
    with pytest.raises(DataError, match="queries are needed: pass --queries"):
        load_files(tmp_path / "d.npy")


def test_dataset_fields_are_checked():
    x, q = _vectors(10), _vectors(3)
    with pytest.raises(ValueError, match="metric must be one of ip, l2, cos"):
        Dataset("t", x, q, metric="dot")
    with pytest.raises(ValueError, match="query_ids has 2 ids but there are 3 rows"):
        Dataset("t", x, q, query_ids=["a", "b"])
    with pytest.raises(ValueError, match="neighbors must have one row per query"):
        Dataset("t", x, q, neighbors=np.zeros((2, 4), np.int64))


# ------------------------------------------------------------------------------------------ id files


def test_id_file_formats(tmp_path):
    (tmp_path / "ids.txt").write_text("doc-a\n  doc-b \r\ndoc-c\n\n")  # trailing blank lines are no rows
    assert read_ids(tmp_path / "ids.txt", 3) == ["doc-a", "doc-b", "doc-c"]
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "id": f"x{i}", "title": "t"}) for i in ("a", "b", "c")) + "\n")
    assert read_ids(tmp_path / "corpus.jsonl", 3) == ["a", "b", "c"]  # BEIR's _id first
    assert read_ids(f"{tmp_path / 'corpus.jsonl'}:id", 3) == ["xa", "xb", "xc"]
    (tmp_path / "plain.jsonl").write_text('{"id": 7}\n{"id": "8"}\n')
    assert read_ids(tmp_path / "plain.jsonl") == ["7", "8"]
    (tmp_path / "ids.json").write_text('["q1", "q2"]')
    assert read_ids(tmp_path / "ids.json", 2, role="query") == ["q1", "q2"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("e.txt", "\n \n", "--doc-ids file '.*e.txt' is empty"),
        ("gap.txt", "a\n\nb\n", "gap.txt' line 2 is empty"),
        ("dup.txt", "a\nb\nc\nb\n", "dup.txt' line 4: id 'b' is already on line 2"),
        ("count.txt", "a\nb\n", "count.txt' has 2 ids but there are 3 docs"),
        ("nofield.jsonl", '{"_id": "a"}\n{"title": "b"}\n', "nofield.jsonl' line 2 has no field '_id'"),
        ("neither.jsonl", '{"title": "a"}\n', "line 1 has neither an '_id' nor an 'id' field"),
        ("broken.jsonl", '{"id": "a"}\n{"id": \n', "broken.jsonl' line 2 is not JSON"),
        ("badid.jsonl", '{"id": "a"}\n{"id": null}\n{"id": "c"}\n', "badid.jsonl' line 2: an id must be"),
        ("dup.jsonl", '{"id": "a"}\n\n{"id": "b"}\n{"id": "a"}\n',
         "dup.jsonl' line 4: id 'a' is already on line 1"),
        ("obj.json", '{"a": 1}', "obj.json' must hold a JSON list of ids"),
    ],
)
def test_id_file_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_ids(tmp_path / name, 3)


def test_id_file_missing_and_field_on_text(tmp_path):
    with pytest.raises(DataError, match="--query-ids file '.*nope.txt' does not exist"):
        read_ids(tmp_path / "nope.txt", role="query")
    (tmp_path / "ids.txt").write_text("a\n")
    with pytest.raises(DataError, match="FILE:FIELD names a field of a .jsonl file"):
        read_ids(f"{tmp_path / 'ids.txt'}:id")


# ------------------------------------------------------------------------------------------ qrels

DOC_IDS = ["d0", "d1", "d2", "d3", "d4"]
QUERY_IDS = ["q0", "q1", "q2"]


def _qrels(tmp_path, name, text, **kw):
    (tmp_path / name).write_text(text)
    kw.setdefault("query_ids", QUERY_IDS)
    kw.setdefault("doc_ids", DOC_IDS)
    return read_qrels(tmp_path / name, 3, 5, **kw)


@pytest.mark.parametrize(
    "name,text",
    [
        ("trec.txt", "q0 0 d3 1\nq0 0 d1 2\nq2 Q0 d4 1\nq2 0 d0 0\n"),
        ("three.txt", "q0 d3 1\nq0 d1 1\nq2 d4 1\n"),
        ("beir.tsv", "query-id\tcorpus-id\tscore\nq0\td3\t1\nq0\td1\t1\nq2\td4\t1\nq2\td0\t0\n"),
        ("beir.json", json.dumps({"q0": {"d3": 1, "d1": 2}, "q2": {"d4": 1, "d0": 0}})),
        ("lists.json", json.dumps({"q0": ["d3", "d1"], "q2": ["d4"]})),
        ("positional.json", json.dumps([["d3", 1], [], [4]])),  # strings are ids, integers rows
    ],
)
def test_qrels_formats_with_string_ids(tmp_path, name, text):
    assert _qrels(tmp_path, name, text) == [[1, 3], [], [4]]


def test_numeric_ids_are_ids_once_an_id_file_is_given(tmp_path):
    # BEIR corpora often have numeric string ids ("4983") that are not row numbers
    got = _qrels(tmp_path, "q.tsv", "query-id\tcorpus-id\tscore\n1\t30\t1\n", query_ids=["7", "1", "9"],
                 doc_ids=["10", "20", "30", "40", "50"])
    assert got == [[], [2], []]


def test_integer_ids_without_id_files_are_rows(tmp_path):
    assert _qrels(tmp_path, "q.txt", "0 0 3 1\n2 4 1\n", query_ids=None, doc_ids=None) == [[3], [], [4]]
    assert _qrels(tmp_path, "q.json", '{"1": {"2": 1}}', query_ids=None, doc_ids=None) == [[], [2], []]
    # an id file for one side only: the other side's integers stay rows
    assert _qrels(tmp_path, "q2.txt", "1 0 d2 1\n", query_ids=None) == [[], [2], []]


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"query_ids": None}, "line 1: query id 'q0' is not a row number; pass --query-ids FILE"),
        ({"doc_ids": None}, "line 1: doc id 'd3' is not a row number; pass --doc-ids FILE"),
    ],
)
def test_string_ids_without_id_file_say_which_flag(tmp_path, kw, message):
    with pytest.raises(DataError, match=message):
        _qrels(tmp_path, "q.txt", "q0 0 d3 1\n", **kw)


def test_unknown_ids_are_counted_and_skipped(tmp_path):
    source = {}
    got = _qrels(tmp_path, "q.txt", "q0 0 d3 1\nq9 0 d1 1\nq2 0 d77 1\nq2 0 d4 1\n", source=source)
    assert got == [[3], [], [4]]
    assert source["qrels_unmatched"] == 2
    assert "2 of 4 judgements skipped" in source["qrels_warning"]
    assert "unknown query id (first 'q9' at line 2)" in source["qrels_warning"]
    assert "unknown doc id (first 'd77' at line 3)" in source["qrels_warning"]
    source = {}
    assert _qrels(tmp_path, "both.txt", "q9 0 d77 1\nq1 0 d2 1\n", source=source) == [[], [2], []]
    assert source["qrels_unmatched"] == 1  # one judgement, counted once though both its ids are unknown


def test_qrels_matching_no_id_is_refused(tmp_path):
    message = "none of its 2 judgements match the ids .*'x1' at line 1 is not in the --query-ids\\); is it"
    with pytest.raises(DataError, match=message):
        _qrels(tmp_path, "q.txt", "x1 0 d1 1\nx2 0 d2 1\n")


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("cols.txt", "q0 0 d1 1\nq1 d1\n", "cols.txt' line 2: expected 'qid \\[iter\\] docid rel' .*got 2"),
        ("five.txt", "q0 0 d1 1 extra\n", "five.txt' line 1: expected .*got 5"),
        ("rel.txt", "q0 0 d1 1\nq1 0 d2 yes\n", "rel.txt' line 2: relevance 'yes' is not a number"),
        ("nan.txt", "q0 0 d1 nan\n", "nan.txt' line 1: relevance must be a finite number"),
        ("late_header.tsv", "q0\td1\t1\nquery-id\tcorpus-id\tscore\n",
         "late_header.tsv' line 2: relevance 'score'"),
        ("empty_col.tsv", "q0\t\t1\n", "empty_col.tsv' line 1: expected"),
        ("conflict.txt", "q0 0 d1 1\nq1 0 d1 1\nq0 0 d1 0\n",
         "conflict.txt' line 3: query 'q0' and document 'd1' are judged 0 here but 1 at line 1"),
        ("dupkey.json", '{"q0": {"d1": 1}, "q0": {"d2": 1}}', "dupkey.json' names 'q0' twice"),
        ("badrel.json", '{"q0": {"d1": "high"}}', "badrel.json' query 'q0': relevance must be a finite"),
        ("boolrel.json", '{"q0": {"d1": true}}', "boolrel.json' query 'q0': relevance must be"),
        ("badval.json", '{"q0": 3}', "badval.json' query 'q0': expected \\{docid: rel\\}"),
        ("badjson.json", '{"q0": ', "badjson.json' is not valid JSON"),
        ("float.json", "[[1.5], [], []]", "float.json' entry 0: document rows must be integers"),
        ("past.txt", "q0 0 7 1\n", "past.txt' line 1: points to document 7, past the 5 docs"),
        ("scalar.json", "[1, 2, 3]", "must be a JSON list of lists"),
        ("header_only.tsv", "query-id\tcorpus-id\tscore\n", "header_only.tsv' holds no judgements"),
        ("nothing.json", "{}", "nothing.json' holds no judgements"),
    ],
)
def test_qrels_errors_name_file_and_line(tmp_path, name, text, message):
    doc_ids = None if name == "past.txt" else DOC_IDS
    with pytest.raises(DataError, match=message):
        _qrels(tmp_path, name, text, doc_ids=doc_ids)


def test_same_judgement_twice_is_fine(tmp_path):
    assert _qrels(tmp_path, "q.txt", "q0 0 d1 1\nq0 0 d1 1\n") == [[1], [], []]


# ------------------------------------------------------------------------------------------ datasets


def test_load_files_with_id_files(tmp_path):
    np.save(tmp_path / "d.npy", _vectors(5))
    np.save(tmp_path / "q.npy", _vectors(3))
    (tmp_path / "doc_ids.txt").write_text("\n".join(DOC_IDS) + "\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": "?"}) for i in QUERY_IDS))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td4\t1\nq1\td9\t1\n")
    ds = load_files(tmp_path / "d.npy", tmp_path / "q.npy", tmp_path / "qrels.tsv",
                    doc_ids=tmp_path / "doc_ids.txt", query_ids=tmp_path / "queries.jsonl")
    assert ds.doc_ids == DOC_IDS and ds.query_ids == QUERY_IDS
    assert ds.qrels == [[], [4], []]
    assert ds.source["qrels_unmatched"] == 1
    json.dumps(ds.source)  # goes into report.json as is
    ds.first_queries(2)
    assert ds.query_ids == ["q0", "q1"] and ds.qrels == [[], [4]]
    with pytest.raises(DataError, match="--query-ids file '.*doc_ids.txt' has 5 ids but there are 3 queries"):
        load_files(tmp_path / "d.npy", tmp_path / "q.npy", query_ids=tmp_path / "doc_ids.txt")
    with pytest.raises(DataError, match="doc_ids names 'a' twice"):
        load_files(tmp_path / "d.npy", tmp_path / "q.npy", doc_ids=["a", "b", "a", "c", "d"])


def _folder(tmp_path, *, jsonl_ids=None, files=()):
    folder = tmp_path / "set"
    folder.mkdir()
    np.save(folder / "docs.npy", _vectors(5))
    np.save(folder / "queries.npy", _vectors(3))
    if jsonl_ids is not None:
        (folder / "docs.jsonl").write_text("\n".join(json.dumps({"id": i, "g": 1}) for i in jsonl_ids) + "\n")
    for name, text in files:
        (folder / name).write_text(text)
    return folder


def test_folder_picks_up_id_files(tmp_path):
    folder = _folder(tmp_path, files=[("doc_ids.txt", "\n".join(DOC_IDS)),
                                      ("query_ids.txt", "\n".join(QUERY_IDS)),
                                      ("qrels.txt", "q2 0 d0 1\nq0 0 d4 1\n")])
    ds = load_folder(folder)
    assert ds.qrels == [[4], [], [0]] and ds.doc_ids == DOC_IDS and ds.query_ids == QUERY_IDS


def test_folder_takes_id_files_from_the_command_line(tmp_path, capsys):
    folder = _folder(tmp_path, files=[("qrels.txt", "q2 0 d0 1\n")])
    (tmp_path / "docs.txt").write_text("\n".join(DOC_IDS))
    (tmp_path / "queries.txt").write_text("\n".join(QUERY_IDS))
    with pytest.raises(DataError, match="pass --query-ids"):
        load_folder(folder)
    ds = load_folder(folder, doc_ids=tmp_path / "docs.txt", query_ids=tmp_path / "queries.txt")
    assert ds.qrels == [[], [], [0]]
    argv = ["--data", str(folder), "--doc-ids", str(tmp_path / "docs.txt"), "--query-ids",
            str(tmp_path / "queries.txt"), "--k", "3"]
    assert _eval(tmp_path, argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["source"]["query_ids"] == argv[5]


def test_folder_ids_from_docs_jsonl(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\n1\td2\t1\n"
    folder = _folder(tmp_path, jsonl_ids=DOC_IDS, files=[("qrels.tsv", qrels)])
    ds = load_folder(folder)
    assert ds.doc_ids == DOC_IDS and ds.qrels == [[], [2], []]


def test_folder_integer_qrels_stay_rows_beside_docs_jsonl_ids(tmp_path):
    # a folder that loaded before ids existed: jsonl ids are a guess, and integer rows matching none of
    # them keep meaning rows
    folder = _folder(tmp_path, jsonl_ids=DOC_IDS, files=[("qrels.txt", "0 0 3 1\n2 0 1 1\n")])
    assert load_folder(folder).qrels == [[3], [], [1]]
    # an explicit id file is not a guess: the same integers are then ids, and match none
    (folder / "doc_ids.txt").write_text("\n".join(DOC_IDS))
    with pytest.raises(DataError, match="none of its 2 judgements match"):
        load_folder(folder)


def test_folder_with_duplicate_jsonl_ids_loads_without_ids(tmp_path):
    folder = _folder(tmp_path, jsonl_ids=["a", "a", "b", "c", "d"], files=[("qrels.json", "[[0], [1], []]")])
    ds = load_folder(folder)
    assert ds.doc_ids is None and ds.qrels == [[0], [1], []] and len(ds.doc_fields) == 5


def test_sample_loads_as_before_and_takes_trec_qrels_with_medquad_ids(tmp_path):
    from medqk.data import sample_path

    ds = load_sample()
    assert ds.name == "medquad_sample" and ds.docs.shape == (5000, 384) and ds.queries.shape == (500, 384)
    assert ds.qrels == json.loads((sample_path() / "qrels.json").read_text())
    assert ds.metric is None and ds.neighbors is None
    assert "qrels_unmatched" not in ds.source
    # the same judgements as TREC lines with MedQuAD's string ids map back to the same rows
    lines = [f"{ds.query_ids[q]} 0 {ds.doc_ids[d]} 1" for q, rel in enumerate(ds.qrels) for d in rel]
    (tmp_path / "qrels.trec").write_text("\n".join(lines) + "\n")
    expected = ds.qrels
    attach_qrels(ds, tmp_path / "qrels.trec")
    assert ds.qrels == expected


def test_attach_ids_replaces_guessed_ids(tmp_path):
    folder = _folder(tmp_path, jsonl_ids=DOC_IDS)
    ds = load_folder(folder)
    assert ds.source["ids_inferred"] == ["doc"]
    attach_ids(ds, doc_ids=["a", "b", "c", "d", "e"])
    assert ds.doc_ids[0] == "a" and "ids_inferred" not in ds.source and "doc_ids" not in ds.source


# ------------------------------------------------------------------------------------------ CLI


def _eval(tmp_path, argv):
    return cli.main(["eval", "--out", str(tmp_path / "out"), "--quiet", "--schemes", "float32"] + argv)


def test_cli_id_flags_and_hdf5_alone(tmp_path, capsys):
    np.save(tmp_path / "d.npy", _vectors(40))
    np.save(tmp_path / "q.npy", _vectors(3))
    (tmp_path / "docs.txt").write_text("\n".join(f"doc{i}" for i in range(40)))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"qid": f"q{i}"}) for i in range(3)))
    (tmp_path / "qrels.txt").write_text("q0 0 doc5 1\nq2 0 doc7 1\n")
    common = ["--docs", str(tmp_path / "d.npy"), "--queries", str(tmp_path / "q.npy"),
              "--qrels", str(tmp_path / "qrels.txt")]
    assert _eval(tmp_path, common) == 2
    err = capsys.readouterr().err
    assert err.startswith("medqk: error: qrels file") and "pass --query-ids FILE" in err
    assert "Traceback" not in err
    code = _eval(tmp_path, common + ["--doc-ids", str(tmp_path / "docs.txt"),
                                     "--query-ids", f"{tmp_path / 'queries.jsonl'}:qid"])
    assert code == 0, capsys.readouterr().err
    source = json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["source"]
    assert source["doc_ids"] == str(tmp_path / "docs.txt")

    import h5py  # the [test] extra
    _ann_file(tmp_path / "set.hdf5", h5py, distance="euclidean")
    assert _eval(tmp_path, ["--docs", str(tmp_path / "set.hdf5"), "--max-queries", "2"]) == 0
    source = json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["source"]
    assert source["metric"] == "l2" and source["neighbors"] == str(tmp_path / "set.hdf5")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--queries", "q.npy"], "--docs and --queries go together"),
        (["--docs", "d.npy"], "only an ann-benchmarks .hdf5 file holds both"),
        (["--doc-ids", "/nonexistent/ids.txt"], "--doc-ids file '/nonexistent/ids.txt' does not exist"),
    ],
)
def test_cli_data_argument_errors(tmp_path, capsys, argv, message):
    assert _eval(tmp_path, argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
