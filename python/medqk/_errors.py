"""Error types every layer raises (kept at the bottom, so codecs never import the index layer for them)."""

from __future__ import annotations


class IndexFileError(ValueError):
    """A file that is not a readable medqk index (wrong magic or version, truncated, corrupt).

    Public as ``medqk.index.IndexFileError``; quantizers raise it too when a saved codec state is inconsistent.
    """
