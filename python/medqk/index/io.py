"""The medqk index file: the container of medqk._container (magic b"MEDQKIDX", version 1) whose header
holds spec, dim, metric, ntotal and config. Loading raises :class:`IndexFileError` naming what is wrong."""

from __future__ import annotations

import os

from .. import _container
from .._errors import IndexFileError
from . import codecs

MAGIC = b"MEDQKIDX"
VERSION = 1


def save_index(index, path) -> None:
    config, arrays = index._state()
    header = {"spec": str(index.spec), "dim": index.dim, "metric": index.metric, "ntotal": index.ntotal,
              "config": config}
    _container.write(path, MAGIC, VERSION, header, arrays)


def load_index(path, *, mmap: bool = False):
    """Reads an index written by ``Index.save``. ``mmap=True`` maps the arrays read-only instead of
    reading them (fast start for big indexes; the checksum is still verified once)."""
    from . import _checked, _create

    path = os.fspath(path)
    header, arrays = _container.read(path, MAGIC, VERSION, "a medqk index file", IndexFileError, mmap=mmap)
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
