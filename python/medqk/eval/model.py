"""``evaluate_model``: the whole pipeline, text to ranked documents, at each model precision x index scheme.

The texts are embedded by the model at each precision (:class:`medqk.encoder.SentenceEncoder`), then
:func:`medqk.eval.evaluate` measures the index schemes on each precision's embeddings against one reference:
the float32 model's embeddings searched exactly (the float pipeline). So a row ``int8/pq48x8`` says how much of
the float pipeline's top-k and relevance an int8 model with a pq48x8 index keeps, next to what it costs: model
bytes, index bytes and sentences embedded per second.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time

import numpy as np

from .data import TextData
from .runner import EvalResult, Progress, evaluate

DEFAULT_PRECISIONS = ("float32", "int8", "int4")
RELEVANCE_METRICS = ("mrr", "ndcg", "precision", "recall", "f1")


def parse_precisions(precisions) -> list[str]:
    """Model precision names from a comma-separated string or a list, in order, without repeats; ValueError naming
    ``--precisions`` for an unknown or missing name."""
    from ..encoder import PRECISIONS

    names = precisions.split(",") if isinstance(precisions, str) else list(precisions)
    out: list[str] = []
    for name in names:
        name = name.strip() if isinstance(name, str) else name
        if name not in PRECISIONS:
            raise ValueError(f"--precisions: unknown model precision {name!r}; valid: {', '.join(PRECISIONS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"--precisions names no model precision; valid: {', '.join(PRECISIONS)}")
    return out


def load_encoders(model, precisions=None, *, max_seq_length: int | None = None, calib=None,
                  progress: bool | None = None) -> dict:
    """{precision: SentenceEncoder}, the reference first: float32 from a model folder or a float32 model file
    (evaluated even when ``precisions`` leaves it out: it is the reference), else the one precision a quantized
    model file holds. ``precisions`` None: float32, int8 and int4 from a folder, a file's own precision.

    ``calib``: calibration texts (a list of str): the float32 model runs over them once, and every quantized
    precision is prepared with those statistics (GPTQ rounding of the 4-, 3- and 2-bit layers, smoothing of the
    int8 ones: :meth:`medqk.encoder.SentenceEncoder.load`). Needs float weights (a folder or a float32 file)."""
    from ..encoder import SentenceEncoder
    from ..encoder._bert import _texts

    path = os.fspath(model)
    if not os.path.exists(path):
        raise ValueError(f"--model {path!r} does not exist (a model folder or a medqk model file)")
    wanted = None if precisions is None else parse_precisions(precisions)
    if calib is not None:
        try:
            calib = _texts(calib)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"calib: {exc}") from None
    encoders = {}
    if os.path.isfile(path):
        saved = SentenceEncoder.load(path, max_seq_length=max_seq_length)
        if saved.precision != "float32" and wanted not in (None, [saved.precision]):
            raise ValueError(f"--model {path!r} holds a {saved.precision} model (no float weights), so it can only "
                             f"be evaluated at that precision, not {','.join(wanted)}")
        if saved.precision != "float32" and calib is not None:
            raise ValueError(f"--calib needs float weights: --model {path!r} holds a {saved.precision} model, "
                             "quantized already (calibrate when quantizing: medqk quantize --calib)")
        encoders[saved.precision] = saved
        wanted = wanted or [saved.precision]
    else:
        wanted = wanted or list(DEFAULT_PRECISIONS)
        encoders["float32"] = SentenceEncoder.load(path, "float32", max_seq_length=max_seq_length)
    stats = None
    if calib is not None and any(p != "float32" for p in wanted):
        stats = encoders["float32"]._calibration_stats(calib, 32, progress)
    for precision in wanted:
        if precision in encoders:
            continue
        if stats is not None:
            encoders[precision] = encoders["float32"]._quantized_with(precision, stats)
        else:
            encoders[precision] = SentenceEncoder.load(path, precision, max_seq_length=max_seq_length)
    return encoders


def evaluate_model(
    model,
    texts: TextData,
    precisions=None,
    schemes=None,
    *,
    batch_size: int = 32,
    max_seq_length: int | None = None,
    encoders: dict | None = None,
    calib=None,
    **options,
) -> EvalResult:
    """Evaluates every model precision x index scheme on ``texts`` (:func:`medqk.eval.data.load_texts`,
    :func:`~medqk.eval.data.load_sample_texts`) and returns one :class:`EvalResult`.

    ``model``: a model folder or a medqk model file (:func:`load_encoders` says which precisions each allows).
    ``options``: :func:`medqk.eval.evaluate`'s keywords (``k``, ``metric``, ``threads``, ``recall_target``,
    ``seed``, ``cv``, ``shift``, ``progress``), with its defaults. Every model loads (and is quantized) before any
    text is embedded, so a bad precision fails early. Per precision the docs and queries are embedded
    (``batch_size``, ``threads``; a progress bar on a terminal when ``progress``), then :func:`medqk.eval.evaluate`
    runs the schemes with the reference model's embeddings as ``reference_vectors``: recall@k is against the float
    pipeline's top-k, the relevance changes (paired bootstrap CIs) against its relevance. Rows are named
    "<precision>/<index spec>" and carry ``model_precision``, ``index_spec``, ``model_bytes``, ``sentences_per_s``
    and ``pipeline_bytes`` (model bytes + index bytes); ``EvalResult.models`` holds each precision's size, bits per
    weight, speed, and cosine to the reference embeddings. ``cv`` / ``shift`` run within each precision's
    embeddings, as in ``evaluate``.

    Recommendation: with qrels, the smallest pipeline (model + index bytes) none of whose relevance metrics@k is
    significantly below the float pipeline's (paired bootstrap 95% CI of the change wholly below 0), and the one
    that embeds fastest; without qrels, ``evaluate``'s rule (recall@k lower bound >= ``recall_target``) applied
    to recall against the float pipeline.

    ``encoders``: what :func:`load_encoders` returned for ``model`` and ``precisions``, when already loaded;
    ``calib``: calibration texts for :func:`load_encoders` (recorded in the report as their count).

    Ctrl-C after the first precision finished returns the finished rows (``meta["partial"]``); earlier it
    propagates.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    settings = _evaluate_settings(options)
    k, threads, shift, progress = settings["k"], settings["threads"], settings["shift"], settings["progress"]
    base = texts.data
    if shift is not None:  # checked before any text is embedded; evaluate checks it again after the schemes
        if base.doc_fields is None:
            raise ValueError("--shift needs document fields: a .jsonl --docs-text or --fields")
        if all(record.get(shift) is None for record in base.doc_fields):
            raise ValueError(f"--shift {shift!r}: no document has this field")
    if encoders is None:
        encoders = load_encoders(model, precisions, max_seq_length=max_seq_length, calib=calib)
    names = list(encoders)
    reference = names[0]
    say = Progress(progress)
    n_texts = len(texts.doc_texts) + len(texts.query_texts)
    rows: list[dict] = []
    skipped: list[dict] = []
    models: dict = {}
    robustness: dict = {}
    warnings: list[str] = []
    first = None
    ref_vectors = None
    partial_reason = None
    for i, (precision, encoder) in enumerate(encoders.items()):
        try:
            say(f"model {precision} [{i + 1}/{len(names)}]: embedding {len(texts.doc_texts)} docs and "
                f"{len(texts.query_texts)} queries")
            bar = None if progress else False  # the encoder's bar: on a terminal only
            encoder.encode(texts.query_texts[:2], threads=threads)  # one-off costs (allocation, JIT) out of the timing
            t0 = time.perf_counter()
            docs = encoder.encode(texts.doc_texts, batch_size, progress=bar, threads=threads)
            queries = encoder.encode(texts.query_texts, batch_size, progress=bar, threads=threads)
            seconds = time.perf_counter() - t0
            data = dataclasses.replace(base, docs=docs, queries=queries)
            result = evaluate(data, schemes, reference_vectors=ref_vectors, **settings)
        except KeyboardInterrupt:
            if not rows:
                raise
            partial_reason = (f"interrupted by Ctrl-C after {i} of {len(names)} model precisions "
                              f"(during {precision})")
            break
        if ref_vectors is None:
            ref_vectors, first = (docs, queries), result
        models[precision] = {
            "model_bytes": int(encoder.nbytes),
            "bits_per_weight": float(encoder.bits_per_weight),
            "encode_s": seconds,
            "sentences_per_s": n_texts / seconds,
            "cosine_to_reference": _cosines(ref_vectors, (docs, queries)),
            "index_recommendation": result.recommendation["statement"],
        }
        for row in result.schemes:
            rows.append(dict(row, spec=f"{precision}/{row['spec']}", index_spec=row["spec"],
                             model_precision=precision, model_bytes=models[precision]["model_bytes"],
                             sentences_per_s=models[precision]["sentences_per_s"],
                             pipeline_bytes=models[precision]["model_bytes"] + row["index_bytes"]))
        skipped += [dict(s, spec=f"{precision}/{s['spec']}") for s in result.skipped]
        _merge_robustness(robustness, result.robustness, precision)
        warnings += [f"model {precision}: {w}" for w in result.meta.get("warnings", [])]
        if result.meta.get("partial"):
            partial_reason = f"model {precision}: {result.meta.get('partial_reason')}"
            break
    meta = dict(first.meta)
    meta["model"] = {"path": os.fspath(model), "reference_precision": reference, "precisions": names,
                     "batch_size": batch_size, "max_seq_length": encoders[reference].max_seq_length,
                     "pooling": encoders[reference].pooling, "normalize": encoders[reference].normalize,
                     "calibration_texts": 0 if calib is None else len(calib)}
    meta.update(warnings=warnings, partial=partial_reason is not None,
                schemes_planned=[f"{p}/{s}" for p in names for s in first.meta["schemes_planned"]])
    meta.pop("partial_reason", None)
    if partial_reason is not None:
        meta["partial_reason"] = partial_reason
    ref = dict(first.reference, model_precision=reference)
    has_relevance = "relevance" in ref
    recommendation = _recommend_pipeline(rows, k, settings["recall_target"], has_relevance, reference)
    return EvalResult(meta, ref, rows, recommendation,
                      robustness=robustness, skipped=skipped, models=models)


def _evaluate_settings(options: dict) -> dict:
    """evaluate's keyword arguments: its defaults, updated with ``options`` (a TypeError names an unknown one)."""
    settings = {name: p.default for name, p in inspect.signature(evaluate).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "reference_vectors"}
    unknown = sorted(set(options) - set(settings))
    if unknown:
        raise TypeError(f"evaluate_model() got unexpected keyword arguments {', '.join(unknown)}; it takes "
                        f"batch_size, max_seq_length, encoders and evaluate's {', '.join(settings)}")
    settings.update(options)
    return settings


def _cosines(reference: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> dict:
    """Mean and least cosine between each text's embedding and its reference embedding (docs and queries)."""
    a = np.concatenate(reference).astype(np.float64)
    b = np.concatenate(got).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.einsum("nd,nd->n", a, b) / np.where(norms > 0, norms, 1.0)
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def _merge_robustness(into: dict, got: dict, precision: str) -> None:
    """Adds one precision's cv / shift results to ``into``, keyed by pipeline name."""
    for kind, keys, per in (("cv", ("folds",), "schemes"), ("shift", ("field",), "groups")):
        if kind in got:
            entry = into.setdefault(kind, {**{key: got[kind][key] for key in keys}, per: {}})
            entry[per].update({f"{precision}/{spec}": value for spec, value in got[kind][per].items()})


def _recommend_pipeline(rows: list[dict], k: int, target: float, has_relevance: bool, reference: str) -> dict:
    key = f"recall@{k}"
    if has_relevance:
        rec = {"recall_target": None,
               "criterion": f"no relevance metric@{k} significantly below the {reference} pipeline's (paired "
                            "bootstrap, 95%)"}
        ok = [r for r in rows if all(r["relevance"][m]["delta_ci95"][1] >= 0 for m in RELEVANCE_METRICS)]
        what = f"not significantly worse than the {reference} pipeline"
    else:
        rec = {"recall_target": target,
               "criterion": f"lower 95% bootstrap bound of {key} against the {reference} pipeline >= {target}"}
        ok = [r for r in rows if r["recall"][key]["ci95"][0] >= target]
        what = f"meeting {key} >= {target}"
    if not ok:
        rec["smallest"] = rec["fastest"] = None
        rec["statement"] = f"no model precision and index scheme is {what}"
        return rec
    smallest = min(ok, key=lambda r: (r["pipeline_bytes"], -r["sentences_per_s"]))
    fastest = max(ok, key=lambda r: (r["sentences_per_s"], r["qps"]))
    rec["smallest"], rec["fastest"] = smallest["spec"], fastest["spec"]
    quality = (f"MRR@{k} {smallest['relevance']['mrr']['value']:.4f}" if has_relevance
               else f"{key} {smallest['recall'][key]['mean']:.4f}")
    rec["statement"] = (
        f"smallest pipeline {what}: {smallest['spec']} (model {smallest['model_bytes'] / 1e6:.2f} MB + index "
        f"{smallest['index_bytes'] / 1e6:.2f} MB, {quality}); fastest to embed: {fastest['spec']} "
        f"({fastest['sentences_per_s']:.1f} sentences/s, {fastest['qps']:.0f} QPS)"
    )
    return rec
