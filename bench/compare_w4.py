"""W4A8 weight GEMM (uniform int4 and a non-uniform codebook) against medqk's own INT8 GEMM and onnxruntime's
MatMulNBits, measured side by side in one run: --repeat rounds, each timing every contender once (interleaved, so
a noisy moment hits all alike), medians quoted.

    python bench/compare_w4.py [--threads 1[,2]] [--repeat 7] [--group-size 32] [--quick]

Float in, float out for all: medqk W4 is quantize_rows_s8 + gemm_w4a8_f32 (4-bit codes, int8 levels per row, one
float32 scale per group) with the int4 levels c - 8 (W4) or 16 sorted distinct random int8 levels per row (CB, a
codebook as fitted weights have one: the kernel looks the levels up); medqk INT8 is QuantizedLinear (linear_s8);
MatMulNBits is 4 bits, block 32, accuracy_level 4 (int8 activations inside), built with the onnx package. Prints
GOP/s (2*M*N*K / s) and the ratios W4 / INT8, CB / W4, W4 / MatMulNBits and CB / MatMulNBits; with several thread
counts each is timed in the same rounds and a last line per shape gives each contender's speed-up over the first
count. Peers that are not installed show as "-". Every medqk result is checked before timing.
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


def codebook_levels(rng, n):
    """16 distinct int8 levels per row in [-127, 127], sorted (as a fitted codebook's), none of them affine."""
    return np.stack([np.sort(rng.choice(np.arange(-127, 128), 16, replace=False)) for _ in range(n)]).astype(np.int8)


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
    ap.add_argument("--threads", default="1", help="thread counts, comma separated (each timed in the same rounds)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="the two small shapes, 3 repeats (smoke run)")
    args = ap.parse_args()
    shapes = SHAPES[3:] if args.quick else SHAPES
    repeat = 3 if args.quick else args.repeat
    gs = args.group_size
    counts = [int(t) for t in args.threads.split(",")]
    print(f"medqk {medqk.__version__}, ISA {medqk.get_isa()}, gemm_w4a8 variant "
          f"{medqk.info()['kernels'].get('gemm_w4a8')}, threads {counts}, group {gs}, medians of {repeat}")
    names = ["w4", "cb", "int8", "ort"]
    head = (f"{'shape':>16} {'thr':>3} {'W4':>8} {'CB':>8} {'INT8':>8} {'ORT4':>8} {'W4/INT8':>8} {'CB/W4':>8} "
            f"{'W4/ORT4':>8} {'CB/ORT4':>8}   (GOP/s)")
    print(head)
    rng = np.random.default_rng(0)
    for m, n, k in shapes:
        codes, levels, scales = int4_weights(rng, n, k, gs)
        cb_levels = codebook_levels(rng, n)
        x = rng.standard_normal((m, k)).astype(np.float32)
        w_float = (np.take_along_axis(levels, codes.astype(np.intp), axis=1) * np.repeat(scales, gs, 1)[:, :k])
        packed = kernels.pack_w4(codes, levels, gs)
        cb_packed = kernels.pack_w4(codes, cb_levels, gs)
        layer = medqk.QuantizedLinear.from_float(w_float.astype(np.float32))
        fns = {}
        for t in counts:
            def w4a8(x=x, packed=packed, scales=scales, t=t):
                qx, rsx = kernels.quantize_rows_s8(x)
                return kernels.gemm_w4a8_f32(qx, rsx, packed, scales, threads=t)

            def cb(x=x, packed=cb_packed, scales=scales, t=t):
                qx, rsx = kernels.quantize_rows_s8(x)
                return kernels.gemm_w4a8_f32(qx, rsx, packed, scales, threads=t)

            check_w4(x, packed, codes, levels, scales, gs, w4a8())
            check_w4(x, cb_packed, codes, cb_levels, scales, gs, cb())
            fns[("w4", t)] = w4a8
            fns[("cb", t)] = cb
            fns[("int8", t)] = lambda x=x, layer=layer, t=t: layer(x, threads=t)
            ort = ort_matmul_nbits(codes, levels[0], scales, 32, t) if gs == 32 else None
            if ort is not None:
                y = ort(x)
                ref = x.astype(np.float64) @ w_float.T
                assert np.abs(y - ref).max() <= 0.05 * np.abs(ref).max(), "MatMulNBits disagrees with the weights"
                fns[("ort", t)] = lambda x=x, ort=ort: ort(x)
        med = interleaved_medians(fns, repeat)
        gops = {key: 2 * m * n * k / s / 1e9 for key, s in med.items()}
        for t in counts:
            g = {name: gops.get((name, t)) for name in names}
            print(f"{f'{m}x{n}x{k}':>16} {t:>3} {fmt(g['w4'])} {fmt(g['cb'])} {fmt(g['int8'])} {fmt(g['ort'])} "
                  f"{ratio(g['w4'], g['int8'])} {ratio(g['cb'], g['w4'])} {ratio(g['w4'], g['ort'])} "
                  f"{ratio(g['cb'], g['ort'])}", flush=True)
        for t in counts[1:]:
            speedup = {name: ratio(gops.get((name, t)), gops.get((name, counts[0]))) for name in names}
            print(f"{f'{t} vs {counts[0]} threads':>20} {speedup['w4']} {speedup['cb']} {speedup['int8']} "
                  f"{speedup['ort']}   (speed-up)", flush=True)


if __name__ == "__main__":
    main()
