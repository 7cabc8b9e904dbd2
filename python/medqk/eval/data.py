"""Loading evaluation data: vectors, queries, relevance judgements, ids and document fields.

Vector files: ``.npy`` (any float dtype), ``.fvecs`` / ``.bvecs`` / ``.ivecs`` (the TEXMEX format:
each vector is an int32 dimension followed by its values), and ann-benchmarks ``.hdf5`` (needs h5py):
``train`` holds the documents, ``test`` the queries, the ``distance`` attribute the metric (``angular``
= cosine, ``euclidean`` = l2, ``dot`` = inner product) and ``neighbors`` the true nearest ``train`` rows
of each query, which the evaluation uses to check its own exact reference. One ``.hdf5`` file can be
both ``--docs`` and ``--queries``; ``--docs f.hdf5`` alone means the same.

Ids. Real collections name documents and queries by string ids (BEIR ``_id``, TREC docnos). An id file
maps ids to rows, line i (record i) naming row i: ``.txt`` with one id a line, ``.jsonl`` with one JSON
object a line whose field ``_id`` or ``id`` is the id (``FILE:FIELD`` names another field), or ``.json``
holding a list of ids. Ids must be unique and there must be one per row.

Qrels (rel > 0 counts as relevant; graded relevance is read as binary):

- a JSON list, one entry per query row, of lists of relevant documents: integers are rows, strings ids;
- a JSON object ``{"qid": {"docid": rel}}`` (BEIR style) or ``{"qid": ["docid", ...]}``;
- TREC lines ``qid iter docid rel`` (or ``qid docid rel``), whitespace- or tab-separated, and the BEIR
  TSV (``query-id<TAB>corpus-id<TAB>score`` after a header line).

Without an id file, ids that are integers name rows (the historical behaviour) and any other id is an
error that says which flag to add. With an id file, ids are looked up in it; judgements whose id is not
there are skipped and counted (``Dataset.source["qrels_unmatched"]``), and a file none of whose
judgements match is refused, since that means the wrong id file.

A data folder (``--data DIR``) is laid out like the MedQuAD one: ``docs.npy`` and ``queries.npy`` (or
``queries_dev.npy``), optionally ``qrels.json`` (or ``qrels_dev.json``, ``qrels.txt``, ``qrels.tsv``),
``docs.jsonl`` (one JSON object per document, for ``--shift FIELD``), and ``doc_ids.txt`` /
``query_ids.txt``. Without id files, the ``id`` (or ``_id``) fields of ``docs.jsonl`` and
``queries.jsonl`` are used as ids when every record has a distinct one; judgements that are all
integer rows and match none of those ids keep meaning rows.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METRICS = ("ip", "l2", "cos")

# ann-benchmarks `distance` attribute -> medqk metric. Set distances (hamming, jaccard) are refused.
_HDF5_DISTANCES = {
    "angular": "cos", "cosine": "cos", "cos": "cos",
    "euclidean": "l2", "l2": "l2",
    "dot": "ip", "ip": "ip", "inner product": "ip", "inner_product": "ip", "innerproduct": "ip",
}
_HEADER_SCORE_NAMES = ("score", "rel", "relevance", "label", "grade")
_INTEGER = re.compile(r"[+-]?\d+")
_PLURAL = {"doc": "docs", "query": "queries"}


class DataError(ValueError):
    """Input data that cannot be used, with a message naming the file and the problem."""


@dataclass
class Dataset:
    """Vectors and what is known about them.

    ``metric`` is the metric the file declares (None: not declared), ``neighbors`` the file's own
    int64 (n_queries, kn) true nearest document rows, best first, and ``doc_ids`` / ``query_ids`` the
    string id of each row. ``source`` records where everything came from (JSON-serialisable); it holds
    ``qrels_unmatched`` (judgements skipped for unknown ids) and ``qrels_warning`` (a sentence saying
    so) when there are any.
    """

    name: str
    docs: np.ndarray
    queries: np.ndarray
    qrels: list[list[int]] | None = None
    doc_fields: list[dict] | None = None
    source: dict = field(default_factory=dict)
    metric: str | None = None
    neighbors: np.ndarray | None = None
    doc_ids: list[str] | None = None
    query_ids: list[str] | None = None

    def __post_init__(self):
        if self.metric is not None and self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)} or None, got {self.metric!r}")
        for name, ids, n in (("doc_ids", self.doc_ids, self.docs.shape[0]),
                             ("query_ids", self.query_ids, self.queries.shape[0])):
            if ids is not None and len(ids) != n:
                raise ValueError(f"{name} has {len(ids)} ids but there are {n} rows")
        if self.neighbors is not None and (self.neighbors.ndim != 2
                                           or self.neighbors.shape[0] != self.queries.shape[0]):
            raise ValueError(f"neighbors must have one row per query ({self.queries.shape[0]}), "
                             f"got shape {self.neighbors.shape}")

    @property
    def dim(self) -> int:
        return self.docs.shape[1]

    def first_queries(self, n: int) -> None:
        """Keep only the first ``n`` queries, with their qrels, neighbors and ids."""
        self.queries = self.queries[:n]
        if self.qrels is not None:
            self.qrels = self.qrels[:n]
        if self.neighbors is not None:
            self.neighbors = self.neighbors[:n]
        if self.query_ids is not None:
            self.query_ids = self.query_ids[:n]


# ---------------------------------------------------------------------------------------------- vectors

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
        elif _is_hdf5(path):
            x = _read_hdf5(path, role)
        else:
            raise DataError(f"{role} file {str(path)!r}: unknown format "
                            "(use .npy, .fvecs, .bvecs, .ivecs or .hdf5)")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, TypeError) as exc:  # numpy / h5py on damaged files
        raise DataError(f"{role} file {str(path)!r} could not be read: {exc}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{role} file {str(path)!r} must hold a non-empty 2-D array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{role} file {str(path)!r} has dtype {x.dtype}; expected numbers")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise DataError(f"{role} file {str(path)!r} contains NaN or Inf (first in row {row}), "
                        "or values too large for float32")
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


def _is_hdf5(path) -> bool:
    return Path(path).suffix.lower() in (".hdf5", ".h5")


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise DataError(f"reading {str(path)!r} needs h5py: pip install h5py") from None
    return h5py


def _read_hdf5(path: Path, role: str) -> np.ndarray:
    with _h5py(path).File(path, "r") as f:
        key = "test" if role == "queries" else "train"
        if key not in f:
            raise DataError(f"{str(path)!r} has no '{key}' dataset (ann-benchmarks layout: train, test)")
        return np.asarray(f[key])


def read_hdf5_metric(path) -> str | None:
    """The metric an ann-benchmarks file declares in its ``distance`` attribute (None if it has none)."""
    path = Path(path)
    try:
        with _h5py(path).File(path, "r") as f:
            distance = f.attrs.get("distance")
    except DataError:
        raise
    except (ValueError, OSError, KeyError, TypeError) as exc:  # h5py on damaged or non-HDF5 files
        raise DataError(f"{str(path)!r} could not be read: {exc}") from None
    if distance is None:
        return None
    if isinstance(distance, bytes):
        distance = distance.decode("utf-8", "replace")
    if isinstance(distance, np.ndarray) and distance.size == 1:
        distance = distance.item()
        distance = distance.decode("utf-8", "replace") if isinstance(distance, bytes) else distance
    metric = _HDF5_DISTANCES.get(str(distance).strip().lower())
    if metric is None:
        raise DataError(f"{str(path)!r} declares distance {str(distance)!r}; medqk evaluates angular "
                        "(cosine), euclidean (l2) and dot (inner product) data only")
    return metric


def read_hdf5_neighbors(path, n_queries: int, n_docs: int) -> np.ndarray | None:
    """The ``neighbors`` dataset of an ann-benchmarks file as int64 (n_queries, kn), None if absent."""
    path = Path(path)
    try:
        with _h5py(path).File(path, "r") as f:
            if "neighbors" not in f:
                return None
            nb = np.asarray(f["neighbors"])
    except DataError:
        raise
    except (ValueError, OSError, KeyError, TypeError) as exc:  # h5py on damaged or non-HDF5 files
        raise DataError(f"{str(path)!r} could not be read: {exc}") from None
    where = f"{str(path)!r} dataset 'neighbors'"
    if not np.issubdtype(nb.dtype, np.integer):
        raise DataError(f"{where} has dtype {nb.dtype}; expected integer rows of 'train'")
    if nb.ndim != 2 or nb.shape[1] == 0:
        raise DataError(f"{where} must be 2-D (queries, neighbors), got shape {nb.shape}")
    if nb.shape[0] != n_queries:
        raise DataError(f"{where} has {nb.shape[0]} rows but 'test' has {n_queries} queries")
    bad = (nb < 0) | (nb >= n_docs)
    if bad.any():
        q, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{where}: query {q} neighbor {j} is row {int(nb[q, j])}, "
                        f"outside the {n_docs} rows of 'train'")
    return nb.astype(np.int64)


# ---------------------------------------------------------------------------------------------- ids

def _split_field(spec) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE:FIELD``; a path that exists as given wins, so ``C:\\ids.txt`` stays a path."""
    text = os.fspath(spec)
    if Path(text).is_file() or ":" not in text:
        return Path(text), None
    head, _, tail = text.rpartition(":")
    if not tail or "/" in tail or "\\" in tail:
        return Path(text), None
    return Path(head), tail


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a file that must exist and hold something; ``what`` names it in the DataError."""
    if not path.is_file():
        raise DataError(f"{what} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise DataError(f"{what} is empty")
    return text


def read_ids(spec, n_rows: int | None = None, *, role: str = "doc") -> list[str]:
    """Row ids from an id file (see the module docstring); ``role`` ("doc" or "query") names the flag."""
    path, field_name = _split_field(spec)
    what = f"--{role}-ids file {str(path)!r}"
    text = _read_text(path, what)
    suffix = path.suffix.lower()
    if field_name is not None and suffix != ".jsonl":
        raise DataError(f"{what}: FILE:FIELD names a field of a .jsonl file, "
                        f"not of a {suffix or 'plain'} file")
    ids: list[str] = []
    lines: list[int] = []
    if suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise DataError(f"{what} line {lineno} is not JSON") from None
            if not isinstance(record, dict):
                raise DataError(f"{what} line {lineno} is not a JSON object")
            if field_name is None:
                field_name = "_id" if "_id" in record else "id" if "id" in record else None
                if field_name is None:
                    raise DataError(f"{what} line {lineno} has neither an '_id' nor an 'id' field; "
                                    "name the field with FILE:FIELD")
            if field_name not in record:
                raise DataError(f"{what} line {lineno} has no field {field_name!r}")
            ids.append(_id_text(record[field_name], f"{what} line {lineno}"))
            lines.append(lineno)
    elif suffix == ".json":
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{what} is not valid JSON: {exc}") from None
        if not isinstance(values, list):
            raise DataError(f"{what} must hold a JSON list of ids")
        for i, v in enumerate(values):
            ids.append(_id_text(v, f"{what} entry {i}"))
            lines.append(i)
    else:
        rows = text.splitlines()
        while rows and not rows[-1].strip():  # a trailing newline or two is not a row
            rows.pop()
        for lineno, line in enumerate(rows, 1):
            ident = line.strip()
            if not ident:
                raise DataError(f"{what} line {lineno} is empty (every line names one row)")
            ids.append(ident)
            lines.append(lineno)
    seen: dict[str, int] = {}
    unit = "entry" if suffix == ".json" else "line"
    for ident, at in zip(ids, lines):
        if ident in seen:
            raise DataError(f"{what} {unit} {at}: id {ident!r} is already on {unit} {seen[ident]}; "
                            "ids must name one row each")
        seen[ident] = at
    if n_rows is not None and len(ids) != n_rows:
        raise DataError(f"{what} has {len(ids)} ids but there are {n_rows} {_PLURAL[role]}")
    return ids


def _id_text(value, where: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{where}: an id must be a non-empty string or an integer, got {value!r}")


def _ids_argument(ids, n_rows: int, role: str) -> list[str]:
    """An id file path (``FILE`` or ``FILE:FIELD``) or a list of ids given from Python."""
    if isinstance(ids, (str, os.PathLike)):
        return read_ids(ids, n_rows, role=role)
    if not isinstance(ids, Sequence):
        raise TypeError(f"{role}_ids must be an id file path or a list of strings, got {type(ids).__name__}")
    out = [_id_text(v, f"{role}_ids[{i}]") for i, v in enumerate(ids)]
    if len(out) != n_rows:
        raise DataError(f"{role}_ids has {len(out)} ids but there are {n_rows} {_PLURAL[role]}")
    if len(set(out)) != len(out):
        dup = next(v for i, v in enumerate(out) if v in out[:i])
        raise DataError(f"{role}_ids names {dup!r} twice; ids must name one row each")
    return out


def _infer_jsonl_ids(path: Path, n_rows: int) -> list[str] | None:
    """Ids from the ``_id`` / ``id`` fields of a folder's jsonl file, when every record has a distinct one.

    Lenient on purpose: these files exist for other reasons (--shift fields), so one that cannot give ids
    just gives none, and the folder loads as it always did.
    """
    try:
        return read_ids(path, n_rows)
    except (DataError, OSError):
        return None


# ---------------------------------------------------------------------------------------------- qrels

class _Side:
    """Maps one side's qrels ids (query or document) to rows, by an id list or as row numbers."""

    def __init__(self, role: str, n_rows: int, ids, inferred: bool, raw_ids, path: Path):
        self.role, self.n_rows, self.path = role, n_rows, path
        self.index = {s: i for i, s in enumerate(ids)} if ids is not None else None
        as_text = [str(r) for r in raw_ids]
        all_integers = all(isinstance(r, int) or _INTEGER.fullmatch(str(r)) for r in raw_ids)
        if self.index is None:
            self.by_id = False
        elif inferred and all_integers and not any(s in self.index for s in as_text):
            self.by_id = False  # a folder's jsonl ids were guessed; integer qrels that match none are rows
        else:
            self.by_id = True
        self.unmatched = 0
        self.first_unmatched: tuple[str, str] | None = None

    def row(self, raw, where: str) -> int | None:
        """The row of ``raw``, None (counted) if an id list does not have it."""
        if self.by_id:
            row = self.index.get(str(raw).strip())
            if row is None:
                self.unmatched += 1
                if self.first_unmatched is None:
                    self.first_unmatched = (str(raw), where)
            return row
        if isinstance(raw, bool) or not (isinstance(raw, int) or _INTEGER.fullmatch(str(raw))):
            flag = f"--{self.role}-ids"
            raise DataError(f"qrels file {str(self.path)!r} {where}: {self.role} id {str(raw)!r} is not a "
                            f"row number; pass {flag} FILE (one id a line, or a .jsonl with '_id' or 'id') "
                            f"to map {self.role} ids to rows")
        row = int(raw)
        if not 0 <= row < self.n_rows:
            if self.role == "query":
                raise DataError(f"qrels file {str(self.path)!r} {where}: names query {row} "
                                f"but there are {self.n_rows} queries")
            raise DataError(f"qrels file {str(self.path)!r} {where}: points to document {row}, "
                            f"past the {self.n_rows} docs")
        return row


def read_qrels(path, n_queries: int, n_docs: int, *, query_ids=None, doc_ids=None, source: dict | None = None,
               inferred_ids: Sequence[str] = ()) -> list[list[int]]:
    """Relevant document rows of each query row, from any qrels format of the module docstring.

    ``query_ids`` / ``doc_ids`` (lists of row ids) map string ids to rows. When ``source`` is given, the
    number of judgements skipped for unknown ids is recorded there as ``qrels_unmatched`` and a sentence
    about it as ``qrels_warning``. ``inferred_ids`` ("doc", "query") marks id lists guessed
    from a folder's jsonl files, under which integer qrels matching none of the ids keep meaning rows.
    """
    path = Path(path)
    text = _read_text(path, f"qrels file {str(path)!r}")
    start = text.lstrip()[:1]
    positional = False
    if start in ("[", "{"):
        try:
            parsed = json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
        except DataError:
            raise
        except ValueError as exc:
            raise DataError(f"qrels file {str(path)!r} is not valid JSON: {exc}") from None
        if isinstance(parsed, list):
            judgements = _json_list_judgements(parsed, path, n_queries)
            positional = True
        else:
            judgements = _json_dict_judgements(parsed, path)
    else:
        judgements = _text_judgements(text, path)
    if not judgements and not positional:
        raise DataError(f"qrels file {str(path)!r} holds no judgements")
    if positional:  # list entries are query rows already; documents may be rows (ints) or ids (strings)
        queries = None
    else:
        queries = _Side("query", n_queries, query_ids, "query" in inferred_ids,
                        [j[0] for j in judgements], path)
    docs = _Side("doc", n_docs, doc_ids, "doc" in inferred_ids,
                 [j[1] for j in judgements if not (positional and isinstance(j[1], int))], path)
    if positional:
        docs_by_row = _Side("doc", n_docs, None, False, [], path)
    found: dict[tuple[int, int], tuple[float, str]] = {}
    skipped = 0
    for qid, docid, rel, where in judgements:
        q = qid if queries is None else queries.row(qid, where)
        if q is None:  # counted once, on the query side
            skipped += 1
            continue
        if positional and isinstance(docid, int):
            d = docs_by_row.row(docid, where)
        else:
            d = docs.row(docid, where)
        if d is None:
            skipped += 1
            continue
        previous = found.get((q, d))
        if previous is not None and previous[0] != rel:
            raise DataError(f"qrels file {str(path)!r} {where}: query {qid!r} and document {docid!r} are "
                            f"judged {rel:g} here but {previous[0]:g} at {previous[1]}")
        found[(q, d)] = (rel, where)
    if judgements and skipped == len(judgements):
        sides = [s for s in (queries, docs) if s is not None and s.first_unmatched is not None]
        first = sides[0]
        id_file = (source or {}).get(f"{first.role}_ids")
        id_file = f"the id file {id_file!r}" if id_file else f"the --{first.role}-ids"
        raise DataError(f"qrels file {str(path)!r}: none of its {len(judgements)} judgements match the ids "
                        f"(first: {first.role} id {first.first_unmatched[0]!r} at {first.first_unmatched[1]} "
                        f"is not in {id_file}); is it the right id file?")
    if skipped and source is not None:
        parts = [f"{s.unmatched} with an unknown {s.role} id (first {s.first_unmatched[0]!r} at "
                 f"{s.first_unmatched[1]})" for s in (queries, docs) if s is not None and s.unmatched]
        source["qrels_unmatched"] = skipped
        source["qrels_warning"] = (f"qrels file {path.name!r}: {skipped} of {len(judgements)} judgements "
                                   "skipped, " + "; ".join(parts))
    qrels: list[list[int]] = [[] for _ in range(n_queries)]
    for (q, d), (rel, _) in found.items():
        if rel > 0:
            qrels[q].append(d)
    return [sorted(rel) for rel in qrels]


def _no_duplicate_keys(path: Path):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DataError(f"qrels file {str(path)!r} names {key!r} twice in one JSON object")
            seen.add(key)
        return dict(pairs)
    return hook


def _relevance(value, path: Path, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"qrels file {str(path)!r} {where}: relevance must be a finite number, got {value!r}")
    return float(value)


def _json_list_judgements(parsed: list, path: Path, n_queries: int) -> list[tuple]:
    if not all(isinstance(r, list) for r in parsed):
        raise DataError(f"qrels file {str(path)!r} must be a JSON list of lists of document rows (or ids)")
    if len(parsed) != n_queries:
        raise DataError(f"qrels file {str(path)!r} has {len(parsed)} entries "
                        f"but there are {n_queries} queries")
    judgements = []
    for q, rel in enumerate(parsed):
        for v in rel:
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise DataError(f"qrels file {str(path)!r} entry {q}: document rows must be integers "
                                f"(or string ids), got {v!r}")
            judgements.append((q, v, 1.0, f"entry {q}"))
    return judgements


def _json_dict_judgements(parsed, path: Path) -> list[tuple]:
    if not isinstance(parsed, dict):
        raise DataError(f"qrels file {str(path)!r} must hold a JSON list or object")
    judgements = []
    for qid, rel in parsed.items():
        where = f"query {qid!r}"
        if isinstance(rel, dict):
            judgements += [(qid, docid, _relevance(r, path, where), where) for docid, r in rel.items()]
        elif isinstance(rel, list):
            for docid in rel:
                if isinstance(docid, bool) or not isinstance(docid, (int, str)):
                    raise DataError(f"qrels file {str(path)!r} {where}: document ids must be strings or "
                                    f"integers, got {docid!r}")
                judgements.append((qid, docid, 1.0, where))
        else:
            raise DataError(f"qrels file {str(path)!r} {where}: expected {{docid: rel}} or a list of docids, "
                            f"got {type(rel).__name__}")
    return judgements


def _text_judgements(text: str, path: Path) -> list[tuple]:
    judgements = []
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        # Tabs separate BEIR's columns (ids may then hold spaces); TREC uses any whitespace.
        parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
        if first and len(parts) in (3, 4) and parts[-1].lower() in _HEADER_SCORE_NAMES:
            first = False
            continue  # the BEIR header: query-id corpus-id score
        first = False
        if len(parts) not in (3, 4) or not all(parts):
            raise DataError(f"qrels file {str(path)!r} line {lineno}: expected 'qid [iter] docid rel' "
                            f"(3 or 4 columns), got {len([p for p in parts if p])}")
        where = f"line {lineno}"
        try:
            rel = float(parts[-1])
        except ValueError:
            raise DataError(f"qrels file {str(path)!r} line {lineno}: relevance {parts[-1]!r} is not a "
                            "number; qid, docid and rel are expected") from None
        if not math.isfinite(rel):
            raise DataError(f"qrels file {str(path)!r} line {lineno}: relevance must be a finite number, "
                            f"got {parts[-1]!r}")
        judgements.append((parts[0], parts[-2], rel, where))
    return judgements


def attach_ids(data: Dataset, *, doc_ids=None, query_ids=None) -> None:
    """Set ``data``'s doc / query ids from id files (``FILE`` or ``FILE:FIELD``) or lists; None keeps them.

    Call before :func:`attach_qrels`: qrels ids are mapped through the ids the dataset has when they are read.
    """
    for role, ids, rows in (("doc", doc_ids, data.docs), ("query", query_ids, data.queries)):
        n_rows = rows.shape[0]
        if ids is None:
            continue
        setattr(data, f"{role}_ids", _ids_argument(ids, n_rows, role))
        if isinstance(ids, (str, os.PathLike)):
            data.source[f"{role}_ids"] = os.fspath(ids)
        else:
            data.source.pop(f"{role}_ids", None)
        inferred = [r for r in data.source.get("ids_inferred", []) if r != role]
        if inferred:
            data.source["ids_inferred"] = inferred
        else:
            data.source.pop("ids_inferred", None)


def attach_qrels(data: Dataset, path) -> None:
    """Read ``path`` as ``data``'s qrels, mapping ids through ``data.doc_ids`` / ``data.query_ids``."""
    for key in ("qrels_unmatched", "qrels_warning"):  # left by the qrels this replaces
        data.source.pop(key, None)
    data.qrels = read_qrels(path, data.queries.shape[0], data.docs.shape[0], query_ids=data.query_ids,
                            doc_ids=data.doc_ids, source=data.source,
                            inferred_ids=data.source.get("ids_inferred", ()))
    data.source["qrels"] = os.fspath(path)


# ---------------------------------------------------------------------------------------------- fields

def read_fields(path, n_docs: int) -> list[dict]:
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        raise DataError(f"{str(path)!r} line {lineno} is not JSON") from None
                    if not isinstance(records[-1], dict):
                        raise DataError(f"{str(path)!r} line {lineno} is not a JSON object")
    except FileNotFoundError:
        raise DataError(f"fields file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not UTF-8 text: {exc}") from None
    if len(records) != n_docs:
        raise DataError(f"{str(path)!r} has {len(records)} records but there are {n_docs} docs")
    for r in records:  # MedQuAD ids start with the collection number: "3/0000123/..."
        if "collection" not in r and isinstance(r.get("id"), str) and "/" in r["id"]:
            r["collection"] = r["id"].split("/", 1)[0]
    return records


# ---------------------------------------------------------------------------------------------- datasets

def _first(folder: Path, *names: str) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def load_folder(folder, *, doc_ids=None, query_ids=None) -> Dataset:
    """Load a ``--data DIR`` folder (layout in the module docstring).

    ``doc_ids`` / ``query_ids`` (id files or lists) take the place of the folder's own id files, before
    the folder's qrels are read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--data {str(folder)!r} is not a folder")
    docs_path = _first(folder, "docs.npy", "docs.fvecs")
    queries_path = _first(folder, "queries.npy", "queries_dev.npy", "queries.fvecs")
    if docs_path is None or queries_path is None:
        raise DataError(f"--data {str(folder)!r} must contain docs.npy and queries.npy (or queries_dev.npy)")
    qrels_path = _first(folder, "qrels.json", "qrels_dev.json", "qrels.txt", "qrels.tsv")
    fields_path = _first(folder, "docs.jsonl")
    data = load_files(docs_path, queries_path, None, fields_path, name=folder.name,
                      doc_ids=doc_ids if doc_ids is not None else _first(folder, "doc_ids.txt"),
                      query_ids=query_ids if query_ids is not None else _first(folder, "query_ids.txt"))
    inferred = []
    for role, jsonl in (("doc", fields_path), ("query", _first(folder, "queries.jsonl"))):
        attr = f"{role}_ids"
        if getattr(data, attr) is None and jsonl is not None:
            ids = _infer_jsonl_ids(jsonl, (data.docs if role == "doc" else data.queries).shape[0])
            if ids is not None:
                setattr(data, attr, ids)
                data.source[attr] = os.fspath(jsonl)
                inferred.append(role)
    if inferred:
        data.source["ids_inferred"] = inferred
    if qrels_path is not None:
        attach_qrels(data, qrels_path)
    return data


def load_files(docs, queries=None, qrels=None, fields=None, *, name: str | None = None, doc_ids=None,
               query_ids=None) -> Dataset:
    """Load a dataset from files (formats in the module docstring).

    ``queries`` may be omitted when ``docs`` is an ann-benchmarks ``.hdf5`` file: its ``test`` set is then
    the queries. ``doc_ids`` / ``query_ids`` are id files (``FILE`` or ``FILE:FIELD``) or lists of ids.
    """
    if queries is None:
        if not _is_hdf5(docs):
            raise DataError("queries are needed: pass --queries FILE (only an ann-benchmarks .hdf5 docs file "
                            "holds its own queries)")
        queries = docs
    x = read_vectors(docs, role="docs")
    q = read_vectors(queries, role="queries")
    if x.shape[1] != q.shape[1]:
        raise DataError(f"docs have dimension {x.shape[1]} but queries have dimension {q.shape[1]}")
    source = {"docs": os.fspath(docs), "queries": os.fspath(queries)}
    metric = read_hdf5_metric(docs) if _is_hdf5(docs) else None
    neighbors = None
    if _is_hdf5(queries):
        query_metric = read_hdf5_metric(queries)
        if metric is not None and query_metric is not None and query_metric != metric:
            raise DataError(f"docs file {os.fspath(docs)!r} declares metric {metric} but queries file "
                            f"{os.fspath(queries)!r} declares {query_metric}")
        metric = metric or query_metric
        # The file's neighbors are rows of its own train set: they only describe these docs if both come
        # from the same file.
        if _is_hdf5(docs) and os.path.samefile(docs, queries):
            neighbors = read_hdf5_neighbors(queries, q.shape[0], x.shape[0])
            if neighbors is not None:
                source["neighbors"] = os.fspath(queries)
    if metric is not None:
        source["metric"] = metric
    data = Dataset(name or Path(docs).stem, x, q, None, None, source, metric, neighbors)
    attach_ids(data, doc_ids=doc_ids, query_ids=query_ids)
    if fields is not None:
        data.doc_fields = read_fields(fields, x.shape[0])
    if qrels is not None:
        attach_qrels(data, qrels)
    return data


def load_sample() -> Dataset:
    """The bundled MedQuAD sample (CC BY 4.0, see medqk/data/medquad_sample/README.md)."""
    from ..data import sample_path

    ds = load_folder(sample_path())
    ds.name = "medquad_sample"
    return ds


# ---------------------------------------------------------------------------------------------- texts

def read_text_records(path, flag: str) -> tuple[list[str], list[dict] | None]:
    """(texts, records) from a ``.jsonl`` file, one JSON object a line with a string ``"text"`` field (records:
    the objects, e.g. for ids and --shift fields), or from a plain text file, one text a line (records: None).
    Blank lines are skipped, so row i is the i-th non-blank line. ``flag`` names the file in every DataError."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{flag} {path!r}: cannot read ({exc})") from None
    if not lines:
        raise DataError(f"{flag} {path!r} holds no texts")
    if not path.lower().endswith(".jsonl"):
        return [line.rstrip("\n") for line in lines], None
    texts, records = [], []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            text = record["text"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{flag} {path!r}: line {number} is not a JSON object with a \"text\" field") from None
        if not isinstance(text, str):
            raise DataError(f"{flag} {path!r}: line {number}: \"text\" is not a string")
        texts.append(text)
        records.append(record)
    return texts, records


@dataclass
class TextData:
    """The texts a model embeds, and ``data``: what is known about their rows (qrels, ids, document fields,
    source) as a :class:`Dataset` whose vectors are placeholders of width 0 until embedded."""

    doc_texts: list[str]
    query_texts: list[str]
    data: Dataset

    def first_queries(self, n: int) -> None:
        """Keep only the first ``n`` queries, with their qrels and ids."""
        self.query_texts = self.query_texts[:n]
        self.data.first_queries(n)

    def keep_docs(self, n: int) -> None:
        """Keep ``n`` documents (fewer distractors, so retrieval gets easier; for quick runs): every document
        judged relevant to a query (all of them, even if more than ``n``), then the first others, in row order.
        Qrels, ids and fields follow; a file's true neighbours no longer apply and are dropped."""
        data = self.data
        total = len(self.doc_texts)
        relevant = {d for rel in data.qrels or [] for d in rel}
        keep = set(relevant)
        for row in range(total):
            if len(keep) >= n:
                break
            keep.add(row)
        if len(keep) >= total:
            return
        rows = sorted(keep)
        new_row = {old: i for i, old in enumerate(rows)}
        self.doc_texts = [self.doc_texts[r] for r in rows]
        data.docs = data.docs[rows]
        if data.qrels is not None:
            data.qrels = [[new_row[d] for d in rel] for rel in data.qrels]
        if data.doc_ids is not None:
            data.doc_ids = [data.doc_ids[r] for r in rows]
        if data.doc_fields is not None:
            data.doc_fields = [data.doc_fields[r] for r in rows]
        data.neighbors = None
        data.source["docs_kept"] = (f"{len(rows)} of {total} documents: the {len(relevant)} judged "
                                    "relevant to the queries kept, then the first others")


def _placeholder(n: int) -> np.ndarray:
    return np.zeros((n, 0), dtype=np.float32)


def load_texts(docs_text, queries_text, qrels=None, fields=None, *, doc_ids=None, query_ids=None) -> TextData:
    """Texts from ``docs_text`` / ``queries_text`` (see :func:`read_text_records`), and their qrels.

    Ids for string qrels: ``doc_ids`` / ``query_ids`` (id files or lists), else the ``_id`` / ``id`` fields of
    .jsonl texts when every record has a distinct one. Document fields (--shift): ``fields``, else the records
    of a .jsonl ``docs_text``."""
    docs, doc_records = read_text_records(docs_text, "--docs-text")
    queries, query_records = read_text_records(queries_text, "--queries-text")
    source = {"docs_text": os.fspath(docs_text), "queries_text": os.fspath(queries_text)}
    data = Dataset(Path(docs_text).stem, _placeholder(len(docs)), _placeholder(len(queries)), source=source)
    attach_ids(data, doc_ids=doc_ids, query_ids=query_ids)
    inferred = []
    for role, path, records in (("doc", docs_text, doc_records), ("query", queries_text, query_records)):
        if getattr(data, f"{role}_ids") is None and records is not None:
            ids = _infer_jsonl_ids(Path(path), len(records))
            if ids is not None:
                setattr(data, f"{role}_ids", ids)
                data.source[f"{role}_ids"] = os.fspath(path)
                inferred.append(role)
    if inferred:
        data.source["ids_inferred"] = inferred
    if fields is not None:
        data.doc_fields = read_fields(fields, len(docs))
    elif doc_records is not None:
        data.doc_fields = read_fields(docs_text, len(docs))  # adds "collection" to MedQuAD ids, as --fields does
    if qrels is not None:
        attach_qrels(data, qrels)
    return TextData(docs, queries, data)


def load_sample_texts() -> TextData:
    """The bundled MedQuAD sample's texts, qrels, ids and fields (medqk/data/medquad_sample/README.md)."""
    from ..data import sample_path

    sample = load_sample()
    folder = sample_path()
    docs, _ = read_text_records(folder / "docs.jsonl", "the sample's docs.jsonl")
    queries, _ = read_text_records(folder / "queries.jsonl", "the sample's queries.jsonl")
    sample.docs, sample.queries = _placeholder(len(docs)), _placeholder(len(queries))
    for key in ("docs", "queries"):  # the stored vectors, which the model's embeddings replace
        sample.source.pop(key, None)
    sample.source.update(docs_text=os.fspath(folder / "docs.jsonl"), queries_text=os.fspath(folder / "queries.jsonl"))
    return TextData(docs, queries, sample)
