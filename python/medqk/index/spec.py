"""Index spec strings.

Grammar (whitespace ignored, case-insensitive)::

    spec    := base [ "+rerank:" codec ]
    base    := codec | "hnsw" | "ivf" nlist "," [ "opq," ] "pq" M "x4fs"
    codec   := "float32" | "fp16" | "int8" | "int4" | "cb4" | "cb3" | "cb2" | "pca4" | "pca3" | "pca2"
             | "rabitq" | "rabitq" b
             | [ "opq," ] pq
    pq      := "pq" M "x4fs" | "pq" M "x8"

- ``float32``: exact search over the vectors as given (the reference).
- ``fp16``: vectors stored as IEEE half floats (2 bytes/dim), scored in float32.
- ``int8``: per-dimension scalar quantization to int8 codes (1 byte/dim), queries quantized to int8 and
  scored with the exact int8 GEMM; zero points and scales are folded back so scores approximate float
  inner products (or squared L2 distances).
- ``int4``: 16 evenly spaced levels per dimension (4 bits/dim, 192 B at 384-d); ``cb4`` / ``cb3`` /
  ``cb2``: 16 / 8 / 4 levels per dimension trained by optimal 1-D k-means; for inner products a vector's
  levels are chosen score-aware (option ``eta``, :meth:`medqk.quantizers.codebook.LevelCodec.encode`),
  not just nearest (MedQuAD cb4 R@10 0.951 -> 0.961). All four are searched with
  4-bit lookup tables (``vpshufb`` / ``vqtbl1q``) -- batches of 256+ queries by the int8 GEMM over blocks
  decoded to int8, see :mod:`medqk.index.lut4`; ``cb3`` is stored in the 4-bit layout (4 bits/dim),
  ``cb2`` packs two dimensions per 4-bit code (2 bits/dim).
- ``pca4`` / ``pca3`` / ``pca2``: the same 4-bit tables and scan, but the b * d / 4 nibbles (b = 4, 3, 2
  bits per dimension on average; 192 / 144 / 96 B at 384-d) are spread over PCA directions by a dynamic
  program: 1-3 nibbles on the high-variance directions, one nibble shared by 2-4 low-variance ones, none
  on the last (:mod:`medqk.quantizers.pca`). R@10 0.975 at 192 B on MedQuAD where ``cb4`` gets 0.951.
- ``rabitq``: 1-bit RaBitQ (Gao & Long, SIGMOD 2024; :mod:`medqk.quantizers.rabitq`): a seeded random
  rotation of the residual to the data centroid, one sign bit per dimension and two float32 factors
  (ceil(d / 8) + 8 bytes, 56 B at 384-d), scored by AND-popcount over 4-bit query planes
  (:mod:`medqk.index.rabitq`); the sign codes are score-aware by default (option ``aware_passes``, 0: the
  paper's codes; MedQuAD R@10 0.769 -> 0.802). ``rabitq<b>``, b = 2..8 (e.g. ``rabitq2``, ``rabitq4``):
  Extended RaBitQ (Gao et al., SIGMOD 2025) on the same rotation, b bits per dimension rescaled per vector
  to the code of largest cosine, ceil(b d / 8) + 8 bytes (104 / 152 / 200 B at 384-d for b = 2 / 3 / 4), the
  same scan over the b bit planes.
- ``pq<M>x4fs``: product quantization, M subspaces of 16 centroids (M / 2 bytes per vector, e.g.
  ``pq96x4fs`` = 48 B at 384-d), scanned with the same 4-bit tables (faiss "fast scan"). M must divide
  the dimension. ``pq<M>x8``: 256 centroids per subspace (M bytes per vector, e.g. ``pq48x8`` = 48 B),
  searched with uint16 tables over blocks of 8 queries; M <= 256 (its scan sums in 16 bits). Every 4-bit
  codec takes up to 65,536 sub-codes per vector (exact integer sums below 2^23).
- ``opq,<pq>``: optimized product quantization (e.g. ``opq,pq48x8``, ``opq,pq96x4fs+rerank:int8``): the
  vectors are rotated by a learned orthogonal matrix before PQ (:mod:`medqk.quantizers.opq`), which
  balances the variance over the subspaces; same bytes per vector as ``<pq>`` plus one d x d matrix,
  one extra query rotation per search. The prefix goes only before a ``pq`` codec.
- ``ivf<nlist>,<pq>`` (e.g. ``ivf1024,pq96x4fs``, ``ivf256,opq,pq48x4fs+rerank:int8``): an inverted file for
  large corpora: a coarse k-means with nlist centroids, each vector stored in the list of its nearest
  centroid as the 4-bit PQ code of its residual (vector - centroid); a search scans only the ``nprobe``
  best lists (an option, default 16, settable later: ``index.nprobe = 32`` or ``search(q, k, nprobe=32)``).
  8 + M / 2 bytes per vector (the id and the codes). Only 4-bit fast-scan codes go after ``ivf``; see
  :mod:`medqk.index.ivf` for the scoring.
- ``hnsw``: hnswlib's float32 HNSW graph (optional dependency hnswlib), a graph baseline.
- ``<base>+rerank:<codec>``: search the base codes for ``rerank_factor * k`` candidates, then re-score them
  with a second, finer stored copy (e.g. ``int8+rerank:float32``).

Each codec (and codec family) is one row of :data:`medqk.index.codecs.TABLE`: the pattern of its part, the
form the grammar shows, its options and defaults, bytes per vector and factory. The names below
(``CODECS``, ``BYTES_PER_DIM``, ``CODEC_FORMS``, ``SPEC_GRAMMAR``) are derived from it; this module adds the
near-miss diagnostics of the PQ and IVF families (``pq8x4``: write ``pq8x4fs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .codecs import TABLE, lookup

# Derived from the codec table (medqk.index.codecs), kept as the public names they have always been.
CODECS = tuple(c.name for c in TABLE if c.is_fixed and not c.base_only)  # the fixed codecs, rerank ones too
BASES = CODECS + tuple(c.name for c in TABLE if c.is_fixed and c.base_only)
_NOMINAL_DIM = 384  # bytes per dimension of codecs that round to whole bytes (cb2, pca3), at an even dim
BYTES_PER_DIM = {c.name: c.bytes_per_vector((), _NOMINAL_DIM) / _NOMINAL_DIM for c in TABLE if c.is_fixed}


@dataclass(frozen=True)
class IndexSpec:
    base: str
    rerank: str | None = None

    def __str__(self) -> str:
        return self.base + (f"+rerank:{self.rerank}" if self.rerank else "")


# The accepted forms, compactly (--help, error messages): the PQ and IVF forms take any M / nlist, so no list
# of specs can be complete.
CODEC_FORMS = ", ".join(f for c in TABLE if not c.base_only for f in c.forms()) + " (M divides the dimension)"
SPEC_GRAMMAR = (f"{CODEC_FORMS}, {', '.join(f for c in TABLE if c.base_only for f in c.forms())}, "
                f"and <base>+rerank:<codec> (<base> any of these, <codec> any but "
                f"{' and '.join(c.kind for c in TABLE if c.base_only)})")
SPEC_EXAMPLES = ("int8", "cb4", "pq64x4fs", "pq32x8", "opq,pq48x8", "ivf128,pq64x4fs", "pq96x4fs+rerank:int8",
                 "hnsw")


def spec_help() -> str:
    """Every form of spec (:data:`SPEC_GRAMMAR`) and a few examples, in one line."""
    return f"{SPEC_GRAMMAR}; e.g. {', '.join(SPEC_EXAMPLES)}"


def valid_specs() -> list[str]:
    """Examples of every accepted form (not all specs: see :data:`SPEC_GRAMMAR` and :func:`spec_help`)."""
    return list(BASES) + ["pq96x4fs", "pq48x8", "opq,pq96x4fs", "opq,pq48x8", "ivf1024,pq96x4fs",
                          "ivf1024,opq,pq96x4fs", "ivf1024,pq96x4fs+rerank:int8", "pq96x4fs+rerank:int8",
                          "opq,pq96x4fs+rerank:int8", "cb4+rerank:int8", "hnsw+rerank:int8"]


_PQ = re.compile(r"^pq(\d+)x(\d+)(fs)?$")
_IVF = re.compile(r"^ivf(\d+),(.*)$")
OPQ_PREFIX = "opq,"


def split_opq(codec: str) -> tuple[bool, str]:
    """(has the ``opq,`` prefix, the codec after it)."""
    if codec.startswith(OPQ_PREFIX):
        return True, codec[len(OPQ_PREFIX):]
    return False, codec


def parse_pq(codec: str) -> tuple[int, int, bool] | None:
    """(M, nbits, fast_scan) of a pq codec string, or None."""
    m = _PQ.match(codec)
    return (int(m.group(1)), int(m.group(2)), bool(m.group(3))) if m else None


def split_specs(text: str) -> list[str]:
    """Specs of a comma-separated list, where commas also sit inside specs (``opq,pq48x8``,
    ``ivf1024,opq,pq96x4fs``): a piece ``opq`` or ``ivf<nlist>`` joins the piece after it."""
    out: list[str] = []
    glue = False
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if glue:
            out[-1] += "," + piece
        else:
            out.append(piece)
        glue = piece.lower() == "opq" or re.fullmatch(r"ivf\d+", piece.lower()) is not None
    return out


def parse_ivf(base: str) -> tuple[int, str] | None:
    """(nlist, codec after the comma) of an ``ivf<nlist>,<codec>`` base, or None for another base.
    Raises ValueError for an ivf base that is malformed or has a codec IVF does not take."""
    if not base.startswith("ivf"):
        return None
    m = _IVF.match(base)
    if m is None:
        raise ValueError(f"invalid spec '{base}': write ivf<nlist>,pq<M>x4fs, e.g. ivf1024,pq96x4fs")
    nlist, codec = int(m.group(1)), m.group(2)
    if nlist < 1:
        raise ValueError(f"invalid spec '{base}': nlist must be >= 1")
    if not _is_codec(codec) or not lookup(codec)[0].under_ivf:
        raise ValueError(
            f"invalid spec '{base}': after 'ivf{nlist},' expected a 4-bit fast-scan PQ codec, "
            f"{' or '.join(c.form for c in TABLE if c.under_ivf)} (8-bit PQ and scalar codecs are not "
            f"available under IVF), got '{codec}'"
        )
    return nlist, codec


def _is_codec(codec: str) -> bool:
    """codec names a row of the codec table that may follow '+rerank:'; raises ValueError for the near-misses
    of the PQ family, with what to write instead."""
    found = lookup(codec)
    opq, codec = split_opq(codec)
    if opq and parse_pq(codec) is None:
        raise ValueError(
            f"invalid spec 'opq,{codec}': 'opq,' (a learned rotation) goes only before a pq codec, "
            f"e.g. opq,pq48x8 or opq,pq96x4fs"
        )
    bits = re.fullmatch(r"rabitq(\d+)", codec)
    if bits is not None and (not 2 <= int(bits.group(1)) <= 8 or bits.group(1).startswith("0")):
        hint = ": the 1-bit code is written rabitq" if int(bits.group(1)) == 1 else ""
        raise ValueError(f"invalid spec '{codec}': rabitq<b> takes b = 2..8 bits per dimension, got "
                         f"{bits.group(1)}{hint}")
    pq = parse_pq(codec)
    if pq is None:
        return found is not None and not found[0].base_only
    M, nbits, fs = pq
    if M < 1:
        raise ValueError(f"invalid spec '{codec}': M must be >= 1")
    if nbits not in (4, 8):
        raise ValueError(f"invalid spec '{codec}': PQ nbits must be 4 or 8, got {nbits}")
    if nbits == 4 and not fs:
        raise ValueError(f"spec '{codec}': 4-bit PQ is stored in the fast-scan layout, write pq{M}x4fs")
    if nbits == 8 and fs:
        raise ValueError(f"spec '{codec}': the fast-scan layout is for 4-bit codes, write pq{M}x8")
    return found is not None and not found[0].base_only


def parse_spec(spec: str) -> IndexSpec:
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string such as 'int8', got {type(spec).__name__}")
    text = "".join(spec.split()).lower()
    base, sep, rest = text.partition("+")
    rerank = None
    if sep:
        kind, colon, codec = rest.partition(":")
        if kind != "rerank" or not colon or not _is_codec(codec):
            raise ValueError(
                f"invalid spec {spec!r}: after '+' expected 'rerank:<codec>' with <codec> one of "
                f"{CODEC_FORMS}"
            )
        rerank = codec
    if parse_ivf(base) is None and not _is_codec(base) and lookup(base) is None:
        raise ValueError(f"unknown index spec {spec!r}; valid specs: {spec_help()}")
    return IndexSpec(base, rerank)
