"""Quantized embedding indexes: ``create(spec, dim, metric)`` is the front door.

>>> import numpy as np, medqk.index
>>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
>>> index = medqk.index.create("int8", 64)
>>> index.train(x).add(x)                                   # doctest: +ELLIPSIS
FlatInt8Index(...)
>>> scores, ids = index.search(x[:5], k=10)

See :mod:`medqk.index.spec` for the spec grammar and :mod:`medqk.index.flat` for scores and tie rules.
"""

from __future__ import annotations

import numpy as np

from .flat import METRICS, FlatFloatIndex, FlatInt8Index, Index, RerankIndex
from .io import IndexFileError, load_index
from .spec import CODECS, IndexSpec, parse_spec, valid_specs


def _codec_index(codec: str, dim: int, metric: str, codec_options: dict) -> Index:
    spec = IndexSpec(codec)
    if codec == "hnsw":
        from .hnsw import HnswIndex

        return HnswIndex(spec, dim, metric, **codec_options)
    if codec == "float32":
        return FlatFloatIndex(spec, dim, metric, np.float32)
    if codec == "fp16":
        return FlatFloatIndex(spec, dim, metric, np.float16)
    if codec in ("int4", "cb4", "cb3", "cb2"):
        from .lut4 import FlatLUT4Index

        return FlatLUT4Index(spec, dim, metric, **{k: v for k, v in codec_options.items()
                                                    if k in ("calibration", "percentile")})
    return FlatInt8Index(spec, dim, metric, **codec_options)


def create(spec: str, dim: int, metric: str = "ip", *, rerank_factor: int = 4, **codec_options) -> Index:
    """Makes an empty index.

    spec: see :mod:`medqk.index.spec` (e.g. ``"int8"``, ``"int8+rerank:float32"``).
    dim: vector dimension. metric: ``"ip"`` (inner product, default) or ``"l2"`` (squared Euclidean).
    rerank_factor: candidates re-scored per result with ``+rerank``.
    codec_options: for int8, ``per_dim`` (True), ``symmetric`` (False), ``calibration``
    (``"minmax"``, ``"percentile"``, ``"mse"``), ``percentile`` (0.1); for int4 the default is
    ``calibration="percentile", percentile=0.3``; for hnsw, ``M`` (16),
    ``ef_construction`` (200), ``ef_search`` (64).
    """
    parsed = parse_spec(spec)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    dim = int(dim)
    hnsw_keys = {"M", "ef_construction", "ef_search"}
    hnsw_options = {k: codec_options.pop(k) for k in list(codec_options) if k in hnsw_keys}
    if hnsw_options and parsed.base != "hnsw":
        raise TypeError(f"spec '{parsed}' takes no HNSW options, got {sorted(hnsw_options)}")
    quantized = ("int8", "int4", "cb4", "cb3", "cb2")
    if codec_options and parsed.base not in quantized and parsed.rerank not in quantized:
        raise TypeError(f"spec '{parsed}' takes no codec options, got {sorted(codec_options)}")
    base_options = hnsw_options if parsed.base == "hnsw" else codec_options if parsed.base in quantized else {}
    base = _codec_index(parsed.base, dim, metric, base_options)
    if parsed.rerank is None:
        return base
    refine = _codec_index(parsed.rerank, dim, metric, codec_options if parsed.rerank in quantized else {})
    return RerankIndex(parsed, dim, metric, base, refine, rerank_factor)


def load(path, *, mmap: bool = False) -> Index:
    """Loads an index saved with ``Index.save``; raises IndexFileError for anything that is not one."""
    return load_index(path, mmap=mmap)


__all__ = [
    "CODECS",
    "FlatFloatIndex",
    "FlatInt8Index",
    "Index",
    "IndexFileError",
    "IndexSpec",
    "RerankIndex",
    "create",
    "load",
    "parse_spec",
    "valid_specs",
]
