"""Saving and loading indexes: round trip, atomic writes, clear errors on bad files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import medqk.index as mi

from .test_flat import data


@pytest.mark.parametrize("spec", ["float32", "fp16", "int8", "int8+rerank:float32", "fp16+rerank:int8", "pca4",
                                  "pca3+rerank:int8", "cb4"])
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
        assert base.codec.calibration == "percentile"


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


# -- every kind of index, corrupted: the same clear error with and without mmap -----------------------------

# One spec per kind of index medqk saves (index/spec.py): each flat codec, both PQ layouts with and without
# the OPQ rotation, IVF (with OPQ), HNSW, and re-ranking pairs over each kind of base. d = 16 and 600
# vectors train every codec without a SpecDataWarning (pq4x8: 2.3 vectors per centroid).
EVERY_KIND = ["float32", "fp16", "int8", "int4", "cb4", "cb3", "cb2", "pca4", "pca3", "pca2",
              "pq4x4fs", "pq4x8", "opq,pq4x4fs", "opq,pq4x8", "pq4x4fs+rerank:int8", "opq,pq4x8+rerank:fp16",
              "ivf4,pq4x4fs", "ivf4,opq,pq4x4fs+rerank:float32", "hnsw", "hnsw+rerank:int8"]


@pytest.fixture(scope="module")
def every_kind_saved(tmp_path_factory):
    """{spec: (the saved file's bytes, the index's top-5 (scores, ids) of a few queries)}, built once."""
    x, q = data(n=600, nq=5, d=16)
    folder = tmp_path_factory.mktemp("kinds")
    out = {}
    for i, spec in enumerate(EVERY_KIND):
        index = mi.create(spec, 16).train(x).add(x)
        path = folder / f"{i}.mqk"
        index.save(path)
        out[spec] = (path.read_bytes(), index.search(q, 5))
    return out, q


def file_layout(blob: bytes) -> tuple[int, dict]:
    """(header length, header) of a saved index, read as the format in medqk.index.io documents it."""
    hlen = struct.unpack("<I", blob[12:16])[0]
    return hlen, json.loads(blob[16 : 16 + hlen])


def flip(blob: bytes, pos: int) -> bytes:
    bad = bytearray(blob)
    bad[pos] ^= 0x5A
    return bytes(bad)


def load_error(path, blob: bytes, mmap: bool) -> str:
    """The message of the IndexFileError that loading ``blob`` from ``path`` raises; it names the file."""
    path.write_bytes(blob)
    with pytest.raises(mi.IndexFileError) as caught:
        mi.load(path, mmap=mmap)
    message = str(caught.value)
    assert repr(str(path)) in message
    return message


@pytest.fixture
def saved_kind(tmp_path, every_kind_saved, spec):
    """(bytes, header length, header, a path to write altered copies to) of the saved index of ``spec``."""
    blob = every_kind_saved[0][spec][0]
    return (blob, *file_layout(blob), tmp_path / "index.mqk")


@pytest.mark.parametrize("spec", EVERY_KIND)
@pytest.mark.parametrize("mmap", [False, True])
def test_every_kind_round_trips(tmp_path, every_kind_saved, spec, mmap):
    # the intact file loads in both modes and searches exactly as the saved index did: the corruption tests
    # below fail on the corruption, not on a kind that never loads
    saved, q = every_kind_saved
    blob, (scores, ids) = saved[spec]
    path = tmp_path / "index.mqk"
    path.write_bytes(blob)
    loaded = mi.load(path, mmap=mmap)
    assert str(loaded.spec) == spec and loaded.ntotal == 600
    s2, i2 = loaded.search(q, 5)
    np.testing.assert_array_equal(i2, ids)
    np.testing.assert_array_equal(s2, scores)


@pytest.mark.parametrize("spec", EVERY_KIND)
@pytest.mark.parametrize("mmap", [False, True])
def test_every_kind_refuses_a_flipped_byte(saved_kind, mmap):
    # A flipped byte in any array's data, in the header (still valid JSON of the same length) or in the stored
    # checksum only shows in the SHA-256: a memory-mapped load must verify it too, before any array is used.
    blob, hlen, header, path = saved_kind
    arrays = [e for e in header["arrays"] if e["nbytes"] > 0]
    assert arrays
    for e in arrays:
        for pos in (e["offset"], e["offset"] + e["nbytes"] // 2, e["offset"] + e["nbytes"] - 1):
            message = load_error(path, flip(blob, pos), mmap)
            assert message.endswith("is corrupt (checksum mismatch)"), (e["name"], pos, message)
    version_at = blob.index(b'"medqk_version": "', 16, 16 + hlen) + len(b'"medqk_version": "')
    edited = blob[:version_at] + b"9" + blob[version_at + 1 :]  # another version string, same length
    assert edited != blob and file_layout(edited)[1]["arrays"] == header["arrays"]
    assert load_error(path, edited, mmap).endswith("is corrupt (checksum mismatch)")
    assert load_error(path, flip(blob, len(blob) - 1), mmap).endswith("is corrupt (checksum mismatch)")


@pytest.mark.parametrize("spec", EVERY_KIND)
@pytest.mark.parametrize("mmap", [False, True])
def test_every_kind_refuses_a_truncated_or_extended_file(saved_kind, mmap):
    blob, hlen, header, path = saved_kind
    assert "bad magic" in load_error(path, blob[:10], mmap)  # not even the fixed 16-byte start
    header_cut = blob[: 16 + hlen // 2]
    assert "truncated (header runs past the end of the file)" in load_error(path, header_cut, mmap)
    largest = max(header["arrays"], key=lambda e: e["nbytes"])
    for cut in (largest["offset"] + largest["nbytes"] // 2, len(blob) - 32, len(blob) - 1):
        message = load_error(path, blob[:cut], mmap)
        assert f"is truncated or has trailing data ({cut} bytes, expected {len(blob)})" in message
    message = load_error(path, blob + b"\0", mmap)
    assert f"is truncated or has trailing data ({len(blob) + 1} bytes, expected {len(blob)})" in message


@pytest.mark.parametrize("spec", EVERY_KIND)
@pytest.mark.parametrize("mmap", [False, True])
def test_every_kind_refuses_a_wrong_header(saved_kind, mmap):
    blob, hlen, header, path = saved_kind
    assert "is not a medqk index file (bad magic)" in load_error(path, b"MEDQKIDY" + blob[8:], mmap)
    wrong_version = blob[:8] + struct.pack("<I", 3) + blob[12:]
    assert "has format version 3; this medqk reads version 1 or 2" in load_error(path, wrong_version, mmap)
    not_json = blob[:16] + b"[" + blob[17:]  # the header's opening brace
    assert "has a corrupt header" in load_error(path, not_json, mmap)
    short_hlen = blob[:12] + struct.pack("<I", hlen - 1) + blob[16:]  # the JSON loses its closing brace
    assert "has a corrupt header" in load_error(path, short_hlen, mmap)
    long_hlen = blob[:12] + struct.pack("<I", len(blob)) + blob[16:]
    assert "truncated (header runs past the end of the file)" in load_error(path, long_hlen, mmap)


def test_int8_quantizer_is_a_deprecated_name_of_codec():
    x, _ = data(n=50, d=8)
    index = mi.create("int8", 8)
    assert not index.is_trained  # the base class follows the codec
    index.train(x)
    assert index.is_trained
    with pytest.warns(DeprecationWarning, match="use .codec"):
        assert index.quantizer is index.codec
