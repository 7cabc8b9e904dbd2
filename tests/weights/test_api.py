"""The weight quantization API is reachable from the package: medqk.quantize_weights, medqk.codebook."""

from __future__ import annotations

import medqk


def test_public_names():
    from medqk import codebook, weights

    assert medqk.quantize_weights is weights.quantize_weights
    assert medqk.dequantize is weights.dequantize
    assert medqk.QuantizedWeight is weights.QuantizedWeight
    assert medqk.codebook is codebook and callable(medqk.codebook.fit_1d)
    assert {"quantize_weights", "dequantize", "QuantizedWeight", "codebook"} <= set(medqk.__all__)
