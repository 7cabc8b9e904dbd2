"""medqk's version, read once on first use (importlib.metadata costs ~15 ms, so ``import medqk`` does not)."""

from __future__ import annotations

import re
from pathlib import Path


def read_version() -> str:
    """The installed distribution's version; from a source checkout, the one in its pyproject.toml;
    ``"0+unknown"`` when neither can be read."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medqk")
    except PackageNotFoundError:
        pass
    # python/medqk/_version.py -> the checkout's pyproject.toml; its [project] table holds the version
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return "0+unknown"
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
    if not found or not re.search(r'^name\s*=\s*"medqk"', project.group(1), re.MULTILINE):
        return "0+unknown"
    return found.group(1)
