"""Shared helpers for the benchmark scripts: machine facts, timing tables, benchmark trees.

Not a benchmark itself. The scripts import it with `benchmarks/` on sys.path (Python puts a
script's own directory there), after setting sys.dont_write_bytecode so that nothing lands in
the repository.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("CSLAUNCH_BASE_IMAGE", "cslaunch-base:bookworm-3")
# Files bigger than this are left out of the benchmark trees: they add bytes, not files, and a
# 37 MB mypyc extension would dominate the first-scan hashing.
MAX_FILE_BYTES = 2 * 1024 * 1024


def _out(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (r.stdout.strip() or r.stderr.strip() or "?").splitlines()[0]


def machine_info(*, docker: bool = True, git: bool = False) -> list[str]:
    lines = [
        f"machine : {platform.node()}  {platform.system()} {platform.release()}  "
        f"{platform.machine()}",
        f"nproc   : {os.cpu_count()}  (load average at start: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + ")",
        f"python  : {sys.version.split()[0]} ({sys.executable})",
    ]
    if docker:
        lines.append(
            f"docker  : engine {_out(['docker', 'version', '--format', '{{.Server.Version}}'])}, "
            f"compose {_out(['docker', 'compose', 'version', '--short'])}"
        )
    if git:
        lines.append(f"git     : {_out(['git', '--version'])}")
    return lines


def print_header(title: str, extra: Sequence[str] = (), **info: bool) -> None:
    print(title)
    print("=" * len(title))
    for line in [*machine_info(**info), *extra]:
        print(line)
    print(flush=True)


def print_footer() -> None:
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


# --- statistics and tables ---------------------------------------------------------------


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fmt_s(x: float) -> str:
    if x < 0.01:
        return f"{x * 1000:.2f}ms"
    if x < 1:
        return f"{x * 1000:.0f}ms"
    return f"{x:.2f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def timing_row(label: str, xs: Sequence[float], *extra: object) -> list[object]:
    return [label, len(xs), fmt_s(med(xs)), fmt_s(min(xs)), fmt_s(max(xs)), *extra]


TIMING_HEADERS = ["what", "n", "median", "min", "max"]


def ratio(a: Sequence[float], b: Sequence[float]) -> str:
    """median(a) / median(b), as '12.3x'."""
    mb = med(b)
    return f"{med(a) / mb:.2f}x" if mb else "inf"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# --- temp dirs and trees --------------------------------------------------------------------


@contextmanager
def temp_dir(tag: str) -> Iterator[Path]:
    """A temp dir outside the repository, removed however the benchmark ends."""
    path = Path(tempfile.mkdtemp(prefix=f"cslaunch-{tag}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():  # read-only leftovers (git objects are 0444 but dirs are writable)
            subprocess.run(["rm", "-rf", str(path)], check=False)


_STDLIB_NAME = "python{}.{}".format(*sys.version_info[:2])


def _ignore(directory: str, names: list[str]) -> set[str]:
    skip = set()
    for name in names:
        if name in ("__pycache__", "site-packages") or name.endswith((".pyc", ".pyo")):
            skip.add(name)
        elif name.startswith("config-") and directory.endswith(_STDLIB_NAME):
            skip.add(name)  # libpython.a and friends: build files, not code
        else:
            p = os.path.join(directory, name)
            if not os.path.islink(p) and os.path.isfile(p) and os.path.getsize(p) > MAX_FILE_BYTES:
                skip.add(name)
    return skip


def copy_sources(dest: Path) -> None:
    """The host Python's stdlib and this venv's site-packages, without bytecode."""
    dest.mkdir(parents=True)
    paths = sysconfig.get_paths()
    shutil.copytree(paths["stdlib"], dest / "stdlib", symlinks=True, ignore=_ignore)
    shutil.copytree(paths["purelib"], dest / "site-packages", symlinks=True, ignore=_ignore)


def compile_tree(root: Path) -> None:
    """Write bytecode the way an interpreter importing the tree would (optimization level 0).
    PYTHONDONTWRITEBYTECODE is unset for the child: these machines set it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # Exit status ignored: the stdlib's tests hold deliberately broken sources.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def replicate(base: Path, parent: Path, min_files: int) -> int:
    """Copy `base` (named parent/0) as parent/1, parent/2, ... until the total reaches
    min_files; returns the number of copies including base."""
    per_copy = count_files(base)
    copies = max(1, -(-min_files // per_copy))
    for i in range(1, copies):
        cp_a(base, parent / str(i))
    return copies


def cp_a(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def rm_tree(path: Path) -> None:
    if path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)


# --- the example stack --------------------------------------------------------------------


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks remove stacks and temp dirs."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def example_stack(tmp: Path) -> Iterator[Any]:
    """A private copy of examples/ (free ports, unique project name) via tests/stackutil.py;
    removed with its volumes and every image it built, however the benchmark ends."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.stackutil import TestStack

    stack = TestStack.create(REPO / "examples", tmp / "stack", base_image=BASE_IMAGE)
    try:
        yield stack
    finally:
        stack.down()


def cslaunch_argv() -> list[str]:
    """The console script users run (falls back to `python -m cslaunch`)."""
    script = Path(sys.executable).parent / "cslaunch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cslaunch"]


def cslaunch_env(pycache: Path) -> dict[str, str]:
    """cslaunch as an installed tool runs: with bytecode. These machines set
    PYTHONDONTWRITEBYTECODE and src/ has no __pycache__, so every run would compile cslaunch;
    a pycache prefix in the temp dir gives warm runs without writing into the repository."""
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_cslaunch(
    stack: Any, env: dict[str, str], *args: str, timeout: float = 600
) -> tuple[float, dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run `cslaunch --json ARGS` in the stack's directory: (wall seconds, JSON, process)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [*cslaunch_argv(), "--json", *args],
        cwd=stack.dir,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - start
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {"ok": False, "error": f"no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}"}
    return seconds, data, proc


def compose(stack: Any, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", *args],
        cwd=stack.dir,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def container_starts(stack: Any) -> dict[str, str]:
    """Container name -> State.StartedAt, to prove what was (not) restarted."""
    ids = compose(stack, "ps", "-aq").stdout.split()
    if not ids:
        return {}
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Name}} {{.State.StartedAt}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def launch_timeline(
    stack: Any,
    title: str,
    *,
    expect_up_to_date: bool,
    prepare: Callable[[], object] | None = None,
    runs: int = 3,
) -> None:
    """Never fails the benchmark: cslaunch's internals move, the timings above still stand."""
    try:
        _launch_timeline(stack, title, expect_up_to_date, prepare, runs)
    except Exception as exc:
        print(f"{title}: breakdown unavailable: {type(exc).__name__}: {exc}")


def _launch_timeline(
    stack: Any,
    title: str,
    expect_up_to_date: bool,
    prepare: Callable[[], object] | None,
    runs: int,
) -> None:
    """Run the launch in process with every docker subprocess and Engine API request timed:
    which calls it makes, in which order, how long each takes, and what is left for
    cslaunch's own work."""
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    from cslaunch import docker, engine_api, launch, stack
    from cslaunch.project import resolve
    from cslaunch.ui import UI

    calls: list[tuple[float, float, str, str]] = []
    real_run = docker.run

    def timed_run(argv: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_run(argv, **kw)
        finally:
            thread = threading.current_thread().name
            calls.append((t0, time.perf_counter(), _label(list(argv)), thread))

    names = {
        cid: name.lstrip("/")
        for cid, name in (
            line.split(" ", 1)
            for line in subprocess.run(
                ["docker", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.splitlines()
            if " " in line
        )
    }

    def _label(argv: list[str]) -> str:
        if argv[:2] == ["docker", "compose"]:
            rest = [a for a in argv[2:] if not a.startswith("-")]
            return "compose " + " ".join(rest[:1])
        if argv[:2] == ["docker", "inspect"]:
            return f"docker inspect ({len(argv) - 2} ids)"
        if argv[:2] == ["docker", "exec"]:
            cid = next((a for a in argv[2:] if a in names), "?")
            return f"docker exec {names.get(cid, cid[:12])}"
        return " ".join(argv[:3])

    real_json, real_exec = engine_api.Engine._json, engine_api.Engine.exec
    inside = threading.local()  # an exec's own requests are part of the exec

    def api_label(text: str) -> str:
        for cid, name in names.items():
            text = text.replace(cid, name)
        return "API " + text

    def timed_json(self: Any, method: str, path: str, *args: Any) -> Any:
        if getattr(inside, "exec", False):
            return real_json(self, method, path, *args)
        t0 = time.perf_counter()
        try:
            return real_json(self, method, path, *args)
        finally:
            thread = threading.current_thread().name
            calls.append((t0, time.perf_counter(), api_label(f"{method} {path}"), thread))

    def timed_exec(self: Any, container: str, argv: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        inside.exec = True
        try:
            return real_exec(self, container, argv, **kw)
        finally:
            inside.exec = False
            thread = threading.current_thread().name
            calls.append((t0, time.perf_counter(), api_label(f"exec {container}"), thread))

    docker.run = timed_run
    engine_api.Engine._json, engine_api.Engine.exec = timed_json, timed_exec
    try:
        results = []
        for _ in range(runs):
            if prepare:
                prepare()
            calls.clear()
            project = resolve(cwd=stack.dir)
            t0 = time.perf_counter()
            report = launch.launch(project, stack.LaunchOptions(), UI(json_mode=True, quiet=True))
            total = time.perf_counter() - t0
            assert report.ok, report.error
            assert report.up_to_date == expect_up_to_date, report.to_json()
            results.append((total, t0, list(calls), [(s.name, s.seconds) for s in report.steps]))
    finally:
        docker.run = real_run
        engine_api.Engine._json, engine_api.Engine.exec = real_json, real_exec
    results.sort(key=lambda r: r[0])
    total, t0, calls_, steps = results[len(results) // 2]  # the median run
    print(f"{title} (median of {runs}): {fmt_s(total)}; steps: "
          + ", ".join(f"{name} {fmt_s(s)}" for name, s in steps))  # fmt: skip
    rows = [
        [label, f"+{(a - t0) * 1000:.0f}ms", fmt_s(b - a), "main" if th == "MainThread" else "pool"]
        for a, b, label, th in sorted(calls_)
    ]
    print(table(["docker call (in order)", "starts at", "takes", "thread"], rows))
    # Time with at least one docker subprocess running (parallel calls counted once).
    busy, end = 0.0, t0
    for a, b, _l, _t in sorted(calls_):
        if b > end:
            busy += b - max(a, end)
            end = b
    print(f"{len(calls_)} docker calls; wall time with one running: {fmt_s(busy)} of "
          f"{fmt_s(total)}; cslaunch's own Python work: {fmt_s(total - busy)}")  # fmt: skip
