"""The medqk index file: the container of medqk._container (magic b"MEDQKIDX") whose header holds spec, dim,
metric, ntotal and config. Loading raises :class:`IndexFileError` naming what is wrong.

Version 1: the index's own arrays; its vectors have the ids 0..ntotal - 1. Version 2 (written only for an
index given its own ids or with removed vectors, so that a release that reads version 1 refuses it rather
than return wrong ids or removed vectors) adds the header field ``next_id`` and the arrays ``row_ids`` (the
int64 id of each stored row) and, with removed rows not yet compacted away, ``deleted_rows`` (a bit per row,
numpy packbits little-endian bit order). ``ntotal`` counts the vectors searched (removed ones not counted).
This release reads both."""

from __future__ import annotations

import os

from .. import _container
from .._errors import IndexFileError
from . import codecs

MAGIC = b"MEDQKIDX"
VERSION = 2
VERSIONS = (1, 2)
_ID_ARRAYS = ("row_ids", "deleted_rows")


def save_index(index, path) -> None:
    config, arrays = index._state()
    header = {"spec": str(index.spec), "dim": index.dim, "metric": index.metric, "ntotal": index.ntotal,
              "config": config}
    id_fields, id_arrays = index._rows.state()
    if not id_fields:
        _container.write(path, MAGIC, 1, header, arrays)
        return
    header["ids"] = id_fields
    _container.write(path, MAGIC, VERSION, header, {**arrays, **id_arrays})


def load_index(path, *, mmap: bool = False):
    """Reads an index written by ``Index.save``. ``mmap=True`` maps the arrays read-only instead of
    reading them (fast start for big indexes; the checksum is still verified once)."""
    from . import _checked, _create

    path = os.fspath(path)
    header, arrays = _container.read(path, MAGIC, VERSIONS, "a medqk index file", IndexFileError, mmap=mmap)
    parsed, dim = _checked(header["spec"], header["dim"], header["metric"])
    index = _create(parsed, dim, header["metric"], *_options_from_config(parsed, header["config"]))
    id_arrays = {name: arrays.pop(name) for name in _ID_ARRAYS if name in arrays}
    index._load_state(header["config"], arrays)
    if header["format_version"] >= 2:
        index._rows.load(index._ntotal, header.get("ids", {}), id_arrays, IndexFileError)
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
