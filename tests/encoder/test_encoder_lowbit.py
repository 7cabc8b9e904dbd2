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


def _cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.mean(np.einsum("nd,nd->n", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def test_propose_plan_finds_the_fewest_high_layers_meeting_the_budget(model):
    from medqk.encoder import propose_plan

    loose = propose_plan(model, CALIB, budget=0.01, low="codebook2", high="int8")
    n = len(loose.sensitivity)
    assert loose.plan == {"default": "codebook2"} and loose.met
    assert sorted(loose.sensitivity) == sorted(layer_names(2)) and n == 12
    assert list(loose.sensitivity.values()) == sorted(loose.sensitivity.values())  # most sensitive first
    all_low, all_high = loose.measured[0], loose.measured[n]
    assert all_low < all_high  # the 2-bit model is measurably worse: a budget between them means something
    budget = (all_low + all_high) / 2
    found = propose_plan(model, CALIB, budget=budget, low="codebook2", high="int8")
    high = [k for k in found.plan if k != "default"]
    assert found.met and found.mean_cosine >= budget and 0 < len(high) < n
    assert found.measured[len(high) - 1] < budget  # one fewer high layer misses it: the fewest that meet it
    assert high == list(found.sensitivity)[: len(high)]  # the most sensitive layers are the high ones
    reference = SentenceEncoder.load(model).encode(CALIB)
    rebuilt = SentenceEncoder.load(model, precision=found.plan, calib=CALIB).encode(CALIB)
    assert _cosine(reference, rebuilt) == pytest.approx(found.mean_cosine, abs=1e-9)
    np.testing.assert_array_equal(found.encoder.encode(CALIB), rebuilt)
    assert loose.bits_per_weight < found.bits_per_weight

    impossible = propose_plan(model, CALIB, budget=1.0, low="codebook2", high="int8")
    assert not impossible.met and impossible.plan == {"default": "int8"}


def test_propose_plan_keeps_within_a_bit_cap(model):
    from medqk.encoder import propose_plan

    free = propose_plan(model, CALIB, budget=1.0, low="codebook2", high="int8")  # unreachable: all high
    low_bits = propose_plan(model, CALIB, budget=0.01, low="codebook2", high="int8").bits_per_weight
    cap = (low_bits + free.bits_per_weight) / 2
    capped = propose_plan(model, CALIB, budget=1.0, low="codebook2", high="int8", max_bits_per_weight=cap)
    high = [k for k in capped.plan if k != "default"]
    assert not capped.met and 0 < len(high) < len(capped.sensitivity)
    assert capped.bits_per_weight <= cap
    assert high == list(capped.sensitivity)[: len(high)]
    one_more = SentenceEncoder.load(model, precision={**capped.plan, list(capped.sensitivity)[len(high)]: "int8"},
                                    calib=CALIB)
    assert one_more.bits_per_weight > cap  # the most high layers the cap allows
    loose = propose_plan(model, CALIB, budget=0.01, low="codebook2", high="int8", max_bits_per_weight=cap)
    assert loose.met and loose.plan == {"default": "codebook2"}  # a cap never adds high layers
    with pytest.raises(ValueError, match="below the all-codebook2 model"):
        propose_plan(model, CALIB, budget=0.5, low="codebook2", high="int8", max_bits_per_weight=low_bits - 0.01)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"budget": 0}, ValueError, "budget must be a mean cosine in"),
    ({"budget": 1.5}, ValueError, "budget must be a mean cosine in"),
    ({"low": "float32"}, ValueError, "low must be a quantized precision"),
    ({"low": "int8", "high": "int4"}, ValueError, "must have fewer bits than high"),
    ({"calib": []}, ValueError, "calib: texts is empty"),
    ({"calib": "one text"}, TypeError, "calib: texts must be a list of str"),
    ({"max_bits_per_weight": "4.5"}, ValueError, "max_bits_per_weight must be a number"),
    ({"max_bits_per_weight": float("nan")}, ValueError, "max_bits_per_weight must be a number"),
])
def test_propose_plan_bad_input(model, kwargs, error, match):
    from medqk.encoder import propose_plan

    args = {"calib": CALIB, **kwargs}
    with pytest.raises(error, match=match):
        propose_plan(model, args.pop("calib"), **args)


def test_quantize_command_with_a_budget(tmp_path, model, capsys):
    import json

    from medqk import cli
    from medqk.encoder import propose_plan

    texts = tmp_path / "calib.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in CALIB))
    out = tmp_path / "m.mqm"
    assert cli.main(["quantize", str(model), "--calib", str(texts), "--budget", "0.99", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    found = propose_plan(model, CALIB, budget=0.99)  # int4 low, int8 high by default
    assert f"mean cosine {found.mean_cosine:.5f}" in said
    np.testing.assert_array_equal(SentenceEncoder.load(out).encode(TEXTS), found.encoder.encode(TEXTS))
    assert cli.main(["quantize", str(model), "--budget", "0.99", "--out", str(out)]) == 2
    assert "--budget measures layers on calibration texts: give --calib" in capsys.readouterr().err
    capped = tmp_path / "capped.mqm"
    low_bits = propose_plan(model, CALIB, budget=0.01).bits_per_weight
    assert cli.main(["quantize", str(model), "--calib", str(texts), "--budget", "1", "--max-bits",
                     str(low_bits + 0.2), "--out", str(capped)]) == 0
    assert "NOT met within --max-bits" in capsys.readouterr().out
    assert SentenceEncoder.load(capped).bits_per_weight <= low_bits + 0.2
    assert cli.main(["quantize", str(model), "--max-bits", "5", "--out", str(out)]) == 2
    assert "--max-bits goes with --budget" in capsys.readouterr().err
