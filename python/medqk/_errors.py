"""Error types every layer raises (kept at the bottom, so codecs never import the index layer for them)."""

from __future__ import annotations


class MedqkFileError(ValueError):
    """A file medqk saved that cannot be read back: wrong magic or version, truncated, corrupt, inconsistent.
    Each kind of file has its subclass; catching this catches them all."""


class IndexFileError(MedqkFileError):
    """A file that is not a readable medqk index (wrong magic or version, truncated, corrupt).

    Public as ``medqk.index.IndexFileError``; quantizers raise it too when a saved codec state is inconsistent.
    """


class LayerFileError(MedqkFileError):
    """A file that is not a readable medqk quantized layer (``QuantizedLinear.save``)."""


class ModelFileError(MedqkFileError):
    """A file that is not a readable medqk model (``SentenceEncoder.save``, ``medqk quantize``)."""
