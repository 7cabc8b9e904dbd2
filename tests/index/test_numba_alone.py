"""The Numba backend runs every index on its own: with ``medqk._core`` made unreachable, building, adding,
searching, saving and loading each kind of index under ``backend="numba"`` touches nothing native and gives
what the native backend gives (ids exactly; scores exactly, since every twin documents the native result bit
for bit and the flat float specs below use data whose products and sums float32 holds exactly). The native
reference runs the scalar ISA: training assigns by pq_assign, whose SIMD kernels may round a near tie the
other way, while its scalar kernel and the twin run the same float32 operations in one order.

The kernel tests call the Numba twins directly; without these tests an index module that called the native
function on the Numba branch (or kept reading the native ISA) passed the whole suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk import _backend

from .test_flat import data

D = 16


class NativeUnreachable:
    """Stands in for ``medqk._core``: every attribute read is recorded and raises, so a native call made while
    the Numba backend is selected fails the test (even where some caller swallowed the exception)."""

    def __init__(self):
        self.reads: list[str] = []

    def __getattr__(self, name):
        if name.startswith("__"):  # copy / repr / pickle probing, not a native call
            raise AttributeError(name)
        self.reads.append(name)
        raise AssertionError(f"native module called under the numba backend: {name}")


@contextlib.contextmanager
def numba_alone():
    """Selects the Numba backend with the native module unreachable; fails if anything read it meanwhile."""
    unreachable = NativeUnreachable()
    with medqk.use_backend("numba"):
        saved, _backend._core = _backend._core, unreachable
        try:
            yield unreachable
        finally:
            _backend._core = saved
    assert not unreachable.reads, f"native module called under the numba backend: {unreachable.reads}"


needs_native = pytest.mark.skipif(_backend._core is None, reason="compares with the native module, not built")

# every kind of index the package builds (hnsw is hnswlib's, with no medqk kernel): flat float, int8, the
# 4-bit codecs, 8-bit PQ, 4-bit fast-scan PQ, OPQ, IVF, and +rerank over each kind of base
SPECS = ["float32", "fp16", "int8", "int4", "cb4", "cb3", "cb2", "pca4", "pca2",
         "pq4x8", "pq8x4fs", "pq4x4fs", "opq,pq4x8", "opq,pq8x4fs", "ivf8,pq8x4fs", "ivf8,opq,pq8x4fs",
         "int8+rerank:float32", "fp16+rerank:int8", "cb4+rerank:int8", "pq4x8+rerank:int8",
         "pq8x4fs+rerank:int8", "ivf8,pq8x4fs+rerank:int8"]
# batches of lut4.GEMM_MIN_QUERIES queries take the 4-bit codecs' candidates from the int8 GEMM over decoded
# blocks where its multiply-adds are at most lut4.GEMM_MAX_DIMS_PER_SUBSPACE per table lookup (pq8x4fs at
# d = 16) or, natively, on AMX; pq4x4fs asks which, and keeps the table scan
GEMM_SPECS = ("int4", "cb4", "cb3", "pca4", "pq8x4fs", "pq4x4fs", "cb4+rerank:int8")


def _inputs(spec, metric):
    x, q = data(n=600, nq=9, d=D, seed=11, normalize=metric == "ip")
    if spec.split("+")[0] in ("float32", "fp16"):
        # multiples of 1/8 up to 2: fp16 holds them, and float32 every product and sum of 16 of them, so the
        # native fp16 kernel and the Numba backend's float32 BLAS give the same scores and ties
        x, q = np.rint(x * 8).clip(-16, 16) / 8, np.rint(q * 8).clip(-16, 16) / 8
        x[300:320] = x[0]  # duplicates: equal scores, listed by lower id
    return x.astype(np.float32), q.astype(np.float32)


def _build_and_search(spec, metric, tmp_path, batched):
    x, q = _inputs(spec, metric)
    options = {}
    if "pq" in spec:
        options.update(max_iter=4)
    if "opq" in spec:
        options.update(opq_iter=2)
    if "ivf" in spec:
        options.update(nprobe=3, coarse_iter=5)
    index = mi.create(spec, D, metric, **options).train(x).add(x[:250]).add(x[250:])
    out = {"search": index.search(q, 12)}
    if batched:
        from medqk.index import lut4

        _, qb = data(n=10, nq=lut4.GEMM_MIN_QUERIES, d=D, seed=12, normalize=metric == "ip")
        out["batched"] = index.search(qb, 10)
    index.save(tmp_path / "index.mqk")
    out["loaded"] = mi.load(tmp_path / "index.mqk").search(q, 12)
    return out


@needs_native
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("spec", SPECS)
def test_index_on_numba_alone_equals_native(spec, metric, tmp_path):
    batched = spec in GEMM_SPECS
    with medqk.use_backend("native"), medqk.use_isa("scalar"):
        want = _build_and_search(spec, metric, tmp_path, batched)
    with numba_alone():
        got = _build_and_search(spec, metric, tmp_path, batched)
    for name, (scores, ids) in got.items():
        np.testing.assert_array_equal(ids, want[name][1], err_msg=f"{spec} {metric} {name}: ids")
        np.testing.assert_array_equal(scores, want[name][0], err_msg=f"{spec} {metric} {name}: scores")


def test_numba_alone_catches_a_native_call():
    """The stand-in itself: a native call under it fails, and one swallowed by the caller is still reported."""
    called = "native module called under the numba backend: pq8_pack"
    with pytest.raises(AssertionError, match=called), numba_alone():
        _backend._core.pq8_pack(np.zeros((1, 4), np.uint8))
    swallowed = r"under the numba backend: \['active_isa'\]"
    with pytest.raises(AssertionError, match=swallowed), numba_alone(), contextlib.suppress(AssertionError):
        _backend._core.active_isa()


# A search end to end in a fresh interpreter where medqk._core cannot be imported at all (the stand-in above
# is stricter: it also fails reads behind a `_core is not None` test). fp16 on the Numba backend is numpy and
# BLAS only: a spec that runs a Numba twin would spend 5-14 s compiling it from scratch in the new process,
# and the tests above already run every twin without the native module.
_WITHOUT_NATIVE = textwrap.dedent("""
    import json, sys, warnings
    sys.modules["medqk._core"] = None  # import medqk._core now raises ModuleNotFoundError
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import medqk
    import numpy as np
    import medqk.index as mi
    x, q = (np.asarray(a, dtype=np.float32) for a in json.loads(sys.stdin.read()))
    scores, ids = mi.create("fp16", x.shape[1], "l2").add(x).search(q, 12)
    info = medqk.info()
    print(json.dumps({"backend": medqk.get_backend(), "native_available": info["native_available"],
                      "native_error": info["native_error"], "isa": medqk.get_isa(),
                      "warnings": [str(w.message) for w in caught],
                      "ids": ids.tolist(), "scores": scores.tolist()}))
""")


@needs_native
def test_search_in_a_process_without_the_native_module():
    x, q = _inputs("fp16", "l2")  # exact in float32 (see _inputs), with duplicates: ties by lower id
    env = {k: v for k, v in os.environ.items() if k not in ("MEDQK_BACKEND", "MEDQK_ISA")}
    package_root = os.path.dirname(os.path.dirname(medqk.__file__))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    run = subprocess.run([sys.executable, "-c", _WITHOUT_NATIVE], input=json.dumps([x.tolist(), q.tolist()]),
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["backend"] == "numba" and out["native_available"] is False and out["isa"] is None
    assert out["native_error"].startswith("ModuleNotFoundError"), out["native_error"]
    assert any("falling back to the slower Numba kernels" in w for w in out["warnings"]), out["warnings"]
    with medqk.use_backend("native"):  # the native fp16 kernel with its fused top-k
        scores, ids = mi.create("fp16", D, "l2").add(x).search(q, 12)
    np.testing.assert_array_equal(np.array(out["ids"]), ids)
    np.testing.assert_array_equal(np.array(out["scores"], dtype=np.float32), scores)
