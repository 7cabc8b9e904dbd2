"""How the process was started, read while the package is imported (see medqk/__init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def started_as_command() -> bool:
    """True while the ``medqk`` command imports the package: the ``medqk`` console script, or
    ``python -m medqk.cli`` (found on Python 3.10+, through ``sys.orig_argv``).

    ``import medqk`` raises on a bad MEDQK_BACKEND / MEDQK_ISA; for the command it leaves the error to
    :func:`medqk.cli.main`, which prints it as one line: a raise in the package's import would end the
    command with a traceback before any code of medqk.cli runs. (This module is not medqk.cli itself:
    importing that during ``python -m medqk.cli``'s package import makes runpy warn.)
    """
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-m":  # python -m <module>, while the module's packages are imported
        orig = list(getattr(sys, "orig_argv", ()))
        for i, arg in enumerate(orig[1:], 1):
            if arg.startswith("-m"):
                module = arg[2:] or (orig[i + 1] if i + 1 < len(orig) else "")
                return module == "medqk.cli"
        return False
    name = Path(argv0).name.lower()
    for suffix in (".exe", "-script.pyw", "-script.py"):  # the launchers pip writes on Windows
        name = name.removesuffix(suffix)
    return name == "medqk"
