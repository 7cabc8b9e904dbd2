"""The codec table (medqk.index.codecs) walked row by row: every row's example parses, builds with the
defaults the row lists, reports the row's bytes per vector and survives save/load, so a row added without a
working index, size or saved state fails here."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk.index import codecs
from medqk.index.io import _part_options
from medqk.index.spec import BASES, BYTES_PER_DIM, CODECS, SPEC_GRAMMAR, parse_spec

from .test_flat import data

D = 16
# 600 vectors: >= 8 per level for cb* (16 levels), >= 2 per centroid for pq<M>x8 (256), >= 39 per list for the
# examples' ivf2: no SpecDataWarning (an error under the strict warning filter)
N = 600


@pytest.fixture(scope="module")
def vectors():
    return data(n=N, nq=8, d=D)


def _ids(codec):
    return codec.name


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("codec", codecs.TABLE, ids=_ids)
def test_every_row_parses_builds_sizes_and_round_trips(tmp_path, vectors, codec, metric):
    missing = codec.missing_requirement()
    if missing:
        pytest.skip(f"{codec.name} needs {missing}, not installed")
    x, q = vectors
    spec = codec.example
    row, params = codecs.lookup(spec)
    assert row is codec, f"the example {spec!r} of row {codec.name!r} is taken by row {row.name!r}"
    assert str(parse_spec(spec)) == spec
    assert any(form.split("<")[0] in SPEC_GRAMMAR for form in codec.forms())  # the grammar shows the row

    index = mi.create(spec, D, metric)
    assert str(index.spec) == spec
    config = index._state()[0]
    # the defaults the row lists are the ones the built index records (None: the index derives it, e.g. ivf's
    # nprobe = min(16, nlist))
    defaults = codec.defaults(params, metric)
    recorded = _part_options(spec, config)
    assert {k: v for k, v in recorded.items() if defaults[k] is not None} == {
        k: defaults[k] for k in recorded if defaults[k] is not None}

    index.train(x).add(x)
    expected = codec.bytes_per_vector(params, D)
    if codec.exact_bytes:
        assert index.bytes_per_vector == expected
    else:  # the codes plus what the index measures on top (hnsw: its graph links)
        assert index.bytes_per_vector > expected

    path = tmp_path / "index.mqk"
    index.save(path)
    loaded = mi.load(path)
    assert type(loaded) is type(index) and str(loaded.spec) == spec
    assert (loaded.dim, loaded.metric, loaded.ntotal) == (D, metric, N)
    assert loaded._state()[0] == index._state()[0]
    s1, i1 = index.search(q, 5)
    s2, i2 = loaded.search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("codec", codecs.TABLE, ids=_ids)
def test_rerank_takes_every_row_but_the_base_only_ones(codec):
    spec = f"int8+rerank:{codec.example}"
    if codec.base_only:
        with pytest.raises(ValueError, match="rerank:<codec>"):
            parse_spec(spec)
    else:
        assert parse_spec(spec).rerank == codec.example
    assert str(parse_spec(f"{codec.example}+rerank:int8")) == f"{codec.example}+rerank:int8"


def test_public_names_derived_from_the_table():
    """The names spec.py derives from the table keep today's values (a new row may add to them). The grammar
    text is pinned whole: a new row changes --help, and this line says how."""
    assert CODECS[:10] == ("float32", "fp16", "int8", "int4", "cb4", "cb3", "cb2", "pca4", "pca3", "pca2")
    assert BASES[:len(CODECS)] == CODECS and "hnsw" in BASES[len(CODECS):]
    today = {"float32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5, "cb4": 0.5, "cb3": 0.5, "cb2": 0.25,
             "pca4": 0.5, "pca3": 0.375, "pca2": 0.25, "hnsw": 4.0}
    assert {k: BYTES_PER_DIM[k] for k in today} == today
    assert SPEC_GRAMMAR == (
        "float32, fp16, int8, int4, cb4, cb3, cb2, pca4, pca3, pca2, rabitq, rabitq<b>, pq<M>x4fs, pq<M>x8, "
        "opq,pq<M>x4fs, opq,pq<M>x8 (M divides the dimension), hnsw, ivf<nlist>,pq<M>x4fs, ivf<nlist>,opq,pq<M>x4fs, "
        "and <base>+rerank:<codec> (<base> any of these, <codec> any but hnsw and ivf)")


@pytest.mark.parametrize("spec,base_calibration", [("int4+rerank:int8", ("percentile", 0.3)),
                                                   ("cb4+rerank:int8", ("minmax", 0.1))])
def test_load_gives_each_part_its_own_options(tmp_path, spec, base_calibration):
    """A rerank index saved with each part's defaults is rebuilt with them (loading used to pass the refine
    part's options to both: int4 came back with int8's min/max range instead of its 0.3% clipping)."""
    x, _ = data(n=300, d=D)
    index = mi.create(spec, D).train(x).add(x)
    index.save(tmp_path / "i.mqk")
    loaded = mi.load(tmp_path / "i.mqk")
    assert (loaded.base.codec.calibration, loaded.base.codec.percentile) == base_calibration
    assert (loaded.refine.codec.calibration, loaded.refine.codec.percentile) == ("minmax", 0.1)
    # options given to create() still reach every part that takes them
    index = mi.create(spec, D, calibration="mse").train(x).add(x)
    index.save(tmp_path / "j.mqk")
    loaded = mi.load(tmp_path / "j.mqk")
    assert loaded.base.codec.calibration == loaded.refine.codec.calibration == "mse"


def test_rerank_factor_comes_from_the_base_row():
    for spec, factor in (("int8+rerank:float32", 4), ("pq8x4fs+rerank:int8", 16),
                         ("opq,pq8x8+rerank:int8", 16), ("ivf2,pq8x4fs+rerank:int8", 20)):
        assert mi.create(spec, D).rerank_factor == factor == codecs.row(parse_spec(spec).base).rerank_factor
