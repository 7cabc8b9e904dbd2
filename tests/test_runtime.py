"""Backend / ISA selection, environment overrides, the native-missing fallback, and info()."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import medqk

NATIVE = medqk.info()["native_available"]
needs_native = pytest.mark.skipif(not NATIVE, reason="native module not built")


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("MEDQK_ISA", "MEDQK_BACKEND")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_info_contents():
    info = medqk.info()
    for key in ("version", "backend", "isa", "isas_built", "isas_supported", "cpu_features", "kernels", "threads"):
        assert key in info
    assert info["backend"] in ("native", "numba")
    assert set(info["kernels"]) == {"gemm_s8s8_s32", "search_s8_topk", "lut4_search_topk", "pq8_search_topk",
                                    "pq_assign", "quantize_rows_s8", "s8_score_candidates"}
    json.dumps(info)  # plain data only
    if info["backend"] == "numba":  # MEDQK_BACKEND=numba: every operation runs its Numba twin
        assert info["kernels"] == {op: f"numba:{op}" for op in info["kernels"]}
    if NATIVE:
        with medqk.use_backend("native"):  # the native dispatch, whatever MEDQK_BACKEND chose
            info = medqk.info()
        assert "scalar" in info["isas_built"] and info["isas_supported"][-1] == "scalar"
        assert info["isa"] in info["isas_supported"]
        assert info["kernels"]["gemm_s8s8_s32"] == f"{info['isa']}:gemm_s8s8_s32"
        # the float assignment has no VNNI or dotprod form: those paths run the AVX2 / armv8-a kernel
        pq_isa = {"avx512vnni": "avx2", "amx": "avx2", "neon_dotprod": "neon"}.get(info["isa"], info["isa"])
        assert info["kernels"]["pq_assign"] == f"{pq_isa}:pq_assign"
        assert info["kernels"]["s8_score_candidates"] == f"{pq_isa}:s8_score_candidates"
        vbmi = info["cpu_features"].get("avx512vbmi")
        pq8_isa = {"neon_dotprod": "neon", "avx512vnni": "avx512vbmi" if vbmi else "avx2",
                   "amx": "avx512vbmi" if vbmi else "avx2"}.get(info["isa"], info["isa"])
        assert info["kernels"]["pq8_search_topk"] == f"{pq8_isa}:pq8_search_topk"
        lut4_isa = {"neon_dotprod": "neon", "avx512vnni": "avx512vbmi" if vbmi else "avx512vnni",
                    "amx": "avx512vbmi" if vbmi else "avx512vnni"}.get(info["isa"], info["isa"])
        assert info["kernels"]["lut4_search_topk"] == f"{lut4_isa}:lut4_search_topk"
        assert info["threads"]["native"] >= 1


@needs_native
def test_cpu_features_match_the_build():
    info = medqk.info()
    features = info["cpu_features"]
    if features["arch"] == "x86_64":
        assert features["sse2"]
        assert ("avx2" in info["isas_supported"]) == (features["avx2"] and features["fma"] and features["f16c"])
        assert not {"neon", "neon_dotprod"} & set(info["isas_supported"])
        vnni = features["avx2"] and features["avx512f"] and features["avx512bw"] and features["avx512vnni"]
        assert ("avx512vnni" in info["isas_supported"]) == vnni
        if "amx" in info["isas_built"]:
            assert ("amx" in info["isas_supported"]) == (vnni and features["amx_int8"])
    elif features["arch"] == "aarch64":
        assert features["asimd"] and "neon" in info["isas_supported"]
        assert ("neon_dotprod" in info["isas_supported"]) == features["asimddp"]


@needs_native
def test_set_isa_and_context_manager():
    before = medqk.get_isa()
    for isa in medqk.available_isas():
        with medqk.use_backend("native"), medqk.use_isa(isa):  # native kernels whatever MEDQK_BACKEND chose
            assert medqk.get_isa() == isa
            assert medqk.info()["kernels"]["gemm_s8s8_s32"] == f"{isa}:gemm_s8s8_s32"
        assert medqk.get_isa() == before
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        medqk.set_isa("sse9")
    unavailable = [i for i in ("avx2", "avx512vnni", "amx", "neon", "neon_dotprod") if i not in medqk.available_isas()]
    for isa in unavailable:
        with pytest.raises(ValueError, match=f"ISA '{isa}' is not available here.*available here: "):
            medqk.set_isa(isa)
    assert medqk.get_isa() == before


def test_set_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        medqk.set_backend("cuda")
    before = medqk.get_backend()
    pytest.importorskip("numba")
    with medqk.use_backend("numba"):
        assert medqk.get_backend() == "numba"
        assert medqk.info()["kernels"]["gemm_s8s8_s32"] == "numba:gemm_s8s8_s32"
    assert medqk.get_backend() == before


@needs_native
def test_env_isa_override():
    out = run_python("import medqk; print(medqk.get_isa())", MEDQK_ISA="scalar")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scalar"


@needs_native
@pytest.mark.parametrize("value,message", [("bogus", "is not an ISA medqk knows"), ("neon", "not available here")])
def test_env_isa_refused_clearly(value, message):
    if value in medqk.available_isas():
        pytest.skip(f"{value} is available on this machine")
    out = run_python("import medqk", MEDQK_ISA=value)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and message in out.stderr and "Segmentation" not in out.stderr


def test_env_backend():
    pytest.importorskip("numba")
    out = run_python("import medqk; print(medqk.get_backend())", MEDQK_BACKEND="numba")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numba"
    out = run_python("import medqk", MEDQK_BACKEND="gpu")
    assert out.returncode != 0 and "MEDQK_BACKEND='gpu' is not a backend" in out.stderr


def test_fallback_when_native_module_is_unusable():
    # A native module that fails to load (here: blocked) must not break import: Numba takes over, with a warning.
    pytest.importorskip("numba")
    code = (
        "import sys, warnings; sys.modules['medqk._core'] = None\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import medqk, numpy as np\n"
        "print(medqk.get_backend(), any('falling back' in str(x.message) for x in w))\n"
        "a = np.full((2, 5), -128, np.int8)\n"
        "print(int(medqk.gemm_s8s8_s32(a, a)[0, 0]))\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numba", "True", str(5 * 16384)]
    out = run_python("import sys; sys.modules['medqk._core'] = None; import medqk", MEDQK_BACKEND="native")
    assert out.returncode != 0 and "MEDQK_BACKEND=native but the native module" in out.stderr


@needs_native
def test_gil_released_threads_run_concurrently():
    # Two Python threads calling the kernel at once both finish with exact results.
    import threading

    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (64, 512), dtype=np.int8)
    b = medqk.pack_s8(rng.integers(-128, 128, (256, 512), dtype=np.int8))
    want = medqk.gemm_s8s8_s32(a, b, threads=1)
    results = []

    def work():
        results.append(all((medqk.gemm_s8s8_s32(a, b, threads=2) == want).all() for _ in range(20)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True, True, True]
