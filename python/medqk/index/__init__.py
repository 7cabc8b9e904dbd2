"""Quantized embedding indexes: ``create(spec, dim, metric)`` is the front door.

>>> import numpy as np, medqk.index
>>> x = np.random.default_rng(0).standard_normal((1000, 64)).astype(np.float32)
>>> index = medqk.index.create("int8", 64)
>>> index.train(x).add(x)                                   # doctest: +ELLIPSIS
FlatInt8Index(...)
>>> scores, ids = index.search(x[:5], k=10)

See :mod:`medqk.index.spec` for the spec grammar and :mod:`medqk.index.flat` for scores and tie rules.
"""

# helpers are imported under private names: the package's namespace is its documented API (__all__) and its
# submodules (flat, spec, io, ...), nothing else
import numpy as _np

from .._warnings import SpecDataWarning

from .flat import METRICS as _METRICS
from .flat import FlatFloatIndex, FlatInt8Index, Index, RerankIndex
from .io import IndexFileError
from .io import load_index as _load_index
from .spec import CODECS, IndexSpec, parse_spec, valid_specs
from .spec import parse_ivf as _parse_ivf
from .spec import parse_pq as _parse_pq
from .spec import split_opq as _split_opq

# options each kind of index accepts (routed by create(); one no part accepts is an error)
_OPTIONS = {
    "int8": ("per_dim", "symmetric", "calibration", "percentile", "margin"),
    "level": ("per_dim", "calibration", "percentile", "eta", "progress"),  # cb4 / cb3 / cb2: levels follow the data
    "int4": ("per_dim", "calibration", "percentile", "eta", "progress", "margin"),  # uniform levels: a range
    "pca": ("seed", "max_iter", "max_train", "progress"),
    "pq": ("seed", "max_iter", "tol", "max_train", "progress", "eta"),
    "opq": ("seed", "max_iter", "tol", "max_train", "progress", "opq_iter", "opq_kmeans_iter", "eta"),
    "hnsw": ("M", "ef_construction", "ef_search", "progress"),
    "ivf": ("nprobe", "coarse_iter", "coarse_max_train"),  # plus those of the codec after the comma
    "float": (),
}


def _kind(codec: str) -> str:
    if codec.startswith("ivf"):
        return "ivf"
    if codec in ("float32", "fp16"):
        return "float"
    if codec in ("int4", "cb4", "cb3", "cb2"):
        return "level"
    if codec in ("pca4", "pca3", "pca2"):
        return "pca"
    if codec.startswith("pq"):
        return "pq"
    if _split_opq(codec)[0]:
        return "opq"
    return codec


def _accepted(part: str) -> tuple[str, ...]:
    """Options a spec part takes (an ivf base also takes those of its codec)."""
    ivf = _parse_ivf(part)
    return _OPTIONS["ivf"] + _accepted(ivf[1]) if ivf else _OPTIONS[_options_key(part)]


def _options_key(codec: str) -> str:
    return "int4" if codec == "int4" else _kind(codec)


def _codec_index(codec: str, dim: int, metric: str, options: dict) -> Index:
    spec = IndexSpec(codec)
    kind = _kind(codec)
    if kind == "ivf":
        from .ivf import IVFLUT4Index

        nlist, inner = _parse_ivf(codec)
        if options.get("eta", 1.0) != 1.0:
            raise ValueError(f"spec '{codec}': eta must be 1 (IVF codes residuals by their nearest centroids)")
        coded = _codec_index(inner, dim, metric, options)  # a FlatLUT4Index: its codec is what IVF needs
        coded.codec.eta = 1.0  # residuals: the anisotropic loss is about the direction of x itself
        opts = {k: v for k, v in options.items() if k in _OPTIONS["ivf"] or k == "seed"}
        return IVFLUT4Index(spec, dim, metric, nlist, coded.codec, **opts)
    opts = {k: v for k, v in options.items() if k in _OPTIONS[_options_key(codec)]}
    if codec == "float32":
        return FlatFloatIndex(spec, dim, metric, _np.float32)
    if codec == "fp16":
        return FlatFloatIndex(spec, dim, metric, _np.float16)
    if kind == "hnsw":
        from .hnsw import HnswIndex

        return HnswIndex(spec, dim, metric, **opts)
    if kind == "level":
        from ..quantizers.codebook import LevelCodec
        from .lut4 import FlatLUT4Index

        bits, levels = {"int4": (4, "uniform"), "cb4": (4, "kmeans"), "cb3": (3, "kmeans"), "cb2": (2, "kmeans")}[codec]
        # Uniform 4-bit levels waste codes on the tails: clipping 0.3% on each side per dimension gave
        # R@10 0.947 on MedQuAD dev (min/max 0.931, MSE-optimal clipping 0.932). k-means levels already
        # follow the density; clipping their training data lowered recall (0.951 -> 0.949).
        if levels == "uniform":
            opts.setdefault("calibration", "percentile")
            opts.setdefault("percentile", 0.3)
        elif metric == "ip":
            # score-aware codes for inner products (LevelCodec.encode): cb4 R@10 0.951 -> 0.962 on MedQuAD
            opts.setdefault("eta", 4.0)
        return FlatLUT4Index(spec, dim, metric, LevelCodec(bits, levels, **opts))
    if kind == "pca":
        from ..quantizers.pca import PCACodec
        from .lut4 import FlatLUT4Index

        return FlatLUT4Index(spec, dim, metric, PCACodec(int(codec[3:]), dim, metric, **opts))
    if kind in ("pq", "opq"):
        if kind == "opq":
            from ..quantizers.opq import OPQCodec as codec_class
        else:
            from ..quantizers.pq import PQCodec as codec_class

        M, nbits, _ = _parse_pq(_split_opq(codec)[1])
        if metric == "ip" and nbits == 4:
            # score-aware codes for inner products (PQCodec.encode_sub): opq,pq96x4fs R@10 0.797 -> 0.825
            opts.setdefault("eta", 4.0)
        if nbits == 8:
            from .pq8 import FlatPQ8Index

            return FlatPQ8Index(spec, dim, metric, codec_class(M, dim, 8, **opts))
        from .lut4 import FlatLUT4Index

        return FlatLUT4Index(spec, dim, metric, codec_class(M, dim, 4, **opts))
    return FlatInt8Index(spec, dim, metric, **opts)


def create(spec: str, dim: int, metric: str = "ip", *, rerank_factor: "int | None" = None,
           **options) -> Index:
    """Makes an empty index.

    spec: see :mod:`medqk.index.spec` (e.g. ``"int8"``, ``"cb4+rerank:int8"``, ``"pq96x4fs"``).
    dim: vector dimension. metric: ``"ip"`` (inner product, default) or ``"l2"`` (squared Euclidean).
    rerank_factor: candidates re-scored per result with ``+rerank`` (default 4; 16 after a ``pq`` base and 20
    after an ``ivf`` one, whose own recall@10 is near 0.7, so that the true top-10 is still among the
    candidates: on all MedQuAD dev queries, ``pq96x4fs+rerank:int8`` has R@10 0.9924 at 16, 0.9936 at 20,
    0.9900 at 12, and each candidate costs about 0.8 us per query).
    options, routed to the parts that take them: for int8, ``per_dim`` (True), ``symmetric`` (False),
    ``calibration`` (``"minmax"``, ``"percentile"``, ``"mse"``), ``percentile`` (0.1); for int4 / cb*,
    ``per_dim`` (True; False shares one set of levels, a global range), ``calibration`` and ``percentile``
    (int4 defaults to ``"percentile"``, 0.3), ``eta`` (score-aware codes: 4.0 for cb* with ``metric="ip"``,
    1.0 = nearest level otherwise), ``progress``; for pca, ``seed``, ``max_iter``, ``max_train``,
    ``progress``; for pq, ``seed`` (1234), ``max_iter`` (25), ``tol`` (1e-4), ``max_train`` (65536),
    ``progress``; for opq,pq the same plus ``opq_iter`` (20 rotation updates) and ``opq_kmeans_iter`` (4
    k-means iterations between two updates); for hnsw, ``M`` (16, at least 2), ``ef_construction`` (200),
    ``ef_search`` (64), ``progress``; for ivf<nlist>,<pq> those of the pq codec (its ``progress`` also
    covers the coarse k-means and add()) plus ``nprobe`` (min(16, nlist); settable later), ``coarse_iter``
    (20 k-means iterations) and ``coarse_max_train`` (64 * nlist vectors).

    ``progress``: tqdm bars on stderr during long training and adding steps; None (default) shows them only
    when stderr is a terminal, True always, False never (see medqk._progress).

    Training warns with :class:`SpecDataWarning` when the spec will work poorly on the data (an ivf with fewer
    than 39 training vectors per list; cb* or pca* with fewer than 8 per level; pq with fewer than 2 per
    centroid; see medqk._warnings).
    """
    parsed = parse_spec(spec)
    if isinstance(dim, bool) or not isinstance(dim, (int, _np.integer)) or dim <= 0:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    dim = int(dim)
    parts = [parsed.base] + ([parsed.rerank] if parsed.rerank else [])
    accepted = {o for part in parts for o in _accepted(part)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"spec '{parsed}' takes no option {', '.join(unknown)}"
                        + (f" (it takes: {', '.join(sorted(accepted))})" if accepted else ""))
    base = _codec_index(parsed.base, dim, metric, options)
    if parsed.rerank is None:
        return base
    refine = _codec_index(parsed.rerank, dim, metric, options)
    if rerank_factor is None:
        rerank_factor = {"pq": 16, "opq": 16, "ivf": 20}.get(_kind(parsed.base), 4)
    return RerankIndex(parsed, dim, metric, base, refine, rerank_factor)


def load(path, *, mmap: bool = False) -> Index:
    """Loads an index saved with ``Index.save``; raises IndexFileError for anything that is not one."""
    return _load_index(path, mmap=mmap)


__all__ = [
    "CODECS",
    "FlatFloatIndex",
    "FlatInt8Index",
    "Index",
    "IndexFileError",
    "IndexSpec",
    "RerankIndex",
    "SpecDataWarning",
    "create",
    "load",
    "parse_spec",
    "valid_specs",
]
