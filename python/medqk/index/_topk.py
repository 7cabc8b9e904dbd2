"""Top-k selection on float score blocks with medqk's tie rule: higher score first, equal -> lower id."""

from __future__ import annotations

import numpy as np

from .. import _backend


def block_topk(scores: np.ndarray, k: int, id_offset: int, threads: int = 1,
               allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``min(k, nb)`` of each row of ``scores`` (nq, nb), ids offset by ``id_offset``; sorted best first.
    ``allow``: None, or the allow-bitmap of the whole index (medqk.index._ids): column j is a candidate only when
    bit ``id_offset + j`` is set; fewer allowed than slots: the rest is score -inf, id -1.

    The native backend selects up to 256 with select_topk_f32 (a sorted insertion behind a 16-wide threshold
    test, the bitmap tested for the columns that pass it; the same result): argpartition and the lexsorts below
    took most of the float32 flat search's time at MedQuAD's size and k = 10. Larger k keep numpy (the
    insertion is O(k) per entering score), which puts -inf on the columns ``allow`` clears."""
    nq, nb = scores.shape
    kk = min(k, nb)
    if (_backend.backend == "native" and nq and 0 < kk <= 256 and scores.dtype == np.float32
            and scores.flags.c_contiguous):
        best, ids = _backend._core.select_topk_f32(scores, kk, threads, allow, id_offset)
        return best, np.where(ids >= 0, ids + id_offset, -1)
    if allow is not None:
        cleared = ~np.unpackbits(allow, count=id_offset + nb, bitorder="little")[id_offset:].astype(bool)
        scores = np.where(cleared[None, :], np.float32(-np.inf), scores)
    if kk < nb:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        # argpartition breaks ties at the k-th value arbitrarily: redo rows with more candidates than slots.
        ties = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > kk)
        for r in ties:
            cand = np.flatnonzero(scores[r] >= kth[r])
            order = np.lexsort((cand, -scores[r, cand]))
            part[r] = cand[order[:kk]]
    else:
        part = np.broadcast_to(np.arange(nb), (nq, nb)).copy()
    sel = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -sel), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(sel, order, axis=1), part.astype(np.int64) + id_offset


def merge_topk(s1, i1, s2, i2, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merges two sorted candidate lists per row into the best ``k`` (tie rule kept)."""
    s = np.concatenate([s1, s2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    order = np.lexsort((i, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)

