"""attention_f32 (the encoder's fused self-attention) on every kernel variant this CPU runs and on the Numba
twin, against a float64 numpy reference within a bound derived from the computation, over odd head sizes,
lengths from 0 to full, peaked softmaxes (weights flushed to 0) and strided q|k|v views; padding rows and
keys take no part, so a sequence gives the same bits alone and in a padded batch, on any thread count.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medqk import kernels
from tests.float_bounds import ATTENTION_EXP_REL_ERROR as EXP_REL_ERROR
from tests.float_bounds import U32, attention_reference, gamma
from tests.variants import pinned_variant_fixture

variant = pinned_variant_fixture("attention_f32")  # each variant this CPU runs, and the Numba twin


CASES = [  # (batch, length, heads, dh, lengths)
    (1, 1, 1, 1, [1]), (2, 9, 3, 5, [9, 4]), (3, 17, 2, 8, [17, 0, 1]), (2, 40, 4, 13, [33, 40]),
    (1, 24, 2, 32, [24]), (2, 70, 1, 64, [70, 8]), (4, 12, 6, 7, [12, 11, 3, 5]),
]


@pytest.mark.parametrize("spread", [1.0, 6.0])
def test_within_rounding_of_float64(variant, spread):
    """spread 6: scores range over hundreds, so most weights underflow and exp's flush is reached."""
    rng = np.random.default_rng(int(spread))
    for batch, length, heads, dh, lengths in CASES:
        q, k, v = (rng.standard_normal((batch * length, heads * dh)).astype(np.float32) for _ in range(3))
        q *= spread
        k *= spread
        lengths = np.array(lengths, dtype=np.int64)
        scale = 1 / math.sqrt(dh)
        got = kernels.attention_f32(q, k, v, lengths, heads, threads=1)
        want, bound = attention_reference(q, k, v, lengths, heads, scale)
        assert got.dtype == np.float32 and got.shape == q.shape
        err = np.abs(got - want)
        assert (err <= bound).all(), f"{variant} {batch}x{length} heads={heads} dh={dh}: {err.max()} > bound"
        for b, n in enumerate(lengths):  # padding rows are exactly zero
            assert not got[b * length + n:(b + 1) * length].any()


def test_padding_takes_no_part_and_threads_agree(variant):
    """A sequence alone, and in a batch whose padding rows hold huge values (any use of them would overflow to
    Inf): the same bits; 1 and 2 threads: the same bits; q, k, v as column slices of one fused projection."""
    rng = np.random.default_rng(3)
    heads, dh, length = 3, 11, 29
    qkv = rng.standard_normal((2 * length, 3 * heads * dh)).astype(np.float32)
    lengths = np.array([length, 10])
    qkv[length + 10:] = 3e37
    q, k, v = (qkv[:, i * heads * dh:(i + 1) * heads * dh] for i in range(3))
    both = kernels.attention_f32(q, k, v, lengths, heads, threads=2)
    assert np.isfinite(both).all()
    np.testing.assert_array_equal(both, kernels.attention_f32(q, k, v, lengths, heads, threads=1))
    alone = kernels.attention_f32(*(t[length:length + 10] for t in (q, k, v)), [10], heads, threads=1)
    np.testing.assert_array_equal(both[length:length + 10], alone)
    first = kernels.attention_f32(*(np.ascontiguousarray(t[:length]) for t in (q, k, v)), [length], heads)
    np.testing.assert_array_equal(both[:length], first)


def test_exp_within_its_error(variant):
    """Two keys scoring 0 and x <= 0 exactly, v the identity: a row's two outputs are 1 / (1 + e^x) and
    e^x / (1 + e^x), so their ratio is the kernel's exp(x) to 2 roundings: within kAttentionExpRelError of
    e^x on [-87, 0] (the weighted-sum bound above is too loose to see a wrong polynomial); below -87 it may be
    flushed to 0."""
    xs = np.concatenate([-np.logspace(-7, np.log10(87), 600), -np.linspace(0, 87, 301), [-87.5, -100.0]])
    xs = xs.astype(np.float32)
    batch = xs.size
    q = np.tile(np.array([[1, 0], [1, 0]], np.float32), (batch, 1))
    k = np.zeros((2 * batch, 2), np.float32)
    k[1::2, 0] = xs
    v = np.tile(np.eye(2, dtype=np.float32), (batch, 1))
    out = kernels.attention_f32(q, k, v, np.full(batch, 2), 1, scale=1.0)[0::2].astype(np.float64)
    got = out[:, 1] / out[:, 0]
    want = np.exp(xs.astype(np.float64))
    inside = xs >= -87
    rel = np.abs(got[inside] - want[inside]) / want[inside]
    worst = xs[inside][rel.argmax()]
    assert rel.max() <= EXP_REL_ERROR + 3 * U32, f"{variant}: exp off by {rel.max():.3g} at x = {worst}"
    assert (got[~inside] <= 2.0**-125).all()  # flushed, or a subnormal


def test_scale_argument(variant):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((6, 8)).astype(np.float32) for _ in range(3))
    got = kernels.attention_f32(q, k, v, [6], 2, scale=0.0)  # equal weights: the mean of v over the sequence
    want = np.concatenate([v[:, :4].mean(axis=0), v[:, 4:].mean(axis=0)])
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=0, atol=gamma(8) * np.abs(v).max())


@pytest.mark.parametrize("call, error, match", [
    (lambda q: kernels.attention_f32(q.astype(np.float64), q, q, [4], 2), TypeError, "q must have dtype float32"),
    (lambda q: kernels.attention_f32(q, q[:, :4], q, [4], 2), ValueError, "q, k and v must have the same shape"),
    (lambda q: kernels.attention_f32(q, q, q, [4], 3), ValueError, "heads must be a positive int dividing"),
    (lambda q: kernels.attention_f32(q, q, q, [1, 1, 1], 2), ValueError, "q has 4 rows, not batch"),
    (lambda q: kernels.attention_f32(q, q, q, [2, 3], 2), ValueError, r"lengths must be in \[0, 2\]"),
    (lambda q: kernels.attention_f32(q, q, q, [], 2), ValueError, "lengths must be a non-empty 1-D array"),
    (lambda q: kernels.attention_f32(q, q, q, [1.5], 2), ValueError, "lengths must be a non-empty 1-D array of ints"),
    (lambda q: kernels.attention_f32(q, np.where(q > 0, np.nan, q).astype(np.float32), q, [4], 2), ValueError,
     "k contains NaN or Inf"),
    (lambda q: kernels.attention_f32(q, q, q, [4], 2, scale=np.inf), ValueError, "scale must be finite"),
])
def test_bad_input_names_the_argument(call, error, match):
    q = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    with pytest.raises(error, match=match):
        call(q)
