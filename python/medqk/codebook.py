"""One-dimensional codebooks: the levels that minimise the (weighted) squared error of a set of values.

:func:`fit_1d` is the public entry. ``method="optimal"`` is exact: in 1-D an optimal k-means partition is a
partition of the sorted values into contiguous runs (equal values never need to be split), so dynamic
programming over the sorted distinct values finds the global minimum (Wang & Song, "Ckmeans.1d.dp", R Journal
2011). The DP row for c + 1 clusters is a row minimum of ``prev[i] + cost(i, j)``, whose arg-min is monotone in
j (the cost satisfies the quadrangle inequality, Gronlund et al. 2017), so each row is found by divide and
conquer in O(m log m): O(n_levels * m log m) for m distinct values. Within a search the candidates are scanned from
the right, and the scan stops once the cluster's own cost plus the smallest ``prev`` in range cannot beat the best
found (``prev`` is nondecreasing, the cost grows leftwards: exact pruning, as in Ckmeans.1d.dp). ``method="lloyd"``
is Lloyd's algorithm from the uniform quantizer, the usual heuristic (a local minimum), kept for comparison.

The DP runs compiled by Numba when it is installed, and as plain Python otherwise (same code, same result,
only slower); importing medqk never needs Numba.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["METHODS", "fit_1d", "sse"]

METHODS = ("optimal", "lloyd")
_LLOYD_MAX_STEPS = 100


def _optimal_partition(x, w, k):
    """Optimal k-means of the weighted sorted distinct points x (m,), w > 0, 1 <= k <= m.

    Returns ``cut`` (k + 1,) with cluster c = points [cut[c], cut[c + 1]). Prefix sums are taken on x minus
    its weighted mean, which keeps the sums of squares free of cancellation when the values sit far from 0.
    """
    m = x.shape[0]
    total = 0.0
    wsum = 0.0
    for i in range(m):
        total += w[i] * x[i]
        wsum += w[i]
    centre = total / wsum
    s1 = np.zeros(m + 1)
    s2 = np.zeros(m + 1)
    sw = np.zeros(m + 1)
    for i in range(m):
        d = x[i] - centre
        s1[i + 1] = s1[i] + w[i] * d
        s2[i + 1] = s2[i] + w[i] * d * d
        sw[i + 1] = sw[i] + w[i]
    inf = np.inf
    prev = np.full(m + 1, inf)
    for j in range(1, m + 1):  # one cluster over [0, j)
        prev[j] = max(s2[j] - s1[j] * s1[j] / sw[j], 0.0)
    arg = np.zeros((k, m + 1), dtype=np.int64)
    cur = np.full(m + 1, inf)
    # stack of (lo, hi, opt_lo, opt_hi): cur[j] = min over opt_lo <= i <= min(opt_hi, j - 1) of
    # prev[i] + cost(i, j), for lo <= j <= hi; c + 1 clusters need j >= c + 1 points and the last one i >= c
    stack = np.empty((2 * (m + 2) + 64, 4), dtype=np.int64)
    for c in range(1, k):
        cur[:] = inf
        top = 0
        stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = c + 1, m, c, m - 1
        top = 1
        while top > 0:
            top -= 1
            lo, hi, olo, ohi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            if lo > hi:
                continue
            mid = (lo + hi) // 2
            best = inf
            best_i = olo
            floor = prev[olo]  # prev is nondecreasing: no candidate's prev is below prev[olo]
            for i in range(min(ohi, mid - 1), olo - 1, -1):
                ww = sw[mid] - sw[i]
                d1 = s1[mid] - s1[i]
                cost = max((s2[mid] - s2[i]) - d1 * d1 / ww, 0.0)
                if cost + floor >= best:  # cost(i, mid) only grows as i falls: no smaller i can win
                    break
                v = prev[i] + cost
                if v < best:
                    best = v
                    best_i = i
            cur[mid] = best
            arg[c, mid] = best_i
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = lo, mid - 1, olo, best_i
            stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = mid + 1, hi, best_i, ohi
            top += 2
        prev, cur = cur, prev
    cut = np.zeros(k + 1, dtype=np.int64)
    cut[k] = m
    j = m
    for c in range(k - 1, 0, -1):
        j = arg[c, j]
        cut[c] = j
    return cut


@functools.cache
def _partition_kernel():
    """The DP compiled by Numba on first use, or the plain Python function where Numba is missing."""
    try:
        from numba import njit
    except ImportError:  # same code, interpreted: exact, only slower
        return _optimal_partition
    # cached to disk (a pure function of its arrays): the compile takes seconds, once per install
    return njit(boundscheck=False, cache=True)(_optimal_partition)


def _check_values(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of a real dtype, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) or x.dtype == bool:
        raise TypeError(f"{name} must have a real (float or integer) dtype, got {x.dtype.name}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def _check_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = _check_values(weights, "weights")
    if w.shape != (n,):
        raise ValueError(f"weights must have the shape of x ({n},), got {w.shape}")
    if (w < 0).any():
        raise ValueError("weights must be >= 0")
    if not w.sum() > 0:
        raise ValueError("weights must have a positive sum (every weight is 0)")
    return w


def _check_n_levels(n_levels) -> int:
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or n_levels < 1:
        raise ValueError(f"n_levels must be a positive int, got {n_levels!r}")
    return int(n_levels)


def distinct_points(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of x with positive weight, and the summed weight of each."""
    live = w > 0
    ux, inverse = np.unique(x[live], return_inverse=True)
    return ux, np.bincount(inverse.reshape(-1), weights=w[live], minlength=ux.size)


def pad_levels(levels: np.ndarray, n_levels: int) -> np.ndarray:
    """Fewer distinct values than levels: the spare levels repeat the largest (sorted, never used)."""
    if levels.size >= n_levels:
        return levels
    return np.concatenate([levels, np.full(n_levels - levels.size, levels[-1])])


def nearest(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``levels`` for each value (a tie at a midpoint goes to the lower
    level; of repeated levels, the first)."""
    cuts = (levels[1:] + levels[:-1]) / 2
    idx = np.searchsorted(cuts, x, side="left")
    # repeated levels (padding): searchsorted may land on a later copy; move to the first equal one
    first = np.searchsorted(levels, levels, side="left")
    return first[idx]


def sse(x: np.ndarray, levels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted squared error of the values ``x`` each rounded to the nearest of the sorted ``levels``."""
    r = x - levels[nearest(x, levels)]
    return float(np.sum(r * r) if weights is None else np.sum(weights * r * r))


def optimal_levels(ux: np.ndarray, uw: np.ndarray, n_levels: int) -> np.ndarray:
    """The exact optimal ``n_levels`` levels of sorted distinct points ``ux`` with weights ``uw`` > 0
    (float64, checked by the caller); fewer distinct points than levels: the points themselves, padded."""
    if ux.size <= n_levels:
        return pad_levels(ux.copy(), n_levels)
    cut = _partition_kernel()(np.ascontiguousarray(ux), np.ascontiguousarray(uw), n_levels)
    sums = np.add.reduceat(uw * ux, cut[:-1])
    counts = np.add.reduceat(uw, cut[:-1])
    # a cluster's mean lies within its run, so the levels come out sorted (clip: rounding at the edges)
    return np.clip(sums / counts, ux[cut[:-1]], ux[cut[1:] - 1])


def lloyd_levels(ux: np.ndarray, uw: np.ndarray, n_levels: int, init: np.ndarray | None = None,
                 max_steps: int = _LLOYD_MAX_STEPS) -> np.ndarray:
    """Lloyd's algorithm on sorted distinct points with weights, from ``init`` or the uniform quantizer
    (n_levels evenly spaced levels from min to max, the Lloyd-Max start); until no point changes level or
    ``max_steps``; a level that loses all its points stays where it was."""
    if ux.size <= n_levels:
        return pad_levels(ux.copy(), n_levels)
    if init is None:
        init = np.linspace(ux[0], ux[-1], n_levels)
    centres = np.sort(np.asarray(init, dtype=np.float64))
    for _ in range(max_steps):
        idx = np.searchsorted((centres[1:] + centres[:-1]) / 2, ux)
        counts = np.bincount(idx, weights=uw, minlength=n_levels)
        sums = np.bincount(idx, weights=uw * ux, minlength=n_levels)
        new = np.sort(np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), centres))
        if np.array_equal(new, centres):
            break
        centres = new
    return centres


def fit_1d(x: np.ndarray, n_levels: int, *, weights: np.ndarray | None = None,
           method: str = "optimal") -> tuple[np.ndarray, np.ndarray]:
    """Fits ``n_levels`` levels to the 1-D values ``x``, minimising ``sum_i weights[i] * (x[i] - level)^2``.

    Parameters
    ----------
    x : 1-D real array (any float or integer dtype, used as float64); NaN and Inf are refused.
    n_levels : positive int.
    weights : None (all 1) or a 1-D array of the shape of x, finite, >= 0 with a positive sum. Values of
        weight 0 do not move the levels; they are still assigned to their nearest level.
    method : ``"optimal"`` (the exact minimum, dynamic programming) or ``"lloyd"`` (Lloyd's algorithm from
        evenly spaced levels: a local minimum, never better than "optimal").

    Returns
    -------
    levels : float64 (n_levels,), sorted ascending. Each level is the weighted mean of its values. With fewer
        distinct (positively weighted) values than levels, the levels are those values, the spare ones
        repeating the largest.
    assignment : intp (len(x),), the index of the nearest level of each value (a tie at a midpoint goes to
        the lower level; of repeated levels, the first), so ``levels[assignment]`` is the quantized x.
    """
    xs = _check_values(x, "x")
    n_levels = _check_n_levels(n_levels)
    w = _check_weights(weights, xs.size)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ux, uw = distinct_points(xs, w)
    fit = optimal_levels if method == "optimal" else lloyd_levels
    levels = fit(ux, uw, n_levels)
    return levels, nearest(xs, levels)
