"""The codec table: one row per codec (or codec family) a spec part can name.

A row says everything the rest of the package needs to know about a codec: the pattern of its spec part,
the form the grammar shows (``--help``, error messages), its kind, the options ``create()`` routes to it
with their defaults, its code bytes per vector, the factory that builds its index, and an example spec that
the table test (tests/index/test_codec_table.py) builds, sizes and saves. :mod:`medqk.index.spec` (the
grammar), :func:`medqk.index.create` (options, factories, rerank factors), :mod:`medqk.index.io` (options
back from a saved config) and :mod:`medqk.eval.runner` (optional dependencies, PCA checks) read it. Adding
a codec is one row here and its index / quantizer classes (plus its paragraph in the :mod:`medqk.index.spec`
docstring); the table test picks the row up by itself.

Spec parts reach :func:`lookup` lower-cased without whitespace; the near-misses of the PQ and IVF families
(``pq8x4``, ``ivf0,...``, ``opq,int8``) are diagnosed by :mod:`medqk.index.spec` before any row is looked up.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class ByMetric:
    """A default that depends on the metric (score-aware codes are for inner products only)."""

    ip: Any
    l2: Any

    def resolve(self, metric: str) -> Any:
        return self.ip if metric == "ip" else self.l2


@dataclass(frozen=True)
class Codec:
    """One row of :data:`TABLE`. ``params`` below are the pattern's groups (strings)."""

    name: str  # the row's name: the spec of a fixed codec ("cb4"), the form of a family ("pq<M>x4fs")
    form: str  # as the grammar shows it
    pattern: str  # regular expression a whole spec part matches
    kind: str  # "float", "int8", "level", "pca", "pq", "opq", "hnsw" or "ivf"
    # create()'s options -> the default create() applies (a ByMetric per metric; None: the class derives it)
    options: dict[str, Any] | Callable[[tuple], dict[str, Any]]
    # (params, dim) -> code bytes per vector (index overhead excluded)
    bytes_per_vector: Callable[[tuple, int], float]
    build: Callable  # (params, spec, dim, metric, options with defaults) -> Index
    example: str  # a spec of this row valid at dim 16 (the table test builds it)
    # (params, dim, metric, options) -> the 4-bit sub-code codec, for rows stored in the 4-bit table layout
    quantizer: Callable | None = None
    base_only: bool = False  # not after "+rerank:" (hnsw, ivf: they are not a stored copy to re-score with)
    under_ivf: bool = False  # may follow "ivf<nlist>," (its quantizer codes residuals)
    rerank_factor: int = 4  # candidates per result create() re-scores after this base
    requires: str | None = None  # an optional module the codec needs
    # False: bytes_per_vector is a lower bound the index adds to what it measures (hnsw: its graph links)
    exact_bytes: bool = True

    @property
    def is_fixed(self) -> bool:
        """The row is one spec (``cb4``), not a family with parameters (``pq<M>x4fs``)."""
        return self.match(self.name) is not None

    def forms(self) -> list[str]:
        """The forms the grammar shows: a row that wraps codecs (``<codec>`` in its form) shows one form per
        row it takes (``ivf<nlist>,pq<M>x4fs``, ...)."""
        if "<codec>" not in self.form:
            return [self.form]
        return [self.form.replace("<codec>", c.form) for c in TABLE if c.under_ivf]

    def match(self, part: str) -> tuple | None:
        m = re.fullmatch(self.pattern, part)
        return m.groups() if m else None

    def defaults(self, params: tuple, metric: str) -> dict[str, Any]:
        """The options this part takes, with the defaults create() applies for ``metric``."""
        options = self.options(params) if callable(self.options) else self.options
        return {k: v.resolve(metric) if isinstance(v, ByMetric) else v for k, v in options.items()}

    def missing_requirement(self) -> str | None:
        """The optional module this codec needs when it cannot be imported, else None."""
        if self.requires is None:
            return None
        try:
            importlib.import_module(self.requires)
        except ImportError:
            return self.requires
        return None


def lookup(part: str) -> tuple[Codec, tuple] | None:
    """(row, params) of a normalized spec part (no ``+rerank``), or None when no row matches."""
    for codec in TABLE:
        params = codec.match(part)
        if params is not None:
            return codec, params
    return None


def row(part: str) -> Codec:
    """The row of a spec part that parsed (:func:`medqk.index.spec.parse_spec`)."""
    found = lookup(part)
    if found is None:
        raise ValueError(f"no codec row matches {part!r}")
    return found[0]


def defaults(part: str, metric: str) -> dict[str, Any]:
    """The options of a spec part with the defaults create() applies for ``metric``."""
    codec, params = lookup(part)
    return codec.defaults(params, metric)


def build(part: str, dim: int, metric: str, options: dict):
    """The empty index of one spec part; ``options`` may hold options of other parts (they are skipped)."""
    from .spec import IndexSpec

    codec, params = lookup(part)
    scoring = "l2" if metric == "l2" else "ip"  # cos: inner products of the unit vectors the index stores
    resolved = codec.defaults(params, scoring)
    resolved.update((k, v) for k, v in options.items() if k in resolved)
    index = codec.build(params, IndexSpec(part), dim, scoring, resolved)
    index.metric = metric
    return index


# -- bytes per vector ---------------------------------------------------------------------------------------


def _per_dim(nbytes: float):
    return lambda params, dim: nbytes * dim


def _nibbles(n_sub: int) -> float:
    """Bytes of n_sub 4-bit codes in the 4-bit table layout (an odd count is padded to whole bytes)."""
    return (n_sub + (n_sub & 1)) / 2


def _level_bytes(bits: int):
    # cb2 packs two dimensions per 4-bit code; int4 / cb4 / cb3 spend one code per dimension
    return lambda params, dim: _nibbles((dim + 1) // 2 if bits == 2 else dim)


def _pca_bytes(bits: int):
    return lambda params, dim: _nibbles(bits * dim // 4)  # the budget: whole nibbles


def _ivf_bytes(params, dim):
    inner, inner_params = lookup(params[1])
    return inner.bytes_per_vector(inner_params, dim) + 8  # each list keeps an int64 id per vector


# -- factories (imports are lazy: the table is read by the spec grammar, below the index classes) ----------


def _float_index(dtype):
    def build(params, spec, dim, metric, options):
        from .flat import FlatFloatIndex

        return FlatFloatIndex(spec, dim, metric, dtype)

    return build


def _int8_index(params, spec, dim, metric, options):
    from .flat import FlatInt8Index

    return FlatInt8Index(spec, dim, metric, **options)


def _rabitq_index(params, spec, dim, metric, options):
    from .rabitq import FlatRaBitQIndex

    return FlatRaBitQIndex(spec, dim, metric, bits=int(params[0]) if params else 1, **options)


def _rabitq_bytes(params, dim):
    bits = int(params[0]) if params else 1
    return (bits * dim + 7) // 8 + 8.0  # the b bit planes, then the float32 factors M_v and B_v


def _hnsw_index(params, spec, dim, metric, options):
    from .hnsw import HnswIndex

    return HnswIndex(spec, dim, metric, **options)


def _level_quantizer(bits: int, levels: str):
    def quantizer(params, dim, metric, options):
        from ..quantizers.codebook import LevelCodec

        return LevelCodec(bits, levels, **options)

    return quantizer


def _pca_quantizer(bits: int):
    def quantizer(params, dim, metric, options):
        from ..quantizers.pca import PCACodec

        return PCACodec(bits, dim, metric, **options)

    return quantizer


def _pq_quantizer(nbits: int, rotated: bool):
    def quantizer(params, dim, metric, options):
        if rotated:
            from ..quantizers.opq import OPQCodec as codec_class
        else:
            from ..quantizers.pq import PQCodec as codec_class
        return codec_class(int(params[0]), dim, nbits, **options)

    return quantizer


def _lut4_index(quantizer):
    """The factory of a row stored in the 4-bit table layout: its quantizer under a FlatLUT4Index."""

    def build(params, spec, dim, metric, options):
        from .lut4 import FlatLUT4Index

        return FlatLUT4Index(spec, dim, metric, quantizer(params, dim, metric, options))

    return build


def _pq8_index(quantizer):
    def build(params, spec, dim, metric, options):
        from .pq8 import FlatPQ8Index

        return FlatPQ8Index(spec, dim, metric, quantizer(params, dim, metric, options))

    return build


_IVF_OWN = {"nprobe": None, "coarse_iter": 20, "coarse_max_train": None}  # None: min(16, nlist), 64 * nlist


def _ivf_options(params) -> dict[str, Any]:
    inner, _ = lookup(params[1])
    # residuals are coded by their nearest centroids: the anisotropic loss is about the direction of x itself
    return {**_IVF_OWN, **inner.options, "eta": 1.0}


def _ivf_index(params, spec, dim, metric, options):
    from .ivf import IVFLUT4Index

    nlist, inner_spec = int(params[0]), params[1]
    if options["eta"] != 1.0:
        raise ValueError(f"spec '{spec}': eta must be 1 (IVF codes residuals by their nearest centroids)")
    inner, inner_params = lookup(inner_spec)
    inner_options = {k: v for k, v in options.items() if k not in _IVF_OWN}
    codec = inner.quantizer(inner_params, dim, metric, inner_options)
    own = {k: v for k, v in options.items() if k in _IVF_OWN or k == "seed"}
    return IVFLUT4Index(spec, dim, metric, nlist, codec, **own)


# -- options shared by several rows -------------------------------------------------------------------------

_INT8 = {"per_dim": True, "symmetric": False, "calibration": "minmax", "percentile": 0.1, "margin": 0.0}
# k-means levels follow the density: clipping their training data lowered recall (MedQuAD cb4 0.951 -> 0.949);
# score-aware codes for inner products (LevelCodec.encode): cb4 R@10 0.951 -> 0.962 on MedQuAD
_KMEANS_LEVELS = {"per_dim": True, "calibration": "minmax", "percentile": 0.1, "eta": ByMetric(4.0, 1.0),
                  "progress": None}
# Uniform 4-bit levels waste codes on the tails: clipping 0.3% on each side per dimension gave R@10 0.947 on
# MedQuAD dev (min/max 0.931, MSE-optimal clipping 0.932).
_UNIFORM_LEVELS = {"per_dim": True, "calibration": "percentile", "percentile": 0.3, "eta": 1.0,
                   "progress": None, "margin": 0.0}
_PCA = {"seed": 1234, "max_iter": 25, "max_train": 65536, "progress": None}
_PQ = {"seed": 1234, "max_iter": 25, "tol": 1e-4, "max_train": 65536, "progress": None, "eta": 1.0}
# score-aware codes for inner products (PQCodec.encode_sub): opq,pq96x4fs R@10 0.797 -> 0.825
_PQ4 = {**_PQ, "eta": ByMetric(4.0, 1.0)}
_OPQ = {"opq_iter": 20, "opq_kmeans_iter": 4}
# score-aware sign codes (medqk.quantizers.rabitq): MedQuAD dev R@10 0.769 (paper's codes) -> 0.802
_RABITQ = {"query_bits": 4, "seed": 1234, "eps0": 1.9, "aware_passes": 2, "aware_mix": 0.3}
# Extended RaBitQ (rabitq<b>): the query's quantization error must stay below the code's, which halves about
# per bit. MedQuAD dev R@10 by query bits: rabitq2 0.874 / 0.881 / 0.881 at 4 / 6 / 7, rabitq4 0.957 / 0.961 at
# 5 / 8, rabitq5 0.958 / 0.978 at 4 / 8; the scan's work grows with min(8, query_bits + b - 1) planes, so 8 query
# bits cost nothing more than 9 - b from b = 3 on.
_RABITQ_MULTI = {"seed": 1234, "eps0": 1.9}
_RABITQ_QUERY_BITS = {2: 6, 3: 8, 4: 8, 5: 8, 6: 8, 7: 8, 8: 8}


def _rabitq_multi_options(params) -> dict[str, Any]:
    return {"query_bits": _RABITQ_QUERY_BITS[int(params[0])], **_RABITQ_MULTI}

_HNSW = {"M": 16, "ef_construction": 200, "ef_search": 64, "progress": None}

# A pq base keeps the true top-10 among 16 candidates per result, an ivf base (recall@10 near 0.7) among 20
# (MedQuAD dev: pq96x4fs+rerank:int8 R@10 0.9900 at 12, 0.9924 at 16, 0.9936 at 20; see create()).
_PQ_RERANK = 16
_IVF_RERANK = 20


def _level_row(name: str, bits: int, levels: str, options: dict) -> Codec:
    quantizer = _level_quantizer(bits, levels)
    return Codec(name, name, re.escape(name), "level", options, _level_bytes(bits), _lut4_index(quantizer),
                 name, quantizer=quantizer)


def _pca_row(bits: int) -> Codec:
    name = f"pca{bits}"
    quantizer = _pca_quantizer(bits)
    return Codec(name, name, re.escape(name), "pca", _PCA, _pca_bytes(bits), _lut4_index(quantizer), name,
                 quantizer=quantizer)


_PQ4_QUANTIZER = _pq_quantizer(4, rotated=False)
_OPQ4_QUANTIZER = _pq_quantizer(4, rotated=True)

# Order: the order of the grammar's forms (--help); base-only rows after the others.
TABLE: tuple[Codec, ...] = (
    Codec("float32", "float32", "float32", "float", {}, _per_dim(4.0), _float_index(np.float32), "float32"),
    Codec("fp16", "fp16", "fp16", "float", {}, _per_dim(2.0), _float_index(np.float16), "fp16"),
    Codec("int8", "int8", "int8", "int8", _INT8, _per_dim(1.0), _int8_index, "int8"),
    _level_row("int4", 4, "uniform", _UNIFORM_LEVELS),
    _level_row("cb4", 4, "kmeans", _KMEANS_LEVELS),
    _level_row("cb3", 3, "kmeans", _KMEANS_LEVELS),  # stored in the 4-bit layout
    _level_row("cb2", 2, "kmeans", _KMEANS_LEVELS),
    _pca_row(4),
    _pca_row(3),
    _pca_row(2),
    # 1-bit RaBitQ: sign code + two float32 factors (medqk.index.rabitq); more candidates than pq before a rerank
    Codec("rabitq", "rabitq", "rabitq", "rabitq", _RABITQ,
          _rabitq_bytes, _rabitq_index, "rabitq", rerank_factor=_PQ_RERANK),
    # Extended RaBitQ, b = 2..8 bits per dimension (rabitq1 is written rabitq; medqk.index.spec diagnoses others)
    Codec("rabitq<b>", "rabitq<b>", r"rabitq([2-8])", "rabitq", _rabitq_multi_options, _rabitq_bytes,
          _rabitq_index, "rabitq3", rerank_factor=_PQ_RERANK),
    Codec("pq<M>x4fs", "pq<M>x4fs", r"pq(\d+)x4fs", "pq", _PQ4, lambda p, dim: _nibbles(int(p[0])),
          _lut4_index(_PQ4_QUANTIZER), "pq8x4fs", quantizer=_PQ4_QUANTIZER, under_ivf=True,
          rerank_factor=_PQ_RERANK),
    Codec("pq<M>x8", "pq<M>x8", r"pq(\d+)x8", "pq", _PQ, lambda p, dim: float(int(p[0])),
          _pq8_index(_pq_quantizer(8, rotated=False)), "pq8x8", rerank_factor=_PQ_RERANK),
    Codec("opq,pq<M>x4fs", "opq,pq<M>x4fs", r"opq,pq(\d+)x4fs", "opq", {**_PQ4, **_OPQ},
          lambda p, dim: _nibbles(int(p[0])), _lut4_index(_OPQ4_QUANTIZER), "opq,pq8x4fs",
          quantizer=_OPQ4_QUANTIZER, under_ivf=True, rerank_factor=_PQ_RERANK),
    Codec("opq,pq<M>x8", "opq,pq<M>x8", r"opq,pq(\d+)x8", "opq", {**_PQ, **_OPQ},
          lambda p, dim: float(int(p[0])), _pq8_index(_pq_quantizer(8, rotated=True)), "opq,pq8x8",
          rerank_factor=_PQ_RERANK),
    Codec("hnsw", "hnsw", "hnsw", "hnsw", _HNSW, _per_dim(4.0), _hnsw_index, "hnsw", base_only=True,
          requires="hnswlib", exact_bytes=False),  # float32 vectors plus graph links
    Codec("ivf<nlist>,<codec>", "ivf<nlist>,<codec>", r"ivf(\d+),(.+)", "ivf", _ivf_options, _ivf_bytes,
          _ivf_index, "ivf2,pq8x4fs", base_only=True, rerank_factor=_IVF_RERANK),
)
