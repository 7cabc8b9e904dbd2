"""The packers of the 4-bit and 8-bit layouts, the flat-codes base and what it saves, the AMX GEMM policy."""

from __future__ import annotations

import numpy as np
import pytest

import medqk.index as mi
from medqk import _backend
from medqk.index import lut4
from medqk.index.flat_codes import Lut4Packer, PQ8Packer

from .test_flat import data


@pytest.mark.parametrize(("packer", "top", "widths", "sizes"), [
    (Lut4Packer, 16, (1, 5, 6), (1, 31, 32, 33, 70)),
    (PQ8Packer, 256, (1, 3), (1, 63, 64, 65, 130)),
])
def test_packers_round_trip(backend, packer, top, widths, sizes):
    """pack (native: the C++ layout helpers; numba: the Python ones compiled) and unpack (the Python ones
    on numpy) agree on every vector and sub-code, around the block sizes and for odd widths."""
    rng = np.random.default_rng(5)
    for width in widths:
        p = packer(width)
        for n in sizes:
            codes = rng.integers(0, top, (n, width), dtype=np.uint8)
            packed = p.pack(codes)
            assert packed.shape == (p.packed_bytes(n),)
            np.testing.assert_array_equal(p.unpack(packed, None, n), codes)
            ids = rng.permutation(n)[: max(1, n // 3)]
            np.testing.assert_array_equal(p.unpack(packed, ids), codes[ids])


@pytest.mark.parametrize(("spec", "code_arrays"), [("int4", {"packed", "sqnorms"}), ("pq4x8", {"codes"})])
def test_saved_code_arrays_keep_their_format(spec, code_arrays):
    """The base class saves what each store saved before it existed (files written then still load): the
    4-bit store its packed bytes and |x_hat|^2, the 8-bit store its byte codes unpacked, in id order."""
    x, _ = data(n=600, d=16)
    opts = {"max_iter": 3} if spec.startswith("pq") else {}
    index = mi.create(spec, 16, "l2", **opts).train(x).add(x[:40]).add(x[40:])
    config, arrays = index._state()
    codec_config, codec_arrays = index.codec.state()
    assert config == {"codec": codec_config}
    assert set(arrays) == set(codec_arrays) | code_arrays
    if spec == "int4":
        want = Lut4Packer(index.n_sub).pack(index.codec.encode_sub(x))
        np.testing.assert_array_equal(arrays["packed"], want)
        assert arrays["sqnorms"].shape == (600,)
    else:
        np.testing.assert_array_equal(arrays["codes"], index.codec.encode_sub(x))


def test_gemm_policy_follows_the_gemm_the_dispatch_reports(monkeypatch):
    """The 4-bit search takes the int8 GEMM for few-subspace codecs only where the AMX GEMM runs: asked of
    the dispatch (the GEMM variant), not read off an ISA name."""
    if _backend.backend != "native":
        assert not lut4.gemm_has_amx()  # the Numba GEMM has no AMX tiles
        pytest.skip("the dispatch report needs the native module")
    reported = {"op": None}

    def kernel_variant(op, isa=""):
        reported["op"] = op
        return "amx"

    monkeypatch.setattr(_backend._core, "kernel_variant", kernel_variant)
    assert lut4.gemm_has_amx() and reported["op"] == "gemm_s8s8_s32"
    monkeypatch.setattr(_backend._core, "kernel_variant", lambda op, isa="": "avx512vnni")
    assert not lut4.gemm_has_amx()
