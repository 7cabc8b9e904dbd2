"""The encoder's fused self-attention: attention_f32 (each native variant, the Numba twin) against the numpy code
the encoder used before it (batched matmul over padded sequences, an additive -inf mask, a softmax in place).

MiniLM's shape (12 heads of 32) on a batch of 8 sequences padded to 128 tokens, lengths 20 to 128 as a
length-sorted batch of MedQuAD texts has them. Every result is held to float64 within the bound of
tests/float_bounds.py (attention_reference).
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
