"""Warnings medqk gives about specs and data.

:class:`SpecDataWarning` is raised by training (``Index.train`` and the quantizers' ``train``) when a spec
will work poorly on the data it is given, though it can be built; the thresholds and their reasons are
in :func:`kmeans_sample_warning` and ``medqk.index.ivf``. ``medqk eval`` records these warnings in its
report; elsewhere they are ordinary Python warnings::

    import warnings, medqk.index
    warnings.filterwarnings("error", category=medqk.index.SpecDataWarning)   # or "ignore"
"""

from __future__ import annotations

import sys
import warnings

# Training vectors per centroid below which a codebook is called under-trained: where vectors outside the
# training sample (added later, or from another collection) are coded with 1.25x or more the squared error
# of a well-trained codebook. Measured on the MedQuAD sample (384-d), codebooks trained on m vectors per
# centroid (per level, for the 1-D levels of cb*), error on 1,000 held-out vectors relative to the same
# codebook trained on 4,000 vectors:
#   m =          2     4     8    16    39
#   cb4        3.24  1.88  1.36  1.18  1.08      1-D levels: under-trained below 8 per level
#   cb2        1.85  1.41  1.26  1.16  1.07
#   pq96x4fs   1.26  1.20  1.14  1.09  1.04      sub-vector centroids: below 2 per centroid
#   pq48x8     1.09  1.06  1.03    -     -
# (faiss warns below 39 for every k-means; medqk keeps 39 for IVF lists, where lists of a few vectors
# cost the index its size and speed, see medqk.index.ivf; codebooks still work well below it.)
MIN_VECTORS_PER_LEVEL = 8  # 1-D level fits: cb*, and the per-dimension stages of pca*
MIN_VECTORS_PER_CENTROID = 2  # sub-vector k-means: pq, opq, the shared nibbles of pca*


class SpecDataWarning(UserWarning):
    """A spec that will work poorly on this data, though it can be built: e.g. ``ivf1024`` trained on
    2,000 vectors (about 2 per list, where faiss's rule of thumb asks for 39), or ``cb4`` trained on fewer
    than 8 vectors per level. The message names the spec, the numbers and a better choice."""


def _caller_stacklevel() -> int:
    """The stacklevel (for warnings.warn called by our caller) of the first frame outside medqk, so the
    warning points at the user's ``index.train(x)`` line and not at medqk's internals."""
    level = 2
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").split(".")[0] == "medqk":
        frame = frame.f_back
        level += 1
    return level


def warn_spec_data(message: str) -> None:
    """Issues a :class:`SpecDataWarning` attributed to the user's code."""
    warnings.warn(message, SpecDataWarning, stacklevel=_caller_stacklevel())


def kmeans_sample_warning(what: str, n: int, n_centroids: int, per_centroid: int) -> None:
    """Warns when ``n`` training vectors are fewer than ``per_centroid`` (MIN_VECTORS_PER_LEVEL or
    MIN_VECTORS_PER_CENTROID) per centroid for the k-means of ``what`` (e.g. "pq48x8 (256 centroids per
    subspace)")."""
    need = per_centroid * n_centroids
    if n < need:
        warn_spec_data(
            f"{what} trained on {n:,} vectors ({n / n_centroids:.1f} per centroid, fewer than "
            f"{per_centroid}): vectors outside the training sample will be coded markedly worse; train on at "
            f"least {need:,} vectors or use a spec with fewer centroids"
        )
