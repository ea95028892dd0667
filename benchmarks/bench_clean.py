"""Benchmark cslaunch's bytecode clean against `find -delete` and `pyclean`.

    .venv/bin/python benchmarks/bench_clean.py [--reps N] [--tree DIR] [--tools a,b]

The first run builds a pristine tree (the host Python's stdlib plus this venv's site-packages,
compiled at optimization levels 0, 1 and 2, copied until it holds 50k+ files) and caches it in
DIR (default: a directory under the system temp dir; pass a tmpfs such as /dev/shm to measure
the tools rather than the disk). Every timed run starts from a fresh copy of that tree, flushed
to disk; the copy is not timed. The tools take turns, rep by rep, so that a load change on the
machine hits them all alike.

"cslaunch" is what `cslaunch clean` does (counts only); "cslaunch-json" what `cslaunch --json
clean` does (the bytes removed counted too: an lstat per file).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.dont_write_bytecode = True  # nothing of ours lands in the repository
sys.path.insert(0, str(REPO / "src"))

from cslaunch.bytecode import clean  # noqa: E402

MIN_FILES = 50_000
RECIPE = "2"  # bump when build() changes, to rebuild cached trees
# Left out of the tree: directories some tool skips by design (cslaunch prunes VCS dirs and
# node_modules, pyclean also venvs and .tox), so that every tool has the same work to do.
SKIPPED_DIRS = (".git", ".hg", ".svn", "node_modules", "venv", ".venv", ".tox", ".direnv")

Tool = tuple[str, Callable[[Path], object]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument(
        "--tree",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cslaunch-bench-clean",
        help="where to build and cache the tree (default: under the temp dir)",
    )
    parser.add_argument(
        "--tools",
        default="cslaunch,cslaunch-json,find,pyclean",
        help="which tools to time (default: all; pyclean is slow)",
    )
    args = parser.parse_args()
    tree: Path = args.tree.resolve()
    if tree.is_relative_to(REPO):
        parser.error("--tree must be outside the repository")

    pristine, work, ready = tree / "pristine", tree / "work", tree / "READY"
    if not ready.exists() or ready.read_text() != RECIPE:
        build(pristine)
        ready.write_text(RECIPE)
    files, pycs, pycaches = count(pristine)

    tools = pick_tools(set(args.tools.split(",")))

    print(f"python {platform.python_version()} on {platform.system()}, {os.cpu_count()} CPUs")
    print(f"tree: {pristine}")
    print(f"files: {files:,}   bytecode files: {pycs:,}   __pycache__ dirs: {pycaches:,}")
    print(f"reps: {args.reps} per tool, taking turns; fresh synced copy before each (untimed)")
    print()

    times: dict[str, list[float]] = {name: [] for name, _ in tools}
    left: dict[str, int] = dict.fromkeys(times, 0)
    for rep in range(args.reps):
        for name, fn in tools:
            restore(pristine, work)
            times[name].append(timed(fn, work))
            _, left_pycs, left_caches = count(work)
            left[name] += left_pycs + left_caches
        print(f"rep {rep + 1}: " + "  ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()))
    shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(times["cslaunch"])
    print()
    header = f"{'tool':<10} {'median s':>9} {'min s':>8} {'median / cslaunch':>18}  check"
    print(header)
    print("-" * len(header))
    for name, ts in times.items():
        med = statistics.median(ts)
        check = "ok" if not left[name] else f"FAIL: {left[name]} bytecode files/dirs left"
        print(f"{name:<10} {med:>9.3f} {min(ts):>8.3f} {med / base:>17.2f}x  {check}")
    print()
    for name, ts in times.items():
        if name != "cslaunch":
            print(f"{name} / cslaunch = {statistics.median(ts) / base:.2f}x")
    return 1 if any(left.values()) else 0


def pick_tools(wanted: set[str]) -> list[Tool]:
    """cslaunch as `cslaunch clean` runs it, and those of the others asked for and found."""
    tools: list[Tool] = [("cslaunch", lambda d: clean([d], sizes=False, paths=False))]
    if "cslaunch-json" in wanted:
        tools.append(("cslaunch-json", lambda d: clean([d], paths=False)))
    find = shutil.which("find") if "find" in wanted else None
    if find and sys.platform != "win32":  # Windows' find.exe is another tool entirely
        tools.append(("find", lambda d: run_find(find, d)))
    else:
        print("skipping find: not installed or not asked for")
    pyclean = shutil.which("pyclean", path=str(Path(sys.executable).parent))
    if pyclean and "pyclean" in wanted:
        tools.append(("pyclean", lambda d: run([pyclean, "-q", str(d)])))
        startup = min(timed(run, [pyclean, "--version"]) for _ in range(3))
        print(f"pyclean runs as a subprocess: its start-up alone takes {startup:.3f}s")
    else:
        print("skipping pyclean: not installed in this venv or not asked for")
    return tools


def build(pristine: Path) -> None:
    """Copy the stdlib and site-packages, compile them, replicate up to MIN_FILES files."""
    print(f"building the benchmark tree in {pristine} (once)...", flush=True)
    shutil.rmtree(pristine, ignore_errors=True)
    base = pristine / "0"
    paths = sysconfig.get_paths()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "site-packages", *SKIPPED_DIRS)
    shutil.copytree(paths["stdlib"], base / "stdlib", symlinks=True, ignore=skip)
    shutil.copytree(paths["purelib"], base / "site-packages", symlinks=True, ignore=skip)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    compileall = [sys.executable, "-m", "compileall", "-q", "-j", "0"]
    # Exit status and output ignored: the stdlib's tests hold deliberately broken sources.
    subprocess.run(
        [*compileall, "-o", "0", "-o", "1", "-o", "2", str(base)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    files = count(base)[0]
    for i in range(1, -(-MIN_FILES // files)):
        copy(base, pristine / str(i))


def count(root: Path) -> tuple[int, int, int]:
    """(files, bytecode files, __pycache__ dirs) under root."""
    files = pycs = caches = 0
    for _, dirnames, filenames in os.walk(root):
        files += len(filenames)
        pycs += sum(1 for f in filenames if f.endswith((".pyc", ".pyo")))
        caches += dirnames.count("__pycache__")
    return files, pycs, caches


def restore(pristine: Path, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    copy(pristine, work)
    if hasattr(os, "sync"):
        os.sync()  # else the copy's writeback would land in the next timed run


def copy(src: Path, dst: Path) -> None:
    if sys.platform != "win32" and shutil.which("cp"):
        run(["cp", "-a", str(src), str(dst)])  # much faster than copytree
    else:
        shutil.copytree(src, dst, symlinks=True)


def run_find(find: str, root: Path) -> None:
    # One pass: -delete implies -depth, so a __pycache__ is tested for -empty after its files.
    run([
        find, str(root),
        "(", "(", "-name", "*.pyc", "-o", "-name", "*.pyo", ")", "-type", "f", "-delete", ")",
        "-o", "(", "-type", "d", "-name", "__pycache__", "-empty", "-delete", ")",
    ])  # fmt: skip


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def timed(fn: Callable[[Any], object], arg: Any) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
