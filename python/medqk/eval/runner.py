"""``evaluate``: measure what each index spec costs in retrieval quality, size and speed."""

from __future__ import annotations

import datetime as _dt
import gc
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import index as mi
from ..index.spec import parse_spec, valid_specs
from . import metrics as M
from .data import Dataset

DEFAULT_SCHEMES = ("float32", "fp16", "int8", "int4", "cb4", "pca4", "cb4+rerank:int8", "pca2+rerank:int8", "cb2",
                   "pca2", "pq96x4fs", "pq48x8", "pq96x4fs+rerank:int8", "hnsw")
RECALL_KS = (1, 10, 100)
N_BOOTSTRAP = 1000
LATENCY_QUERIES = 200


def default_schemes() -> list[str]:
    """The default spread: float32 (reference) down to the most compact codecs available."""
    schemes = list(DEFAULT_SCHEMES)
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        schemes.remove("hnsw")
    return schemes


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

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class EvalResult:
    meta: dict
    reference: dict
    schemes: list[dict]
    recommendation: dict
    robustness: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "meta": self.meta,
            "reference": self.reference,
            "schemes": self.schemes,
            "recommendation": self.recommendation,
            "robustness": self.robustness,
        }

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
    out = []
    for spec in schemes:
        try:
            parsed = parse_spec(spec)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        if parsed.base == "hnsw":
            try:
                import hnswlib  # noqa: F401
            except ImportError:
                raise ValueError("scheme 'hnsw' needs hnswlib (pip install hnswlib)") from None
        out.append(str(parsed))
    if not out:
        raise ValueError(f"no schemes given; valid specs: {', '.join(valid_specs())}")
    return out


def _reference(docs: np.ndarray, queries: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-kmax by inner product: float32 BLAS for candidates, float64 to order them."""
    ref = mi.create("float32", docs.shape[1]).add(docs)
    _, cand = ref.search(queries, min(docs.shape[0], kmax + 16))
    exact = _exact_scores(docs, queries, cand)
    order = np.lexsort((cand, -exact), axis=1)[:, :kmax]
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(cand, order, axis=1)


def _exact_scores(docs: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.full(ids.shape, -np.inf)
    for q0 in range(0, len(queries), 1024):
        blk = ids[q0 : q0 + 1024]
        valid = blk >= 0
        vec = docs[np.where(valid, blk, 0)].astype(np.float64)
        s = np.einsum("qkd,qd->qk", vec, queries[q0 : q0 + 1024].astype(np.float64))
        out[q0 : q0 + 1024] = np.where(valid, s, -np.inf)
    return out


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


def _build(spec: str, docs: np.ndarray, train_docs: np.ndarray | None = None):
    index = mi.create(spec, docs.shape[1])
    t0 = time.perf_counter()
    index.train(train_docs if train_docs is not None else docs)
    t1 = time.perf_counter()
    index.add(docs)
    t2 = time.perf_counter()
    return index, t1 - t0, t2 - t1


def _recon_mse(index, docs: np.ndarray) -> float | None:
    target = getattr(index, "base", index)
    if not hasattr(target, "vectors") or type(target).__name__ == "HnswIndex":
        return None
    rec = target.vectors()
    return float(np.mean((rec.astype(np.float64) - docs) ** 2))


def _ci(values, seed):
    mean, lo, hi = M.bootstrap_mean_ci(values, n_resamples=N_BOOTSTRAP, seed=seed)
    return {"mean": mean, "ci95": [lo, hi]}


def evaluate(
    data: Dataset,
    schemes=None,
    *,
    k: int = 10,
    threads: int | None = None,
    recall_target: float = 0.95,
    seed: int = 0,
    cv: int | None = None,
    shift: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluates every spec in ``schemes`` on ``data`` (inner product) and returns an :class:`EvalResult`.

    Per scheme: recall@1/10/100 against exact float search (tie-aware), distance-threshold recall,
    the share of queries whose top-k is fully kept, relevance metrics (when ``data.qrels``) with paired
    bootstrap 95% CIs of the change vs exact float search, bytes/vector, index bytes, train/add time,
    batch QPS, single-query latency p50/p99, peak RSS during search, reconstruction MSE. Optional
    robustness runs: ``cv`` folds and ``shift`` over a document field.
    """
    schemes = _check_schemes(schemes if schemes is not None else default_schemes())
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not 0 < recall_target <= 1:
        raise ValueError(f"recall_target must be in (0, 1], got {recall_target!r}")
    docs, queries = data.docs, data.queries
    n, nq = docs.shape[0], queries.shape[0]
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} documents")
    say = Progress(progress)
    kmax = min(n, max(RECALL_KS + (k,)))
    say(f"exact float reference: {nq} queries x {n} docs")
    ref_scores, ref_ids = _reference(docs, queries, kmax)
    ks = [kk for kk in sorted(set(RECALL_KS + (k,))) if kk <= n]

    float_rel = M.relevance_metrics(ref_ids, data.qrels, k) if data.qrels is not None else None
    reference = {"k": k, "recall_ks": ks, "n_docs": n, "n_queries": nq, "dim": docs.shape[1]}
    if float_rel is not None:
        reference["relevance"] = {m: float(v.mean()) for m, v in float_rel.items() if m != "mask"}
        reference["n_judged_queries"] = int(float_rel["mask"].sum())

    rows = []
    for si, spec in enumerate(schemes):
        say(f"[{si + 1}/{len(schemes)}] {spec}: train + add")
        gc.collect()
        index, t_train, t_add = _build(spec, docs)
        say(f"[{si + 1}/{len(schemes)}] {spec}: search")
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
        got_k = _exact_scores(docs, queries, ids_k)
        got = _exact_scores(docs, queries, ids) if kmax > k else got_k
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
            rel = M.relevance_metrics(ids_k, data.qrels, k)
            row["relevance"] = {}
            for m in ("mrr", "ndcg", "precision", "recall", "f1"):
                diff, lo, hi = M.paired_bootstrap_ci(rel[m], float_rel[m], n_resamples=N_BOOTSTRAP, seed=seed)
                row["relevance"][m] = {"value": float(rel[m].mean()), "delta_vs_float": diff, "delta_ci95": [lo, hi]}
        rows.append(row)
        say(f"[{si + 1}/{len(schemes)}] {spec}: recall@{k} {row['recall'][f'recall@{k}']['mean']:.4f}, "
            f"{row['qps']:.0f} QPS")
        del index

    result = EvalResult(_meta(threads, seed, data), reference, rows, _recommend(rows, k, recall_target))
    if cv:
        result.robustness["cv"] = _cross_validate(data, schemes, k, cv, seed, threads, say)
    if shift:
        result.robustness["shift"] = _shift(data, schemes, k, shift, threads, say)
    say("done")
    say.done()
    return result


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


def _subset_recall(spec, train, docs, queries, k, threads) -> np.ndarray:
    index, _, _ = _build(spec, docs, train)
    ref_scores, _ = _reference(docs, queries, k)
    _, ids = index.search(queries, k, threads=threads)
    return M.recall_at_k(_exact_scores(docs, queries, ids), ref_scores, k)


def _cross_validate(data: Dataset, schemes, k, folds, seed, threads, say) -> dict:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"cv must be an int >= 2, got {folds!r}")
    n = data.docs.shape[0]
    if n // folds < k:
        raise ValueError(f"cv={folds} leaves folds of {n // folds} docs, fewer than k={k}")
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, folds)
    out = {"folds": folds, "schemes": {}}
    for spec in schemes:
        values = []
        for f in range(folds):
            say(f"cv {spec}: fold {f + 1}/{folds}")
            held = np.sort(parts[f])
            train = np.sort(np.concatenate([parts[g] for g in range(folds) if g != f]))
            r = _subset_recall(spec, data.docs[train], data.docs[held], data.queries, k, threads)
            values.append(float(r.mean()))
        out["schemes"][spec] = {f"recall@{k}": values, "mean": float(np.mean(values)), "std": float(np.std(values))}
    return out


def _shift(data: Dataset, schemes, k, field_name, threads, say) -> dict:
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
        for g, rows in groups.items():
            say(f"shift {spec}: calibrate on {field_name}={g}")
            others = np.setdiff1d(np.arange(len(values)), rows)
            docs = data.docs[others]
            shifted = _subset_recall(spec, data.docs[rows], docs, data.queries, k, threads).mean()
            in_dist = _subset_recall(spec, docs, docs, data.queries, k, threads).mean()
            per_group[g] = {"n_train_docs": int(len(rows)), "recall_shifted": float(shifted),
                            "recall_in_distribution": float(in_dist), "drop": float(in_dist - shifted)}
        drops = [v["drop"] for v in per_group.values()]
        out["groups"][spec] = {"per_group": per_group, "mean_drop": float(np.mean(drops)), "max_drop": float(np.max(drops))}
    return out


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
    versions = {"medqk": info["version"], "numpy": np.__version__, "python": platform.python_version()}
    for mod in ("numba", "hnswlib"):
        try:
            versions[mod] = getattr(__import__(mod), "__version__", "unknown")
        except ImportError:
            pass
    return {
        "dataset": data.name,
        "source": data.source,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
        "cpu": cpu or platform.processor() or platform.machine(),
        "backend": info["backend"],
        "isa": info["isa"],
        "threads": threads if threads else info["threads"]["cpu_count"],
        "seed": seed,
        "bootstrap_resamples": N_BOOTSTRAP,
        "metric": "ip",
    }
