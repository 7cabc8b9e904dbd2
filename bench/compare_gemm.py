"""INT8 GEMM against its peers, measured side by side in one run: --repeat rounds, each timing every
contender once (interleaved, so a noisy moment hits all alike), medians quoted.

    python bench/compare_gemm.py [--threads 1] [--repeat 7] [--quick]

Prints GOP/s (2*M*N*K / s) of medqk (prepacked B), numpy float32 matmul, onnxruntime MatMulInteger
(uint8 A with zero point 128 x int8 B) and torch's dynamic int8 Linear (FBGEMM) when installed, and the
ratios; then QuantizedLinear (float in/out) vs torch's dynamic Linear; the Numba twin vs native; thread
scaling; and exactness on full-range inputs. Peers that are not installed show as "-".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

import medqk  # noqa: E402

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (64, 4096, 4096), (256, 1024, 1024), (1024, 1024, 1024),
          (128, 384, 1536), (512, 1536, 384)]


def median_time(fn, repeat):
    return interleaved_medians({"fn": fn}, repeat)["fn"]


def interleaved_medians(fns, repeat, min_sample=0.02):
    """Median seconds per call of each function in `fns` (name -> callable), measured in `repeat` rounds
    that time every function once each: a noisy moment of the host then hits all of them alike. A sample
    loops a function often enough to last about `min_sample` seconds (a 0.3 ms GEMV timed once is noise).
    Each round starts one function later than the one before, so that no function always runs after the
    same one: at M = 1 the 16 MiB of weights come from L3 or from memory depending on what ran before
    (QuantizedLinear, always timed after numpy's 64 MiB float GEMV, read 88 GOP/s there and 107 alone)."""
    loops = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_sample / max(time.perf_counter() - t0, 1e-9)))
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeat):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = fns[name]
            t0 = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / loops[name])
    return {name: float(np.median(v)) for name, v in samples.items()}


def ort_matmul_integer(b: np.ndarray, threads: int):
    try:
        import onnx  # noqa: F401  (availability check before the helpers below)
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    n, k = b.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "azp"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(b.T), "B"),
                     numpy_helper.from_array(np.array(128, np.uint8), "azp")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda a_u8: sess.run(None, {"A": a_u8})[0]


def torch_dynamic_linear(w: np.ndarray, threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.zero_()
    with warnings.catch_warnings():  # quantize_dynamic's deprecation notices
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)

    def run(x):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return q(torch.from_numpy(x)).numpy()

    return run


def fmt(v, width=8):
    return f"{v:>{width}.0f}" if v is not None else f"{'-':>{width}}"


def ratio(a, b, width=8):
    return f"{a / b:>{width}.2f}" if a is not None and b else f"{'-':>{width}}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small shapes only, 3 repeats (smoke run)")
    args = ap.parse_args()
    shapes = [(8, 512, 512), (64, 384, 1536)] if args.quick else SHAPES
    repeat = 3 if args.quick else args.repeat
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else "?"
    info = medqk.info()
    print(f"CPU: {cpu}; medqk {info['version']} backend {info['backend']} isa {info['isa']}; threads {args.threads}; "
          f"median of {repeat}")
    rng = np.random.default_rng(0)

    print("\n== gemm_s8s8_s32 (prepacked B), GOP/s")
    print(f"{'M x N x K':>18} {'medqk':>8} {'numpy32':>8} {'ort':>8} {'torch':>8} {'/numpy':>8} {'/ort':>8} "
          f"{'/torch':>8} {'/best':>8}")
    lin_rows = []
    for m, n, k in shapes:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (n, k), dtype=np.int8)
        ops = 2 * m * n * k
        packed = medqk.pack_s8(b)
        af, bt = a.astype(np.float32), np.ascontiguousarray(b.T.astype(np.float32))
        a_u8 = (a.astype(np.int16) + 128).astype(np.uint8)
        w = rng.standard_normal((n, k)).astype(np.float32) / np.sqrt(k)
        x = rng.standard_normal((m, k)).astype(np.float32)
        layer = medqk.QuantizedLinear.from_float(w, np.zeros(n, np.float32))
        fns = {"medqk": lambda: medqk.gemm_s8s8_s32(a, packed, threads=args.threads),
               "numpy": lambda: af @ bt, "linear": lambda: layer(x, threads=args.threads)}
        ort_fn = ort_matmul_integer(b, args.threads)
        if ort_fn:
            fns["ort"] = lambda: ort_fn(a_u8)
        t_fn = torch_dynamic_linear(w, args.threads)
        if t_fn:
            fns["torch"] = lambda: t_fn(x)
        gops = {name: ops / t / 1e9 for name, t in interleaved_medians(fns, repeat).items()}
        g_medqk, g_np, g_lin = gops["medqk"], gops["numpy"], gops["linear"]
        g_ort, g_torch = gops.get("ort"), gops.get("torch")
        best = max([g for g in (g_ort, g_torch) if g] or [None]) if (g_ort or g_torch) else None
        print(f"{f'{m}x{n}x{k}':>18} {fmt(g_medqk)} {fmt(g_np)} {fmt(g_ort)} {fmt(g_torch)} {ratio(g_medqk, g_np)} "
              f"{ratio(g_medqk, g_ort)} {ratio(g_medqk, g_torch)} {ratio(g_medqk, best)}")
        lin_rows.append((m, n, k, g_lin, g_torch))

    print("\n== QuantizedLinear (float in, float out, activation quantization included), GOP/s")
    print(f"{'M x N x K':>18} {'medqk':>8} {'torch':>8} {'/torch':>8}")
    for m, n, k, g_lin, g_torch in lin_rows:
        print(f"{f'{m}x{n}x{k}':>18} {fmt(g_lin)} {fmt(g_torch)} {ratio(g_lin, g_torch)}")

    m, n, k = (64, 256, 256) if args.quick else (256, 1024, 1024)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    ops = 2 * m * n * k
    packed = medqk.pack_s8(b)
    g_native = ops / median_time(lambda: medqk.gemm_s8s8_s32(a, packed, threads=1), repeat) / 1e9
    try:
        import numba  # noqa: F401

        with medqk.use_backend("numba"):
            packed_nb = medqk.pack_s8(b)
            g_numba = ops / median_time(lambda: medqk.gemm_s8s8_s32(a, packed_nb, threads=1), repeat) / 1e9
        print(f"\n== Numba twin vs native at {m}x{n}x{k}, 1 thread: numba {g_numba:.0f} GOP/s, native {g_native:.0f} "
              f"GOP/s, native/numba {g_native / g_numba:.2f}x")
    except ImportError:
        print("\n== Numba twin: numba not installed")

    m = n = k = 256 if args.quick else 1024
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    packed = medqk.pack_s8(rng.integers(-128, 128, (n, k), dtype=np.int8))
    times = interleaved_medians({1: lambda: medqk.gemm_s8s8_s32(a, packed, threads=1),
                                 2: lambda: medqk.gemm_s8s8_s32(a, packed, threads=2)}, repeat)
    t1, t2 = times[1], times[2]
    print(f"== threads at {m}^3: 1 thread {2 * m**3 / t1 / 1e9:.0f} GOP/s, 2 threads {2 * m**3 / t2 / 1e9:.0f} GOP/s, "
          f"speed-up {t1 / t2:.2f}x")

    a = rng.integers(-128, 128, (64, 1024), dtype=np.int8)
    b = rng.integers(-128, 128, (256, 1024), dtype=np.int8)
    exact = a.astype(np.int64) @ b.T.astype(np.int64)
    got = medqk.gemm_s8s8_s32(a, b)
    line = f"== exactness on full-range int8 (64x256x1024): medqk max |error| {int(np.abs(got - exact).max())}"
    ort_fn = ort_matmul_integer(b, 1)
    if ort_fn:
        y = ort_fn((a.astype(np.int16) + 128).astype(np.uint8)).astype(np.int64)
        line += (f"; onnxruntime MatMulInteger max |error| {int(np.abs(y - exact).max())}, "
                 f"{np.mean(y != exact) * 100:.2f}% of outputs wrong")
    print(line)


if __name__ == "__main__":
    main()
