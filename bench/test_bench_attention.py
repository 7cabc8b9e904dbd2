"""The encoder's non-GEMM steps.

The fused self-attention: attention_f32 (each native variant, the Numba twin) against the numpy code the encoder
used before it (batched matmul over padded sequences, an additive -inf mask, a softmax in place), on MiniLM's
shape (12 heads of 32), a batch of 8 sequences padded to 128 tokens, lengths 20 to 128 as a length-sorted batch
of MedQuAD texts has them. GELU: gelu_f32 (each native variant, and the Numba twin that ran before). Every result
is held to float64 within the bounds of tests/float_bounds.py (attention_reference, gelu_reference).
"""

from __future__ import annotations

import numpy as np
import pytest
from _checks import attention_reference, variants

import medqk
from medqk import kernels

BATCH, LENGTH, HEADS, DH = 8, 128, 12, 32
LENGTHS = np.array([128, 120, 101, 96, 77, 60, 41, 20])


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((BATCH * LENGTH, HEADS * DH)).astype(np.float32) for _ in range(3))
    want, bound = attention_reference(q, k, v, LENGTHS, HEADS, 1 / np.sqrt(DH))
    return q, k, v, want, bound


def numpy_attention(q, k, v):
    """The encoder's former attention: every padded position computed, padding keys masked by -inf."""
    def split(t):
        return np.ascontiguousarray(t.reshape(BATCH, LENGTH, HEADS, DH).transpose(0, 2, 1, 3))

    mask = np.arange(LENGTH)[None, :] < LENGTHS[:, None]
    key_bias = np.where(mask, np.float32(0.0), np.float32(np.finfo(np.float32).min))[:, None, None, :]
    qh, kh, vh = split(q), split(k), split(v)
    scores = np.matmul(qh, kh.transpose(0, 1, 3, 2))
    scores *= np.float32(1 / np.sqrt(DH))
    scores += key_bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    out = np.matmul(scores, vh).transpose(0, 2, 1, 3).reshape(BATCH * LENGTH, HEADS * DH)
    return np.where(mask.reshape(-1, 1), out, np.float32(0))


def check(out, case):
    *_, want, bound = case
    assert (np.abs(out - want) <= bound).all()


@pytest.mark.benchmark(group="attention 8x128, 12 heads of 32")
@pytest.mark.parametrize("variant,threads", [(v, 1) for v in variants("attention_f32")]
                         + [(v, 2) for v in variants("attention_f32")[:1]])
def test_attention_native(benchmark, case, variant, threads):
    q, k, v, *_ = case
    with medqk.use_backend("native"), medqk.use_kernel("attention_f32", variant):
        out = benchmark(kernels.attention_f32, q, k, v, LENGTHS, HEADS, threads=threads)
    check(out, case)


@pytest.mark.benchmark(group="attention 8x128, 12 heads of 32")
def test_attention_numba(benchmark, case):
    q, k, v, *_ = case
    with medqk.use_backend("numba"):
        kernels.attention_f32(q[:LENGTH], k[:LENGTH], v[:LENGTH], [4], HEADS)  # compile
        out = benchmark(kernels.attention_f32, q, k, v, LENGTHS, HEADS, threads=1)
    check(out, case)


@pytest.mark.benchmark(group="attention 8x128, 12 heads of 32")
def test_numpy_attention_before(benchmark, case):
    q, k, v, *_ = case
    check(benchmark(numpy_attention, q, k, v), case)


GELU_N = 256 * 1536  # one 256-token sequence's intermediate layer in MiniLM


@pytest.fixture(scope="module")
def gelu_case():
    from _checks import gelu_reference

    x = (np.random.default_rng(1).standard_normal(GELU_N) * 2).astype(np.float32)
    return x, *gelu_reference(x)


@pytest.mark.benchmark(group="gelu 393216 floats")
@pytest.mark.parametrize("variant", variants("gelu_f32"))
def test_gelu_native(benchmark, gelu_case, variant):
    x, want, bound = gelu_case
    with medqk.use_backend("native"), medqk.use_kernel("gelu_f32", variant):
        out = benchmark(kernels.gelu_f32, x, threads=1)
    assert (np.abs(out - want) <= bound).all()


@pytest.mark.benchmark(group="gelu 393216 floats")
def test_gelu_numba(benchmark, gelu_case):
    x, want, bound = gelu_case
    with medqk.use_backend("numba"):
        kernels.gelu_f32(x[:8])  # compile
        out = benchmark(kernels.gelu_f32, x, threads=1)
    assert (np.abs(out - want) <= bound).all()
