"""Codecs that turn float vectors into compact codes, and their training."""

from .scalar import ScalarQuantizer

__all__ = ["ScalarQuantizer"]
