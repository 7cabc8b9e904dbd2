"""Progress bars (tqdm, on stderr) for the long steps of training and adding: k-means iterations, OPQ
rotation updates, per-dimension level fits, IVF coarse k-means and encoding, HNSW insertion.

Every codec and index that trains or adds for long takes ``progress``: ``None`` (default) shows a bar only
when stderr is a terminal (so logs, pipes and CI stay clean), ``True`` always, ``False`` never. A caller
that runs many of them (``medqk eval --quiet``) can switch the default for everything inside a block with
:func:`bars`.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

from tqdm import tqdm

_DEFAULT = contextvars.ContextVar("medqk_progress_default", default=None)


@contextlib.contextmanager
def bars(enabled: bool | None) -> Iterator[None]:
    """Within the block, ``progress=None`` means ``enabled`` (True: always, False: never, None: when
    stderr is a terminal). An explicit ``progress=True/False`` given to a codec still wins."""
    token = _DEFAULT.set(enabled)
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def progress_bar(progress: bool | None, total: int, desc: str, unit: str = "it", iterable=None) -> tqdm:
    """A tqdm bar on stderr, shown or not by ``progress`` as the module doc says: iterate it (with
    ``iterable``) or call ``bar.update(n)`` and ``bar.close()``. Bars vanish when closed (leave=False): the
    step that follows, or medqk eval's next line, takes the terminal line."""
    if progress is None:
        progress = _DEFAULT.get()
    # tqdm's disable=None: off unless the stream is a terminal
    disable = None if progress is None else not progress
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, leave=False,
                dynamic_ncols=True)
