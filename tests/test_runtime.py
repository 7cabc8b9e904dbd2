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


# The ISA paths each CPU path includes: an amx CPU runs avx512vnni and avx2 kernels, neon_dotprod runs neon ones.
PATH_INCLUDES = {"scalar": {"scalar"}, "avx2": {"avx2", "scalar"}, "avx512vnni": {"avx512vnni", "avx2", "scalar"},
                 "amx": {"amx", "avx512vnni", "avx2", "scalar"}, "neon": {"neon", "scalar"},
                 "neon_dotprod": {"neon_dotprod", "neon", "scalar"}}


def test_info_contents():
    info = medqk.info()
    for key in ("version", "backend", "isa", "isas_built", "isas_supported", "cpu_features", "kernels", "threads"):
        assert key in info
    assert info["backend"] in ("native", "numba")
    json.dumps(info)  # plain data only
    if not NATIVE:
        assert info["kernels"] == {}
        return
    ops = list(medqk._core.kernel_operations())
    assert list(info["kernels"]) == ops and "gemm_s8s8_s32" in ops and len(set(ops)) == len(ops)
    if info["backend"] == "numba":  # MEDQK_BACKEND=numba: every operation runs its Numba twin
        assert set(info["kernels"].values()) == {"numba"}
    with medqk.use_backend("native"):  # the native dispatch, whatever MEDQK_BACKEND chose
        info = medqk.info()
    assert info["isas_built"][-1] == "scalar" and info["isas_supported"][-1] == "scalar"  # best first
    assert info["isas_supported"] == [i for i in info["isas_built"] if i in info["isas_supported"]]
    assert info["isa"] in info["isas_supported"]
    assert info["kernels"] == {op: medqk._core.kernel_variant(op, info["isa"]) for op in ops}
    assert info["threads"]["native"] >= 1


@needs_native
def test_kernel_chains_pick_the_first_variant_the_cpu_path_runs():
    features = medqk.info()["cpu_features"]
    variants = medqk.kernel_variants()
    assert list(variants) == list(medqk._core.kernel_operations())
    built = medqk.info()["isas_built"]  # the ISA preference order, best first
    supported = set(medqk.available_isas())
    for op, chain in variants.items():
        names = [v["name"] for v in chain]
        # best first: ISA paths in preference order, and on one path a variant needing extra features first
        rank = [(built.index(v["isa"]), not v["needs"]) for v in chain]
        assert rank == sorted(rank) and len(set(names)) == len(names), (op, names)
        assert names[-1] == "scalar"
        for v in chain:  # every ISA built has a GEMM; a variant exists only where its ISA is built
            assert v["isa"] in medqk.info()["isas_built"]
            assert v["runnable"] == (v["isa"] in supported and (not v["needs"] or features.get(v["needs"], False)))
        for path in supported:
            want = next(v["name"] for v in chain
                        if v["isa"] in PATH_INCLUDES[path] and (not v["needs"] or features.get(v["needs"], False)))
            assert medqk._core.kernel_variant(op, path) == want, (op, path)
    for path in supported:  # the GEMM's packed layout belongs to its ISA: each path runs its own
        assert medqk._core.kernel_variant("gemm_s8s8_s32", path) == path
    vbmi = features.get("avx512vbmi", False)
    if "avx512vnni" in supported:
        assert medqk._core.kernel_variant("lut4_scan", "avx512vnni") == ("avx512vbmi" if vbmi else "avx512vnni")
        assert medqk._core.kernel_variant("pq8_scan", "avx512vnni") == ("avx512vbmi" if vbmi else "avx2")


@needs_native
def test_use_kernel_pins_a_variant_and_refuses_clearly():
    isa = medqk.get_isa()
    for op, chain in medqk.kernel_variants().items():
        if op == "gemm_s8s8_s32":
            with pytest.raises(ValueError, match="chosen by ISA.*use set_isa"), medqk.use_kernel(op, "scalar"):
                pass
            continue
        before = medqk._core.kernel_variant(op)
        for v in chain:
            if v["runnable"]:
                with medqk.use_kernel(op, v["name"]):
                    assert medqk._core.kernel_variant(op) == v["name"]
                    assert medqk._core.kernel_variant(op, "scalar") == v["name"]  # whatever the path
            else:
                with pytest.raises(ValueError, match=f"variant '{v['name']}' of '{op}' cannot run on this CPU"):
                    medqk._core.force_kernel_variant(op, v["name"])
            assert medqk._core.kernel_variant(op) == before
    with pytest.raises(ValueError, match="operation 'lut4_scan' has no variant 'sse9'"):
        medqk._core.force_kernel_variant("lut4_scan", "sse9")
    with pytest.raises(ValueError, match="unknown kernel operation 'fft'"):
        medqk._core.force_kernel_variant("fft", "scalar")
    assert medqk.get_isa() == isa


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
@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo to compare with (not Linux)")
def test_cpu_features_agree_with_the_kernel():
    """cpuid + xgetbv (getauxval on aarch64) against an independent source: the flags Linux lists, which it
    clears where the OS does not enable the register state (as medqk's xgetbv check does)."""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), None)
    if line is None:
        pytest.skip("/proc/cpuinfo lists no flags here")
    flags = set(line.split(":", 1)[1].split())
    features = medqk.info()["cpu_features"]
    if features["arch"] == "x86_64":
        names = {"avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512bw": "avx512bw",
                 "avx512vnni": "avx512_vnni", "avx512vbmi": "avx512vbmi", "avx_vnni": "avx_vnni",
                 "avx512vpopcntdq": "avx512_vpopcntdq"}
        for ours, linux in names.items():
            assert features[ours] == (linux in flags), f"{ours}: medqk {features[ours]}, /proc/cpuinfo {linux in flags}"
        # AMX also needs the tile state granted to the process (arch_prctl), which cpuinfo cannot show
        assert not features["amx_int8"] or {"amx_int8", "amx_tile"} <= flags
    elif features["arch"] == "aarch64":
        for name in ("asimd", "asimddp", "i8mm"):
            assert features[name] == (name in flags), name


@needs_native
def test_set_isa_and_context_manager():
    before = medqk.get_isa()
    for isa in medqk.available_isas():
        with medqk.use_backend("native"), medqk.use_isa(isa):  # native kernels whatever MEDQK_BACKEND chose
            assert medqk.get_isa() == isa
            assert medqk.info()["kernels"]["gemm_s8s8_s32"] == isa
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
        assert set(medqk.info()["kernels"].values()) <= {"numba"}
    assert medqk.get_backend() == before


@needs_native
def test_env_isa_override():
    out = run_python("import medqk; print(medqk.get_isa())", MEDQK_ISA="scalar")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scalar"


@needs_native
@pytest.mark.parametrize("value,message", [("bogus", "is not an ISA medqk knows"), ("neon", "not available here")])
def test_env_isa_refused_clearly(value, message):
    # README: "an ISA not available is a clear error at import" -- a RuntimeError naming the variable, the
    # value and the ISAs usable here (the medqk command prints it as one line: tests/test_cli.py)
    if value in medqk.available_isas():
        pytest.skip(f"{value} is available on this machine")
    out = run_python("import medqk", MEDQK_ISA=value)
    assert out.returncode == 1 and "Segmentation" not in out.stderr
    last = out.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"RuntimeError: MEDQK_ISA={value!r} is") and message in last
    assert last.endswith(f"Unset MEDQK_ISA or choose one of: {', '.join(medqk.available_isas())}")


def test_env_backend():
    pytest.importorskip("numba")
    out = run_python("import medqk; print(medqk.get_backend())", MEDQK_BACKEND="numba")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numba"
    out = run_python("import medqk", MEDQK_BACKEND=" GPU")
    assert out.returncode == 1
    assert out.stderr.rstrip().splitlines()[-1] == ("RuntimeError: MEDQK_BACKEND=' GPU' is not a backend. "
                                                    "Unset MEDQK_BACKEND or choose one of: native, numba")


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
    # Three Python threads calling the kernel at once all finish with exact results.
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


def _long_native_calls(scale: int):
    """One call per entry point of medqk._core that does real work, sized by `scale` (about 10 ms per unit on
    AVX2, more on the scalar ISA)."""
    core = medqk._core
    rng = np.random.default_rng(scale)
    n = 20000 * scale
    a = rng.integers(-128, 128, (64, 512), dtype=np.int8)
    packed = core.pack_s8(rng.integers(-128, 128, (256 * scale, 512), dtype=np.int8))
    codes4 = core.lut4_pack(rng.integers(0, 16, (n, 64), dtype=np.uint8))
    luts = rng.integers(0, 128, (8, 64, 16), dtype=np.uint8)
    ones = np.ones(8, np.float32)
    codes8 = core.pq8_pack(rng.integers(0, 256, (n // 4, 32), dtype=np.uint8))
    tables = rng.standard_normal((8, 32, 256)).astype(np.float32)
    x16 = rng.standard_normal((n // 4, 128)).astype(np.float16).view(np.uint16)
    q = rng.standard_normal((8, 128)).astype(np.float32)
    xf = rng.standard_normal((n // 8, 64)).astype(np.float32)
    cents = rng.standard_normal((8, 256, 8)).astype(np.float32)
    s8 = rng.integers(-128, 128, (n, 128), dtype=np.int8)
    cand = rng.integers(0, n, (64, 1000 * scale)).astype(np.int64)
    qs = rng.standard_normal((64, 128)).astype(np.float32)
    w4 = core.pack_w4(rng.integers(0, 16, (256 * scale, 512), dtype=np.uint8),
                      rng.integers(-127, 128, (256 * scale, 16), dtype=np.int8), 32)
    return {
        "gemm_w4a8_s32": lambda: core.gemm_w4a8_s32(a, w4, 1),
        "gemm_s8s8_s32_packed": lambda: core.gemm_s8s8_s32_packed(a, packed, 1),
        "lut4_search_topk": lambda: core.lut4_search_topk(luts, codes4, n, 64, ones, ones, 10, 1),
        "pq8_search_topk": lambda: core.pq8_search_topk(tables, codes8, n // 4, 10, 1),
        "f16_search_topk": lambda: core.f16_search_topk(q, x16, 1.0, None, 10, 1),
        "pq_assign": lambda: core.pq_assign(xf, cents, 1),
        "s8_score_candidates": lambda: core.s8_score_candidates(qs, s8, cand, 1),
        "quantize_rows_s8": lambda: core.quantize_rows_s8(np.tile(xf, (4 * scale, 1))),
    }


@needs_native
@pytest.mark.parametrize("name", list(_long_native_calls(1)))
def test_native_calls_release_the_gil(name):
    """Deterministic, not timed: with a 5 s switch interval the interpreter never takes the GIL from a running
    thread, so the main thread, waiting for the worker's `started` event, can run before the worker finishes its
    native call only if that call released the GIL. A call holding it returns first and sets `done`. A retry with
    a 4x longer call covers a main thread slow to wake (a released GIL must be seen at least once)."""
    import threading

    previous = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        seen = []
        for scale in (1, 4, 16):
            call = _long_native_calls(scale)[name]
            started, done = threading.Event(), []

            def work(call=call, started=started, done=done):
                started.set()
                call()
                done.append(True)

            worker = threading.Thread(target=work)
            worker.start()
            started.wait()
            seen.append(not done)  # the worker is still inside the native call, and we hold the GIL
            worker.join()
            if seen[-1]:
                break
        assert seen[-1], f"{name} held the GIL for the whole call ({len(seen)} sizes tried)"
    finally:
        sys.setswitchinterval(previous)


# --- the package namespace: documented names only, subpackages reachable on first use (PEP 562)

SUBPACKAGES = ("medqk", "medqk.data", "medqk.distributed", "medqk.encoder", "medqk.eval", "medqk.index",
               "medqk.kernels", "medqk.quantizers")

NAMESPACES = """
import importlib, json, pkgutil, sys
report = {}
for name in SUBPACKAGES_HERE:
    for m in [m for m in sys.modules if m == "medqk" or m.startswith("medqk.")]:
        del sys.modules[m]  # each package as a fresh import sees it
    package = importlib.import_module(name)
    children = {m.name: m.ispkg for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    report[name] = {
        "all": list(package.__all__),
        "dir": [n for n in dir(package) if not n.startswith("_")],
        "children": children,
        "missing": [n for n in package.__all__ if not hasattr(package, n)],
    }
print(json.dumps(report))
""".replace("SUBPACKAGES_HERE", repr(SUBPACKAGES))


def test_public_names_are_all_and_the_subpackages():
    out = run_python(NAMESPACES)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for name, ns in report.items():
        assert ns["missing"] == [], name  # every name __all__ promises exists
        public_all = {n for n in ns["all"] if not n.startswith("_")}
        if name == "medqk":
            # the API and the subpackages (found here on disk, not from the package's own list), reachable
            # before anything imported them; not the implementation modules runtime, linear, cli
            subpackages = {child for child, is_package in ns["children"].items() if is_package}
            assert subpackages == {"data", "distributed", "encoder", "eval", "index", "kernels", "quantizers"}
            assert set(ns["dir"]) == public_all | subpackages
        else:
            # the API and submodules that are loaded, nothing imported for the package's own use (numpy...)
            extra = set(ns["dir"]) - public_all
            assert extra <= set(ns["children"]), (name, extra - set(ns["children"]))
            assert public_all <= set(ns["dir"]), name


def test_leaked_names_are_gone():
    import medqk.index

    for owner, name in [(medqk, "version"), (medqk, "annotations"), (medqk, "PackageNotFoundError"),
                        (medqk.index, "np"), (medqk.index, "annotations"), (medqk.index, "load_index")]:
        assert not hasattr(owner, name), f"{owner.__name__}.{name}"
    assert "np" not in dir(medqk.kernels) and "as_matrix" not in dir(medqk.kernels)


def test_import_is_lazy_and_subpackages_are_reachable():
    code = (
        "import sys, medqk\n"
        "lazy = ('medqk.index', 'medqk.eval', 'medqk.kernels', 'medqk.quantizers', 'numba')\n"
        "print(sorted(m for m in lazy if m in sys.modules))\n"
        "index = medqk.index.create('int8', 8)\n"
        "print(type(index).__name__, index.dim, 'medqk.index' in sys.modules)\n"
        "print(medqk.eval.evaluate.__name__, medqk.quantizers.ScalarQuantizer.__name__)\n"
        "from medqk import gemm_s8s8_s32, info\n"
        "print(gemm_s8s8_s32.__module__)\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "FlatInt8Index 8 True", "evaluate ScalarQuantizer",
                                       "medqk.kernels"]


def test_star_import_gives_all():
    out = run_python("from medqk import *; import medqk\n"
                     "print(sorted(n for n in dir() if not n.startswith('_') and n != 'medqk') == sorted(\n"
                     "    n for n in medqk.__all__ if not n.startswith('_')),\n"
                     "    __version__ == medqk.__version__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_cmake_helpers_are_public():
    from medqk import _cmake

    names = {"get_include", "get_cmake_dir"}
    assert names <= set(medqk.__all__) and names <= set(dir(medqk))
    assert medqk.get_include is _cmake.get_include and medqk.get_cmake_dir is _cmake.get_cmake_dir
