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
from . import codecs as _codecs
from .flat import METRICS as _METRICS
from .flat import FlatFloatIndex, FlatInt8Index, Index, RerankIndex
from .io import IndexFileError
from .io import load_index as _load_index
from .spec import CODECS, IndexSpec, parse_spec, valid_specs


def _accepted(part: str) -> tuple[str, ...]:
    """Options a spec part takes (an ivf base also takes those of its codec): its row of the codec table."""
    return tuple(_codecs.defaults(part, "ip"))


def _checked(spec, dim, metric) -> tuple[IndexSpec, int]:
    """(parsed spec, dim as an int), or the error create() raises for a bad spec, dim or metric."""
    parsed = parse_spec(spec)
    if isinstance(dim, bool) or not isinstance(dim, (int, _np.integer)) or dim <= 0:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    return parsed, int(dim)


def _create(parsed: IndexSpec, dim: int, metric: str, options: dict, refine_options: dict,
            rerank_factor: "int | None") -> Index:
    """The index of a parsed spec, its parts built from the codec table (``options`` for the base,
    ``refine_options`` for the rerank codec; each part takes the options its row lists)."""
    base = _codecs.build(parsed.base, dim, metric, options)
    if parsed.rerank is None:
        return base
    refine = _codecs.build(parsed.rerank, dim, metric, refine_options)
    if rerank_factor is None:
        rerank_factor = _codecs.row(parsed.base).rerank_factor
    return RerankIndex(parsed, dim, metric, base, refine, rerank_factor)


def create(spec: str, dim: int, metric: str = "ip", *, rerank_factor: "int | None" = None,
           **options) -> Index:
    """Makes an empty index.

    spec: see :mod:`medqk.index.spec` (e.g. ``"int8"``, ``"cb4+rerank:int8"``, ``"pq96x4fs"``).
    dim: vector dimension. metric: ``"ip"`` (inner product, default), ``"l2"`` (squared Euclidean) or ``"cos"``
    (cosine similarity: vectors are scaled to unit norm when trained on, added and searched, and scored by
    inner product, best first; a zero vector is refused with ValueError).
    rerank_factor: candidates re-scored per result with ``+rerank`` (default 4; 16 after a ``pq`` base and 20
    after an ``ivf`` one, whose own recall@10 is near 0.7, so that the true top-10 is still among the
    candidates: on all MedQuAD dev queries, ``pq96x4fs+rerank:int8`` has R@10 0.9924 at 16, 0.9936 at 20,
    0.9900 at 12; each candidate costs one int8 dot product of the dimension per query).
    options, routed to the parts that take them: for int8, ``per_dim`` (True), ``symmetric`` (False),
    ``calibration`` (``"minmax"``, ``"percentile"``, ``"mse"``), ``percentile`` (0.1); for int4 / cb*,
    ``per_dim`` (True; False shares one set of levels, a global range), ``calibration`` and ``percentile``
    (int4 defaults to ``"percentile"``, 0.3), ``eta`` (score-aware codes: 4.0 for cb* with ``metric="ip"``,
    1.0 = nearest level otherwise), ``progress``; for pca, ``seed``, ``max_iter``, ``max_train``,
    ``progress``; for pq, ``seed`` (1234), ``max_iter`` (25), ``tol`` (1e-4), ``max_train`` (65536),
    ``progress``; for opq,pq the same plus ``opq_iter`` (20 rotation updates) and ``opq_kmeans_iter`` (4
    k-means iterations between two updates); for rabitq, ``query_bits`` (4), ``seed`` (1234), ``eps0`` (1.9, the
    error bound's confidence parameter), ``aware_passes`` (2; 0: the paper's sign codes) and ``aware_mix`` (0.3);
    for rabitq<b>, ``query_bits`` (6 for b = 2, else 8), ``seed`` and ``eps0``;
    for hnsw, ``M`` (16, at least 2), ``ef_construction`` (200),
    ``ef_search`` (64), ``progress``; for ivf<nlist>,<pq> those of the pq codec (its ``progress`` also
    covers the coarse k-means and add()) plus ``nprobe`` (min(16, nlist); settable later), ``coarse_iter``
    (20 k-means iterations) and ``coarse_max_train`` (64 * nlist vectors).

    ``progress``: tqdm bars on stderr during long training and adding steps; None (default) shows them only
    when stderr is a terminal, True always, False never (see medqk._progress).

    Training warns with :class:`SpecDataWarning` when the spec will work poorly on the data (an ivf with fewer
    than 39 training vectors per list; cb* or pca* with fewer than 8 per level; pq with fewer than 2 per
    centroid; see medqk._warnings).
    """
    parsed, dim = _checked(spec, dim, metric)
    parts = [parsed.base] + ([parsed.rerank] if parsed.rerank else [])
    accepted = {o for part in parts for o in _accepted(part)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"spec '{parsed}' takes no option {', '.join(unknown)}"
                        + (f" (it takes: {', '.join(sorted(accepted))})" if accepted else ""))
    return _create(parsed, dim, metric, options, options, rerank_factor)


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
