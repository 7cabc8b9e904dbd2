"""RaBitQ (Gao & Long, "RaBitQ: Quantizing High-Dimensional Vectors with a Theoretical Error Bound for
Approximate Nearest Neighbor Search", SIGMOD 2024) and its multi-bit extension (below), implemented from the
papers: 1 bit per dimension first, then what b bits change.

Encoding (train: the centroid c of the data and a rotation P; then per vector o_r):

- ``r = o_r - c``, ``o = r / ||r||`` (the unit residual), rotated ``o' = o @ P``.
- P is a Haar-random orthogonal d x d matrix: the Q of the QR decomposition of a Gaussian matrix drawn from
  ``numpy.random.default_rng(seed)``, its columns' signs fixed by diag(R) (Mezzadri 2007: without the fix Q is
  not Haar distributed). It is stored (float32) with the codec, so a loaded index scores exactly as the saved one.
- Code: one sign bit per dimension, ``b_i = [o'_i > 0]``, packed 8 dimensions per byte, little-endian within a
  byte (``numpy.packbits(..., bitorder="little")``): ceil(d / 8) bytes, the padding bits of the last byte 0.
  The code stands for the unit vector ``o_bar = (2 b - 1) / sqrt(d)`` (in the rotated space).
- Factor ``a = <o_bar, o'> = sum_i |o'_i| / sqrt(d)`` (about sqrt(2 / pi) ~ 0.80 for large d).

Score-aware codes (``aware_passes`` > 0, the default; an addition to the paper, in the spirit of ScaNN's
anisotropic loss). The paper's code, sign(o'), is the best one for queries spread evenly over the sphere.
Real queries are not: their directions have a covariance S (estimated at training on the training vectors'
rotated unit residuals, mixed with the isotropic one: ``S_mix = (1 - aware_mix) S + aware_mix I / d``).
Keeping the estimator ``<x, q'> / <x, o'>`` (x = (2 b - 1) / sqrt(d); exact along o' for any x), its error
is ``<e, q'>`` with ``e = x / <x, o'> - o'``, of mean square ``e^T S_mix e`` over the queries; each pass
visits the dimensions in order and flips a bit wherever that lowers ``e^T S_mix e`` (starting from
sign(o')). On MedQuAD dev (d = 384) R@10 went from 0.769 (the paper's codes) to 0.794 (mix 0) and 0.802
(mix 0.3), two passes. Such codes depend on the data, so the estimator is no longer unbiased over the
rotation and the eps0 bound below is the paper's, for ``aware_passes=0``; the always-true bound holds for
both (with a = <x, o'>).

Estimator: for any unit query direction q (rotated q' = q @ P), ``<o, q> ~ <o_bar, q'> / a``. Over the random
rotation it is unbiased (paper, Theorem 3.2), and its error is ``<o_bar, q'_perp> / a`` where q'_perp is the
part of q' orthogonal to o'. Two bounds follow:

- always: ``|error| <= sqrt(1 - a^2) / a * sqrt(1 - <o, q>^2)`` (Cauchy-Schwarz);
- with confidence ``1 - delta``: ``|error| <= sqrt(1 - a^2) / a * eps0 / sqrt(d - 1)``. Given o_bar, the
  direction of q'_perp is uniform on the sphere of the (d - 1)-dimensional complement of o', so the
  normalized product is one coordinate of a uniform unit vector of R^(d-1), and the sphere's concentration
  gives ``delta <= 2 exp(-eps0^2 / 2)`` (:func:`bound_failure_probability`). That coordinate is close to
  N(0, 1 / (d - 1)), so the typical failure rate is about ``2 (1 - Phi(eps0))``: 5.7% at the paper's
  eps0 = 1.9 (this module's default), 0.3% at 3.

Multi-bit codes (``bits`` = b in 2..8; Extended RaBitQ, Gao et al., "Practical and Asymptotically Optimal
Quantization of High-Dimensional Vectors in Euclidean Space for Approximate Nearest Neighbor Search",
SIGMOD 2025). The same rotation; each vector's code is an integer x in 0..2^b - 1 per dimension standing for
``y_hat = (2 x - (2^b - 1)) / sqrt(d)``, the odd integers -(2^b - 1)..2^b - 1 scaled (b = 1: the sign code's
+-1 / sqrt(d)). Per vector the code is the grid point nearest to ``t o'`` for the rescaling t that maximises
the cosine ``a = <y_hat, o'> / ||y_hat||`` (:func:`extended_codes`: ``|y_hat_i| ~ 2 min(floor(t |o'_i|),
2^(b-1) - 1) + 1``, sign of o'_i; a grid over t, within 4e-4 of the exact optimum's cosine in the tests,
where the paper enumerates every critical t); the estimator is ``<o, q> ~ <y_hat, q'> / <y_hat, o'>``, exact along o'
and, as in the paper, unbiased over the rotation, with the error bounds below for this a. Stored: the b bit
planes of x one after the other, bit k of x_i at bit ``k d + i`` of one ``ceil(b d / 8)``-byte code (b = 1:
the sign code's layout), so the scan sees a 1-bit code of b d dimensions; ``ceil(b d / 8) + 8`` bytes per
vector (104 / 152 / 200 / 248 B for b = 2 / 3 / 4 / 5 at d = 384). Score-aware codes are 1-bit only.

Scores. With ``q_r`` the raw query, ``n_q = ||q_r - c||`` and q the unit centered query:

- ip: ``<o_r, q_r> = (<c, q_r> - ||c||^2) + <o_r, c> + n_q * ||r|| * <o, q>``;
- l2 ("higher is better" score ``2 <q_r, o_r> - ||o_r||^2 = ||q_r||^2 - ||o_r - q_r||^2``):
  ``(||q_r||^2 - n_q^2) - ||r||^2 + 2 n_q * ||r|| * <o, q>``.

So ``score = A_q + B_v + C_q * M_v * <y_hat, q'>``, with the per-vector factors ``M_v = ||r|| / <y_hat, o'>``
(1 bit: ``||r|| / a``) and ``B_v`` (ip: ``<o_r, c>``; l2: ``-||r||^2``) stored as float32: ceil(b d / 8) + 8
bytes per vector (56 B at d = 384, b = 1). A residual of zero (o_r = c) gets M_v = 0: its score is exact.

Scan. The rotated query is quantized to ``query_bits`` (B) unsigned bits, ``q'_i ~ lo + delta * u_i`` with
``u_i = rint((q'_i - lo) / delta)`` in 0..2^B - 1, lo = min q', delta = (max q' - lo) / (2^B - 1) (nearest
rounding; the paper's randomized rounding only removes a bias far below the estimator's own error). The
integer part is then AND-popcount work on the B bit planes of u (``plane_j`` holds bit j of every u_i, in
the code's bit order):

    ip_int = sum_j 2^j popcount(code & plane_j) = sum_i b_i u_i        (exact, < d 2^B)
    pop    = popcount(code)                     = sum_i b_i            (padding bits masked)

and ``<o_bar, q_hat'> = (2 (delta ip_int + lo pop) - (delta sum_i u_i + d lo)) / sqrt(d)``, which the scan
folds into ``t = c1 ip_int + c2 pop + c3`` (float32 per-query constants, :class:`RaBitQQuery`) and scores
``A_q + B_v + M_v t`` in float32 in that order (:func:`scan_scores`; the scans: medqk.kernels.rabitq_search_topk,
native and Numba, give the same bits). Quantizing the query adds at most ``sqrt(d) delta / 2 / a`` to the error
of <o, q> (|q'_i - q_hat'_i| <= delta / 2), which :meth:`RaBitQCodec.error_bound` includes.

Multi-bit scan: the same AND-popcount over the b d-bit code, with the query planes of segment k (the
dimensions of plane k of x) holding ``u << k``, so that ``ip_int = sum_k 2^k sum_i x_ik u_i = sum_i x_i u_i``;
``pop`` is then ``S = sum_i x_i`` (:func:`code_sums`; the index passes it to the scan in place of the plain
popcount) and ``<y_hat, q_hat'> = (2 (delta ip_int + lo S) - (2^b - 1)(delta sum u + d lo)) / sqrt(d)``. The
scan takes at most 8 query planes (weights up to 2^7), so with ``B + b - 1 > 8`` the shift
``s = B + b - 1 - 8`` drops the lowest s bits of every segment's query: segment k holds ``u << (k - s)`` for
k >= s and ``rint(U 2^(k - s))`` (U the unrounded (q' - lo) / delta) for k < s, and c1 carries the factor
2^s; the error this adds is in :meth:`RaBitQCodec.error_bound`. ``ip_int < b d 2^8``: exact in int32 and in
float32 for b d < 2^16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import IndexFileError

METRICS = ("ip", "l2")
DEFAULT_EPS0 = 1.9  # the paper's choice
_AWARE_CHUNK = 8192  # rows per score-aware encoding step (float64 work arrays of 8192 x d)
_EXTENDED_CHUNK = 128  # rows per extended_codes step (float64 work arrays of 128 x _GRID x d)


def bound_failure_probability(eps0: float) -> float:
    """Upper bound on the probability that one estimate's error exceeds its eps0 bound: 2 exp(-eps0^2 / 2)
    (concentration of a coordinate of a uniform unit vector; see the module doc)."""
    return min(1.0, 2.0 * math.exp(-0.5 * eps0 * eps0))


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal (dim, dim) float64 matrix from ``default_rng(seed)`` (QR with the signs of
    diag(R) moved into Q)."""
    g = np.random.default_rng(seed).standard_normal((dim, dim))
    q, r = np.linalg.qr(g)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


MAX_BITS = 8  # bits per dimension of the codes (rabitq<b>: 2..8); the scan takes at most 8 query planes
_GRID = 48  # rescalings tried per vector by extended_codes, then _GRID // 2 between the best one's neighbours


def code_bytes(dim: int, bits: int = 1) -> int:
    """Bytes of one code: the b bit planes of d dimensions, 8 bits per byte."""
    return (bits * dim + 7) // 8


def query_shift(bits: int, query_bits: int) -> int:
    """s of the module doc: the query bits the lowest segments lose to the scan's 8-plane limit."""
    return max(0, query_bits + bits - 1 - MAX_BITS)


def extended_codes(rot: np.ndarray, bits: int) -> np.ndarray:
    """Extended RaBitQ codes (n, d) uint8 in 0..2^bits - 1 of rotated unit residuals (n, d), per row the
    grid point nearest to t o' for the t (of a geometric grid tau / max|o'_i|, tau in [1, 3 * 2^(bits - 1)],
    then a finer grid between the best point's neighbours) with the largest cosine to o'. tau < 1 gives the
    sign code; past 3 * 2^(bits - 1) more than the top third of the range is clipped."""
    o = np.abs(rot).astype(np.float64)
    top = (1 << (bits - 1)) - 1  # the largest magnitude level k (|y| = 2 k + 1)
    peak = np.maximum(o.max(axis=1), 1e-30)[:, None]

    def cosine(tau):  # tau: (n, m) -> cosines (n, m)
        k = np.minimum(np.floor(tau[:, :, None] / peak[:, :, None] * o[:, None, :]), top)
        mag = 2 * k + 1
        return np.einsum("nmd,nd->nm", mag, o) / np.sqrt(np.einsum("nmd,nmd->nm", mag, mag))

    coarse = np.geomspace(1.0, 3.0 * (top + 1), _GRID)
    best = np.argmax(cosine(np.broadcast_to(coarse, (len(o), _GRID))), axis=1)
    lo, hi = coarse[np.maximum(best - 1, 0)], coarse[np.minimum(best + 1, _GRID - 1)]
    fine = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, _GRID // 2)[None, :]
    tau = np.take_along_axis(fine, np.argmax(cosine(fine), axis=1)[:, None], axis=1)
    k = np.minimum(np.floor(tau / peak * o), top).astype(np.int64)
    half = 1 << (bits - 1)
    return np.where(rot > 0, half + k, half - 1 - k).astype(np.uint8)


def pack_code_planes(x: np.ndarray, bits: int) -> np.ndarray:
    """(n, d) codes in 0..2^bits - 1 -> (n, ceil(bits d / 8)) uint8: bit k of x_i at bit k d + i."""
    shifts = np.arange(bits, dtype=np.uint8)[None, :, None]
    return pack_bits(((x[:, None, :] >> shifts) & 1).reshape(len(x), -1))


def unpack_code_planes(codes: np.ndarray, dim: int, bits: int) -> np.ndarray:
    """The inverse of :func:`pack_code_planes`: (n, d) int64 codes."""
    planes = unpack_bits(codes, bits * dim).reshape(len(codes), bits, dim).astype(np.int64)
    return np.einsum("nkd,k->nd", planes, 1 << np.arange(bits, dtype=np.int64))


def code_sums(codes: np.ndarray, dim: int, bits: int) -> np.ndarray:
    """S = sum_i x_i per code, (n,) int32: what the multi-bit scan reads in place of the popcount."""
    planes = unpack_bits(codes, bits * dim).reshape(len(codes), bits, dim).sum(axis=2, dtype=np.int64)
    return (planes @ (1 << np.arange(bits, dtype=np.int64))).astype(np.int32)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, d) booleans -> (n, ceil(d / 8)) uint8, dimension i in bit i % 8 of byte i // 8; padding bits 0."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1, bitorder="little")


def unpack_bits(codes: np.ndarray, dim: int) -> np.ndarray:
    """(n, ceil(d / 8)) uint8 -> (n, d) uint8 0/1 (padding bits dropped)."""
    return np.unpackbits(codes, axis=1, bitorder="little", count=dim)


def _check_vectors(x, name: str, dim: int) -> np.ndarray:
    """float32 C-contiguous (n, dim), the indexes' checks (NaN/Inf, dtype, shape, empty: errors naming x)."""
    from ..index.flat import as_vectors  # lazy: the index package imports the quantizers

    return as_vectors(x, name, dim)


def scan_scores(ip, pop, a, c1, c2, c3, mult, add) -> np.ndarray:
    """The scan's float32 scores (nq, n) from its integers ip (nq, n) and pop (n,), in numpy, in the order
    every scan uses (Numba twin, native kernels): ``(add + a) + mult * ((c1 ip + c2 pop) + c3)``."""
    f32 = np.float32
    t = (c1[:, None] * ip.astype(f32) + c2[:, None] * pop.astype(f32)[None, :]) + c3[:, None]
    return (add[None, :] + a[:, None]) + mult[None, :] * t


@dataclass
class RaBitQCodes:
    """Codes of n vectors: ``codes`` (n, ceil(b d / 8)) uint8, ``mult`` M_v and ``add`` B_v float32 (n,) (what
    the scan reads), ``dot`` the cosine a = <y_hat, o'> / ||y_hat|| and ``norm`` ||o_r - c|| float32 (n,) (for
    error bounds)."""

    codes: np.ndarray
    mult: np.ndarray
    add: np.ndarray
    dot: np.ndarray
    norm: np.ndarray


@dataclass
class RaBitQQuery:
    """Quantized queries: ``planes`` (nq, P, ceil(b d / 8)) uint8 bit planes of u (b > 1: of every segment's
    query, module doc; P = min(8, B + b - 1)) in the code's bit order; the
    float32 (nq,) constants of ``A_q + B_v + M_v (c1 ip_int + c2 pop + c3)``; ``norm`` n_q, ``delta`` and the
    unquantized rotated unit query ``rotated`` (nq, d) (for :meth:`RaBitQCodec.estimate_float` and bounds)."""

    planes: np.ndarray
    a: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    c3: np.ndarray
    norm: np.ndarray
    delta: np.ndarray
    rotated: np.ndarray


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


class RaBitQCodec:
    """The RaBitQ codec of the module doc. ``metric``: "ip" or "l2"; ``bits``: code bits per dimension (1: the
    sign code; 2-8: Extended RaBitQ); ``query_bits``: bits of the quantized query (1-8, default 4); ``seed``: of
    the rotation; ``eps0``: confidence parameter of :meth:`error_bound` (failure probability <=
    :func:`bound_failure_probability`); ``aware_passes`` (0: the paper's sign codes; None: 2 for 1 bit, 0
    otherwise) and ``aware_mix`` in [0, 1]: the score-aware codes of the module doc (1 bit only)."""

    def __init__(self, dim: int, metric: str = "ip", query_bits: int = 4, seed: int = 1234,
                 eps0: float = DEFAULT_EPS0, aware_passes: int | None = None, aware_mix: float = 0.3,
                 bits: int = 1):
        if not _is_int(dim) or dim < 2:
            raise ValueError(f"dim must be an int >= 2 (the error bound divides by sqrt(dim - 1)), got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not _is_int(bits) or not 1 <= bits <= MAX_BITS:
            raise ValueError(f"bits must be an int in 1..{MAX_BITS} (code bits per dimension), got {bits!r}")
        if not _is_int(query_bits) or not 1 <= query_bits <= 8:
            raise ValueError(f"query_bits must be an int in 1..8, got {query_bits!r}")
        if not (isinstance(eps0, (int, float)) and math.isfinite(eps0) and eps0 > 0):
            raise ValueError(f"eps0 must be a positive finite number, got {eps0!r}")
        if aware_passes is None:
            aware_passes = 2 if bits == 1 else 0
        if not _is_int(aware_passes) or aware_passes < 0:
            raise ValueError(f"aware_passes must be an int >= 0, got {aware_passes!r}")
        if aware_passes and bits > 1:
            raise ValueError(f"aware_passes must be 0 with bits={bits}: score-aware codes are 1-bit only")
        if not (isinstance(aware_mix, (int, float)) and 0 <= aware_mix <= 1):
            raise ValueError(f"aware_mix must be a number in [0, 1], got {aware_mix!r}")
        self.aware_passes, self.aware_mix, self.bits = int(aware_passes), float(aware_mix), int(bits)
        self.dim, self.metric, self.query_bits = int(dim), metric, int(query_bits)
        self.seed, self.eps0 = int(seed), float(eps0)
        self.rotation: np.ndarray | None = None  # (d, d) float32, orthogonal
        self.centroid: np.ndarray | None = None  # (d,) float32
        self.query_cov: np.ndarray | None = None  # (d, d) float32 S_mix, with aware_passes > 0

    @property
    def is_trained(self) -> bool:
        return self.rotation is not None

    @property
    def code_bytes(self) -> int:
        return code_bytes(self.dim, self.bits)

    @property
    def bytes_per_vector(self) -> float:
        """The code (b bit planes) and the two float32 factors the scan reads."""
        return float(self.code_bytes + 8)

    def config(self) -> dict:
        """The options that rebuild this codec (the index spec carries ``bits``: rabitq<b>)."""
        if self.bits > 1:
            return {"query_bits": self.query_bits, "seed": self.seed, "eps0": self.eps0}
        return {"query_bits": self.query_bits, "seed": self.seed, "eps0": self.eps0,
                "aware_passes": self.aware_passes, "aware_mix": self.aware_mix}

    def train(self, x: np.ndarray) -> RaBitQCodec:
        """The centroid of x (n, d) and the seeded rotation; x needs at least one vector."""
        x = _check_vectors(x, "x", self.dim)
        self.centroid = x.astype(np.float64).mean(axis=0).astype(np.float32)
        self.rotation = random_rotation(self.dim, self.seed).astype(np.float32)
        self.query_cov = None
        if self.aware_passes:
            rot, norm = self._rotate_unit(x)
            rot = rot[norm > 0].astype(np.float64)
            cov = rot.T @ rot / max(len(rot), 1)
            self.query_cov = ((1 - self.aware_mix) * cov + self.aware_mix * np.eye(self.dim) / self.dim
                              ).astype(np.float32)
        return self

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError("the RaBitQ codec must be trained first: call train(x)")

    def _rotate_unit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rotated unit residuals (n, d), residual norms (n,)) of x; a zero residual stays 0."""
        r = x - self.centroid
        norm = np.sqrt(np.einsum("ij,ij->i", r, r, dtype=np.float64)).astype(np.float32)
        unit = r / np.where(norm > 0, norm, 1)[:, None]
        return unit @ self.rotation, norm

    def encode(self, x: np.ndarray) -> RaBitQCodes:
        self._require_trained()
        x = _check_vectors(x, "x", self.dim)
        rot, norm = self._rotate_unit(x)
        if self.bits > 1:
            xs = np.concatenate([extended_codes(rot[i : i + _EXTENDED_CHUNK], self.bits)
                                 for i in range(0, len(rot), _EXTENDED_CHUNK)])
            codes = pack_code_planes(xs, self.bits)
            y = 2 * xs.astype(np.float64) - ((1 << self.bits) - 1)  # y_hat * sqrt(d)
            y_norm = np.sqrt(np.einsum("ij,ij->i", y, y))
            yo = np.einsum("ij,ij->i", y, rot.astype(np.float64)) / math.sqrt(self.dim)  # <y_hat, o'>
            dot = np.where(norm > 0, yo / y_norm * math.sqrt(self.dim), 1).astype(np.float32)
            mult = np.where(norm > 0, norm / np.where(norm > 0, yo, 1), 0).astype(np.float32)
        else:
            if self.aware_passes:
                signs = np.concatenate([self._aware_signs(rot[i : i + _AWARE_CHUNK])
                                        for i in range(0, len(rot), _AWARE_CHUNK)])
            else:
                signs = rot > 0
            codes = pack_bits(signs)
            dot = (np.where(signs, rot, -rot).sum(axis=1, dtype=np.float64) / math.sqrt(self.dim)).astype(np.float32)
            dot = np.where(norm > 0, dot, 1).astype(np.float32)
            mult = np.where(norm > 0, norm / dot, 0).astype(np.float32)
        if self.metric == "ip":
            add = (x @ self.centroid).astype(np.float32)
        else:
            add = -(norm.astype(np.float64) ** 2).astype(np.float32)
        return RaBitQCodes(codes, mult, add, dot, norm)

    def _aware_signs(self, rot: np.ndarray) -> np.ndarray:
        """Score-aware sign codes (module doc) of rotated unit residuals (n, d): greedy bit flips, dimension by
        dimension, each lowering e^T S e with e = x / <x, o'> - o'; <x, o'> is kept above 1e-3 (a zero
        residual keeps sign(o') = all False)."""
        d = self.dim
        cov = self.query_cov.astype(np.float64)
        o = rot.astype(np.float64)
        x = np.where(o > 0, 1.0, -1.0) / math.sqrt(d)
        sx, so = x @ cov, o @ cov  # S x, S o per row
        xsx, xso, a = np.einsum("ij,ij->i", x, sx), np.einsum("ij,ij->i", x, so), np.einsum("ij,ij->i", x, o)
        live = a > 1e-3
        diag = np.diag(cov) / d  # x_i^2 S_ii
        for _ in range(self.aware_passes):
            for i in range(d):
                xi = x[:, i]
                a2 = a - 2 * xi * o[:, i]
                xsx2 = xsx - 4 * xi * sx[:, i] + 4 * diag[i]
                xso2 = xso - 2 * xi * so[:, i]
                ok = live & (a2 > 1e-3)
                safe_a, safe_a2 = np.where(live, a, 1), np.where(ok, a2, 1)
                gain = (xsx / safe_a ** 2 - 2 * xso / safe_a) - (xsx2 / safe_a2 ** 2 - 2 * xso2 / safe_a2)
                rows = np.flatnonzero(ok & (gain > 0))
                if len(rows):
                    old = x[rows, i].copy()
                    x[rows, i] = -old
                    sx[rows] -= (2 * old)[:, None] * cov[i][None, :]
                    a[rows], xsx[rows], xso[rows] = a2[rows], xsx2[rows], xso2[rows]
        return x > 0

    def quantize_queries(self, q: np.ndarray) -> RaBitQQuery:
        """The queries' bit planes and scan constants (module doc)."""
        self._require_trained()
        q = _check_vectors(q, "q", self.dim)
        d, levels = self.dim, (1 << self.query_bits) - 1
        rot, norm = self._rotate_unit(q)
        lo = rot.min(axis=1)
        delta = (rot.max(axis=1) - lo) / levels
        delta = np.where(delta > 0, delta, 1).astype(np.float32)  # a constant query: every u_i = 0
        scaled = (rot - lo[:, None]) / delta[:, None]  # U of the module doc
        u = np.clip(np.rint(scaled), 0, levels).astype(np.uint8)
        shift = query_shift(self.bits, self.query_bits)
        if self.bits > 1:  # segment k of the b d-dimensional query: u << (k - s), or rint(U 2^(k - s)) for k < s
            segments = [u << (k - shift) if k >= shift else np.minimum(np.rint(scaled * 2.0 ** (k - shift)), levels)
                        for k in range(self.bits)]
            v = np.concatenate(segments, axis=1).astype(np.uint8)
        else:
            v = u
        # bit j of every v_i, for every j at once: one packbits over (nq, planes, b d) (per-call overhead matters
        # for single queries)
        shifts = np.arange(min(MAX_BITS, self.query_bits + self.bits - 1), dtype=np.uint8)[None, :, None]
        planes = np.packbits((v[:, None, :] >> shifts) & 1, axis=2, bitorder="little")
        s = 1.0 / math.sqrt(d)
        lo64, delta64, sum_u = lo.astype(np.float64), delta.astype(np.float64), u.sum(axis=1, dtype=np.int64)
        if self.metric == "ip":
            a = q.astype(np.float64) @ self.centroid - float(self.centroid.astype(np.float64) @ self.centroid)
            c = norm.astype(np.float64)
        else:
            a = np.einsum("ij,ij->i", q, q, dtype=np.float64) - norm.astype(np.float64) ** 2
            c = 2.0 * norm.astype(np.float64)
        f32 = np.float32
        odd_max = (1 << self.bits) - 1  # y_hat * sqrt(d) = 2 x - odd_max
        c3 = -c * s * odd_max * (delta64 * sum_u + d * lo64)
        return RaBitQQuery(planes, a.astype(f32), (c * 2 * s * delta64 * (1 << shift)).astype(f32),
                           (c * 2 * s * lo64).astype(f32), c3.astype(f32), norm, delta, rot)

    def _odd_codes(self, codes: RaBitQCodes) -> np.ndarray:
        """y_hat * sqrt(d) = 2 x - (2^b - 1) of every code, (n, d) float64 (odd integers)."""
        return 2 * unpack_code_planes(codes.codes, self.dim, self.bits).astype(np.float64) - ((1 << self.bits) - 1)

    def estimate_float(self, codes: RaBitQCodes, q: np.ndarray) -> np.ndarray:
        """The paper's estimator with the unquantized query: <o, q> ~ <y_hat, q'> / <y_hat, o'> (1 bit:
        <o_bar, q'> / a) for every (query, vector) pair, (nq, n) float64, q' the rotated unit centered queries
        (:class:`RaBitQQuery`.rotated or any (nq, d) unit vectors in the rotated space)."""
        y = self._odd_codes(codes)
        y_norm = np.sqrt(np.einsum("ij,ij->i", y, y))  # <y, o'> = a ||y||
        return (np.asarray(q, dtype=np.float64) @ y.T) / (codes.dot.astype(np.float64) * y_norm)

    def error_bound(self, codes: RaBitQCodes, query: RaBitQQuery | None = None) -> np.ndarray:
        """Bound on the error of the estimate of <o, q> (the unit vectors), holding with probability >=
        1 - :func:`bound_failure_probability`(eps0) per pair: ``sqrt(1 - a^2) / a * eps0 / sqrt(d - 1)``,
        shape (n,); with ``query`` the quantized query's error is added, shape (nq, n): 1 bit, ``sqrt(d) delta
        / (2 a)``; b bits, ``delta / <y, o'> * sum_i e_i`` with e_i the per-dimension bound of the module doc's
        scan (``|2 x_i^hi - (2^b - 1)| / 2 + 2^s x_i^lo_planes``, x^hi the planes k >= s, x^lo_planes the count
        of set planes k < s). Multiply by C_q M_v <y_hat, o'> (= C_q ||r||) for the bound on the score."""
        a = codes.dot.astype(np.float64)
        bound = np.sqrt(np.maximum(1 - a * a, 0)) / a * self.eps0 / math.sqrt(self.dim - 1)
        if query is None:
            return bound
        delta = query.delta.astype(np.float64)[:, None]
        if self.bits == 1:
            return bound[None, :] + math.sqrt(self.dim) * delta / (2 * a[None, :])
        shift = query_shift(self.bits, self.query_bits)
        planes = unpack_bits(codes.codes, self.bits * self.dim).reshape(len(a), self.bits, self.dim).astype(np.int64)
        high = np.einsum("nkd,k->nd", planes[:, shift:], 1 << np.arange(shift, self.bits, dtype=np.int64))
        per_dim = np.abs(2 * high - ((1 << self.bits) - 1)) / 2 + (1 << shift) * planes[:, :shift].sum(axis=1)
        y = self._odd_codes(codes)
        yo = a * np.sqrt(np.einsum("ij,ij->i", y, y))  # <y, o'>
        return bound[None, :] + delta * (per_dim.sum(axis=1) / yo)[None, :]

    def state(self) -> tuple[dict, dict]:
        arrays = {} if self.rotation is None else {"rotation": self.rotation, "centroid": self.centroid}
        if self.query_cov is not None:
            arrays["query_cov"] = self.query_cov
        return self.config(), arrays

    def load_state(self, arrays: dict) -> None:
        if "rotation" not in arrays:
            return
        if "centroid" not in arrays:
            raise IndexFileError("corrupt rabitq codec: missing centroid")
        rotation, centroid = np.array(arrays["rotation"]), np.array(arrays["centroid"])
        if (rotation.shape != (self.dim, self.dim) or centroid.shape != (self.dim,)
                or rotation.dtype != np.float32 or centroid.dtype != np.float32):
            raise IndexFileError(f"corrupt rabitq codec: rotation {rotation.shape} {rotation.dtype}, centroid "
                                 f"{centroid.shape} {centroid.dtype} for dim {self.dim}")
        cov = np.array(arrays["query_cov"]) if "query_cov" in arrays else None
        if (cov is None) != (self.aware_passes == 0) or (
                cov is not None and (cov.shape != (self.dim, self.dim) or cov.dtype != np.float32)):
            raise IndexFileError(f"corrupt rabitq codec: query_cov {None if cov is None else cov.shape} with "
                                 f"aware_passes={self.aware_passes}")
        self.rotation, self.centroid, self.query_cov = rotation, centroid, cov
