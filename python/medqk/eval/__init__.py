"""``medqk eval``: what each quantization scheme costs in retrieval quality, size and speed.

>>> from medqk.eval import evaluate, load_sample
>>> result = evaluate(load_sample(), ["float32", "int8"])        # doctest: +SKIP
>>> result.recommendation["statement"]                            # doctest: +SKIP

The whole pipeline, text to ranked documents (``medqk eval --model``): the bundled sample's texts embedded by a
model at each precision, each index scheme on those embeddings, against the float32 model + exact search.

>>> from medqk.eval import evaluate_model, load_sample_texts
>>> result = evaluate_model("all-MiniLM-L6-v2/", load_sample_texts(), ["float32", "int8"], ["int8"])  # doctest: +SKIP
>>> result.scheme("int8/int8")["relevance"]["mrr"]                                                     # doctest: +SKIP
"""

from .data import DataError, Dataset, TextData, load_files, load_folder, load_sample, load_sample_texts, load_texts
from .model import evaluate_model
from .runner import EvalResult, default_schemes, evaluate

__all__ = ["DataError", "Dataset", "EvalResult", "TextData", "default_schemes", "evaluate", "evaluate_model",
           "load_files", "load_folder", "load_sample", "load_sample_texts", "load_texts"]
