"""Data shipped with medqk.

``medquad_sample``: 5,000 MedQuAD answers and 500 questions embedded with all-MiniLM-L6-v2 (float16,
384-d), relevance judgements and the exact float top-100. Source: MedQuAD, Ben Abacha & Demner-Fushman,
BMC Bioinformatics 20:511 (2019), CC BY 4.0 -- see ``medquad_sample/README.md``.
"""

from pathlib import Path as _Path

__all__ = ["SAMPLE_DIR", "sample_path"]

SAMPLE_DIR = _Path(__file__).resolve().parent / "medquad_sample"


def sample_path() -> _Path:
    """Folder of the bundled MedQuAD sample (the default dataset of ``medqk eval``)."""
    return SAMPLE_DIR
