"""``evaluate``: measure what each index spec costs in retrieval quality, size and speed."""

from __future__ import annotations

import datetime as _dt
import gc
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import index as mi
from .._warnings import SpecDataWarning
from ..index import codecs
from ..index.pq8 import MAX_SUBSPACES as PQ8_MAX_M  # pq<M>x8's 16-bit scan: M <= 256
from ..index.spec import parse_spec, spec_help
from . import metrics as M
from .data import Dataset

# The MedQuAD list (d = 384): float32 down to the most compact codecs. default_schemes(dim, n) derives the list
# for other data from it: the PQ entries keep their bits per dimension, IVF joins for large collections.
DEFAULT_SCHEMES = ("float32", "fp16", "int8", "int4", "cb4", "pca4", "cb4+rerank:int8", "pca2+rerank:int8", "cb2",
                   "pca2", "pq96x4fs", "pq48x8", "pq96x4fs+rerank:int8", "hnsw")
DEFAULT_DIM = 384
METRICS = ("ip", "l2", "cos")
RECALL_KS = (1, 10, 100)
N_BOOTSTRAP = 1000
LATENCY_QUERIES = 200
# Dimensions per PQ subspace in the defaults: pq96x4fs and pq48x8 at d = 384 both spend 1 bit per dimension
# (4 dims per 4-bit code, 8 dims per byte).
PQ4_DIMS_PER_SUBSPACE = 4
PQ8_DIMS_PER_SUBSPACE = 8
# A default PQ M is the divisor of d nearest (by ratio) the 1 bit/dim target; one further than this factor from
# it (d = 97: only M = 1 or 97) is no longer the scheme the budget names, and is left out with a reason.
PQ_MAX_RATIO = 2.0
# IVF joins the defaults from this many documents: below it a flat 4-bit PQ scan of every code (48 B each for
# pq96x4fs: 2.4 MB, cache-sized) is already fast (bench/compare_ivf.py) and probing lists only loses recall.
IVF_MIN_DOCS = 50_000
# k-means wants this many training vectors per centroid (faiss warns below 39); fewer give centroids that fit
# the training sample rather than the data, and unbalanced inverted lists.
MIN_TRAIN_PER_CENTROID = 39
# Exact float64 re-scoring holds (queries x candidates x d) float64 values at a time: at most this many.
_EXACT_BLOCK_VALUES = 1 << 23


def _nearest_divisor(dim: int, target: float, max_m: int | None = None) -> int | None:
    """The divisor M of dim nearest ``target`` by ratio (ties: the larger M), at most ``max_m``; None when the
    nearest is more than PQ_MAX_RATIO away from min(target, max_m)."""
    goal = min(target, max_m) if max_m else target
    candidates = [m for m in range(1, dim + 1) if dim % m == 0 and (max_m is None or m <= max_m)]
    best = min(candidates, key=lambda m: (abs(math.log(m / goal)), -m))
    return best if max(best / goal, goal / best) <= PQ_MAX_RATIO else None


def ivf_nlist(n: int) -> int:
    """nlist for n documents: the power of two nearest 4 sqrt(n) (faiss's guide is 4-16 sqrt(n)), lowered until
    each list has MIN_TRAIN_PER_CENTROID training vectors."""
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    while nlist > 1 and n < MIN_TRAIN_PER_CENTROID * nlist:
        nlist //= 2
    return nlist


def _default_plan(dim: int, n: int | None) -> tuple[list[str], list[dict]]:
    """(default specs for this data, [{"spec", "reason"}] of the default entries that cannot be made for it)."""
    left_out: list[dict] = []
    m4 = _nearest_divisor(dim, dim / PQ4_DIMS_PER_SUBSPACE)
    m8 = _nearest_divisor(dim, dim / PQ8_DIMS_PER_SUBSPACE, PQ8_MAX_M)
    names = {"pq96x4fs": f"pq{m4}x4fs" if m4 else None, "pq48x8": f"pq{m8}x8" if m8 else None}
    schemes = []
    for spec in DEFAULT_SCHEMES:
        base, _, rerank = spec.partition("+")
        if base in names:
            if names[base] is None:
                per = PQ4_DIMS_PER_SUBSPACE if base == "pq96x4fs" else PQ8_DIMS_PER_SUBSPACE
                left_out.append({"spec": spec, "reason": f"no divisor M of d={dim} within a factor {PQ_MAX_RATIO:g} "
                                 f"of the {dim / per:g} subspaces of {per} dims (1 bit/dim) this scheme stands for"})
                continue
            spec = names[base] + (f"+{rerank}" if rerank else "")
        schemes.append(spec)
    if n is not None and n >= IVF_MIN_DOCS and m4:
        schemes.insert(schemes.index("hnsw"), f"ivf{ivf_nlist(n)},pq{m4}x4fs+rerank:int8")
    # a codec whose optional module is not installed (hnsw: hnswlib) is left out without a word
    schemes = [spec for spec in schemes if not any(codecs.row(p).missing_requirement() for p in _parts(spec))]
    return schemes, left_out


def default_schemes(dim: int | None = None, n: int | None = None) -> list[str]:
    """The default spread for ``dim``-dimensional data with ``n`` documents (no arguments: MedQuAD, d = 384):
    float32 (reference) down to the most compact codecs.

    PQ keeps the bits per dimension of the 384-d list (pq96x4fs and pq48x8: 1 bit/dim): M is the divisor of d
    nearest d / 4 (4-bit codes) and d / 8 (8-bit codes, at most 256 subspaces), by ratio, larger on a tie; a
    PQ entry is left out when no divisor lies within a factor 2 (a prime d). ``ivf<nlist>,pq<M>x4fs+rerank:int8``
    joins from 50,000 documents, nlist the power of two nearest 4 sqrt(n) with >= 39 documents per list.
    ``hnsw`` only when hnswlib is installed.
    """
    if dim is None:
        dim = DEFAULT_DIM
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    return _default_plan(int(dim), None if n is None else int(n))[0]


class Progress:
    """One line per step on a terminal (rewritten in place), plain lines otherwise; silent if disabled."""

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.perf_counter() - self.t0:6.1f}s] {message}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def warn(self, message: str) -> None:
        """A line that stays on screen (the next step does not overwrite it on a terminal)."""
        if not self.enabled:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + f"warning: {message}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class EvalResult:
    """``schemes``: one dict per evaluated spec; ``skipped``: {"spec", "reason"} of the specs that could not be
    built or searched on this data. ``meta["partial"]``: the run was cut short (``meta["partial_reason"]``).
    ``models``: with a model axis (:func:`medqk.eval.evaluate_model`), each model precision's size and speed,
    and the schemes' specs are "<model precision>/<index spec>"."""

    meta: dict
    reference: dict
    schemes: list[dict]
    recommendation: dict
    robustness: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    models: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "meta": self.meta,
            "reference": self.reference,
            "schemes": self.schemes,
            "skipped": self.skipped,
            "recommendation": self.recommendation,
            "robustness": self.robustness,
        }
        if self.models:  # medqk eval --model: one entry per model precision (medqk.eval.model)
            out["models"] = self.models
        return out

    def to_dataframe(self):
        """One row per scheme (needs pandas)."""
        import pandas as pd

        return pd.DataFrame([_flat_row(s) for s in self.schemes]).set_index("spec")

    def scheme(self, spec: str) -> dict:
        for s in self.schemes:
            if s["spec"] == spec:
                return s
        raise KeyError(spec)


def _flat_row(s: dict) -> dict:
    row = {"spec": s["spec"]}
    for key, value in s.items():
        if isinstance(value, dict):
            for k2, v2 in value.items():
                if not isinstance(v2, (dict, list)):
                    row[f"{key}.{k2}"] = v2
        elif not isinstance(value, list):
            row[key] = value
    return row


def _check_schemes(schemes) -> list[str]:
    if isinstance(schemes, str):
        raise TypeError(f"schemes must be a list of specs such as ['float32', 'int8'], got the string {schemes!r}")
    out = []
    for spec in schemes:
        try:
            parsed = parse_spec(spec)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        for part in _parts(spec):
            missing = codecs.row(part).missing_requirement()
            if missing:
                raise ValueError(f"scheme '{part}' needs {missing} (pip install {missing})")
        out.append(str(parsed))
    if not out:
        raise ValueError(f"no schemes given; valid specs: {spec_help()}")
    return out


def _check_metric(metric, data: Dataset) -> str:
    """The metric to evaluate: the argument, else the one the data declares, else inner product."""
    if metric is None:
        metric = getattr(data, "metric", None) or "ip"
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def _normalized(x: np.ndarray, role: str) -> np.ndarray:
    """Rows scaled to unit length for cosine similarity; a zero row has no direction and is refused."""
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"metric 'cos': {zero.size} of the {role} are zero vectors (first: row {zero[0]}); "
                         f"a zero vector has no cosine similarity: remove it or use metric 'ip' or 'l2'")
    return (x / norms[:, None]).astype(np.float32)


def _reference(docs: np.ndarray, queries: np.ndarray, kmax: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-kmax (metric "ip" or "l2"): float32 BLAS for candidates, float64 to order them.

    Scores are higher-is-better: inner products, or negated squared L2 distances."""
    ref = mi.create("float32", docs.shape[1], metric).add(docs)
    _, cand = ref.search(queries, min(docs.shape[0], kmax + 16))
    exact = _exact_scores(docs, queries, cand, metric)
    order = np.lexsort((cand, -exact), axis=1)[:, :kmax]
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(cand, order, axis=1)


def _exact_scores(docs: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str = "ip") -> np.ndarray:
    """float64 scores of docs[ids] for each query, higher is better: q.x ("ip") or -|q - x|^2 ("l2");
    -inf where ids is -1 (padding)."""
    out = np.full(ids.shape, -np.inf)
    width = max(1, ids.shape[1] * docs.shape[1])
    step = max(1, _EXACT_BLOCK_VALUES // width)
    for q0 in range(0, len(queries), step):
        blk = ids[q0 : q0 + step]
        valid = blk >= 0
        vec = docs[np.where(valid, blk, 0)].astype(np.float64)
        q = queries[q0 : q0 + step].astype(np.float64)
        if metric == "l2":
            vec -= q[:, None, :]
            s = -np.einsum("qkd,qkd->qk", vec, vec)
        else:
            s = np.einsum("qkd,qd->qk", vec, q)
        out[q0 : q0 + step] = np.where(valid, s, -np.inf)
    return out


NEIGHBORS_OK = 0.99  # share of the file's top-k that medqk's exact top-k must hold for the check to pass


def _neighbors_check(neighbors, docs, queries, ref_scores, metric: str) -> dict:
    """How far the true neighbours a data file gives agree with medqk's exact reference (tie-aware: a file
    neighbour counts when its exact score reaches medqk's k-th best)."""
    nq, n = queries.shape[0], docs.shape[0]
    nb = np.asarray(neighbors)
    if nb.ndim != 2 or nb.shape[0] < nq:
        return {"k": 0, "agreement": 0.0, "ok": False,
                "message": f"the file's neighbors have shape {nb.shape}, fewer rows than the {nq} queries: not checked"}
    k = min(nb.shape[1], ref_scores.shape[1])
    nb = nb[:nq, :k].astype(np.int64)
    if ((nb < -1) | (nb >= n)).any():
        return {"k": k, "agreement": 0.0, "ok": False,
                "message": f"the file's neighbors point outside the {n} documents: they do not belong to these "
                           f"docs; not checked"}
    got = _exact_scores(docs, queries, nb, "l2" if metric == "l2" else "ip")
    agreement = float(M.recall_at_k(got, ref_scores, k).mean())
    ok = agreement >= NEIGHBORS_OK
    name = {"ip": "inner product", "l2": "L2", "cos": "cosine"}[metric]
    if ok:
        message = (f"the file's top-{k} neighbors agree with medqk's exact {name} top-{k} "
                   f"({agreement:.1%} of them, {nq} queries)")
    else:
        message = (f"the file's top-{k} neighbors disagree with medqk's exact {name} top-{k}: only {agreement:.1%} "
                   f"of them are found; the file's distance is probably not the metric evaluated (choose --metric)")
    return {"k": k, "agreement": agreement, "ok": ok, "message": message}


def _peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover
        return None


def _build(spec: str, docs: np.ndarray, train_docs: np.ndarray | None = None, metric: str = "ip"):
    index = mi.create(spec, docs.shape[1], metric)
    t0 = time.perf_counter()
    index.train(train_docs if train_docs is not None else docs)
    t1 = time.perf_counter()
    index.add(docs)
    t2 = time.perf_counter()
    return index, t1 - t0, t2 - t1


def _parts(spec: str) -> list[str]:
    """The indexes a spec is made of: itself, or its base and its rerank codec."""
    parsed = parse_spec(spec)
    return [parsed.base] + ([parsed.rerank] if parsed.rerank else [])


class _PartCache:
    """Trained indexes shared by the specs of one run: ``cb4`` and ``cb4+rerank:int8`` train the same cb4 codes
    (same options, same seed), so the second reuses them instead of training again (at d = 4096 one cb4 or pca2
    build takes minutes). An index is kept only while a later spec still needs it."""

    def __init__(self, schemes: list[str]):
        self.remaining: dict[str, int] = {}
        for spec in schemes:
            for part in _parts(spec):
                self.remaining[part] = self.remaining.get(part, 0) + 1
        self.built: dict[str, tuple] = {}

    def build(self, spec: str, docs: np.ndarray, metric: str):
        """(index, train seconds, add seconds) of spec; the times include those of reused parts."""
        parsed = parse_spec(spec)
        made = []
        for part in _parts(spec):
            entry = self.built.get(part)
            if entry is None:
                entry = _build(part, docs, metric=metric)
                if self.remaining[part] > 1:
                    self.built[part] = entry
            made.append(entry)
        if parsed.rerank is None:
            return made[0]
        index = mi.create(spec, docs.shape[1], metric)  # the rerank factor create() picks for this base
        index.base, index.refine = made[0][0], made[1][0]
        index._ntotal = docs.shape[0]  # both parts hold every document already
        return index, made[0][1] + made[1][1], made[0][2] + made[1][2]

    def done(self, spec: str) -> None:
        """spec has been measured (or failed): drop the parts no later spec needs."""
        for part in _parts(spec):
            self.remaining[part] -= 1
            if self.remaining[part] == 0:
                self.built.pop(part, None)


def _recon_mse(index, docs: np.ndarray) -> float | None:
    target = getattr(index, "base", index)
    if not hasattr(target, "vectors") or type(target).__name__ == "HnswIndex":
        return None
    rec = target.vectors()
    return float(np.mean((rec.astype(np.float64) - docs) ** 2))


def _ci(values, seed):
    mean, lo, hi = M.bootstrap_mean_ci(values, n_resamples=N_BOOTSTRAP, seed=seed)
    return {"mean": mean, "ci95": [lo, hi]}


def _spec_data_checks(spec: str, n: int, dim: int) -> list[str]:
    """Why ``spec`` may work badly on n training vectors of dimension dim, beyond what its training says (the
    indexes warn with SpecDataWarning themselves for IVF lists and codebooks with too few training vectors)."""
    parsed = parse_spec(spec)
    return [f"{spec}: {n:,} training vectors in {dim} dimensions: the PCA covariance has rank < {dim}, its last "
            f"directions are noise"
            for part in [parsed.base] + ([parsed.rerank] if parsed.rerank else [])
            if codecs.row(part).kind == "pca" and n <= dim]


def _failure_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, TypeError, RuntimeError)) else f"{type(exc).__name__}: {text}"


class _RayTasks:
    """``evaluate(engine="ray")``: the schemes and the cross-validation folds as Ray tasks (medqk.distributed
    connects). The workers get the driver's BLAS thread count (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, or
    its core count), so that training rounds as it does here and the report equals the local run's."""

    def __init__(self, address):
        import os

        from ..distributed._engine import connect

        self.ray = connect(address)
        blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
        env = {"env_vars": {"OPENBLAS_NUM_THREADS": blas, "OMP_NUM_THREADS": blas}}
        self._scheme = self.ray.remote(_scheme_task).options(runtime_env=env)
        self._fold = self.ray.remote(_fold_task).options(runtime_env=env)
        self._refs: dict[int, object] = {}
        self._submitted: list = []  # every task's result reference, for the progress lines

    def submit(self, task, *args):
        ref = task.remote(*args)
        self._submitted.append(ref)
        return ref

    def finished(self) -> str:
        """How many of the tasks submitted so far have finished, for a progress line ("3/10 Ray tasks done")."""
        done, _ = self.ray.wait(self._submitted, num_returns=len(self._submitted), timeout=0)
        return f"{len(done)}/{len(self._submitted)} Ray tasks done"

    def put(self, arr):
        """An object-store copy of a large argument, made once per array."""
        if id(arr) not in self._refs:
            self._refs[id(arr)] = (arr, self.ray.put(arr))
        return self._refs[id(arr)][1]


def _where() -> dict:
    import os
    import socket

    return {"engine": "ray", "host": socket.gethostname(), "pid": os.getpid()}


def _scheme_task(spec, docs, queries, k, kmax, ks, ref_scores, float_rel, qrels, threads, seed, metric, ref_docs,
                 ref_queries):
    """One scheme built and measured in a Ray worker: (row, None, SpecDataWarning messages) or (None, the
    reason it failed, messages). The row's ``measured_on`` says where its timings were taken. (Arrays come as
    arguments of their own: Ray resolves object references only there, not inside a tuple.)"""
    reference = (ref_docs, ref_queries)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpecDataWarning)
        try:
            index, t_train, t_add = _PartCache([spec]).build(spec, docs, metric)
            row = _measure(spec, index, docs, queries, k, kmax, ks, ref_scores, float_rel, qrels, threads, seed,
                           metric, t_train, t_add, reference)
            row["measured_on"] = _where()
            reason = None
        except Exception as exc:  # noqa: BLE001 -- reported as the local run reports it
            row, reason = None, _failure_reason(exc)
    return row, reason, [str(w.message) for w in caught if issubclass(w.category, SpecDataWarning)]


def _fold_task(spec, docs, train, held, queries, k, threads, metric):
    """One cross-validation fold in a Ray worker: (mean recall, None) or (None, the reason it failed)."""
    try:
        return float(_subset_recall(spec, docs[train], docs[held], queries, k, threads, metric).mean()), None
    except Exception as exc:  # noqa: BLE001
        return None, _failure_reason(exc)


class _TaskFailed(RuntimeError):
    """A scheme that failed in its Ray task, with the reason the task gave."""


def evaluate(
    data: Dataset,
    schemes=None,
    *,
    k: int = 10,
    metric: str | None = None,
    threads: int | None = None,
    recall_target: float = 0.95,
    seed: int = 0,
    cv: int | None = None,
    shift: str | None = None,
    progress: bool = False,
    reference_vectors: tuple[np.ndarray, np.ndarray] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> EvalResult:
    """Evaluates every spec in ``schemes`` on ``data`` and returns an :class:`EvalResult`.

    schemes: index specs; None = :func:`default_schemes` for this data's dimension and size. A spec that does
    not parse raises ValueError before any work; one that parses but cannot be built or searched on this data
    (e.g. ``pq96x4fs`` at d = 256) is recorded in ``EvalResult.skipped`` with the reason, and the run goes on.
    metric: ``"ip"`` (inner product), ``"l2"`` (squared Euclidean distance, smaller is better) or ``"cos"``
    (docs and queries scaled to unit length, then inner product; a zero vector raises ValueError); None = the
    metric the data declares (``data.metric``, e.g. an ann-benchmarks file's ``distance``), else ``"ip"``.
    When ``data.neighbors`` gives true neighbours, they are checked against the exact reference
    (``reference["neighbors_check"]``; a disagreement is a warning).

    Per scheme: recall@1/10/100 against exact float search (tie-aware), distance-threshold recall,
    the share of queries whose top-k is fully kept, relevance metrics (when ``data.qrels``) with paired
    bootstrap 95% CIs of the change vs exact float search, bytes/vector, index bytes, train/add time,
    batch QPS, single-query latency p50/p99, peak RSS during search, reconstruction MSE. Optional
    robustness runs: ``cv`` folds and ``shift`` over a document field. Warnings about specs that do not
    suit the data (too few vectors for their centroids) are in ``meta["warnings"]``.

    reference_vectors: (docs, queries) of another embedding of the same rows (the float32 model's, when
    ``data`` holds a quantized model's): the reference is then exact search over them, so recall@k says how many
    of the reference pipeline's top-k each scheme finds (scored in the reference space, tie-aware) and the
    relevance changes are against the reference pipeline. ``cv`` and ``shift`` stay within ``data``'s vectors.

    engine: ``"local"`` (default) or ``"ray"``: each scheme, and each cross-validation fold, is then a Ray task
    on the cluster at ``address`` (None: the Ray instance of this process, else a new local one; medqk's
    ``ray`` extra); the report equals the local run's but for the timing fields (train_s, add_s, qps,
    latency_ms, peak_rss_mib, and the recommendation's fastest scheme, picked by QPS), measured where each task
    ran, which each row's ``measured_on`` records.

    Ctrl-C (KeyboardInterrupt) during the schemes or robustness runs returns the result of the schemes that
    finished, with ``meta["partial"]`` True and ``meta["partial_reason"]``; before the first scheme finishes
    it propagates.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not 0 < recall_target <= 1:
        raise ValueError(f"recall_target must be in (0, 1], got {recall_target!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    metric = _check_metric(metric, data)
    tasks = _RayTasks(address) if engine == "ray" else None  # an unreachable cluster fails before any work
    docs, queries = data.docs, data.queries
    n, nq, dim = docs.shape[0], queries.shape[0], docs.shape[1]
    if schemes is None:
        schemes, skipped = _default_plan(dim, n)
    else:
        schemes, skipped = _check_schemes(schemes), []
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} documents")
    if metric == "cos":
        docs, queries = _normalized(docs, "docs"), _normalized(queries, "queries")
    index_metric = "l2" if metric == "l2" else "ip"
    ref_docs, ref_queries = _reference_vectors(reference_vectors, docs, queries, metric)
    say = Progress(progress)
    notes: list[str] = []

    def warn(message: str) -> None:
        if message not in notes:
            notes.append(message)
            say.warn(message)

    for entry in skipped:
        say.warn(f"{entry['spec']} skipped: {entry['reason']}")
    kmax = min(n, max(RECALL_KS + (k,)))
    say(f"exact float reference ({metric}): {nq} queries x {n} docs")
    ref_scores, ref_ids = _reference(ref_docs, ref_queries, kmax, index_metric)
    ks = [kk for kk in sorted(set(RECALL_KS + (k,))) if kk <= n]

    float_rel = M.relevance_metrics(ref_ids, data.qrels, k) if data.qrels is not None else None
    reference = {"k": k, "recall_ks": ks, "n_docs": n, "n_queries": nq, "dim": dim, "metric": metric}
    if float_rel is not None:
        reference["relevance"] = {m: float(v.mean()) for m, v in float_rel.items() if m != "mask"}
        reference["n_judged_queries"] = int(float_rel["mask"].sum())
    if getattr(data, "neighbors", None) is not None:
        check = _neighbors_check(data.neighbors, ref_docs, ref_queries, ref_scores, metric)
        reference["neighbors_check"] = check
        say(check["message"])
        if not check["ok"]:
            warn(check["message"])

    parts = _PartCache(schemes)
    if tasks is not None:  # every scheme at once; their results are taken in order below
        pending = {spec: tasks.submit(tasks._scheme, spec, tasks.put(docs), tasks.put(queries), k, kmax, ks,
                                      tasks.put(ref_scores), float_rel, data.qrels, threads, seed, index_metric,
                                      tasks.put(ref_docs), tasks.put(ref_queries))
                   for spec in schemes}
    rows: list[dict] = []
    partial_reason = None
    for si, spec in enumerate(schemes):
        step = f"[{si + 1}/{len(schemes)}] {spec}"
        index = row = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SpecDataWarning)  # ours to record; others keep the caller's filters
                if tasks is not None:
                    say(f"{step}: Ray task ({tasks.finished()})")
                    row, reason, messages = tasks.ray.get(pending.pop(spec))
                    for message in messages:
                        warnings.warn(message, SpecDataWarning, stacklevel=1)
                    if reason is not None:
                        raise _TaskFailed(reason)
                else:
                    say(f"{step}: train + add")
                    gc.collect()
                    index, t_train, t_add = parts.build(spec, docs, index_metric)
                    say(f"{step}: search")
                    row = _measure(spec, index, docs, queries, k, kmax, ks, ref_scores, float_rel, data.qrels,
                                   threads, seed, index_metric, t_train, t_add, (ref_docs, ref_queries))
        except KeyboardInterrupt:
            partial_reason = f"interrupted by Ctrl-C after {len(rows)} of {len(schemes)} schemes (during {spec})"
            break
        except Exception as exc:  # noqa: BLE001 -- whatever a spec raises on this data is its reason to be skipped
            reason = _failure_reason(exc)
            skipped.append({"spec": spec, "reason": reason})
            say.warn(f"{spec} skipped: {reason}")
        finally:
            del index
            parts.done(spec)
        from_training = []
        for w in caught:
            if issubclass(w.category, SpecDataWarning):
                from_training.append(f"{spec}: {w.message}")
            else:  # one the caller's filters let through: show it as it would have been shown
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        if row is None:
            continue
        for message in from_training + _spec_data_checks(spec, n, dim):
            warn(message)
        rows.append(row)
        say(f"{step}: recall@{k} {row['recall'][f'recall@{k}']['mean']:.4f}, {row['qps']:.0f} QPS")

    if not rows and partial_reason is not None:
        say.done()
        raise KeyboardInterrupt(partial_reason)
    ok_specs = [r["spec"] for r in rows]
    meta = _meta(threads, seed, data)
    result = EvalResult(meta, reference, rows, _recommend(rows, k, recall_target), skipped=skipped)
    work = data if metric != "cos" else _replace_vectors(data, docs, queries)
    phase = None
    try:
        if cv and partial_reason is None:
            phase = "cross-validation"
            result.robustness["cv"] = _cross_validate(work, ok_specs, k, cv, seed, threads, say, index_metric, warn,
                                                      tasks)
        if shift and partial_reason is None:
            phase = "shift"
            result.robustness["shift"] = _shift(work, ok_specs, k, shift, threads, say, index_metric, warn)
    except KeyboardInterrupt:
        partial_reason = f"interrupted by Ctrl-C during the {phase} run, after all {len(schemes)} schemes"
    meta.update(metric=metric, partial=partial_reason is not None, warnings=notes, schemes_planned=list(schemes))
    if partial_reason is not None:
        meta["partial_reason"] = partial_reason
    else:
        say("done")
    say.done()
    return result


def _reference_vectors(vectors, docs: np.ndarray, queries: np.ndarray, metric: str):
    """The (docs, queries) exact search runs over: ``vectors`` (checked, scaled for "cos") or the data's own."""
    if vectors is None:
        return docs, queries
    ref_docs, ref_queries = (np.ascontiguousarray(v, dtype=np.float32) for v in vectors)
    for role, ref, own in (("docs", ref_docs, docs), ("queries", ref_queries, queries)):
        if ref.ndim != 2 or ref.shape[0] != own.shape[0]:
            raise ValueError(f"reference_vectors: {role} must have shape ({own.shape[0]}, d), got {ref.shape}")
        if not np.isfinite(ref).all():
            raise ValueError(f"reference_vectors: {role} contain NaN or Inf")
    if ref_docs.shape[1] != ref_queries.shape[1]:
        raise ValueError(f"reference_vectors: docs have dimension {ref_docs.shape[1]}, queries "
                         f"{ref_queries.shape[1]}")
    if metric == "cos":
        return _normalized(ref_docs, "reference docs"), _normalized(ref_queries, "reference queries")
    return ref_docs, ref_queries


def _replace_vectors(data: Dataset, docs: np.ndarray, queries: np.ndarray) -> Dataset:
    import dataclasses

    return dataclasses.replace(data, docs=docs, queries=queries)


def _measure(spec, index, docs, queries, k, kmax, ks, ref_scores, float_rel, qrels, threads, seed, metric,
             t_train, t_add, reference=None) -> dict:
    """One scheme's row. ``reference``: the (docs, queries) the reference top-k was found in, in which the
    returned ids are scored (default: docs and queries themselves)."""
    nq = queries.shape[0]
    score_docs, score_queries = reference if reference is not None else (docs, queries)
    index.search(queries[: min(nq, 32)], k, threads=threads)  # warm-up (JIT, packing)
    _peak_rss_reset()
    t0 = time.perf_counter()
    _, ids_k = index.search(queries, k, threads=threads)
    t_search = time.perf_counter() - t0
    peak = _peak_rss_mib()
    _, ids = index.search(queries, kmax, threads=threads) if kmax > k else (None, ids_k)
    lat = []
    for qi in range(min(nq, LATENCY_QUERIES)):
        t0 = time.perf_counter()
        index.search(queries[qi : qi + 1], k, threads=1)
        lat.append(time.perf_counter() - t0)
    got_k = _exact_scores(score_docs, score_queries, ids_k, metric)
    got = _exact_scores(score_docs, score_queries, ids, metric) if kmax > k else got_k
    # recall@kk from the search that asked for kk results or the next larger one
    per_q = {f"recall@{kk}": M.recall_at_k(got_k if kk <= k else got, ref_scores, kk) for kk in ks}
    thr = M.threshold_recall(got_k, ref_scores, k)
    row = {
        "spec": spec,
        "bytes_per_vector": float(index.bytes_per_vector),
        "index_bytes": int(index.nbytes),
        "train_s": t_train,
        "add_s": t_add,
        "qps": nq / t_search,
        "latency_ms": {"p50": float(np.percentile(lat, 50) * 1e3), "p99": float(np.percentile(lat, 99) * 1e3)},
        "peak_rss_mib": peak,
        "recon_mse": _recon_mse(index, docs),
        "recall": {name: _ci(v, seed) for name, v in per_q.items()},
        "threshold_recall": float(thr.mean()),
        "full_topk_kept": float((per_q[f"recall@{k}"] == 1.0).mean()),
    }
    if float_rel is not None:
        rel = M.relevance_metrics(ids_k, qrels, k)
        row["relevance"] = {}
        for m in ("mrr", "ndcg", "precision", "recall", "f1"):
            diff, lo, hi = M.paired_bootstrap_ci(rel[m], float_rel[m], n_resamples=N_BOOTSTRAP, seed=seed)
            row["relevance"][m] = {"value": float(rel[m].mean()), "delta_vs_float": diff, "delta_ci95": [lo, hi]}
    return row


def _recommend(rows: list[dict], k: int, target: float) -> dict:
    key = f"recall@{k}"
    ok = [r for r in rows if r["recall"][key]["ci95"][0] >= target]
    rec = {"recall_target": target, "criterion": f"lower 95% bootstrap bound of {key} >= {target}"}
    if not ok:
        rec["smallest"] = rec["fastest"] = None
        rec["statement"] = f"no scheme reaches {key} >= {target} with 95% confidence"
        return rec
    smallest = min(ok, key=lambda r: (r["bytes_per_vector"], -r["qps"]))
    fastest = max(ok, key=lambda r: (r["qps"], -r["bytes_per_vector"]))
    rec["smallest"], rec["fastest"] = smallest["spec"], fastest["spec"]
    rec["statement"] = (
        f"smallest meeting the target: {smallest['spec']} ({smallest['bytes_per_vector']:.0f} B/vector, "
        f"{key} {smallest['recall'][key]['mean']:.4f}); fastest: {fastest['spec']} ({fastest['qps']:.0f} QPS)"
    )
    return rec


def _subset_recall(spec, train, docs, queries, k, threads, metric="ip") -> np.ndarray:
    index, _, _ = _build(spec, docs, train, metric)
    ref_scores, _ = _reference(docs, queries, k, metric)
    _, ids = index.search(queries, k, threads=threads)
    return M.recall_at_k(_exact_scores(docs, queries, ids, metric), ref_scores, k)


def _cross_validate(data: Dataset, schemes, k, folds, seed, threads, say, metric="ip", warn=None,
                    tasks: _RayTasks | None = None) -> dict:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"cv must be an int >= 2, got {folds!r}")
    n = data.docs.shape[0]
    if n // folds < k:
        raise ValueError(f"cv={folds} leaves folds of {n // folds} docs, fewer than k={k}")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, folds)
    out = {"folds": folds, "schemes": {}}
    splits = [(np.sort(np.concatenate([parts[g] for g in range(folds) if g != f])), np.sort(parts[f]))
              for f in range(folds)]
    if tasks is not None:  # the whole spec x fold grid at once
        pending = {(spec, f): tasks.submit(tasks._fold, spec, tasks.put(data.docs), train, held,
                                           tasks.put(data.queries), k, threads, metric)
                   for spec in schemes for f, (train, held) in enumerate(splits)}
    for spec in schemes:
        values = []
        try:
            for f, (train, held) in enumerate(splits):
                say(f"cv {spec}: fold {f + 1}/{folds}" + (f" ({tasks.finished()})" if tasks is not None else ""))
                if tasks is not None:
                    value, reason = tasks.ray.get(pending.pop((spec, f)))
                    if reason is not None:
                        raise _TaskFailed(reason)
                    values.append(value)
                    continue
                r = _subset_recall(spec, data.docs[train], data.docs[held], data.queries, k, threads, metric)
                values.append(float(r.mean()))
        except Exception as exc:  # noqa: BLE001 -- e.g. IVF with more lists than a fold has vectors
            if warn is not None:
                warn(f"cv {spec} left out: {_failure_reason(exc)}")
            continue
        out["schemes"][spec] = {f"recall@{k}": values, "mean": float(np.mean(values)), "std": float(np.std(values))}
    return out


def _shift(data: Dataset, schemes, k, field_name, threads, say, metric="ip", warn=None) -> dict:
    if data.doc_fields is None:
        raise ValueError("--shift needs document fields (docs.jsonl in the data folder)")
    values = [rec.get(field_name) for rec in data.doc_fields]
    if all(v is None for v in values):
        raise ValueError(f"--shift {field_name!r}: no document has this field")
    groups: dict[str, np.ndarray] = {}
    for g in sorted({str(v) for v in values}):
        groups[g] = np.flatnonzero(np.array([str(v) == g for v in values]))
    groups = {g: rows for g, rows in groups.items() if len(rows) >= max(50, 2 * k) and len(values) - len(rows) >= k}
    if not groups:
        raise ValueError(f"--shift {field_name!r}: no group has enough documents (>= {max(50, 2 * k)})")
    out = {"field": field_name, "groups": {}}
    for spec in schemes:
        per_group = {}
        try:
            for g, rows in groups.items():
                say(f"shift {spec}: calibrate on {field_name}={g}")
                others = np.setdiff1d(np.arange(len(values)), rows)
                docs = data.docs[others]
                shifted = _subset_recall(spec, data.docs[rows], docs, data.queries, k, threads, metric).mean()
                in_dist = _subset_recall(spec, docs, docs, data.queries, k, threads, metric).mean()
                per_group[g] = {"n_train_docs": len(rows), "recall_shifted": float(shifted),
                                "recall_in_distribution": float(in_dist), "drop": float(in_dist - shifted)}
        except Exception as exc:  # noqa: BLE001 -- e.g. a group with fewer vectors than the spec's centroids
            if warn is not None:
                warn(f"shift {spec} left out: {_failure_reason(exc)}")
            continue
        drops = [v["drop"] for v in per_group.values()]
        out["groups"][spec] = {"per_group": per_group, "mean_drop": float(np.mean(drops)),
                               "max_drop": float(np.max(drops))}
    return out


# distributions whose versions a report records (importlib.metadata names), when installed
_VERSIONED = ("numpy", "numba", "hnswlib", "h5py", "matplotlib", "tqdm")


def _versions(medqk_version: str) -> dict:
    from importlib import metadata

    versions = {"medqk": medqk_version, "python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _meta(threads, seed, data: Dataset) -> dict:
    import medqk

    info = medqk.info()
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "dataset": data.name,
        "source": data.source,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(info["version"]),
        "cpu": cpu or platform.processor() or platform.machine(),
        "backend": info["backend"],
        "isa": info["isa"],
        "threads": threads if threads else info["threads"]["cpu_count"],
        "seed": seed,
        "bootstrap_resamples": N_BOOTSTRAP,
        "metric": "ip",
        "partial": False,
        "warnings": [],
    }
