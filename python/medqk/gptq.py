"""GPTQ rounding (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", ICLR 2023, Algorithm 1), written from the paper.

For a layer y = x W^T with inputs X (M, K), the output error ``||X W^T - X W_hat^T||^2`` is, row by row of W,
the quadratic form ``(w - w_hat) H (w - w_hat)^T / 2`` with ``H = 2 X^T X``. GPTQ rounds the columns of W in
order; after rounding column k to the grid, the optimal update of the columns not yet rounded (optimal brain
surgeon) is ``W[:, k:] -= err_k * U[k, k:]`` with ``err_k = (w_k - q_k) / U[k, k]`` and U the upper Cholesky
factor of H^-1 (H^-1 = U^T U). Updates inside a block of ``block_size`` columns are applied as they happen; the
block's accumulated errors reach the later columns in one product at the end of the block (the paper's lazy
batch update). Which values a column may round to is the caller's grid (:mod:`medqk.weights`).

Numerics: H and every update are float64. Dead inputs (``H[k, k] = 0``: the input is always 0) get
``H[k, k] = 1`` and their weights set to 0, as in the paper's code; then ``damp * mean(diag(H))`` is added to
the diagonal (the paper's 1% default, ``damp=0.01``), which makes H positive definite unless X has (nearly)
dependent columns and damp is 0 or tiny: then a ValueError names the source and asks for a larger damp.

When H is diagonal, U is diagonal and no error moves: GPTQ gives exactly the round-to-nearest codes.
"""

from __future__ import annotations

import numpy as np


def check_options(damp, block_size) -> None:
    if isinstance(damp, bool) or not isinstance(damp, (int, float, np.floating)) or not 0 <= damp < np.inf:
        raise ValueError(f"damp must be a finite float >= 0, got {damp!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")


def hessian_from_calib(x: np.ndarray, k: int) -> np.ndarray:
    """H = 2 X^T X (float64) of the activations x (M, K)."""
    if x.shape[1] != k:
        raise ValueError(f"calib must have K = {k} columns (the weight's inputs), got shape {x.shape}")
    return 2.0 * (x.T @ x)


def check_hessian(h: np.ndarray, k: int) -> np.ndarray:
    if h.shape != (k, k):
        raise ValueError(f"hessian must have shape ({k}, {k}) (K x K for the weight's K inputs), got {h.shape}")
    scale = np.abs(h).max()
    if not np.allclose(h, h.T, rtol=1e-6, atol=1e-9 * scale):
        raise ValueError("hessian must be symmetric (2 X^T X)")
    if (np.diag(h) < 0).any():
        raise ValueError("hessian must have a non-negative diagonal (2 X^T X)")
    return h


def drop_dead_columns(h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs with H[k, k] = 0 never reach the output: their weights become 0 and H[k, k] 1 (copies)."""
    dead = np.diag(h) == 0
    if not dead.any():
        return h, w
    h, w = h.copy(), w.copy()
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    return h, w


def inverse_cholesky_upper(h: np.ndarray, damp: float, source: str) -> np.ndarray:
    """U upper triangular with U^T U = (H + damp * mean(diag(H)) I)^-1."""
    k = h.shape[0]
    hd = h + (damp * float(np.mean(np.diag(h)))) * np.eye(k)
    try:
        lower = np.linalg.cholesky(hd)
        lower_inv = np.linalg.solve(lower, np.eye(k))  # L^-1, so H^-1 = L^-T L^-1
        hinv = lower_inv.T @ lower_inv
        u = np.linalg.cholesky((hinv + hinv.T) / 2).T
    except np.linalg.LinAlgError:
        u = None
    if u is None or not np.isfinite(u).all():
        raise ValueError(f"the Hessian from {source} is not positive definite after damping (damp={damp}): "
                         f"{source} has (nearly) linearly dependent columns or too few rows; pass a larger damp "
                         "(e.g. 0.01 to 0.1)")
    return u


def gptq_round(w: np.ndarray, h: np.ndarray, grid, *, damp: float, block_size: int, source: str) -> np.ndarray:
    """Codes (N, K) uint8 of w (N, K) float64 rounded by GPTQ onto ``grid`` (fix_group / round, see
    medqk.weights._Grid). The group's scale is fixed when its first column comes, from the weights as updated
    by then (the columns of the current block carry every earlier error; columns past the block carry the
    errors of the blocks before)."""
    check_options(damp, block_size)
    n, k = w.shape
    u = inverse_cholesky_upper(h, float(damp), source)
    w = w.copy()
    codes = np.empty((n, k), dtype=np.uint8)
    gs = grid.group_size
    for b0 in range(0, k, block_size):
        b1 = min(b0 + block_size, k)
        err = np.empty((n, b1 - b0))
        for j in range(b0, b1):
            if j % gs == 0:
                grid.fix_group(j // gs, w[:, j : j + gs])
            c, q = grid.round(j // gs, w[:, j : j + 1])
            codes[:, j] = c[:, 0]
            e = (w[:, j] - q[:, 0]) / u[j, j]
            w[:, j:b1] -= np.outer(e, u[j, j:b1])
            err[:, j - b0] = e
        if b1 < k:
            w[:, b1:] -= err @ u[b0:b1, b1:]
    return codes
