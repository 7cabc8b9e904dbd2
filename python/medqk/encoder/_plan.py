"""Mixed precision by measurement: which linear layers a model can afford at a low precision.

:func:`propose_plan` runs the float32 model over calibration texts once (the statistics GPTQ and the int8
smoothing need), prepares every linear layer at the low and the high precision, and measures each layer's
sensitivity: the mean cosine between the float model's embeddings of the calibration texts and those of the
model with only that layer at the low precision. Layers sorted from the most sensitive, plan j keeps the j most
sensitive at the high precision and the others low; the fidelity of these plans falls as j falls, and a binary
search over j, measuring each plan it tries, finds the smallest j whose mean cosine meets the budget. Cost: one
float32 pass, one pass per linear layer (36 for a 6-layer BERT) and about log2(layers) passes for the search,
each over the calibration texts.

The budget is on the mean cosine to the float32 embeddings of the calibration texts, a proxy for retrieval
retention that needs no relevance judgements; check the chosen plan with ``medqk eval --model`` on held-out
queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._progress import progress_bar
from ._bert import _LINEARS, PRECISIONS, SentenceEncoder, _prepared, _texts


@dataclass
class PlanProposal:
    """What :func:`propose_plan` found.

    ``plan``: a precision plan for :meth:`SentenceEncoder.load` ({"default": low, "layer.i.name": high, ...});
    ``encoder``: the model at that plan, calibrated, ready to encode or save; ``mean_cosine``: its measured
    mean cosine to the float32 embeddings of the calibration texts; ``met``: whether that reaches the budget
    (False only when even every layer at the high precision falls short: the plan is then all high);
    ``bits_per_weight``: of the linear layers as stored; ``sensitivity``: {layer name: mean cosine with only
    that layer low}, most sensitive first; ``measured``: {number of high layers: mean cosine} of every plan the
    search measured.
    """

    plan: dict
    encoder: SentenceEncoder
    mean_cosine: float
    met: bool
    bits_per_weight: float
    sensitivity: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)


def _mean_cosine(reference: np.ndarray, got: np.ndarray) -> float:
    a, b = reference.astype(np.float64), got.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.einsum("nd,nd->n", a, b) / np.where(norms > 0, norms, 1.0)))


def propose_plan(model_dir, calib, *, budget: float = 0.999, low: str = "int4", high: str = "int8",
                 max_bits_per_weight: float | None = None, batch_size: int = 32,
                 progress: bool | None = None) -> PlanProposal:
    """The cheapest plan of ``low`` / ``high`` layers (module doc) whose mean cosine to the float32 model on the
    ``calib`` texts is at least ``budget`` (0 < budget <= 1). ``model_dir``: a model folder or a float32 model
    file; ``low`` / ``high``: quantized precisions of PRECISIONS, ``high`` the one with more bits.

    ``max_bits_per_weight``: a size cap (bits per weight of the linear layers as stored, tables and scales
    counted): plans above it are never chosen. When the budget needs more, the answer is the plan with the most
    high layers within the cap, with ``met`` False; a cap below the all-low plan's bits is a ValueError."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.floating)) or not 0 < budget <= 1:
        raise ValueError(f"budget must be a mean cosine in (0, 1], got {budget!r}")
    if max_bits_per_weight is not None and (isinstance(max_bits_per_weight, bool) or not isinstance(
            max_bits_per_weight, (int, float, np.floating)) or not np.isfinite(max_bits_per_weight)):
        raise ValueError(f"max_bits_per_weight must be a number of bits, got {max_bits_per_weight!r}")
    quantized = [p for p in PRECISIONS if p != "float32"]
    for name, value in (("low", low), ("high", high)):
        if value not in quantized:
            raise ValueError(f"{name} must be a quantized precision ({', '.join(quantized)}), got {value!r}")
    if PRECISIONS[low]["bits"] >= PRECISIONS[high]["bits"]:
        raise ValueError(f"low ({low}, {PRECISIONS[low]['bits']} bits) must have fewer bits than high ({high}, "
                         f"{PRECISIONS[high]['bits']} bits)")
    try:
        texts = _texts(calib)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"calib: {exc}") from None
    base = SentenceEncoder.load(model_dir, "float32")
    stats = base._calibration_stats(texts, batch_size, progress)
    reference = base.encode(texts, batch_size=batch_size, progress=False)
    names = [(i, name) for i in range(len(base._layers)) for name in _LINEARS]

    def prepared(precision):
        return {(i, name): _prepared(np.ascontiguousarray(base._layers[i][name].weight_t.T), base._layers[i][name].bias,
                                     precision, hessian=stats["hessian"][i, name], absmax=stats["absmax"][i, name])
                for i, name in names}

    def assemble(choice: dict, precision) -> SentenceEncoder:
        layers = [dict(layer, **{name: choice.get((i, name), layer[name]) for name in _LINEARS})
                  for i, layer in enumerate(base._layers)]
        return type(base)._assemble(base.folder, base.config, precision, base.pooling, base.normalize,
                                    base.max_seq_length, base._tokenizer, base._embeddings, layers)

    lows, highs = prepared(low), prepared(high)
    bar = progress_bar(progress, len(names), "layer sensitivity", unit="layer")
    sensitivity = {}
    try:
        for key in names:
            one = assemble({key: lows[key]}, "float32")
            sensitivity[key] = _mean_cosine(reference, one.encode(texts, batch_size=batch_size, progress=False))
            bar.update(1)
    finally:
        bar.close()
    order = sorted(names, key=lambda key: (sensitivity[key], key))  # lowest cosine (most sensitive) first

    def plan_of(j: int) -> dict:
        plan = {"default": low}
        plan.update({f"layer.{i}.{name}": high for i, name in order[:j]})
        return plan

    measured: dict[int, float] = {}
    encoders: dict[int, SentenceEncoder] = {}

    def built(j: int) -> SentenceEncoder:
        if j not in encoders:
            encoders[j] = assemble({key: (highs[key] if key in order[:j] else lows[key]) for key in names}, plan_of(j))
        return encoders[j]

    def measure(j: int) -> float:
        if j not in measured:
            measured[j] = _mean_cosine(reference, built(j).encode(texts, batch_size=batch_size, progress=False))
        return measured[j]

    top = len(names)  # the most high layers a plan may have: bits grow with j, so the cap is a bound on j
    if max_bits_per_weight is not None:
        if built(0).bits_per_weight > max_bits_per_weight:
            raise ValueError(f"max_bits_per_weight={max_bits_per_weight} is below the all-{low} model's "
                             f"{built(0).bits_per_weight:.3f} bits per weight")
        lo, hi = 0, len(names)  # largest j within the cap: bits(lo) <= cap < bits(hi + 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if built(mid).bits_per_weight <= max_bits_per_weight else (lo, mid - 1)
        top = lo
    lo, hi = 0, top  # the answer lies in [lo, hi]: hi meets the budget, or nothing within the cap does
    if measure(hi) < budget:
        lo = hi
    elif measure(lo) >= budget:
        hi = lo
    while lo + 1 < hi:  # invariant: measure(lo) < budget <= measure(hi)
        mid = (lo + hi) // 2
        if measure(mid) >= budget:
            hi = mid
        else:
            lo = mid
    best = hi
    measure(best)
    encoder = encoders[best]
    plan = plan_of(best) if best < len(names) else {"default": high}
    if best == len(names):
        encoder.precision = plan
    return PlanProposal(plan=plan, encoder=encoder, mean_cosine=measured[best], met=measured[best] >= budget,
                        bits_per_weight=encoder.bits_per_weight,
                        sensitivity={f"layer.{i}.{name}": sensitivity[i, name] for i, name in order},
                        measured=dict(sorted(measured.items())))
