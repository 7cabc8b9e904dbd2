"""The one file container medqk saves to: indexes (``.mqk``) and quantized layers (``.mql``) share it.

    offset 0   magic    8 bytes, one per kind of file (b"MEDQKIDX" for an index, b"MEDQKLIN" for a layer)
           8   version  uint32 little endian: the kind's format version
          12   hlen     uint32: length of the header
          16   header   UTF-8 JSON: the kind's own fields, medqk_version, and for each array its name, dtype,
                        shape, offset and size in bytes ("arrays")
           *   arrays   raw little-endian C-order data, each starting at a multiple of 64 bytes
         end   checksum 32 bytes: SHA-256 of every byte before it

Writing goes to a temporary file in the same folder, flushed and fsynced, then renamed over ``path``
(medqk._files.atomic_file): a crash or an error never leaves a half-written file under the user's name, and
an existing file is only replaced by a complete one. Reading checks the magic, version, header, sizes and
checksum (also with ``mmap=True``, once) and raises the kind's error type naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from ._errors import MedqkFileError
from ._files import atomic_file

_ALIGN = 64
_CHECKSUM_BYTES = 32


def write(path, magic: bytes, version: int, header: dict, arrays: dict) -> None:
    """Writes ``header`` (JSON-able; "arrays" and "medqk_version" are added) and ``arrays`` to ``path``."""
    from . import __version__

    path = os.fspath(path)
    entries = []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "nbytes": arr.nbytes})
    header = {**header, "medqk_version": __version__, "arrays": entries}
    # offsets depend on the header length, which depends on the offsets' digits: settle by iterating
    for _ in range(4):
        hbytes = json.dumps(header, sort_keys=True).encode()
        offset = _align(16 + len(hbytes))
        for e in entries:
            e["offset"] = offset
            offset = _align(offset + e["nbytes"])
        if json.dumps(header, sort_keys=True).encode() == hbytes:
            break
    hbytes = json.dumps(header, sort_keys=True).encode()

    with atomic_file(path) as f:
        digest = hashlib.sha256()

        def put(data) -> None:
            data = memoryview(data).cast("B")
            f.write(data)
            digest.update(data)

        put(magic + struct.pack("<II", version, len(hbytes)) + hbytes)
        pos = 16 + len(hbytes)
        for e, arr in zip(entries, arrays.values()):
            put(b"\0" * (e["offset"] - pos))
            put(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
            pos = e["offset"] + e["nbytes"]
        put(b"\0" * (_align(pos) - pos))
        f.write(digest.digest())


def read(path, magic: bytes, version: "int | tuple[int, ...]", what: str, error: type[MedqkFileError], *,
         mmap: bool = False) -> tuple[dict, dict]:
    """(header, arrays) of a file written by :func:`write` with this ``magic``. ``what`` names the kind in
    messages ("a medqk index file"); ``version``: the one it reads, or a tuple of them (the header then holds
    "format_version"); every problem raises ``error``. ``mmap=True`` maps the arrays read-only
    instead of reading them; the checksum is still verified once."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != magic:
            raise error(f"{path!r} is not {what} (bad magic)")
        got_version, hlen = struct.unpack("<II", head[8:16])
        versions = version if isinstance(version, tuple) else (version,)
        if got_version not in versions:
            raise error(f"{path!r} has format version {got_version}; this medqk reads version "
                        f"{' or '.join(map(str, versions))}")
        if 16 + hlen + _CHECKSUM_BYTES > size:
            raise error(f"{path!r} is truncated (header runs past the end of the file)")
        hbytes = f.read(hlen)
        try:
            header = json.loads(hbytes)
            entries = header["arrays"]
            end = max([_align(16 + hlen)] + [_align(e["offset"] + e["nbytes"]) for e in entries])
            header["format_version"] = got_version
        except (ValueError, KeyError, TypeError) as exc:
            raise error(f"{path!r} has a corrupt header ({exc})") from None
        if end + _CHECKSUM_BYTES != size:
            raise error(f"{path!r} is truncated or has trailing data ({size} bytes, expected {end + _CHECKSUM_BYTES})")
        f.seek(0)
        digest = hashlib.sha256()
        remaining = end
        while remaining:
            chunk = f.read(min(remaining, 1 << 24))
            if not chunk:
                raise error(f"{path!r} is truncated")
            digest.update(chunk)
            remaining -= len(chunk)
        if f.read(_CHECKSUM_BYTES) != digest.digest():
            raise error(f"{path!r} is corrupt (checksum mismatch)")
        arrays = {}
        for e in entries:
            dtype = np.dtype(e["dtype"])
            shape = tuple(e["shape"])
            if int(np.prod(shape)) * dtype.itemsize != e["nbytes"]:
                raise error(f"{path!r} has a corrupt header (array {e['name']!r} size)")
            if mmap and e["nbytes"] > 0:
                arrays[e["name"]] = np.memmap(path, dtype=dtype, mode="r", offset=e["offset"], shape=shape)
            else:
                f.seek(e["offset"])
                arrays[e["name"]] = np.frombuffer(f.read(e["nbytes"]), dtype=dtype).reshape(shape).copy()
    return header, arrays


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN
