"""medqk.encoder.SentenceEncoder on a tiny randomly initialised BERT written by the test (config, safetensors,
a WordPiece tokenizer built with `tokenizers`): the float32 forward equals a direct float64 implementation written
here token by token, padding changes nothing, int8 stays close, and bad folders and inputs get clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the encoder reads model.safetensors (pip install 'medqk[encoder]')")
pytest.importorskip("tokenizers", reason="the encoder tokenizes with tokenizers (pip install 'medqk[encoder]')")

from safetensors.numpy import save_file  # noqa: E402
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: E402

from medqk.encoder import ModelFolderError, SentenceEncoder  # noqa: E402

WORDS = ["the", "patient", "has", "fever", "and", "cough", "diabetes", "insulin", "dose", "is", "high", "low",
         "heart", "rate", "blood", "pressure", "test", "result", "normal", "treatment", "what", "are", "symptoms",
         "of", "##s", "##ing", "a", "pain"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN, HEADS, LAYERS, INTER, MAX_POS = 16, 2, 2, 24, 40
TEXTS = ["What are the symptoms of diabetes?", "the patient has fever and cough", "heart rate",
         "Blood pressure test result is normal, treatment of pain is low dose insulin", "xyzzy",
         "fevers coughing"]


def write_model(folder, *, pooling="mean", normalize=True, seed=0, prefix=""):
    """A BERT folder as sentence-transformers saves it, with random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                              ("[SEP]", 3)])
    tok.save(str(folder / "tokenizer.json"))
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTER,
              "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_position_embeddings": MAX_POS,
              "type_vocab_size": 2, "vocab_size": len(vocab), "pad_token_id": 0}
    (folder / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {"embeddings.word_embeddings.weight": rand(len(vocab), HIDDEN),
         "embeddings.position_embeddings.weight": rand(MAX_POS, HIDDEN),
         "embeddings.token_type_embeddings.weight": rand(2, HIDDEN),
         "embeddings.LayerNorm.weight": 1 + rand(HIDDEN, scale=0.1), "embeddings.LayerNorm.bias": rand(HIDDEN)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name, (n, k) in {"attention.self.query": (HIDDEN, HIDDEN), "attention.self.key": (HIDDEN, HIDDEN),
                             "attention.self.value": (HIDDEN, HIDDEN), "attention.output.dense": (HIDDEN, HIDDEN),
                             "intermediate.dense": (INTER, HIDDEN), "output.dense": (HIDDEN, INTER)}.items():
            t[p + name + ".weight"] = rand(n, k, scale=1 / math.sqrt(k))
            t[p + name + ".bias"] = rand(n, scale=0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = 1 + rand(HIDDEN, scale=0.1)
            t[p + ln + ".bias"] = rand(HIDDEN, scale=0.1)
    save_file({prefix + k: v for k, v in t.items()}, str(folder / "model.safetensors"))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    return folder, t


def reference(t, ids, *, pooling="mean", normalize=True):
    """BERT written out directly in float64 for one text (no batch, no padding), head by head."""
    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w + b

    g = {k: v.astype(np.float64) for k, v in t.items()}
    n = len(ids)
    x = g["embeddings.word_embeddings.weight"][ids] + g["embeddings.position_embeddings.weight"][:n]
    x = ln(x + g["embeddings.token_type_embeddings.weight"][0], g["embeddings.LayerNorm.weight"],
           g["embeddings.LayerNorm.bias"])
    dh = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def lin(name, v):
            return v @ g[p + name + ".weight"].T + g[p + name + ".bias"]

        q, k, v = (lin(f"attention.self.{m}", x) for m in ("query", "key", "value"))
        ctx = np.zeros_like(x)
        for h in range(HEADS):
            s = slice(h * dh, (h + 1) * dh)
            a = q[:, s] @ k[:, s].T / math.sqrt(dh)
            a = np.exp(a - a.max(1, keepdims=True))
            ctx[:, s] = (a / a.sum(1, keepdims=True)) @ v[:, s]
        x = ln(lin("attention.output.dense", ctx) + x, g[p + "attention.output.LayerNorm.weight"],
               g[p + "attention.output.LayerNorm.bias"])
        hmid = lin("intermediate.dense", x)
        hmid = hmid * 0.5 * (1 + np.vectorize(math.erf)(hmid / math.sqrt(2)))
        x = ln(lin("output.dense", hmid) + x, g[p + "output.LayerNorm.weight"], g[p + "output.LayerNorm.bias"])
    out = x[0] if pooling == "cls" else x.mean(0)
    return out / np.linalg.norm(out) if normalize else out


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("bert"))


@pytest.mark.parametrize("pooling, normalize, prefix", [("mean", True, ""), ("cls", False, ""),
                                                        ("mean", True, "bert.")])
def test_float32_equals_direct_implementation(tmp_path, pooling, normalize, prefix):
    folder, t = write_model(tmp_path / "m", pooling=pooling, normalize=normalize, seed=3, prefix=prefix)
    enc = SentenceEncoder.load(folder)
    assert (enc.pooling, enc.normalize, enc.max_seq_length, enc.dim) == (pooling, normalize, 12, HIDDEN)
    got = enc.encode(TEXTS, batch_size=4)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), HIDDEN)
    for text, row, ids in zip(TEXTS, got, enc.tokenize(TEXTS)):
        want = reference(t, ids, pooling=pooling, normalize=normalize)
        # float32 through 2 layers of width <= 24 (each step rounds at 6e-8 relative; LayerNorm keeps values
        # O(1)) and erf within 1.5e-7 give errors of order 1e-7 on the unit-scale output (measured: 8e-8);
        # a wrong mask, scale, GELU form or pooling is off by more than 1e-3
        np.testing.assert_allclose(row, want, rtol=0, atol=2e-6, err_msg=text)


def test_tokens_and_truncation(model):
    folder, _ = model
    enc = SentenceEncoder.load(folder)
    ids = enc.tokenize(["the patient has fever", "xyzzy"])
    assert ids == [[2, 5, 6, 7, 8, 3], [2, 1, 3]]  # [CLS] ... [SEP]; an unknown word is [UNK]
    long_text = " ".join(["fever"] * 30)
    assert len(enc.tokenize([long_text])[0]) == 12  # max_seq_length from sentence_bert_config.json
    assert len(SentenceEncoder.load(folder, max_seq_length=20).tokenize([long_text])[0]) == 20
    # a truncated text embeds as its first 10 words do
    cut = SentenceEncoder.load(folder).encode([long_text, " ".join(["fever"] * 10)])
    np.testing.assert_array_equal(cut[0], cut[1])


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_padding_changes_nothing(backend, model, precision):
    """A text alone and in a batch padded to a longer text: the same embedding (int8 activations are scaled
    per token, so padded rows never change another row's codes; float sums may differ in order only)."""
    folder, _ = model
    enc = SentenceEncoder.load(folder, precision=precision)
    batch = enc.encode(TEXTS, batch_size=len(TEXTS))
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(enc.encode([text])[0], batch[i], rtol=0, atol=1e-6, err_msg=text)


def test_int8_stays_close_to_float(backend, model):
    folder, _ = model
    f = SentenceEncoder.load(folder).encode(TEXTS)
    q = SentenceEncoder.load(folder, precision="int8")
    assert q.precision == "int8" and q.nbytes < SentenceEncoder.load(folder).nbytes
    cos = (f * q.encode(TEXTS)).sum(1)  # both normalized
    assert cos.min() > 0.99 and cos.max() < 1.0  # quantized, so not the float result, but close


def test_bad_folders(tmp_path, model):
    folder, t = model
    with pytest.raises(ModelFolderError, match="does not exist"):
        SentenceEncoder.load(tmp_path / "nope")
    for name, match in [("config.json", "has no config.json"), ("model.safetensors", "has no model.safetensors"),
                        ("tokenizer.json", "has no tokenizer.json")]:
        broken, _ = write_model(tmp_path / f"no-{name}")
        (broken / name).unlink()
        with pytest.raises(ModelFolderError, match=match):
            SentenceEncoder.load(broken)
    other, _ = write_model(tmp_path / "roberta")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ModelFolderError, match="model_type 'roberta' is not supported"):
        SentenceEncoder.load(other)
    missing, _ = write_model(tmp_path / "missing")
    save_file({k: v for k, v in t.items() if "layer.1.output.dense.weight" not in k},
              str(missing / "model.safetensors"))
    with pytest.raises(ModelFolderError, match="no tensor 'encoder.layer.1.output.dense.weight'"):
        SentenceEncoder.load(missing)
    (missing / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFolderError, match="cannot read"):
        SentenceEncoder.load(missing)
    with pytest.raises(ValueError, match="precision must be one of"):
        SentenceEncoder.load(folder, precision="int3")


def test_bad_texts(model):
    enc = SentenceEncoder.load(model[0])
    with pytest.raises(ValueError, match="texts is empty"):
        enc.encode([])
    with pytest.raises(TypeError, match="not one str"):
        enc.encode("a text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        enc.encode(["ok", 3])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        enc.encode(["ok"], batch_size=0)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_model_file_round_trip(backend, tmp_path, model, precision):
    folder, _ = model
    enc = SentenceEncoder.load(folder, precision=precision)
    path = tmp_path / "model.mqm"
    enc.save(path)
    loaded = SentenceEncoder.load(path)
    assert (loaded.precision, loaded.pooling, loaded.normalize, loaded.max_seq_length) == (
        precision, enc.pooling, enc.normalize, enc.max_seq_length)
    assert loaded.nbytes == enc.nbytes and loaded.tokenize(TEXTS) == enc.tokenize(TEXTS)
    np.testing.assert_array_equal(loaded.encode(TEXTS), enc.encode(TEXTS))
    assert SentenceEncoder.load(path, max_seq_length=20).max_seq_length == 20


def test_model_file_refuses_damage_and_a_precision_it_lacks(tmp_path, model):
    import medqk

    folder, _ = model
    path = tmp_path / "model.mqm"
    SentenceEncoder.load(folder, precision="int8").save(path)
    assert SentenceEncoder.load(path).precision == "int8"
    with pytest.raises(ValueError, match="holds a int8 model; precision='float32' needs float weights"):
        SentenceEncoder.load(path, precision="float32")
    # a float32 file keeps its float weights: it can be quantized on load, as the folder can
    SentenceEncoder.load(folder).save(tmp_path / "float.mqm")
    np.testing.assert_array_equal(SentenceEncoder.load(tmp_path / "float.mqm", precision="int8").encode(TEXTS),
                                  SentenceEncoder.load(folder, precision="int8").encode(TEXTS))
    blob = path.read_bytes()
    bad = tmp_path / "bad.mqm"
    for damaged, match in [(blob[:-1], "truncated or has trailing data"),
                           (blob[:-40] + bytes([blob[-40] ^ 1]) + blob[-39:], r"corrupt \(checksum mismatch\)"),
                           (b"MEDQKLIN" + blob[8:], r"not a medqk model file \(bad magic\)")]:
        bad.write_bytes(damaged)
        with pytest.raises(medqk.ModelFileError, match=match):
            SentenceEncoder.load(bad)


def test_quantize_command(tmp_path, model, capsys):
    from medqk import cli

    folder, _ = model
    out = tmp_path / "model.mqm"
    assert cli.main(["quantize", str(folder), "--precision", "int8", "--out", str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    np.testing.assert_array_equal(SentenceEncoder.load(out).encode(TEXTS),
                                  SentenceEncoder.load(folder, precision="int8").encode(TEXTS))
    out.write_bytes(b"the user's file")
    for argv, message in [
        ([str(tmp_path / "nope"), "--out", str(out)], "does not exist or is not a folder"),
        ([str(folder), "--precision", "int3", "--out", str(out)], "--precision must be one of float32, int8"),
        ([str(folder), "--out", str(tmp_path / "no" / "model.mqm")], "does not exist"),
    ]:
        assert cli.main(["quantize", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("medqk: error:") and message in err and err.count("\n") == 1, err
    assert out.read_bytes() == b"the user's file"  # a failed run never touches the file


def test_quantized_models_keep_int8_word_embeddings(tmp_path, model):
    import medqk
    from medqk import _container
    from medqk.encoder._bert import MODEL_MAGIC

    folder, _ = model
    f32, q8 = SentenceEncoder.load(folder), SentenceEncoder.load(folder, precision="int8")
    word = f32._embeddings["word"]
    codes, scale = q8._embeddings["word_q"], q8._embeddings["word_scale"]
    assert "word" not in q8._embeddings and codes.dtype == np.int8 and scale.dtype == np.float32
    rows = codes.astype(np.float32) * scale[:, None]
    assert (np.abs(rows - word) <= scale[:, None] / 2 * (1 + 1e-6)).all()  # round to nearest, per row
    assert (np.abs(codes).max(axis=1) == 127).all()  # each row's scale is its largest magnitude / 127
    assert f32.nbytes - q8._embeddings["word_q"].nbytes - scale.nbytes > word.nbytes * 0.7
    # the int8 table travels in the model file (format 2); a format-1 file (float table) still loads
    q8.save(tmp_path / "q8.mqm")
    back = SentenceEncoder.load(tmp_path / "q8.mqm")
    np.testing.assert_array_equal(back._embeddings["word_q"], codes)
    np.testing.assert_array_equal(back.encode(TEXTS), q8.encode(TEXTS))
    f32.save(tmp_path / "f32.mqm")
    header, arrays = _container.read(tmp_path / "f32.mqm", MODEL_MAGIC, 2, "m", medqk.ModelFileError)
    header = {k: v for k, v in header.items() if k not in ("arrays", "medqk_version", "format_version")}
    _container.write(tmp_path / "v1.mqm", MODEL_MAGIC, 1, header, arrays)
    np.testing.assert_array_equal(SentenceEncoder.load(tmp_path / "v1.mqm").encode(TEXTS), f32.encode(TEXTS))
    header, arrays = _container.read(tmp_path / "q8.mqm", MODEL_MAGIC, 2, "m", medqk.ModelFileError)
    header = {k: v for k, v in header.items() if k not in ("arrays", "medqk_version", "format_version")}
    arrays["embeddings.word_scale"] = -arrays["embeddings.word_scale"]
    _container.write(tmp_path / "bad.mqm", MODEL_MAGIC, 2, header, arrays)
    with pytest.raises(medqk.ModelFileError, match="corrupt int8 table 'embeddings.word'"):
        SentenceEncoder.load(tmp_path / "bad.mqm")
