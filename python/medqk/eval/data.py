"""Loading evaluation data: vectors, queries, relevance judgements and document fields.

Vector files: ``.npy`` (any float dtype), ``.fvecs`` / ``.bvecs`` / ``.ivecs`` (the TEXMEX format:
each vector is an int32 dimension followed by its values), and ann-benchmarks ``.hdf5`` (datasets
``train`` and ``test``; needs h5py). Qrels: a JSON list (one entry per query) of lists of relevant
document rows, or TREC-style lines ``qid [iter] docid rel`` with integer row numbers (rel > 0 counts).

A data folder (``--data DIR``) is laid out like the MedQuAD one: ``docs.npy`` and ``queries.npy`` (or
``queries_dev.npy``), optionally ``qrels.json`` (or ``qrels_dev.json``) and ``docs.jsonl`` (one JSON
object per document, for ``--shift FIELD``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Input data that cannot be used, with a message naming the file and the problem."""


@dataclass
class Dataset:
    name: str
    docs: np.ndarray
    queries: np.ndarray
    qrels: list[list[int]] | None = None
    doc_fields: list[dict] | None = None
    source: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.docs.shape[1]


def read_vectors(path, *, role: str = "vectors") -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{role} file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix in (".fvecs", ".bvecs", ".ivecs"):
            x = _read_texmex(path, suffix)
        elif suffix in (".hdf5", ".h5"):
            x = _read_hdf5(path, role)
        else:
            raise DataError(f"{role} file {str(path)!r}: unknown format (use .npy, .fvecs, .bvecs, .ivecs or .hdf5)")
    except DataError:
        raise
    except Exception as exc:  # numpy raises ValueError / OSError / EOFError for damaged files
        raise DataError(f"{role} file {str(path)!r} could not be read: {exc}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{role} file {str(path)!r} must hold a non-empty 2-D array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{role} file {str(path)!r} has dtype {x.dtype}; expected numbers")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{role} file {str(path)!r} contains NaN or Inf")
    return x


def _read_texmex(path: Path, suffix: str) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 4:
        raise DataError(f"{str(path)!r} is empty or truncated")
    dim = int(raw[:4].view(np.int32)[0])
    item = {".fvecs": 4, ".ivecs": 4, ".bvecs": 1}[suffix]
    row = 4 + dim * item
    if dim <= 0 or raw.size % row:
        raise DataError(f"{str(path)!r} is truncated or not in {suffix} format (dim {dim}, {raw.size} bytes)")
    rows = raw.reshape(-1, row)
    if not (rows[:, :4].view(np.int32) == dim).all():
        raise DataError(f"{str(path)!r} has vectors of different dimensions")
    body = np.ascontiguousarray(rows[:, 4:])
    dtype = {".fvecs": np.float32, ".ivecs": np.int32, ".bvecs": np.uint8}[suffix]
    return body.view(dtype).reshape(rows.shape[0], dim)


def _read_hdf5(path: Path, role: str) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise DataError(f"reading {str(path)!r} needs h5py: pip install h5py") from None
    with h5py.File(path, "r") as f:
        key = "test" if role == "queries" else "train"
        if key not in f:
            raise DataError(f"{str(path)!r} has no '{key}' dataset (ann-benchmarks layout: train, test)")
        return np.asarray(f[key])


def read_qrels(path, n_queries: int, n_docs: int) -> list[list[int]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"qrels file {str(path)!r} does not exist")
    text = path.read_text()
    if not text.strip():
        raise DataError(f"qrels file {str(path)!r} is empty")
    if text.lstrip().startswith("["):
        try:
            qrels = json.loads(text)
        except ValueError as exc:
            raise DataError(f"qrels file {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(qrels, list) or not all(isinstance(r, list) for r in qrels):
            raise DataError(f"qrels file {str(path)!r} must be a JSON list of lists of document rows")
        qrels = [[_row(v, path) for v in rel] for rel in qrels]
    else:
        by_query: dict[int, list[int]] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (3, 4):
                raise DataError(f"qrels file {str(path)!r} line {lineno}: expected 'qid [iter] docid rel'")
            qid, docid, rel = parts[0], parts[-2], parts[-1]
            try:
                q, d, r = int(qid), int(docid), float(rel)
            except ValueError:
                raise DataError(f"qrels file {str(path)!r} line {lineno}: qid, docid and rel must be numbers") from None
            if r > 0:
                by_query.setdefault(q, []).append(d)
        qrels = [sorted(set(by_query.get(q, []))) for q in range(n_queries)]
        extra = [q for q in by_query if not 0 <= q < n_queries]
        if extra:
            raise DataError(f"qrels file {str(path)!r} names query {extra[0]} but there are {n_queries} queries")
    if len(qrels) != n_queries:
        raise DataError(f"qrels file {str(path)!r} has {len(qrels)} entries but there are {n_queries} queries")
    for q, rel in enumerate(qrels):
        for d in rel:
            if not 0 <= d < n_docs:
                raise DataError(f"qrels file {str(path)!r}: query {q} points to document {d}, past the {n_docs} docs")
    return qrels


def _row(v, path) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataError(f"qrels file {str(path)!r}: document rows must be integers, got {v!r}")
    return v


def read_fields(path, n_docs: int) -> list[dict]:
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise DataError(f"{str(path)!r} line {lineno} is not JSON") from None
    if len(records) != n_docs:
        raise DataError(f"{str(path)!r} has {len(records)} records but there are {n_docs} docs")
    for r in records:  # MedQuAD ids start with the collection number: "3/0000123/..."
        if "collection" not in r and isinstance(r.get("id"), str) and "/" in r["id"]:
            r["collection"] = r["id"].split("/", 1)[0]
    return records


def _first(folder: Path, *names: str) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def load_folder(folder) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--data {str(folder)!r} is not a folder")
    docs_path = _first(folder, "docs.npy", "docs.fvecs")
    queries_path = _first(folder, "queries.npy", "queries_dev.npy", "queries.fvecs")
    if docs_path is None or queries_path is None:
        raise DataError(f"--data {str(folder)!r} must contain docs.npy and queries.npy (or queries_dev.npy)")
    qrels_path = _first(folder, "qrels.json", "qrels_dev.json", "qrels.txt")
    fields_path = _first(folder, "docs.jsonl")
    return load_files(docs_path, queries_path, qrels_path, fields_path, name=folder.name)


def load_files(docs, queries, qrels=None, fields=None, *, name: str | None = None) -> Dataset:
    x = read_vectors(docs, role="docs")
    q = read_vectors(queries, role="queries")
    if x.shape[1] != q.shape[1]:
        raise DataError(f"docs have dimension {x.shape[1]} but queries have dimension {q.shape[1]}")
    rel = read_qrels(qrels, q.shape[0], x.shape[0]) if qrels is not None else None
    doc_fields = read_fields(fields, x.shape[0]) if fields is not None else None
    source = {"docs": os.fspath(docs), "queries": os.fspath(queries)}
    if qrels is not None:
        source["qrels"] = os.fspath(qrels)
    return Dataset(name or Path(docs).stem, x, q, rel, doc_fields, source)


def load_sample() -> Dataset:
    """The bundled MedQuAD sample (CC BY 4.0, see medqk/data/medquad_sample/README.md)."""
    from ..data import sample_path

    ds = load_folder(sample_path())
    ds.name = "medquad_sample"
    return ds
