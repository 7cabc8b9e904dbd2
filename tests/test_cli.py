"""The medqk command line: exit statuses, one-line errors, --version, the --out folder, the environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medqk
from medqk import cli

NATIVE = medqk.info()["native_available"]


def run(args: list[str], cwd=None, **env) -> subprocess.CompletedProcess:
    """Runs ``args`` in a fresh interpreter whose MEDQK_* variables are only those given."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("MEDQK_ISA", "MEDQK_BACKEND")}
    full_env.update(env)
    return subprocess.run(args, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120)


def one_error_line(err: str) -> str:
    """The stderr of a failed command: exactly one ``medqk: error:`` line."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("medqk: error: "), err
    return lines[0]


@pytest.fixture
def tiny_data(tmp_path):
    """200 docs and 10 queries, 16-d: an eval over them takes well under a second."""
    rng = np.random.default_rng(0)
    docs, queries = tmp_path / "docs.npy", tmp_path / "queries.npy"
    np.save(docs, rng.standard_normal((200, 16)).astype(np.float32))
    np.save(queries, rng.standard_normal((10, 16)).astype(np.float32))
    return ["--docs", str(docs), "--queries", str(queries)]


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
    out = run([sys.executable, "-m", "medqk.cli", "info"])
    assert out.returncode == 0, out.stderr
    assert "gemm_s8s8_s32" in out.stdout


def test_no_command_prints_help_to_stderr_and_exits_2(capsys):
    # a usage error like any other: `medqk "$CMD"` with an empty CMD must fail in a script
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: medqk")
    assert "info" in captured.err and "eval" in captured.err


def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: medqk")


def _expected_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medqk")
    except PackageNotFoundError:  # a source checkout: the version its pyproject.toml declares
        pyproject = (Path(medqk.__file__).resolve().parents[2] / "pyproject.toml").read_text()
        return re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"medqk {_expected_version()}\n"
    assert medqk.__version__ == _expected_version() and medqk.info()["version"] == medqk.__version__


@pytest.mark.parametrize("flag,value", [
    ("--max-queries", "0"), ("--max-queries", "-2"), ("--k", "0"), ("--k", "ten"), ("--threads", "0"),
    ("--threads", "-1"), ("--cv", "1"), ("--cv", "0"), ("--recall-target", "1.5"), ("--recall-target", "0"),
    ("--recall-target", "nan"), ("--seed", "-1"),
])
def test_impossible_numbers_are_one_error_line(flag, value, tmp_path, tiny_data, capsys):
    out_dir = tmp_path / "report"
    # --schemes float32: should the value ever be accepted again, the test fails fast instead of running all
    argv = ["eval", *tiny_data, "--schemes", "float32", "--quiet", "--out", str(out_dir), flag, value]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2
    line = one_error_line(captured.err)
    assert line.startswith(f"medqk: error: argument {flag}: expected ") and line.endswith(f"got {value!r}")
    assert captured.out == ""
    assert not out_dir.exists()


def test_unknown_flag_is_one_error_line(capsys):
    assert cli.main(["eval", "--max-query", "5"]) == 2
    assert "unrecognized arguments: --max-query" in one_error_line(capsys.readouterr().err)


def test_failed_eval_leaves_no_out_folder(tmp_path, capsys):
    out_dir = tmp_path / "new" / "deeper"
    missing = str(tmp_path / "missing.npy")
    assert cli.main(["eval", "--docs", missing, "--queries", missing, "--quiet", "--out", str(out_dir)]) == 2
    assert "missing.npy" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()  # neither folder the run created is left


def test_failed_eval_keeps_the_users_folder_and_files(tmp_path, tiny_data, capsys):
    out_dir = tmp_path / "mine"
    (out_dir / "empty").mkdir(parents=True)
    (out_dir / "notes.txt").write_text("keep me")
    empty_user_dir = tmp_path / "empty-user-dir"
    empty_user_dir.mkdir()
    for out in (out_dir, out_dir / "empty", empty_user_dir):
        assert cli.main(["eval", *tiny_data, "--schemes", "nosuchcodec", "--quiet", "--out", str(out)]) == 2
        one_error_line(capsys.readouterr().err)
    assert (out_dir / "notes.txt").read_text() == "keep me"
    assert (out_dir / "empty").is_dir() and empty_user_dir.is_dir()
    assert sorted(p.name for p in out_dir.iterdir()) == ["empty", "notes.txt"]  # no probe file left either


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, tiny_data, capsys):
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "sub"):
        assert cli.main(["eval", *tiny_data, "--quiet", "--out", str(out)]) == 2
        assert "is not a writable folder" in one_error_line(capsys.readouterr().err)
    assert a_file.read_text() == "not a folder"


def test_successful_eval_creates_out_and_keeps_the_report(tmp_path, tiny_data, capsys):
    out_dir = tmp_path / "a" / "b"
    assert cli.main(["eval", *tiny_data, "--schemes", "float32,int8", "--quiet", "--out", str(out_dir)]) == 0
    assert (out_dir / "report.json").is_file() and (out_dir / "report.md").is_file()
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".medqk-probe")]


def test_schemes_help_prints_the_grammar(capsys):
    assert cli.main(["eval", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    for form in ("pq<M>x4fs", "pq<M>x8", "opq,pq<M>x8", "ivf<nlist>,pq<M>x4fs", "<base>+rerank:<codec>",
                 "pq64x4fs", "ivf128,pq64x4fs"):
        assert form in text, form


def test_unknown_spec_error_prints_the_grammar(tmp_path, tiny_data, capsys):
    assert cli.main(["eval", *tiny_data, "--schemes", "pq64", "--quiet", "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys.readouterr().err)
    for form in ("'pq64'", "pq<M>x4fs", "pq<M>x8", "ivf<nlist>,pq<M>x4fs", "<base>+rerank:<codec>"):
        assert form in line, form


def test_every_form_the_grammar_names_parses():
    from medqk.index.spec import SPEC_EXAMPLES, parse_spec

    # the forms the old list left out, and the examples --help shows
    for spec in ("pq64x4fs", "pq32x8", "ivf128,pq64x4fs", "ivf64,opq,pq16x4fs", "opq,pq8x8+rerank:pq16x4fs",
                 *SPEC_EXAMPLES):
        assert str(parse_spec(spec)) == spec


# --- a bad MEDQK_BACKEND / MEDQK_ISA: the environment is read when the package is imported, so these run
# --- the command in a fresh interpreter

BAD_BACKEND = "MEDQK_BACKEND='gpu' is not a backend. Unset MEDQK_BACKEND or choose one of: native, numba"


@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["eval", "--quiet"]])
def test_bad_backend_variable_is_one_error_line(command, tmp_path):
    out = run([sys.executable, "-m", "medqk.cli", *command], cwd=tmp_path, MEDQK_BACKEND="gpu")
    assert out.returncode == 2
    assert one_error_line(out.stderr) == f"medqk: error: {BAD_BACKEND}"
    assert out.stdout == "" and list(tmp_path.iterdir()) == []  # eval did not even create its --out


@pytest.mark.skipif(not NATIVE, reason="MEDQK_ISA is read by the native module")
@pytest.mark.parametrize("value", ["bogus", "neon", "avx2"])
def test_bad_isa_variable_is_one_error_line(value, tmp_path):
    if value in medqk.available_isas():
        pytest.skip(f"{value} is available on this machine")
    out = run([sys.executable, "-m", "medqk.cli", "info"], cwd=tmp_path, MEDQK_ISA=value)
    assert out.returncode == 2
    line = one_error_line(out.stderr)
    assert line.startswith(f"medqk: error: MEDQK_ISA={value!r} is not ")
    assert line.endswith("Unset MEDQK_ISA or choose one of: " + ", ".join(medqk.available_isas()))


# what pip writes as the `medqk` console script (pip's distlib template)
CONSOLE_SCRIPT = """\
import re
import sys
from medqk.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def test_bad_environment_through_the_console_script(tmp_path):
    script = tmp_path / "bin" / "medqk"
    script.parent.mkdir()
    script.write_text(CONSOLE_SCRIPT)
    out = run([sys.executable, str(script), "info"], cwd=tmp_path, MEDQK_BACKEND="gpu")
    assert out.returncode == 2
    assert one_error_line(out.stderr) == f"medqk: error: {BAD_BACKEND}"
    out = run([sys.executable, str(script), "--version"], cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == f"medqk {_expected_version()}\n"


def test_bad_environment_still_fails_the_import_of_other_programs(tmp_path):
    # a package run with -m whose __init__ imports medqk is not the medqk command: the import raises
    (tmp_path / "tool").mkdir()
    (tmp_path / "tool" / "__init__.py").write_text("import medqk\n")
    (tmp_path / "tool" / "main.py").write_text("print('ran')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    for args in (["-m", "tool.main"], ["-c", "import tool"]):
        out = run([sys.executable, *args], cwd=tmp_path, MEDQK_BACKEND="gpu", PYTHONPATH=path)
        assert out.returncode == 1 and "ran" not in out.stdout
        assert out.stderr.rstrip().endswith(f"RuntimeError: {BAD_BACKEND}")
