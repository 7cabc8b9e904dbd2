"""Files medqk writes (saved indexes, reports) get the mode the umask gives, and atomic writes stay atomic."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest

import medqk.index as mi
from medqk._files import atomic_file
from medqk.eval import evaluate, report
from medqk.eval.data import Dataset

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["umask022", "umask077", "umask002"])
def umask(request):
    """Runs the test under one umask, restoring the previous one afterwards."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_file_new_and_replaced_files_follow_the_umask(tmp_path, umask):
    path = tmp_path / "f.bin"
    with atomic_file(path) as f:
        f.write(b"one")
    assert mode(path) == 0o666 & ~umask
    # a replaced file gets the same mode as a new one, whatever the old file had (the documented rule)
    os.chmod(path, 0o600 if umask != 0o077 else 0o644)
    with atomic_file(path) as f:
        f.write(b"two")
    assert path.read_bytes() == b"two" and mode(path) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_file(path) as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_saved_index_mode_follows_the_umask(tmp_path, umask):
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    path = tmp_path / "index.mqk"
    mi.create("int8", 8).train(x).add(x).save(path)
    assert mode(path) == 0o666 & ~umask
    assert mi.load(path).ntotal == 50


def test_report_files_mode_follows_the_umask(tmp_path, umask):
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((120, 8)).astype(np.float32)
    queries = rng.standard_normal((6, 8)).astype(np.float32)
    result = evaluate(Dataset("tiny", docs, queries), ["float32"], k=5)
    written = report.write(result, tmp_path)
    assert any(p.name == "report.json" for p in written) and any(p.name == "report.md" for p in written)
    for p in written:
        assert mode(p) == 0o666 & ~umask, p.name
