"""The medqk command line."""

from __future__ import annotations

import json
import subprocess
import sys

from medqk import cli


def test_info_readable(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("medqk ")
    for word in ("backend", "active ISA", "ISAs usable", "gemm_s8s8_s32", "threads"):
        assert word in out


def test_info_json(capsys):
    assert cli.main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] in ("native", "numba")


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "medqk.cli", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gemm_s8s8_s32" in out.stdout


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 1
    assert "info" in capsys.readouterr().out
