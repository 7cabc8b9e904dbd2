"""Atomic file writes: a crash or an error never leaves a half-written file under the user's name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_file(path) -> Iterator[BinaryIO]:
    """Yields a binary file in the folder of ``path``; on success it is flushed, fsynced and renamed
    over ``path`` (replacing any old file only then); on any error it is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: folder {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".medqk-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
