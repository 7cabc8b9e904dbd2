"""``medqk eval``: what each quantization scheme costs in retrieval quality, size and speed.

>>> from medqk.eval import evaluate, load_sample
>>> result = evaluate(load_sample(), ["float32", "int8"])        # doctest: +SKIP
>>> result.recommendation["statement"]                            # doctest: +SKIP
"""

from .data import DataError, Dataset, load_files, load_folder, load_sample
from .runner import EvalResult, default_schemes, evaluate

__all__ = ["DataError", "Dataset", "EvalResult", "default_schemes", "evaluate", "load_files", "load_folder",
           "load_sample"]
