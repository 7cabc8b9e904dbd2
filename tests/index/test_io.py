"""Saving and loading indexes: round trip, atomic writes, clear errors on bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest

import medqk.index as mi

from .test_flat import data


@pytest.mark.parametrize("spec", ["float32", "fp16", "int8", "int8+rerank:float32", "fp16+rerank:int8", "pca4", "pca3+rerank:int8", "cb4"])
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip(tmp_path, spec, metric, mmap):
    x, q = data(n=300, nq=10, d=24)
    index = mi.create(spec, 24, metric, calibration="percentile") if "int8" in spec else mi.create(spec, 24, metric)
    index.train(x).add(x)
    path = tmp_path / "index.mqk"
    index.save(path)
    loaded = mi.load(path, mmap=mmap)
    assert type(loaded) is type(index) and str(loaded.spec) == str(index.spec)
    assert (loaded.dim, loaded.metric, loaded.ntotal) == (24, metric, 300)
    s1, i1 = index.search(q, 7)
    s2, i2 = loaded.search(q, 7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    loaded.add(x[:5])  # a loaded index (even memory-mapped) can grow
    assert loaded.ntotal == 305
    if spec == "cb4":  # the encoding option travels with the file: new vectors get the same codes
        assert loaded.codec.eta == index.codec.eta == (4.0 if metric == "ip" else 1.0)
        np.testing.assert_array_equal(loaded.vectors(np.arange(300, 305)), index.vectors(np.arange(5)))
    if "int8" in spec:
        base = loaded if spec == "int8" else loaded.base if spec.startswith("int8") else loaded.refine
        assert base.quantizer.calibration == "percentile"


def saved(tmp_path):
    x, _ = data(n=50, d=8)
    path = tmp_path / "ok.mqk"
    mi.create("int8", 8).train(x).add(x).save(path)
    return path, path.read_bytes()


def test_not_an_index(tmp_path):
    path = tmp_path / "other.bin"
    path.write_bytes(b"hello world, not an index at all")
    with pytest.raises(mi.IndexFileError, match="not a medqk index"):
        mi.load(path)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(mi.IndexFileError, match="not a medqk index"):
        mi.load(empty)


def test_truncated(tmp_path):
    path, blob = saved(tmp_path)
    for cut in (20, len(blob) // 2, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(mi.IndexFileError, match="truncated"):
            mi.load(path)


def test_corrupt_byte(tmp_path):
    path, blob = saved(tmp_path)
    bad = bytearray(blob)
    bad[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(mi.IndexFileError, match="checksum"):
        mi.load(path)


def test_wrong_version(tmp_path):
    path, blob = saved(tmp_path)
    bad = bytearray(blob)
    bad[8] = 99
    path.write_bytes(bytes(bad))
    with pytest.raises(mi.IndexFileError, match="format version 99"):
        mi.load(path)


def test_failed_save_keeps_existing_file(tmp_path, monkeypatch):
    path, blob = saved(tmp_path)
    x, _ = data(n=80, d=8, seed=9)
    other = mi.create("float32", 8).add(x)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert path.read_bytes() == blob  # the user's file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["ok.mqk"]  # and no temporary file is left


def test_save_to_missing_folder(tmp_path):
    x, _ = data(n=10, d=8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mi.create("float32", 8).add(x).save(tmp_path / "nope" / "i.mqk")
