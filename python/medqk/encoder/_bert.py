"""The BERT forward pass, its model-folder readers and SentenceEncoder (documented in medqk.encoder)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .._progress import progress_bar
from .._validate import threads_arg
from ..kernels import _attention_f32_checked, _gelu_f32_checked

# each precision: the QuantizedLinear.from_float options of every linear layer (None: float32 kept)
PRECISIONS = {
    "float32": None,
    "int8": {"bits": 8},  # per output channel
    "int4": {"bits": 4, "scheme": "int4", "group_size": 128},  # symmetric, 4.25 bits per weight at K = 384
    "nf4": {"bits": 4, "scheme": "nf4", "group_size": 64},
    "codebook4": {"bits": 4, "scheme": "codebook", "group_size": None},  # 16 fitted levels per output channel
    "codebook3": {"bits": 3, "scheme": "codebook", "group_size": None},
    "codebook2": {"bits": 2, "scheme": "codebook", "group_size": None},
}
MODEL_MAGIC = b"MEDQKMDL"  # model files: medqk's container (medqk/_container.py) with this magic
MODEL_VERSION = 2  # 2: a quantized model stores its word embeddings as int8 rows ("word_q", "word_scale")
MODEL_VERSIONS_READ = (1, 2)  # 1: float32 word embeddings only
_NORMS = ("ln1_w", "ln1_b", "ln2_w", "ln2_b")
_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")


class ModelFolderError(ValueError):
    """A model folder medqk cannot run: a missing or unreadable file, an unsupported architecture or option."""


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_position_embeddings: int
    pad_token_id: int

    @classmethod
    def read(cls, path: str) -> BertConfig:
        config = _read_json(path)
        kind = config.get("model_type")
        if kind != "bert":
            raise ModelFolderError(f"{path!r}: model_type {kind!r} is not supported (medqk runs BERT-family "
                                   "encoders, model_type 'bert')")
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ModelFolderError(f"{path!r}: hidden_act {act!r} is not supported (only 'gelu', the exact erf form)")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelFolderError(f"{path!r}: position_embedding_type "
                                   f"{config['position_embedding_type']!r} is not supported (only 'absolute')")
        try:
            out = cls(int(config["hidden_size"]), int(config["num_hidden_layers"]), int(config["num_attention_heads"]),
                      int(config["intermediate_size"]), float(config.get("layer_norm_eps", 1e-12)),
                      int(config["max_position_embeddings"]), int(config.get("pad_token_id", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFolderError(f"{path!r}: missing or invalid field {exc}") from None
        if out.hidden_size % out.num_heads:
            raise ModelFolderError(f"{path!r}: hidden_size {out.hidden_size} is not a multiple of "
                                   f"num_attention_heads {out.num_heads}")
        return out


class SentenceEncoder:
    """Embeds texts with a BERT-family sentence encoder. Build it with :meth:`load`."""

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use SentenceEncoder.load(model_dir, precision='float32')")

    @classmethod
    def load(cls, model_dir, precision=None, *, max_seq_length: int | None = None, calib=None,
             calib_batch_size: int = 32, progress: bool | None = None) -> SentenceEncoder:
        """Reads ``model_dir``: a model folder (see the module doc), whose weights are prepared at ``precision``
        (a name of PRECISIONS, "float32" by default, or a per-layer plan), or a model file written by
        :meth:`save` / ``medqk quantize``, which keeps the precision it was saved at unless ``precision`` asks
        for another (possible only from a float32 file: a quantized file has no float weights left).
        ``max_seq_length`` overrides the folder's or file's (at most the position table's size).

        ``calib``: texts (a list of str) the float model runs over once, collecting each linear layer's input
        over the unpadded tokens: its Hessian 2 X^T X switches the 4-, 3- and 2-bit layers to GPTQ rounding
        (:func:`medqk.quantize_weights`), and its max |x| per channel smooths the int8 layers (SmoothQuant,
        :meth:`medqk.QuantizedLinear.from_float`): on all-MiniLM-L6-v2 with 32 MedQuAD answers, int8's mean
        cosine to the float embeddings rises from about 0.998 to 0.999.
        """
        if precision is not None:
            _check_precision(precision)
        source = os.fspath(model_dir)
        if calib is not None:
            if precision is None or precision == "float32":
                raise ValueError("calib (GPTQ, int8 smoothing) needs a quantized precision")
            float_encoder = cls.load(source, "float32", max_seq_length=max_seq_length)
            return float_encoder._calibrated(precision, _texts(calib), calib_batch_size, progress)
        if os.path.isfile(source):
            return cls._load_file(source, precision, max_seq_length)
        precision = precision or "float32"
        if not os.path.isdir(source):
            raise ModelFolderError(f"model folder {source!r} does not exist or is not a folder")
        config = BertConfig.read(_need(source, "config.json"))
        ckpt = _Checkpoint(source)
        embeddings = {
            "word": ckpt.get("embeddings.word_embeddings.weight", (None, config.hidden_size)),
            "position": ckpt.get("embeddings.position_embeddings.weight",
                                 (config.max_position_embeddings, config.hidden_size)),
            "type": ckpt.get("embeddings.token_type_embeddings.weight", (None, config.hidden_size)),
            "ln_w": ckpt.get("embeddings.LayerNorm.weight", (config.hidden_size,)),
            "ln_b": ckpt.get("embeddings.LayerNorm.bias", (config.hidden_size,)),
        }
        layers = [_read_layer(ckpt, i, config, precision) for i in range(config.num_layers)]
        length = _max_seq_length(source, config, max_seq_length)
        return cls._assemble(source, config, precision, *_read_pooling(source), length,
                             _read_tokenizer(_need(source, "tokenizer.json"), length), embeddings, layers)

    @classmethod
    def _assemble(cls, source, config, precision, pooling, normalize, max_seq_length, tokenizer, embeddings,
                  layers) -> SentenceEncoder:
        self = object.__new__(cls)
        self.folder = source
        self.config = config
        self.precision = precision
        self.pooling, self.normalize = pooling, normalize
        self.max_seq_length = max_seq_length
        self._tokenizer = tokenizer
        if precision != "float32" and "word" in embeddings:  # quantized models keep int8 word embeddings
            embeddings = {k: v for k, v in embeddings.items() if k != "word"} | _int8_rows(embeddings["word"])
        self._embeddings = embeddings
        self._layers = layers
        return self

    def _calibrated(self, precision, texts: list[str], batch_size: int, progress) -> SentenceEncoder:
        """This float32 encoder's weights at ``precision``: the int8 layers smoothed by their inputs' maxima over
        ``texts``, the low-bit layers rounded by GPTQ with their inputs' Hessians."""
        return self._quantized_with(precision, self._calibration_stats(texts, batch_size, progress))

    def _calibration_stats(self, texts: list[str], batch_size: int, progress) -> dict:
        """What calibration needs of ``texts``, from one float32 pass: {"hessian": {(layer, name): 2 X^T X},
        "absmax": {(layer, name): max |x| per input channel}}, over the unpadded tokens."""
        if self.precision != "float32":
            raise ValueError(f"calib needs float weights; {self.folder!r} holds a {self.precision} model")
        stats = {"hessian": {}, "absmax": {}}
        self._embed(_texts(texts), _batch_size(batch_size), progress, threads_arg(None), stats)
        return stats

    def _quantized_with(self, precision, stats: dict) -> SentenceEncoder:
        """This float32 encoder at ``precision``, calibrated by ``stats`` (:meth:`_calibration_stats`)."""
        layers = []
        for i, layer in enumerate(self._layers):
            new = dict(layer)
            for name in _LINEARS:
                w = np.ascontiguousarray(layer[name].weight_t.T)
                new[name] = _prepared(w, layer[name].bias, _resolve(precision, f"layer.{i}.{name}"),
                                      hessian=stats["hessian"][i, name], absmax=stats["absmax"][i, name])
            layers.append(new)
        return type(self)._assemble(self.folder, self.config, precision, self.pooling, self.normalize,
                                    self.max_seq_length, self._tokenizer, self._embeddings, layers)

    def save(self, path) -> None:
        """Writes the encoder as it runs (tokenizer, configuration, embeddings, every layer at its precision)
        to one model file: medqk's checksummed container (magic MEDQKMDL), written atomically. Loading it with
        :meth:`load` needs neither the model folder nor its float weights."""
        from .. import _container

        header = {"config": dataclasses.asdict(self.config), "precision": self.precision, "pooling": self.pooling,
                  "normalize": self.normalize, "max_seq_length": self.max_seq_length, "layers": []}
        arrays = {"tokenizer_json": np.frombuffer(self._tokenizer.to_str().encode("utf-8"), dtype=np.uint8)}
        arrays.update({f"embeddings.{k}": v for k, v in self._embeddings.items()})
        for i, layer in enumerate(self._layers):
            metas = {}
            for name in _LINEARS:
                metas[name], parts = layer[name]._state()
                arrays.update({f"layer.{i}.{name}.{k}": v for k, v in parts.items()})
            header["layers"].append(metas)
            arrays.update({f"layer.{i}.{k}": layer[k] for k in _NORMS})
        _container.write(path, MODEL_MAGIC, MODEL_VERSION, header, arrays)

    @classmethod
    def _load_file(cls, path: str, precision: str | None, max_seq_length: int | None) -> SentenceEncoder:
        from .. import _container
        from .._errors import ModelFileError

        header, arrays = _container.read(path, MODEL_MAGIC, MODEL_VERSIONS_READ, "a medqk model file",
                                         ModelFileError)
        where = repr(path)
        try:
            config = BertConfig(**header["config"])
            saved_precision, pooling = header["precision"], header["pooling"]
            normalize, length, metas = bool(header["normalize"]), int(header["max_seq_length"]), header["layers"]
            tokenizer_json = bytes(arrays.pop("tokenizer_json")).decode("utf-8")
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{where} has a corrupt header ({exc!r})") from None
        precision = precision or saved_precision
        if precision != saved_precision and saved_precision != "float32":
            raise ValueError(f"{where} holds a {saved_precision} model; precision={precision!r} needs float weights "
                             "(load the model folder or a float32 model file)")
        if len(metas) != config.num_layers or pooling not in ("mean", "cls"):
            raise ModelFileError(f"{where} has a corrupt header (layers or pooling)")
        if max_seq_length is not None:
            length = _max_seq_length(None, config, max_seq_length)
        tables = ("word", "position", "type", "ln_w", "ln_b")
        if "embeddings.word_q" in arrays:  # an int8 word table (format 2)
            tables = tables[1:]
        embeddings = {k: _stored(arrays, f"embeddings.{k}", where) for k in tables}
        if "embeddings.word_q" in arrays:
            embeddings.update(_stored_int8_rows(arrays, "embeddings.word", config.hidden_size, where))
        layers = []
        for i, layer_metas in enumerate(metas):
            layer = {}
            for name in _LINEARS:
                prefix = f"layer.{i}.{name}."
                parts = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                layer[name] = _linear_from_state(layer_metas[name], parts, f"{where} ({prefix[:-1]})")
                if precision != saved_precision:  # from a float32 file: quantized as from the folder
                    layer[name] = _prepared(np.ascontiguousarray(layer[name].weight_t.T), layer[name].bias,
                                            _resolve(precision, f"layer.{i}.{name}"))
            layer.update({k: _stored(arrays, f"layer.{i}.{k}", where) for k in _NORMS})
            layers.append(layer)
        try:
            tokenizer = _tokenizer_from_str(tokenizer_json, length)
        except Exception as exc:  # tokenizers raises its own Exception type for every parse error
            raise ModelFileError(f"{where} has a corrupt tokenizer ({exc})") from None
        return cls._assemble(path, config, precision, pooling, normalize, length, tokenizer, embeddings, layers)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters: embedding tables, LayerNorms and the linear layers as stored."""
        total = sum(a.nbytes for a in self._embeddings.values())
        for layer in self._layers:
            for name in _LINEARS:
                total += layer[name].nbytes
            total += sum(layer[n].nbytes for n in _NORMS)
        return total

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight of the linear layers, their scales, zero points, codebooks and biases included
        (a little over 32 for float32): what the precision costs where it applies."""
        cfg = self.config
        weights = cfg.num_layers * (4 * cfg.hidden_size**2 + 2 * cfg.hidden_size * cfg.intermediate_size)
        stored = sum(layer[name].nbytes for layer in self._layers for name in _LINEARS)
        return 8 * stored / weights

    def tokenize(self, texts) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_seq_length`` ([CLS] and [SEP] included)."""
        texts = _texts(texts)
        return [enc.ids for enc in self._tokenizer.encode_batch(texts)]

    def encode(self, texts, batch_size: int = 32, *, progress: bool | None = None,
               threads: int | None = None) -> np.ndarray:
        """Embeddings float32 (len(texts), dim) of ``texts`` (a list of str), in order. Texts are sorted by
        length and run in batches of ``batch_size`` (each padded to its longest), so little work goes to
        padding; ``progress`` shows a bar over the texts (None: on a terminal only); ``threads`` is passed to
        the quantized layers' kernels."""
        return self._embed(_texts(texts), _batch_size(batch_size), progress, threads_arg(threads))

    def _embed(self, texts: list[str], batch_size: int, progress, threads: int, stats: dict | None = None):
        """encode of checked arguments; ``stats`` (calibration) collects each linear layer's inputs."""
        ids = self.tokenize(texts)
        order = np.argsort([len(t) for t in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = progress_bar(progress, len(texts), "encode", unit="text")
        try:
            for b0 in range(0, len(texts), batch_size):
                rows = order[b0 : b0 + batch_size]
                out[rows] = self._encode_batch([ids[r] for r in rows], threads, stats)
                bar.update(len(rows))
        finally:
            bar.close()
        return out

    def _encode_batch(self, ids: list[list[int]], threads: int, stats: dict | None = None) -> np.ndarray:
        cfg = self.config
        b, length = len(ids), max(len(t) for t in ids)
        tokens = np.full((b, length), cfg.pad_token_id, dtype=np.int64)
        mask = np.zeros((b, length), dtype=bool)
        for i, t in enumerate(ids):
            tokens[i, : len(t)] = t
            mask[i, : len(t)] = True
        emb = self._embeddings
        vocab = emb["word"].shape[0] if "word" in emb else emb["word_q"].shape[0]
        if tokens.max() >= vocab:
            raise ModelFolderError(f"the tokenizer gives id {int(tokens.max())} past the model's "
                                   f"{vocab} word embeddings: tokenizer.json does not match the model")
        x = _word_rows(emb, tokens) + emb["position"][:length][None] + emb["type"][0]
        x = _layer_norm(x.reshape(b * length, cfg.hidden_size), emb["ln_w"], emb["ln_b"], cfg.layer_norm_eps)
        lengths = mask.sum(axis=1).astype(np.int64)
        heads, dh = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        scale = np.float32(1.0 / math.sqrt(dh))
        valid = mask.reshape(-1)

        def lin(i: int, name: str, inp: np.ndarray) -> np.ndarray:
            if stats is not None:  # each linear's input over the unpadded tokens: 2 X^T X and max |x| per channel
                rows = inp[valid].astype(np.float64)
                h = stats["hessian"].setdefault((i, name), np.zeros((inp.shape[1], inp.shape[1])))
                h += 2.0 * (rows.T @ rows)
                amax = stats["absmax"].setdefault((i, name), np.zeros(inp.shape[1], np.float32))
                np.maximum(amax, np.abs(inp[valid]).max(axis=0), out=amax)
            return self._layers[i][name](inp, threads=threads)

        for li, layer in enumerate(self._layers):
            q = lin(li, "attention.self.query", x)
            k = lin(li, "attention.self.key", x)
            v = lin(li, "attention.self.value", x)
            # softmax(q k^T * scale) v per sequence and head over its tokens only (padding keys take no part, as
            # an additive -inf mask gives; padding rows come out 0 and never reach the pooling)
            ctx = _attention_f32_checked(q, k, v, lengths, heads, float(scale), threads)
            attn = lin(li, "attention.output.dense", ctx)
            attn += x  # the residual, then LayerNorm, both over the new array attn
            x = _layer_norm(attn, layer["ln1_w"], layer["ln1_b"], cfg.layer_norm_eps)
            inter = _gelu_f32_checked(lin(li, "intermediate.dense", x), threads, inplace=True)  # kernels/gelu.h
            out = lin(li, "output.dense", inter)
            out += x
            x = _layer_norm(out, layer["ln2_w"], layer["ln2_b"], cfg.layer_norm_eps)
        x = x.reshape(b, length, cfg.hidden_size)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            weights = mask.astype(np.float32)
            pooled = np.einsum("bl,bld->bd", weights, x) / weights.sum(axis=1, keepdims=True)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)

    def __repr__(self) -> str:
        cfg = self.config
        return (f"SentenceEncoder({self.folder!r}, precision={self.precision!r}, layers={cfg.num_layers}, "
                f"dim={cfg.hidden_size}, pooling={self.pooling!r}, normalize={self.normalize}, "
                f"max_seq_length={self.max_seq_length})")


class _FloatLinear:
    """A float32 linear map ``x @ weight.T + bias`` (the float32 precision's layers)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight_t = np.ascontiguousarray(weight.T)
        self.bias = bias

    @property
    def nbytes(self) -> int:
        return self.weight_t.nbytes + self.bias.nbytes

    def _state(self) -> tuple[dict, dict]:
        n, k = self.weight_t.shape[1], self.weight_t.shape[0]
        return ({"scheme": "float32", "in_features": k, "out_features": n},
                {"weight": np.ascontiguousarray(self.weight_t.T), "bias": self.bias})

    def __call__(self, x: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        out = x @ self.weight_t
        out += self.bias
        return out


def _linear_from_state(meta: dict, arrays: dict, where: str):
    """A linear layer of a model file: float32 (weight, bias) or a QuantizedLinear's state."""
    from .._errors import ModelFileError
    from ..linear import QuantizedLinear

    if not isinstance(meta, dict):
        raise ModelFileError(f"{where} has a corrupt header")
    if meta.get("scheme") != "float32":
        return QuantizedLinear._from_state(meta, arrays, where, ModelFileError)
    w, b = arrays.get("weight"), arrays.get("bias")
    if (w is None or b is None or w.dtype != np.float32 or b.dtype != np.float32 or w.ndim != 2
            or b.shape != (w.shape[0],) or not np.isfinite(w).all() or not np.isfinite(b).all()):
        raise ModelFileError(f"{where} has a corrupt float32 layer")
    return _FloatLinear(w, b)


def _stored(arrays: dict, name: str, where: str) -> np.ndarray:
    from .._errors import ModelFileError

    a = arrays.get(name)
    if a is None or a.dtype != np.float32 or not np.isfinite(a).all():
        raise ModelFileError(f"{where} has a missing or corrupt array {name!r}")
    return a


def _int8_rows(table: np.ndarray) -> dict:
    """An embedding table as int8 rows: {"word_q": round(table / scale) (V, D) int8, "word_scale": (V,)
    float32}, scale = max |row| / 127 per row (1 for a zero row). Each value is off by at most scale / 2."""
    amax = np.abs(table).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return {"word_q": codes, "word_scale": scale}


def _word_rows(emb: dict, tokens: np.ndarray) -> np.ndarray:
    """The word embeddings of ``tokens`` (any shape) as float32 (..., D): float rows, or int8 rows x scale."""
    if "word" in emb:
        return emb["word"][tokens]
    return emb["word_q"][tokens].astype(np.float32) * emb["word_scale"][tokens][..., None]


def _stored_int8_rows(arrays: dict, name: str, dim: int, where: str) -> dict:
    from .._errors import ModelFileError

    codes, scale = arrays.get(name + "_q"), arrays.get(name + "_scale")
    if (codes is None or scale is None or codes.dtype != np.int8 or codes.ndim != 2 or codes.shape[1] != dim
            or scale.dtype != np.float32 or scale.shape != (codes.shape[0],) or not np.isfinite(scale).all()
            or (scale <= 0).any()):
        raise ModelFileError(f"{where} has a missing or corrupt int8 table {name!r}")
    return {"word_q": codes, "word_scale": scale}


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm of the rows of x, computed over x itself (the caller's temporary) and returned."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.mean(x * x, axis=-1, keepdims=True)
    x /= np.sqrt(var + np.float32(eps))
    x *= w
    x += b
    return x


def _check_precision(precision) -> None:
    """A precision name of PRECISIONS, or a plan: {"default": name, "<pattern>": name, ...} whose patterns
    (fnmatch) match the linear layers' names, e.g. "layer.0.*" or "*.attention.output.dense"."""
    names = ", ".join(PRECISIONS)
    if isinstance(precision, str):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {names} or a per-layer plan, got {precision!r}")
        return
    if not isinstance(precision, dict) or "default" not in precision:
        raise ValueError(f"precision must be one of {names} or a dict plan with a 'default', got {precision!r}")
    for pattern, value in precision.items():
        if not isinstance(pattern, str) or value not in PRECISIONS:
            raise ValueError(f"precision plan entry {pattern!r}: {value!r} must be one of {names}")


def _resolve(precision, layer_name: str) -> str:
    """The precision of the linear layer ``layer_name`` ("layer.3.attention.self.query"): a plan's first
    matching pattern in the plan's order, else its default."""
    if isinstance(precision, str):
        return precision
    import fnmatch

    for pattern, value in precision.items():
        if pattern != "default" and fnmatch.fnmatchcase(layer_name, pattern):
            return value
    return precision["default"]


def layer_names(num_layers: int) -> list[str]:
    """The names a precision plan's patterns match: "layer.<i>.<linear>" for every linear layer."""
    return [f"layer.{i}.{name}" for i in range(num_layers) for name in _LINEARS]


def _prepared(w: np.ndarray, bias: np.ndarray, precision: str, hessian: np.ndarray | None = None,
              absmax: np.ndarray | None = None):
    """The linear layer ``x @ w.T + bias`` at ``precision`` (a name of PRECISIONS); ``hessian`` (2 X^T X of
    its inputs) makes the 4-, 3- and 2-bit formats round by GPTQ; ``absmax`` (max |x| per input channel)
    smooths the int8 ones (QuantizedLinear.from_float's calib at 8 bits)."""
    from ..linear import QuantizedLinear

    options = PRECISIONS[precision]
    if options is None:
        return _FloatLinear(w, bias)
    if hessian is not None and options["bits"] < 8:
        options = {**options, "hessian": hessian}
    if absmax is not None and options["bits"] == 8:
        options = {**options, "calib": absmax[None, :]}
    return QuantizedLinear.from_float(w, bias, **options)


def _read_layer(ckpt: _Checkpoint, i: int, config: BertConfig, precision: str) -> dict:
    h, inter = config.hidden_size, config.intermediate_size
    shapes = {"attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
              "attention.output.dense": (h, h), "intermediate.dense": (inter, h), "output.dense": (h, inter)}
    prefix = f"encoder.layer.{i}."
    layer = {}
    for name in _LINEARS:
        w = ckpt.get(prefix + name + ".weight", shapes[name])
        bias = ckpt.get(prefix + name + ".bias", (shapes[name][0],))
        layer[name] = _prepared(w, bias, _resolve(precision, f"layer.{i}.{name}"))
    layer["ln1_w"] = ckpt.get(prefix + "attention.output.LayerNorm.weight", (h,))
    layer["ln1_b"] = ckpt.get(prefix + "attention.output.LayerNorm.bias", (h,))
    layer["ln2_w"] = ckpt.get(prefix + "output.LayerNorm.weight", (h,))
    layer["ln2_b"] = ckpt.get(prefix + "output.LayerNorm.bias", (h,))
    return layer


def _batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str, not one str (wrap it: [text])")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}") from None
    if not texts:
        raise ValueError("texts is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
    return texts


def _need(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ModelFolderError(f"model folder {folder!r} has no {name}")
    return path


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            out = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFolderError(f"cannot read {path!r}: {exc}") from None
    if not isinstance(out, (dict, list)):
        raise ModelFolderError(f"{path!r} does not hold a JSON object")
    return out


class _Checkpoint:
    """The tensors of a model.safetensors, read with checks that name the file and the tensor."""

    def __init__(self, folder: str):
        path = os.path.join(folder, "model.safetensors")
        if not os.path.isfile(path):
            hint = " (it has pytorch_model.bin: save the model with safetensors)" if os.path.isfile(
                os.path.join(folder, "pytorch_model.bin")) else ""
            raise ModelFolderError(f"model folder {folder!r} has no model.safetensors{hint}")
        _require("safetensors")
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFolderError(f"cannot read {path!r}: {exc}") from None
        # checkpoints saved from BertForX / BertModel wrappers prefix every name with "bert."
        if not any(k.startswith("embeddings.") for k in tensors):
            tensors = {k[len("bert."):]: v for k, v in tensors.items() if k.startswith("bert.")}
        self.path = path
        self.tensors = tensors

    def get(self, name: str, shape: tuple) -> np.ndarray:
        """Tensor ``name`` as float32, C order; ``shape`` entries of None take any size."""
        if name not in self.tensors:
            raise ModelFolderError(f"{self.path!r} has no tensor {name!r}")
        t = self.tensors[name]
        if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            raise ModelFolderError(f"{self.path!r}: tensor {name!r} has shape {t.shape}, expected "
                                   f"{tuple('*' if s is None else s for s in shape)}")
        if not np.issubdtype(t.dtype, np.floating):
            raise ModelFolderError(f"{self.path!r}: tensor {name!r} has dtype {t.dtype.name}, expected a float dtype")
        t = np.ascontiguousarray(t, dtype=np.float32)
        if not np.isfinite(t).all():
            raise ModelFolderError(f"{self.path!r}: tensor {name!r} contains NaN or Inf")
        return t


def _read_pooling(folder: str) -> tuple[str, bool]:
    """("mean" | "cls", normalize) from modules.json and its Pooling module's config; a plain BERT folder
    (no modules.json) gets mean pooling without normalization, as sentence-transformers gives it."""
    modules_path = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_path):
        return "mean", False
    modules = _read_json(modules_path)
    if not isinstance(modules, list):
        raise ModelFolderError(f"{modules_path!r} must hold a list of modules")
    pooling, normalize = "mean", False
    for m in modules:
        kind = str(m.get("type", "")) if isinstance(m, dict) else ""
        if kind.endswith(".Pooling"):
            cfg = _read_json(_need(os.path.join(folder, m.get("path", "")), "config.json"))
            modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
            if modes == ["pooling_mode_mean_tokens"]:
                pooling = "mean"
            elif modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            else:
                raise ModelFolderError(f"{folder!r}: pooling {modes} is not supported (mean tokens or CLS token)")
        elif kind.endswith(".Normalize"):
            normalize = True
        elif not kind.endswith(".Transformer"):
            raise ModelFolderError(f"{modules_path!r}: module type {kind!r} is not supported")
    return pooling, normalize


def _max_seq_length(folder: str | None, config: BertConfig, override: int | None) -> int:
    limit = config.max_position_embeddings
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, np.integer)) or not 2 <= override <= limit:
            raise ValueError(f"max_seq_length must be an int in [2, {limit}], got {override!r}")
        return int(override)
    path = os.path.join(folder or "", "sentence_bert_config.json")
    if folder is not None and os.path.isfile(path):
        value = _read_json(path).get("max_seq_length")
        if isinstance(value, int) and 2 <= value <= limit:
            return value
    return limit


def _read_tokenizer(path: str, max_seq_length: int):
    _require("tokenizers")
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises its own Exception type for every parse error
        raise ModelFolderError(f"cannot read {path!r}: {exc}") from None
    return _truncating(tokenizer, max_seq_length)


def _tokenizer_from_str(text: str, max_seq_length: int):
    _require("tokenizers")
    from tokenizers import Tokenizer

    return _truncating(Tokenizer.from_str(text), max_seq_length)


def _truncating(tokenizer, max_seq_length: int):
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"medqk.encoder needs the {module} package: pip install 'medqk[encoder]'")
