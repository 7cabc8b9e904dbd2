"""The encoder's 4-, 3- and 2-bit precisions, per-layer plans and GPTQ calibration on the tiny test BERT."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the encoder reads model.safetensors (pip install 'medqk[encoder]')")
pytest.importorskip("tokenizers", reason="the encoder tokenizes with tokenizers (pip install 'medqk[encoder]')")

from medqk.encoder import PRECISIONS, SentenceEncoder, layer_names  # noqa: E402

from .test_encoder import TEXTS, write_model  # noqa: E402

CALIB = ["the patient has high blood pressure", "what are the symptoms of diabetes", "insulin dose is low",
         "heart rate test result is normal", "treatment of pain and fever", "cough and fever symptoms"] * 4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("bert"), seed=5)[0]


@pytest.mark.parametrize("precision", [p for p in PRECISIONS if p not in ("float32", "int8")])
def test_every_precision_runs_and_stays_near_float(backend, model, precision):
    ref = SentenceEncoder.load(model).encode(TEXTS)
    enc = SentenceEncoder.load(model, precision=precision)
    got = enc.encode(TEXTS)
    assert got.shape == ref.shape and np.isfinite(got).all()
    cos = (got * ref).sum(1)
    # random weights of width 16-24 are far harder than a trained model's; still clearly the same embedding
    assert cos.min() > {"codebook2": 0.5, "codebook3": 0.8}.get(precision, 0.9), (precision, cos.min())
    # smaller than float32; not always than int8 here: at K = 16 a per-row table of 16 levels costs more than
    # the 8 bytes its 4-bit codes save
    assert enc.nbytes < SentenceEncoder.load(model).nbytes


def test_plan_picks_a_precision_per_layer(model):
    plan = {"default": "int4", "layer.0.*": "int8", "*.output.dense": "float32"}
    enc = SentenceEncoder.load(model, precision=plan)
    schemes = {name: getattr(enc._layers[int(name.split(".")[1])][name.split(".", 2)[2]], "scheme", "float32")
               for name in layer_names(2)}
    assert schemes["layer.0.attention.self.query"] == "int8"
    assert schemes["layer.0.output.dense"] == "int8"  # the first matching pattern wins
    assert schemes["layer.1.output.dense"] == "float32"
    assert schemes["layer.1.attention.output.dense"] == "float32"
    assert schemes["layer.1.intermediate.dense"] == "int4"
    with pytest.raises(ValueError, match="dict plan with a 'default'"):
        SentenceEncoder.load(model, precision={"layer.0.*": "int8"})
    with pytest.raises(ValueError, match="must be one of"):
        SentenceEncoder.load(model, precision={"default": "int4", "layer.*": "int5"})


def test_plan_survives_save_and_load(backend, tmp_path, model):
    plan = {"default": "codebook4", "layer.1.*": "int8"}
    enc = SentenceEncoder.load(model, precision=plan)
    enc.save(tmp_path / "m.mqm")
    loaded = SentenceEncoder.load(tmp_path / "m.mqm")
    assert loaded.precision == plan and loaded.nbytes == enc.nbytes
    np.testing.assert_array_equal(loaded.encode(TEXTS), enc.encode(TEXTS))


def test_gptq_calibration_brings_the_embeddings_closer(backend, model):
    ref = SentenceEncoder.load(model).encode(TEXTS)
    err = {}
    for calib in (None, CALIB):
        got = SentenceEncoder.load(model, precision="codebook3", calib=calib).encode(TEXTS)
        err[calib is not None] = float(np.mean((got - ref) ** 2))
    assert err[True] < err[False], err
    with pytest.raises(ValueError, match="calib .GPTQ, int8 smoothing. needs a quantized precision"):
        SentenceEncoder.load(model, calib=CALIB)


def test_int8_calibration_smooths_every_int8_layer(tmp_path, model):
    """int8 with calib: each int8 layer stores the smoothing of its inputs' maxima (QuantizedLinear.from_float's
    calib at 8 bits) and runs it; a plan's low-bit layers do not; the model file keeps it."""
    plan = {"default": "int8", "layer.0.intermediate.dense": "int4"}
    enc = SentenceEncoder.load(model, precision=plan, calib=CALIB)
    for i, layer in enumerate(enc._layers):
        for name in ("attention.self.query", "attention.self.value", "output.dense"):
            assert layer[name].input_scale is not None and (layer[name].input_scale > 0).all(), (i, name)
    assert enc._layers[0]["intermediate.dense"].input_scale is None
    plain = SentenceEncoder.load(model, precision=plan)
    assert all(layer[name].input_scale is None for layer in plain._layers for name in ("output.dense",))
    assert not np.array_equal(enc.encode(TEXTS), plain.encode(TEXTS))
    enc.save(tmp_path / "s.mqm")
    np.testing.assert_array_equal(SentenceEncoder.load(tmp_path / "s.mqm").encode(TEXTS), enc.encode(TEXTS))


def test_quantize_command_with_calibration_texts(tmp_path, model, capsys):
    import json

    from medqk import cli

    texts = tmp_path / "calib.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in CALIB))
    out = tmp_path / "m.mqm"
    assert cli.main(["quantize", str(model), "--precision", "int4", "--calib", str(texts), "--out", str(out)]) == 0
    want = SentenceEncoder.load(model, precision="int4", calib=CALIB).encode(TEXTS)
    np.testing.assert_array_equal(SentenceEncoder.load(out).encode(TEXTS), want)
    texts.write_text('{"txt": 1}\n')
    assert cli.main(["quantize", str(model), "--precision", "int4", "--calib", str(texts), "--out", str(out)]) == 2
    assert 'line 1 is not a JSON object with a "text" field' in capsys.readouterr().err
