"""medqk.codebook.fit_1d: the "optimal" method is the exact minimum of the weighted squared error."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medqk.codebook import fit_1d, sse


def brute_force_sse(values: np.ndarray, weights: np.ndarray, k: int) -> float:
    """Minimum weighted SSE over every partition of the sorted values into k contiguous non-empty runs."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    best = np.inf
    for cuts in itertools.combinations(range(1, len(v)), k - 1):
        total = 0.0
        for pv, pw in zip(np.split(v, cuts), np.split(w, cuts)):
            if pw.sum() > 0:
                mean = (pv * pw).sum() / pw.sum()
                total += (pw * (pv - mean) ** 2).sum()
        best = min(best, total)
    return best


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_optimal_equals_brute_force(seed, k, weighted):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(7), rng.standard_normal(4) * 3 + 5])
    w = rng.uniform(0.1, 3.0, x.size) if weighted else None
    levels, assignment = fit_1d(x, k, weights=w)
    ww = np.ones_like(x) if w is None else w
    assert levels.shape == (k,) and (np.diff(levels) >= 0).all()
    got = float((ww * (x - levels[assignment]) ** 2).sum())
    assert got == pytest.approx(brute_force_sse(x, ww, k), rel=1e-9, abs=1e-12)


def test_far_from_zero_values_stay_exact():
    # values around 1e8 with spread 1: the sums of squares are taken on centred values (no cancellation)
    rng = np.random.default_rng(5)
    x = 1e8 + rng.standard_normal(10)
    levels, assignment = fit_1d(x, 3)
    got = float(((x - levels[assignment]) ** 2).sum())
    assert got == pytest.approx(brute_force_sse(x, np.ones_like(x), 3), rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_never_worse_than_lloyd(seed, k):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(300), rng.laplace(size=100) * 4, [25.0, -30.0]])
    w = rng.uniform(0, 2, x.size)
    for weights in (None, w):
        opt, _ = fit_1d(x, k, weights=weights, method="optimal")
        lloyd, _ = fit_1d(x, k, weights=weights, method="lloyd")
        assert sse(x, opt, weights) <= sse(x, lloyd, weights) * (1 + 1e-12)


def test_optimal_beats_lloyd_where_lloyd_is_stuck():
    # a clump and one outlier: Lloyd's evenly spaced start leaves the middle level empty, the optimum
    # splits the clump in two
    x = np.concatenate([np.linspace(0.0, 1.0, 11), [100.0]])
    opt, _ = fit_1d(x, 3)
    lloyd, _ = fit_1d(x, 3, method="lloyd")
    assert sse(x, opt) < 0.5 * sse(x, lloyd)
    assert sse(x, opt) == pytest.approx(brute_force_sse(x, np.ones_like(x), 3), rel=1e-12)


def test_assignment_is_nearest_level():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(500)
    levels, assignment = fit_1d(x, 8)
    dist = np.abs(x[:, None] - levels[None, :])
    np.testing.assert_array_equal(dist[np.arange(x.size), assignment], dist.min(axis=1))


def test_ties_are_kept_together():
    x = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 6.0])
    levels, assignment = fit_1d(x, 3)
    for value in np.unique(x):
        assert np.unique(assignment[x == value]).size == 1
    assert sse(x, levels) == pytest.approx(brute_force_sse(x, np.ones_like(x), 3))


def test_constant_input():
    x = np.full(20, 2.5, dtype=np.float32)
    for method in ("optimal", "lloyd"):
        levels, assignment = fit_1d(x, 4, method=method)
        np.testing.assert_array_equal(levels, [2.5] * 4)
        np.testing.assert_array_equal(assignment, 0)


@pytest.mark.parametrize("method", ["optimal", "lloyd"])
def test_n_levels_at_least_distinct_values(method):
    x = np.array([3, 1, 2, 1, 3], dtype=np.int16)
    levels, assignment = fit_1d(x, 5, method=method)
    np.testing.assert_array_equal(levels, [1, 2, 3, 3, 3])
    np.testing.assert_array_equal(levels[assignment], x)
    np.testing.assert_array_equal(assignment, [2, 0, 1, 0, 2])  # repeated levels: the first copy
    levels, _ = fit_1d(x, 3, method=method)
    np.testing.assert_array_equal(levels, [1, 2, 3])


def test_zero_weights_do_not_move_levels():
    x = np.array([0.0, 1.0, 10.0, 100.0])
    levels, assignment = fit_1d(x, 2, weights=np.array([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(levels, [0.5, 10.0])
    assert assignment[3] == 1  # still assigned, to its nearest level


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fit_1d(np.array([1.0, np.nan]), 2), "x contains NaN or Inf"),
        (lambda: fit_1d(np.array([1.0, np.inf]), 2), "x contains NaN or Inf"),
        (lambda: fit_1d(np.array([]), 2), "x must not be empty"),
        (lambda: fit_1d(np.ones((2, 2)), 2), "x must be 1-D"),
        (lambda: fit_1d(np.ones(3), 0), "n_levels must be a positive int"),
        (lambda: fit_1d(np.ones(3), 2.0), "n_levels must be a positive int"),
        (lambda: fit_1d(np.ones(3), 2, weights=np.ones(2)), "weights must have the shape of x"),
        (lambda: fit_1d(np.ones(3), 2, weights=np.array([1.0, -1.0, 1.0])), "weights must be >= 0"),
        (lambda: fit_1d(np.ones(3), 2, weights=np.zeros(3)), "weights must have a positive sum"),
        (lambda: fit_1d(np.ones(3), 2, weights=np.array([1.0, np.nan, 1.0])), "weights contains NaN"),
        (lambda: fit_1d(np.ones(3), 2, method="kmeans"), "method must be one of"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        fit_1d([1.0, 2.0], 2)
    with pytest.raises(TypeError, match="x must have a real"):
        fit_1d(np.array(["a", "b"]), 2)
