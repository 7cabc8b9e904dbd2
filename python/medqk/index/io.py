"""The medqk index file format (version 1).

    offset 0   magic    b"MEDQKIDX"
           8   version  uint32 little endian (1)
          12   hlen     uint32: length of the header
          16   header   UTF-8 JSON: spec, dim, metric, ntotal, config, medqk version, and for each array
                        its name, dtype, shape, offset and size in bytes
           *   arrays   raw little-endian C-order data, each starting at a multiple of 64 bytes
         end   checksum 32 bytes: SHA-256 of every byte before it

Writing goes to a temporary file in the same folder, flushed and fsynced, then renamed over ``path``:
a crash or an error never leaves a half-written index under the user's name, and an existing file
is only replaced by a complete one. Loading checks the magic, version, header, sizes and checksum
and raises :class:`IndexFileError` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from .._errors import IndexFileError
from .._files import atomic_file
from . import codecs

MAGIC = b"MEDQKIDX"
VERSION = 1
_ALIGN = 64
_CHECKSUM_BYTES = 32


def save_index(index, path) -> None:
    from .. import __version__

    path = os.fspath(path)
    config, arrays = index._state()
    entries = []
    offset = 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "nbytes": arr.nbytes})
    header = {
        "spec": str(index.spec),
        "dim": index.dim,
        "metric": index.metric,
        "ntotal": index.ntotal,
        "config": config,
        "medqk_version": __version__,
        "arrays": entries,
    }
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

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save index: folder {directory!r} does not exist")
    with atomic_file(path) as f:
        digest = hashlib.sha256()

        def write(data) -> None:
            data = memoryview(data).cast("B")
            f.write(data)
            digest.update(data)

        write(MAGIC + struct.pack("<II", VERSION, len(hbytes)) + hbytes)
        pos = 16 + len(hbytes)
        for e, arr in zip(entries, arrays.values()):
            write(b"\0" * (e["offset"] - pos))
            write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
            pos = e["offset"] + e["nbytes"]
        write(b"\0" * (_align(pos) - pos))
        f.write(digest.digest())


def load_index(path, *, mmap: bool = False):
    """Reads an index written by ``Index.save``. ``mmap=True`` maps the arrays read-only instead of
    reading them (fast start for big indexes; the checksum is still verified once)."""
    from . import _checked, _create

    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            raise IndexFileError(f"{path!r} is not a medqk index file (bad magic)")
        version, hlen = struct.unpack("<II", head[8:16])
        if version != VERSION:
            raise IndexFileError(f"{path!r} has format version {version}; this medqk reads version {VERSION}")
        if 16 + hlen + _CHECKSUM_BYTES > size:
            raise IndexFileError(f"{path!r} is truncated (header runs past the end of the file)")
        hbytes = f.read(hlen)
        try:
            header = json.loads(hbytes)
            entries = header["arrays"]
            end = max([_align(16 + hlen)] + [_align(e["offset"] + e["nbytes"]) for e in entries])
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexFileError(f"{path!r} has a corrupt header ({exc})") from None
        if end + _CHECKSUM_BYTES != size:
            raise IndexFileError(
                f"{path!r} is truncated or has trailing data ({size} bytes, expected {end + _CHECKSUM_BYTES})"
            )
        f.seek(0)
        digest = hashlib.sha256()
        remaining = end
        while remaining:
            chunk = f.read(min(remaining, 1 << 24))
            if not chunk:
                raise IndexFileError(f"{path!r} is truncated")
            digest.update(chunk)
            remaining -= len(chunk)
        if f.read(_CHECKSUM_BYTES) != digest.digest():
            raise IndexFileError(f"{path!r} is corrupt (checksum mismatch)")
        arrays = {}
        for e in entries:
            dtype = np.dtype(e["dtype"])
            shape = tuple(e["shape"])
            if int(np.prod(shape)) * dtype.itemsize != e["nbytes"]:
                raise IndexFileError(f"{path!r} has a corrupt header (array {e['name']!r} size)")
            if mmap and e["nbytes"] > 0:
                arrays[e["name"]] = np.memmap(path, dtype=dtype, mode="r", offset=e["offset"], shape=shape)
            else:
                f.seek(e["offset"])
                arrays[e["name"]] = np.frombuffer(f.read(e["nbytes"]), dtype=dtype).reshape(shape).copy()
    parsed, dim = _checked(header["spec"], header["dim"], header["metric"])
    index = _create(parsed, dim, header["metric"], *_options_from_config(parsed, header["config"]))
    index._load_state(header["config"], arrays)
    if index.ntotal != header["ntotal"]:
        raise IndexFileError(f"{path!r} has a corrupt header (ntotal {header['ntotal']} vs {index.ntotal} stored)")
    return index


def _options_from_config(parsed, config: dict) -> tuple[dict, dict, int | None]:
    """(options of the base, options of the rerank codec, rerank factor) that rebuild an index of this spec
    and config: each part gets the options of its codec-table row its config records (codec parameters come
    from arrays). Per part, as each was saved: int4+rerank:int8 keeps int4's clipping, not int8's."""
    if parsed.rerank is None:
        return _part_options(parsed.base, config), {}, None
    return (_part_options(parsed.base, config.get("base", {})),
            _part_options(parsed.rerank, config.get("refine", {})), config.get("rerank_factor"))


def _part_options(part: str, config: dict) -> dict:
    """The options of one spec part its config records: in the codec's config or beside it (hnsw's M, ivf's
    nprobe)."""
    accepted = codecs.defaults(part, "ip")
    recorded = {**(config.get("codec") or {}), **config}
    return {k: v for k, v in recorded.items() if k in accepted}


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN
