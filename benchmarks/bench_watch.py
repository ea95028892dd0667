"""Benchmark save-to-served in watch mode: `cslaunch watch` vs `docker compose watch`
(`sync+restart`) on the same backend service, measured in the same run.

    .venv/bin/python benchmarks/bench_watch.py [--reps N] [--files N]

Starts a private copy of examples/ (tests/stackutil.py: free ports, unique project name). Each
rep is a normal save of backend/src/app/greeting.py with a new MESSAGE, made at a fixed
cadence: saves 3 s apart (each served before the next, as a careful edit), then three times
as many saves 1 s apart, over the same time (typing: a save often lands while the last one's
relaunch is still under way). The time runs from a save until GET /api/greet?name=t serves
that value or a later one (polled every 20 ms). The tools run one after the other on the
same copy, never both watching at once:

  (A)  `python -m cslaunch watch --recheck 60` on the example as it is (code bind-mounted)
  (B1) `docker compose watch --no-up` with an override file (watch.yml) that, for `backend`,
       drops the bind mount (compose watch skips paths under one) and adds a `sync+restart`
       rule for ./backend/src -> /app/src; the example as it is otherwise: Python is PID 1
  (B2) the same with `init: true` added, so that a restart does not wait out the 10 s stop
       grace period of a PID 1 that ignores SIGTERM: the fair comparison

`--files N` first adds N Python modules the app never imports to backend/src (a package of
a hundred files per directory), as a large project has: both tools watch and serve the same
tree; the workers' image and compose watch's image are built with them.

Then one untimed check per tool (A and B2): an edit that puts mtime and size back (what cp -p,
rsync -a and unzip do), and whether the restarted backend serves the new code or stale
bytecode. Reported: medians, min/max, RATIO compose-watch/cslaunch-watch per variant.
Everything it creates (containers, volumes, the images it built) is removed; never the base
image.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import suppress  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _benchutil import (  # noqa: E402
    BASE_IMAGE,
    TIMING_HEADERS,
    cslaunch_env,
    example_stack,
    exit_on_sigterm,
    fmt_s,
    print_footer,
    print_header,
    ratio,
    table,
    temp_dir,
    timing_row,
)

POLL_S = 0.02
CADENCES = (3.0, 1.0)  # seconds between saves


def saves_at(cadence: float, reps: int) -> int:
    """Saves per timed run: each cadence gets as long as `reps` saves at the slowest. Saves
    1 s apart are served in two ways (a launch in progress picks the save up, or the next
    one does), so seven of them gave medians that moved by a third from run to run."""
    return max(reps, round(reps * CADENCES[0] / cadence))


SERVE_TIMEOUT_S = 60
GREETING = Path("backend/src/app/greeting.py")
MESSAGE = re.compile(r'^MESSAGE = "(.*)"$', re.MULTILINE)
OVERRIDE = "watch.yml"
COMPOSE_FILES = ("docker-compose.yml", OVERRIDE)
# What `docker compose watch` prints once its watchers are set up.
COMPOSE_READY = "Watch enabled"
CSLAUNCH_READY = "watching "
CSLAUNCH_IDLE = ("every service ready in", "fix it and save again")


PAD = Path("backend/src/pad")
PAD_PER_DIR = 100


def pad_tree(stack: Any, files: int) -> None:
    """`files` modules under backend/src/pad that nothing imports, 100 to a directory,
    last modified a day ago as a project's files are (not all just written, which would
    have every index entry re-hashed as racily clean until a launch a few seconds later)."""
    body = "".join(f"VALUE_{i} = {i}\n" for i in range(8))
    day_ago = time.time() - 86400
    for n in range(files):
        d = stack.dir / PAD / f"p{n // PAD_PER_DIR:04d}"
        if n % PAD_PER_DIR == 0:
            d.mkdir(parents=True)
            (d / "__init__.py").write_text("")
            os.utime(d / "__init__.py", (day_ago, day_ago))
        module = d / f"m{n % PAD_PER_DIR:03d}.py"
        module.write_text(body)
        os.utime(module, (day_ago, day_ago))


def override_yaml(init: bool) -> str:
    lines = [
        "services:",
        "  backend:",
        "    volumes: !reset []",  # compose watch skips paths under a bind mount
        *(["    init: true"] if init else []),
        "    develop:",
        "      watch:",
        "        - action: sync+restart",
        "          path: ./backend/src",
        "          target: /app/src",
    ]
    return "\n".join(lines) + "\n"


# --- the stack ----------------------------------------------------------------------------


def get_message(stack: Any) -> str:
    m = MESSAGE.search((stack.dir / GREETING).read_text())
    assert m, "MESSAGE line not found in greeting.py"
    return m.group(1)


def set_message(stack: Any, value: str) -> None:
    path = stack.dir / GREETING
    new, n = MESSAGE.subn(f'MESSAGE = "{value}"', path.read_text())
    assert n == 1, "MESSAGE line not found in greeting.py"
    path.write_text(new)


def greeting(stack: Any) -> str | None:
    try:
        return str(stack.greet())
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, KeyError):
        return None


def wait_served(stack: Any, value: str, timeout: float = SERVE_TIMEOUT_S) -> bool:
    deadline = time.perf_counter() + timeout
    while greeting(stack) != f"{value}, t":
        if time.perf_counter() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def typed(stack: Any, cadence: float, reps: int, label: str, watcher: Watcher) -> list[float]:
    """Saves `cadence` seconds apart; for each, seconds until it or a later save is served."""
    values = [f"{label}{i}" for i in range(reps)]
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            value = greeting(stack)
            if value and value.endswith(", t"):
                seen.setdefault(value[: -len(", t")], time.perf_counter())
            time.sleep(POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    saved = []
    t0 = time.perf_counter()
    try:
        for i, value in enumerate(values):
            time.sleep(max(0.0, t0 + i * cadence - time.perf_counter()))
            saved.append(time.perf_counter())
            set_message(stack, value)
        deadline = time.perf_counter() + SERVE_TIMEOUT_S
        while values[-1] not in seen:
            if time.perf_counter() > deadline:
                raise WatchError(f"{values[-1]!r} never served; output:\n{watcher.tail()}")
            time.sleep(POLL_S)
    finally:
        done.set()
        poller.join(timeout=5)
    return [min(seen[v] for v in values[i:] if v in seen) - saved[i] for i in range(len(values))]


def backend_started(stack: Any) -> str:
    ids = stack.compose("ps", "-q", "backend", check=False).stdout.split()
    if not ids:
        return ""
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", ids[0]],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


# --- the watchers -------------------------------------------------------------------------


class WatchError(Exception):
    """A watch process died or never said what was expected."""


class Watcher:
    """A watch process with its merged output collected by a thread."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the benchmark reaches it only via stop()
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def wait_for(self, texts: Sequence[str], after: int = 0, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[after:]:
                if any(t in line for t in texts):
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                raise WatchError(
                    f"{self.argv[:4]} exited ({self.proc.returncode}) before {texts!r}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise WatchError(f"no {texts!r} in the output of {self.argv[:4]}:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGINT (Ctrl-C), then SIGKILL if it does not exit in 30 s; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        return self.proc.returncode


def compose_args(stack: Any) -> list[str]:
    return [a for f in stack.files for a in ("-f", f)]


def supports_no_up() -> bool:
    out = subprocess.run(
        ["docker", "compose", "watch", "--help"], capture_output=True, text=True, check=False
    )
    return "--no-up" in out.stdout + out.stderr


# --- the phases ---------------------------------------------------------------------------


def phase_cslaunch(stack: Any, env: dict[str, str], reps: int, token: str) -> dict[str, Any]:
    w = Watcher([sys.executable, "-m", "cslaunch", "watch", "--recheck", "60"], stack.dir, env)
    try:
        t0 = time.perf_counter()
        w.wait_for([CSLAUNCH_READY])
        start = time.perf_counter() - t0
        times = {}
        for cadence in CADENCES:
            mark = len(w.lines)
            label = f"bench cs{cadence:g}s {token} "
            times[cadence] = typed(stack, cadence, saves_at(cadence, reps), label, w)
            w.wait_for(CSLAUNCH_IDLE, after=mark, timeout=120)  # untimed: let it go idle
            time.sleep(1.0)
        first = next((i for i, line in enumerate(w.lines) if "] launch 2" in line), 0)
        sample = w.lines[first:]
        end = next((i for i, x in enumerate(sample) if any(t in x for t in CSLAUNCH_IDLE)), 40)
        sample = sample[: end + 1]
        stale = stale_check_cslaunch(stack, w)
        launches = sum(1 for line in w.lines if "] launch " in line)
    finally:
        code = w.stop()
    if code != 0:
        print(f"note: cslaunch watch exited with {code} on SIGINT:\n{w.tail(10)}")
    return {
        "times": times,
        "start": start,
        "stale": stale,
        "launches": launches,
        "sample": sample,
    }


def stale_check_cslaunch(stack: Any, w: Watcher) -> str:
    from tests.stackutil import edit_keeping_stat

    old = get_message(stack)
    new = f"stale{old[5:]}"  # same length
    mark = len(w.lines)
    t0 = time.perf_counter()
    edit_keeping_stat(stack.dir / GREETING, f'"{old}"', f'"{new}"')
    if wait_served(stack, new, timeout=30):
        verdict = f"new code served after {fmt_s(time.perf_counter() - t0)}"
    else:
        verdict = f"OLD code still served 30 s later ({greeting(stack)!r})"
    with suppress(WatchError):
        w.wait_for(CSLAUNCH_IDLE, after=mark, timeout=60)
    time.sleep(0.5)
    return verdict


def phase_compose(
    stack: Any, reps: int, token: str, init: bool, tag: str, cadences: Sequence[float]
) -> dict[str, Any]:
    (stack.dir / OVERRIDE).write_text(override_yaml(init))
    stack.files = COMPOSE_FILES
    t0 = time.perf_counter()
    if not init:
        stack.compose("build", "backend", timeout=600)  # workers share its image
    try:
        stack.compose("up", "-d", "--wait", timeout=600)
    except AssertionError as e:
        # Engine 20.10 under load can fail to remove a container it just stopped ("You
        # cannot remove a running container"): Compose's own retry is running `up` again.
        print(f"note: compose up failed once, run again: {str(e).splitlines()[-1]}")
        stack.compose("up", "-d", "--wait", timeout=600)
    up = time.perf_counter() - t0
    mounts = stack.inspect("backend")["Mounts"]
    binds = [m["Destination"] for m in mounts if m.get("Type") == "bind"]
    pid1_init = bool(stack.inspect("backend")["HostConfig"].get("Init"))
    assert not binds, f"backend still has bind mounts: {binds}"
    assert pid1_init == init, f"backend init={pid1_init}, wanted {init}"
    no_up = supports_no_up()
    argv = ["docker", "compose", *compose_args(stack), "watch", *(["--no-up"] if no_up else [])]
    w = Watcher(argv, stack.dir, {**os.environ, "NO_COLOR": "1"})
    stale = ""
    try:
        w.wait_for([COMPOSE_READY], timeout=120)
        time.sleep(0.5)  # untimed: the watchers are set up when it says so; be generous
        times = {}
        for cadence in cadences:
            label = f"bench {tag}{cadence:g}s {token} "
            times[cadence] = typed(stack, cadence, saves_at(cadence, reps), label, w)
            wait_healthy(stack)  # untimed: let the restart settle
            time.sleep(1.0)
        if init:
            stale = stale_check_compose(stack, w)
    finally:
        w.stop()
    return {"times": times, "up": up, "no_up": no_up, "stale": stale, "log": list(w.lines)}


def wait_healthy(stack: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = stack.inspect("backend")["State"]
        if (info.get("Health") or {}).get("Status") == "healthy":
            return
        time.sleep(0.2)


def stale_check_compose(stack: Any, w: Watcher) -> str:
    from tests.stackutil import edit_keeping_stat

    old = get_message(stack)
    new = f"stale{old[5:]}"  # same length
    before = backend_started(stack)
    t0 = time.perf_counter()
    edit_keeping_stat(stack.dir / GREETING, f'"{old}"', f'"{new}"')
    deadline = time.perf_counter() + 30
    while backend_started(stack) == before:
        if time.perf_counter() > deadline:
            return "no restart within 30 s: the edit was not synced " + f"({w.tail(3)!r})"
        time.sleep(0.1)
    restarted = time.perf_counter() - t0
    if wait_served(stack, new, timeout=10):
        return f"new code served after {fmt_s(time.perf_counter() - t0)}"
    return (
        f"restarted after {fmt_s(restarted)}, but OLD code still served 10 s later "
        f"({greeting(stack)!r}): stale __pycache__ in the container"
    )


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reps",
        type=int,
        default=5,
        help="timed saves per tool 3 s apart, three times as many 1 s apart (default 5)",
    )
    parser.add_argument(
        "--files", type=int, default=0, help="modules nothing imports, added to the code tree"
    )
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    exit_on_sigterm()
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started with `&` from a script: SIGINT comes ignored, and every cslaunch watch
        # started here would inherit that and never hear the Ctrl-C that ends it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print_header(
        "bench_watch: save -> new response served, cslaunch watch vs docker compose watch",
        [
            f"base    : {BASE_IMAGE}",
            f"reps    : {args.reps} per tool and cadence (saves 1 s apart:"
            f" {saves_at(1.0, args.reps)}), polled every 20 ms",
        ],
    )
    with temp_dir("bench-watch") as tmp, example_stack(tmp) as stack:
        try:
            if args.files:
                pad_tree(stack, args.files)
            return run(stack, tmp, args.reps, args.files)
        except WatchError as exc:
            print(f"FAIL: {exc}")
            return 1


def run(stack: Any, tmp: Path, reps: int, files: int) -> int:
    env = cslaunch_env(tmp / "pycache")
    print(f"stack   : {stack.dir} (project {stack.name})", flush=True)
    tree = sum(1 for p in (stack.dir / "backend/src").rglob("*.py"))
    print(f"code    : {tree:,} .py files in backend/src ({files:,} of them added, never imported)")
    token = secrets.token_hex(2)

    a = phase_cslaunch(stack, env, reps, token)
    print(f"(A)  cslaunch watch: first launch to 'watching' {a['start']:.1f}s; "
          f"{a['launches']} launches in all", flush=True)  # fmt: skip
    b1 = phase_compose(stack, reps, token, init=False, tag="c", cadences=CADENCES[:1])
    print(f"(B1) compose build + up -d --wait with {OVERRIDE}: {b1['up']:.1f}s; "
          f"watch {'--no-up' if b1['no_up'] else '(no --no-up: ran `watch` alone)'}",
          flush=True)  # fmt: skip
    b2 = phase_compose(stack, reps, token, init=True, tag="i", cadences=CADENCES)
    print(f"(B2) compose up -d --wait with init: true: {b2['up']:.1f}s", flush=True)
    print()

    for cadence in CADENCES:
        ta, tb2 = a["times"][cadence], b2["times"][cadence]
        rows = [timing_row("(A)  cslaunch watch", ta, "1.00x")]
        if cadence in b1["times"]:
            tb1 = b1["times"][cadence]
            rows.append(
                timing_row("(B1) compose watch sync+restart (PID 1 python)", tb1, ratio(tb1, ta))
            )
        rows.append(timing_row("(B2) compose watch sync+restart, init: true", tb2, ratio(tb2, ta)))
        print(f"saves {cadence:g} s apart: save -> that save (or a later one) served")
        print(table([*TIMING_HEADERS, "vs A"], rows))
        print(f"RATIO compose-watch/cslaunch-watch, saves {cadence:g} s apart (B2, init: true): "
              f"{ratio(tb2, ta)}")  # fmt: skip
        print()
    print("edit that keeps mtime and size (cp -p, rsync -a, unzip), untimed, one each:")
    print(f"  cslaunch watch       : {a['stale']}")
    print(f"  compose watch (init) : {b2['stale']}")
    print("note: the compose rule restarts `backend` only; cslaunch relaunches every service that")
    print("runs the changed file (the workers too) and checks them: its output is below.")
    print("note: compose watch syncs the file and restarts the container, but does not")
    print("invalidate bytecode: Python's __pycache__ in the container is checked by mtime and")
    print("size only, so such an edit keeps serving the old code under compose watch.")
    print()
    print("cslaunch watch output for the first timed save (A):")
    for line in a["sample"]:
        print(f"  | {line}")
    print("sample of compose watch output (B2):")
    for line in b2["log"][:12]:
        print(f"  | {line}")
    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
