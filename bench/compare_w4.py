"""W4A8 weight GEMM against medqk's own INT8 GEMM and onnxruntime's MatMulNBits, measured side by side in one
run: --repeat rounds, each timing every contender once (interleaved, so a noisy moment hits all alike),
medians quoted.

    python bench/compare_w4.py [--threads 1] [--repeat 7] [--group-size 32] [--quick]

Float in, float out for all three: medqk W4A8 is quantize_rows_s8 + gemm_w4a8_f32 (4-bit codes, int8 levels
per row, one float32 scale per group); medqk INT8 is QuantizedLinear (linear_s8); MatMulNBits is 4 bits,
block 32, accuracy_level 4 (int8 activations inside), built with the onnx package. Prints GOP/s (2*M*N*K / s)
and the ratios W4A8 / INT8 and W4A8 / MatMulNBits. Peers that are not installed show as "-". Every medqk
result is checked before timing.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402
from compare_gemm import fmt, interleaved_medians, ratio  # noqa: E402

import medqk  # noqa: E402
from medqk import kernels  # noqa: E402

SHAPES = [(1, 4096, 4096), (8, 4096, 4096), (64, 4096, 4096), (128, 384, 1536), (512, 1536, 384)]


def ort_matmul_nbits(codes: np.ndarray, levels_row: np.ndarray, scales: np.ndarray, block: int, threads: int):
    """MatMulNBits over the same 4-bit weights (uint4 code c means c - 8, so the symmetric levels row must be
    c - 8: the caller passes that row), or None without onnx / onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    n, k = codes.shape
    blocks = -(-k // block)
    padded = np.zeros((n, blocks * block), np.uint8)
    padded[:, :k] = codes
    pairs = padded.reshape(n, blocks, block // 2, 2)
    b = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)  # element 2i in the low nibble
    graph = helper.make_graph(
        [helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft", K=k, N=n, bits=4,
                          block_size=block, accuracy_level=4)],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])],
        initializer=[numpy_helper.from_array(b, "B"),
                     numpy_helper.from_array(np.ascontiguousarray(scales, np.float32).reshape(-1), "scales")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"A": x})[0]


def int4_weights(rng, n, k, group_size):
    """Symmetric int4: codes 0..15 meaning c - 8 (levels row -8..7 for every output row), a scale per group."""
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    levels = np.tile(np.arange(-8, 8, dtype=np.int8), (n, 1))
    scales = rng.uniform(0.5, 1.5, (n, -(-k // group_size))).astype(np.float32) / np.sqrt(k)
    return codes, levels, scales


def check_w4(x, packed, codes, levels, scales, group_size, out):
    """out against the contract's float steps on the exact integer D (within the float32 sum's rounding)."""
    q, rs = kernels.quantize_rows_s8(x)
    d = kernels.gemm_w4a8_s32(q, packed, threads=1)
    w = np.take_along_axis(levels, codes.astype(np.intp), axis=1).astype(np.int64)
    for g in (0, d.shape[2] - 1):  # two groups checked against int64, in full
        sl = slice(g * group_size, (g + 1) * group_size)
        np.testing.assert_array_equal(d[:, :, g], q[:, sl].astype(np.int64) @ w[:, sl].T)
    want = rs.astype(np.float64)[:, None] * (scales[None].astype(np.float64) * d).sum(-1)
    assert np.allclose(out, want, rtol=1e-4, atol=1e-4 * np.abs(want).max()), "gemm_w4a8_f32 disagrees"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="the two small shapes, 3 repeats (smoke run)")
    args = ap.parse_args()
    shapes = SHAPES[3:] if args.quick else SHAPES
    repeat = 3 if args.quick else args.repeat
    gs = args.group_size
    print(f"medqk {medqk.__version__}, ISA {medqk.get_isa()}, gemm_w4a8 variant "
          f"{medqk.info()['kernels'].get('gemm_w4a8')}, {args.threads} thread(s), group {gs}, medians of {repeat}")
    head = f"{'shape':>16} {'W4A8':>8} {'INT8':>8} {'ORT4':>8} {'W4/INT8':>8} {'W4/ORT4':>8}   (GOP/s)"
    print(head)
    rng = np.random.default_rng(0)
    t = args.threads
    for m, n, k in shapes:
        codes, levels, scales = int4_weights(rng, n, k, gs)
        x = rng.standard_normal((m, k)).astype(np.float32)
        w_float = (np.take_along_axis(levels, codes.astype(np.intp), axis=1) * np.repeat(scales, gs, 1)[:, :k])
        packed = kernels.pack_w4(codes, levels, gs)
        layer = medqk.QuantizedLinear.from_float(w_float.astype(np.float32))

        def w4a8(x=x, packed=packed, scales=scales):
            qx, rsx = kernels.quantize_rows_s8(x)
            return kernels.gemm_w4a8_f32(qx, rsx, packed, scales, threads=t)

        check_w4(x, packed, codes, levels, scales, gs, w4a8())
        fns = {"w4": w4a8, "int8": lambda x=x, layer=layer: layer(x, threads=t)}
        ort = ort_matmul_nbits(codes, levels[0], scales, 32, t) if gs == 32 else None
        if ort is not None:
            y = ort(x)
            ref = x.astype(np.float64) @ w_float.T
            assert np.abs(y - ref).max() <= 0.05 * np.abs(ref).max(), "MatMulNBits disagrees with the weights"
            fns["ort"] = lambda x=x, ort=ort: ort(x)
        med = interleaved_medians(fns, repeat)
        gops = {name: 2 * m * n * k / s / 1e9 for name, s in med.items()}
        print(f"{f'{m}x{n}x{k}':>16} {fmt(gops['w4'])} {fmt(gops['int8'])} {fmt(gops.get('ort'))} "
              f"{ratio(gops['w4'], gops['int8'])} {ratio(gops['w4'], gops.get('ort'))}", flush=True)


if __name__ == "__main__":
    main()
