"""Atomic file writes: a crash or an error never leaves a half-written file under the user's name.

Permissions: a file written here gets the mode a plain ``open(path, "wb")`` gives a new file, 0o666 less the
process umask (0644 under the usual umask 022, 0600 under 077), and, where the folder has a default ACL,
what that ACL says, because the temporary file is created by ``os.open`` with mode 0o666 and the kernel
applies the umask / ACL itself (``tempfile.mkstemp`` creates 0600 files: a service running as another
user could not read a saved index). A file that is replaced gets that same mode, not the old file's: a
save gives the same permissions every time, and files left 0600 by medqk 0.1.0 become readable when they
are saved again. To keep an index private, save it under ``umask 077`` (or chmod it afterwards).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO

_NEW_FILE_MODE = 0o666  # before the umask, as open() and the shell's ">" create files
_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
               | getattr(os, "O_CLOEXEC", 0))
_NAME_ATTEMPTS = 100


def _create_temporary(directory: str) -> tuple[int, str]:
    """A new, empty file ``.medqk-<random>.tmp`` in ``directory``, opened for writing (O_EXCL: never an
    existing file or a planted symlink), with mode 0o666 less the umask."""
    for _ in range(_NAME_ATTEMPTS):
        tmp = os.path.join(directory, f".medqk-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, _OPEN_FLAGS, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r} ({_NAME_ATTEMPTS} names taken)")


@contextlib.contextmanager
def atomic_file(path) -> Iterator[BinaryIO]:
    """Yields a binary file in the folder of ``path``; on success it is flushed, fsynced and renamed
    over ``path`` (replacing any old file only then); on any error it is removed and ``path`` is untouched.
    The file's mode follows the umask (see the module doc)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: folder {directory!r} does not exist")
    fd, tmp = _create_temporary(directory)
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
