"""Mutation check: plant small, plausible bugs in a scratch copy of medqk and show the tests failing on each.

    python bench/mutants.py [--only 1,2] [--keep] [--working-tree] [--build] [--no-baseline] [--jobs 2]
    python bench/mutants.py --list

Each mutant below is (name, file, the exact text it replaces, its replacement, the pytest selection that must
catch it, whether it needs the native module rebuilt, the CPU feature its code path needs). The script

  1. copies the repository into a temporary folder: the committed tree (``git archive HEAD``), or with
     ``--working-tree`` the files as they are now (tracked and untracked, minus what .gitignore ignores);
  2. checks that every selected mutant's text occurs exactly once in its file (a mutant whose code moved
     fails loudly here, before any work, instead of "surviving" a file it never changed);
  3. gets the native module: when a selected mutant that this CPU can run touches csrc/ (or with ``--build``,
     or when the checkout has no built module), one full CMake build in the copy (``build/mutants``); each
     C++ mutant then recompiles only its file. Otherwise the module already built in the checkout
     (python/medqk/_core*.so, untracked) is copied in;
  4. runs each distinct selection once unchanged (the baseline: a selection that already fails would call
     every mutant "caught"; ``--no-baseline`` skips it), then for each mutant: applies it, rebuilds if it
     is a C++ mutant, runs its selection, and reverts it (source and module) before the next;
  5. prints a table: mutant, caught (pytest failed) / SURVIVED / not runnable on this CPU, and the ids of the
     failing tests. The exit status is 1 when a mutant survived or a run went wrong, 0 when every runnable
     mutant was caught. A mutant whose code path the CPU cannot run (medqk._core.cpu_features()) is reported
     as such, never as caught.

Builds and pytest runs are under ``nice`` (``--nice``, default 10), pytest with the copy's python/ first on
PYTHONPATH. The copy is deleted at the end unless ``--keep`` (then its path is printed: the build and pytest
logs are in it).
"""

from __future__ import annotations

import argparse
import ast
import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repository root
    old: str  # exact text, must occur once in the file
    new: str
    selection: tuple[str, ...]  # pytest arguments (paths, -k ...) that must fail on it
    needs_rebuild: bool  # it changes csrc/: the native module is rebuilt
    needs_cpu: str | None = None  # a key of medqk._core.cpu_features() that must be True to run its code


MUTANTS = {
    1: Mutant(
        "_container.py: the SHA-256 check skipped when loading with mmap=True",
        "python/medqk/_container.py",
        "        if f.read(_CHECKSUM_BYTES) != digest.digest():\n",
        "        if not mmap and f.read(_CHECKSUM_BYTES) != digest.digest():\n",
        ("tests/index/test_io.py",),
        False,
    ),
    2: Mutant(
        "runner.py: recall from the index's own approximate scores, not the exact scores of its ids",
        "python/medqk/eval/runner.py",
        "    got_k = _exact_scores(docs, queries, ids_k, metric)\n"
        "    got = _exact_scores(docs, queries, ids, metric) if kmax > k else got_k\n",
        "    got_k = index.search(queries, k, threads=threads)[0].astype(np.float64)\n"
        "    got = index.search(queries, kmax, threads=threads)[0].astype(np.float64)"
        " if kmax > k else got_k\n",
        ("tests/eval", "tests/test_cli.py"),
        False,
    ),
    3: Mutant(
        "metrics.py: paired_bootstrap_ci unpaired (each scheme's own CI bounds subtracted)",
        "python/medqk/eval/metrics.py",
        "    return bootstrap_mean_ci(np.asarray(a, np.float64) - np.asarray(b, np.float64),"
        " n_resamples=n_resamples,\n"
        "                             seed=seed, level=level)\n",
        "    ma, la, ha = bootstrap_mean_ci(a, n_resamples=n_resamples, seed=seed, level=level)\n"
        "    mb, lb, hb = bootstrap_mean_ci(b, n_resamples=n_resamples, seed=seed, level=level)\n"
        "    return ma - mb, la - lb, ha - hb\n",
        ("tests/eval",),
        False,
    ),
    4: Mutant(
        "pq8.py: the Numba backend silently calls the native module",
        "python/medqk/index/pq8.py",
        "    tables = np.ascontiguousarray(tables, dtype=np.float32)\n"
        "    if _backend.backend == \"native\":\n",
        "    tables = np.ascontiguousarray(tables, dtype=np.float32)\n"
        "    if _backend._core is not None:\n",
        ("tests/index", "tests/kernels"),
        False,
    ),
    5: Mutant(
        "lut4_scan_avx512vbmi.cpp: the last half row dropped whenever a full row exists",
        "csrc/kernels/avx512vnni/lut4_scan_avx512vbmi.cpp",
        "      const bool have = half == 0 ? r < rows : (pairs & 1) != 0;\n",
        "      const bool have = half == 0 ? r < rows : (pairs & 1) != 0 && rows == 0;\n",
        ("tests/kernels", "tests/index"),
        True,
        "avx512vbmi",
    ),
    6: Mutant(
        "pq8_search.cpp: the filter's quantization-error slack left out",
        "csrc/runtime/pq8_search.cpp",
        "  plan->slack = (err + rounding) * (1 + 1e-9);\n",
        "  plan->slack = rounding * (1 + 1e-9);\n",
        ("tests/kernels/test_pq8.py", "tests/index"),
        True,
    ),
}


class MutantError(RuntimeError):
    """Something about the setup, not a mutant's result: the script stops with this message."""


# -- the scratch copy ----------------------------------------------------------------------------------

def copy_repository(dest: str, working_tree: bool) -> None:
    if not working_tree:
        archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", "HEAD"], check=True,
                                 stdout=subprocess.PIPE).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        return
    listed = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "-co", "--exclude-standard"], check=True,
                            stdout=subprocess.PIPE).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = os.path.join(REPO, rel)
        if not os.path.isfile(src):  # deleted in the working tree but still tracked
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))


def check_texts(root: str, mutants: dict[int, Mutant]) -> None:
    for number, m in mutants.items():
        path = os.path.join(root, m.file)
        if not os.path.isfile(path):
            raise MutantError(f"mutant {number} ({m.name}): {m.file} does not exist (moved?): "
                              f"update the mutant")
        with open(path, encoding="utf-8") as f:
            count = f.read().count(m.old)
        if count != 1:
            where = "is not in" if count == 0 else f"occurs {count} times in"
            raise MutantError(f"mutant {number} ({m.name}): its text {where} {m.file}; the code changed, "
                              f"update the mutant:\n{m.old}")


def replace_text(path: str, old: str, new: str) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.count(old) != 1:
        raise MutantError(f"{path}: the text to replace is not there exactly once")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))
    # a new mtime even within the file system's timestamp resolution: the incremental build must see it
    now = time.time_ns()
    os.utime(path, ns=(now, now))


# -- the native module ---------------------------------------------------------------------------------

def module_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "_core*.so"))
                  + glob.glob(os.path.join(folder, "_core*.pyd")))


def configure(root: str, build_dir: str, jobs: int, log) -> None:
    pybind11_dir = subprocess.run([sys.executable, "-m", "pybind11", "--cmakedir"], check=True, text=True,
                                  stdout=subprocess.PIPE).stdout.strip()
    run_logged(["cmake", "-S", root, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DMEDQK_BUILD_PYTHON=ON",
                "-DMEDQK_BUILD_TESTS=OFF", f"-Dpybind11_DIR={pybind11_dir}",
                f"-DPython_EXECUTABLE={sys.executable}"], root, log, "cmake configure")
    build_module(root, build_dir, jobs, log)


def build_module(root: str, build_dir: str, jobs: int, log) -> None:
    """Builds _core (make / ninja recompile only what changed), installs it into the copy's python/medqk."""
    run_logged(["cmake", "--build", build_dir, "--target", "_core", "-j", str(jobs)], root, log,
               "cmake build")
    built = module_files(build_dir)
    if len(built) != 1:
        raise MutantError(f"expected one built _core module in {build_dir}, found {built}")
    install_module(built[0], os.path.join(root, "python", "medqk"))


def install_module(module: str, package: str) -> None:
    for old in module_files(package):
        os.remove(old)
    shutil.copy2(module, package)


def run_logged(cmd: list[str], cwd: str, log, what: str) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, check=False, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise MutantError(f"{what} failed (exit {proc.returncode}); see {log.name}")


def cpu_features(root: str) -> dict:
    out = subprocess.run([sys.executable, "-c", "import medqk._core as c; print(dict(c.cpu_features()))"],
                         check=False, cwd=root, env=python_env(root), text=True, capture_output=True)
    if out.returncode != 0:
        raise MutantError(f"cannot read medqk._core.cpu_features() in the copy:\n{out.stderr}")
    return ast.literal_eval(out.stdout.strip())


# -- pytest --------------------------------------------------------------------------------------------

def python_env(root: str) -> dict:
    env = dict(os.environ)
    paths = [os.path.join(root, "python")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PYTEST_ADDOPTS", None)  # the selection decides what runs
    return env


_SUMMARY = re.compile(r"^(FAILED|ERROR) (\S+)")


def run_pytest(root: str, selection: tuple[str, ...], log_path: str, maxfail: int,
               timeout: float) -> tuple[str, list[str]]:
    """("failed" | "passed" | "error: ..." | "timeout", failing test ids) of the selection in the copy."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *selection]
    if maxfail:
        cmd.append(f"--maxfail={maxfail}")
    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, check=False, cwd=root, env=python_env(root), stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", []
    ids = []
    with open(log_path) as log:
        for line in log:
            m = _SUMMARY.match(line)
            if m:
                ids.append(m.group(2))
    if proc.returncode == 0:
        return "passed", ids
    if proc.returncode == 1:
        return "failed", ids
    return f"error: pytest exit {proc.returncode}", ids


# -- the run -------------------------------------------------------------------------------------------

def parse_only(text: str | None) -> list[int]:
    if text is None:
        return sorted(MUTANTS)
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--only takes mutant numbers such as 1,2 (got {text!r})") from None
    unknown = [n for n in numbers if n not in MUTANTS]
    if unknown or not numbers:
        raise SystemExit(f"--only: no mutant {unknown or text!r}; mutants are {', '.join(map(str, MUTANTS))}")
    return numbers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated mutant numbers (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (and its logs)")
    parser.add_argument("--working-tree", action="store_true",
                        help="copy the files as they are now instead of the committed tree (HEAD)")
    parser.add_argument("--build", action="store_true",
                        help="build the native module in the copy even when no selected mutant touches csrc/")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unchanged run of each selection")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness added to this script, so to its builds and pytest runs (default 10)")
    parser.add_argument("--maxfail", type=int, default=10,
                        help="stop a mutant's run after this many failures (default 10; 0: run everything)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pytest run (default 3600)")
    args = parser.parse_args(argv)

    numbers = parse_only(args.only)
    if args.nice:
        os.nice(args.nice)  # inherited by every build and pytest run: the machine stays usable
    if args.list:
        for n in numbers:
            m = MUTANTS[n]
            print(f"{n}  {m.name}\n   {m.file}; pytest {' '.join(m.selection)}"
                  + ("; rebuilds _core" if m.needs_rebuild else "")
                  + (f"; runs where the CPU has {m.needs_cpu}" if m.needs_cpu else ""))
        return 0
    chosen = {n: MUTANTS[n] for n in numbers}
    scratch = tempfile.mkdtemp(prefix="medqk-mutants-")
    try:
        return run(chosen, scratch, args)
    except MutantError as exc:
        print(f"mutants: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"scratch copy kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def say(message: str) -> None:
    print(message, flush=True)


def run(chosen: dict[int, Mutant], scratch: str, args) -> int:
    say(f"copying {'the working tree' if args.working_tree else 'HEAD'} of {REPO} to {scratch}")
    copy_repository(scratch, args.working_tree)
    check_texts(scratch, chosen)
    package = os.path.join(scratch, "python", "medqk")
    build_dir = os.path.join(scratch, "build", "mutants")
    checkout_module = module_files(os.path.join(REPO, "python", "medqk"))
    # the CPU's features from the checkout's module when there is one: no build for a C++ mutant this CPU
    # cannot run anyway
    features = cpu_features(REPO) if checkout_module else None

    def runnable(m: Mutant) -> bool:
        return not m.needs_cpu or bool(features.get(m.needs_cpu))

    build = args.build or not checkout_module or any(m.needs_rebuild and runnable(m) for m in chosen.values())
    with open(os.path.join(scratch, "build.log"), "w") as log:
        if build:
            say(f"full build of the native module in the copy (log: {log.name})")
            configure(scratch, build_dir, args.jobs, log)
        else:
            install_module(checkout_module[0], package)
    pristine = os.path.join(scratch, "pristine-" + os.path.basename(module_files(package)[0]))
    shutil.copy2(module_files(package)[0], pristine)
    if features is None:
        features = cpu_features(scratch)

    if not args.no_baseline:
        selections = dict.fromkeys(m.selection for m in chosen.values() if runnable(m))
        for i, selection in enumerate(selections, 1):
            say(f"baseline: pytest {' '.join(selection)}")
            log_path = os.path.join(scratch, f"baseline-{i}.log")
            status, ids = run_pytest(scratch, selection, log_path, 0, args.timeout)
            if status != "passed":
                hint = "" if args.keep else " (rerun with --keep to read it)"
                raise MutantError(f"the unchanged copy does not pass pytest {' '.join(selection)} "
                                  f"({status}): {', '.join(ids[:10])}; log {log_path}{hint}")

    rows = []
    for n, m in chosen.items():
        if not runnable(m):
            rows.append((n, m, f"not runnable on this CPU (no {m.needs_cpu})", []))
            say(f"[{n}] {m.name}: not runnable on this CPU (no {m.needs_cpu}), not run")
            continue
        path = os.path.join(scratch, m.file)
        say(f"[{n}] {m.name}: applying, pytest {' '.join(m.selection)}")
        replace_text(path, m.old, m.new)
        try:
            with open(os.path.join(scratch, "build.log"), "a") as log:
                if m.needs_rebuild:
                    build_module(scratch, build_dir, args.jobs, log)
            log_path = os.path.join(scratch, f"mutant-{n}.log")
            status, ids = run_pytest(scratch, m.selection, log_path, args.maxfail, args.timeout)
        finally:
            replace_text(path, m.new, m.old)
            if m.needs_rebuild:
                install_module(pristine, package)  # the next mutant runs on the unchanged module
        result = {"failed": "caught", "passed": "SURVIVED"}.get(status, status.upper())
        rows.append((n, m, result, ids))
        say(f"[{n}] {result}" + (f": {len(ids)} failing" if ids else ""))

    print()
    print(f"{'#':>2}  {'mutant':<90}  result")
    for n, m, result, ids in rows:
        print(f"{n:>2}  {m.name:<90}  {result}")
        for test_id in ids:
            print(f"{'':>4}{test_id}")
    if args.maxfail and any(len(r[3]) >= args.maxfail for r in rows):
        print(f"(a run stops after {args.maxfail} failures: --maxfail 0 lists them all)")
    bad = [r for r in rows if r[2] != "caught" and not r[2].startswith("not runnable")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
