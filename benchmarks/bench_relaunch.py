"""Benchmark edit-to-fresh-and-ready on the running example stack: `cslaunch` vs the seed
script's path (clear bytecode + `docker compose restart` + wait).

    .venv/bin/python benchmarks/bench_relaunch.py [--reps N]

Starts a private copy of examples/ (tests/stackutil.py: free ports, unique project name) with
cslaunch. Each rep edits one backend file (MESSAGE in backend/src/app/greeting.py, a new value
every time) and then times, from the moment the command starts, until GET /api/greet serves
the new value AND every service is ready:

  (A) `cslaunch --json` (ready is its own verdict; the new value is then checked, and polled
      if it is not served yet, which would be a cslaunch bug)
  (B) remove every __pycache__ dir of the project, `docker compose restart`, then poll every
      0.25 s until `docker compose ps` shows each service with a healthcheck healthy and the
      others running, and the new value is served

A and B alternate. Reported: medians, min/max, RATIO B/A (the issue's target: 10x), and
cslaunch's own per-step times from its --json output. Everything it creates is removed.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _benchutil import (  # noqa: E402
    TIMING_HEADERS,
    compose,
    cslaunch_env,
    example_stack,
    exit_on_sigterm,
    fmt_s,
    launch_timeline,
    med,
    print_footer,
    print_header,
    ratio,
    run_cslaunch,
    table,
    temp_dir,
    timing_row,
)

TARGET_RATIO = 10.0
POLL_S = 0.25
GREETING = Path("backend/src/app/greeting.py")
MESSAGE = re.compile(r'^MESSAGE = ".*"$', re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs per path (default 5)")
    args = parser.parse_args()
    exit_on_sigterm()
    print_header("bench_relaunch: one-file edit to fresh-and-ready, cslaunch vs restart script")
    with temp_dir("bench-relaunch") as tmp, example_stack(tmp) as stack:
        return run(stack, tmp, args.reps)


def set_message(stack: Any, value: str) -> None:
    path = stack.dir / GREETING
    text = path.read_text()
    new, n = MESSAGE.subn(f'MESSAGE = "{value}"', text)
    assert n == 1, "MESSAGE line not found in greeting.py"
    path.write_text(new)


def serves(stack: Any, value: str) -> bool:
    try:
        return bool(stack.greet().startswith(value + ","))
    except (urllib.error.URLError, ConnectionError, OSError, ValueError, KeyError):
        return False


def all_ready(stack: Any) -> tuple[bool, str]:
    """Compose's view: every service with a healthcheck healthy, every other one running."""
    out = compose(stack, "ps", "--all", "--format", "json").stdout.strip()
    try:
        rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines()]
    except ValueError:
        return False, "unparsable ps output"
    if len(rows) < 5:
        return False, f"{len(rows)} containers"
    pending = []
    for r in rows:
        health, state = r.get("Health") or "", r.get("State") or ""
        ok = health == "healthy" if health else state == "running"
        if not ok:
            pending.append(f"{r.get('Service')}:{health or state}")
    return not pending, " ".join(pending)


def path_a(stack: Any, env: dict[str, str], value: str) -> dict[str, Any]:
    start = time.perf_counter()
    t_cmd, data, proc = run_cslaunch(stack, env)
    fresh_on_return = serves(stack, value)
    deadline = time.perf_counter() + 60
    fresh = fresh_on_return
    while not fresh and time.perf_counter() < deadline:
        time.sleep(POLL_S)
        fresh = serves(stack, value)
    total = time.perf_counter() - start
    if not data.get("ok"):
        raise SystemExit(f"cslaunch failed: {data.get('error')}\n{proc.stderr[-3000:]}")
    if not fresh:
        raise SystemExit(f"cslaunch: the new value {value!r} was never served")
    return {
        "total": total,
        "cmd": t_cmd,
        "fresh_on_return": fresh_on_return,
        "steps": {s["name"]: s["seconds"] for s in data["steps"]},
        "actions": {
            s["name"]: s["action"] + (f" ({s['stop'].split(':')[0]})" if s.get("stop") else "")
            for s in data["services"]
        },
    }


def path_b(stack: Any, value: str) -> dict[str, Any]:
    start = time.perf_counter()
    for dirpath, dirs, _files in os.walk(stack.dir):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(dirpath, "__pycache__"))
            dirs.remove("__pycache__")
    proc = compose(stack, "restart")
    if proc.returncode != 0:
        raise SystemExit(f"docker compose restart failed: {proc.stderr}")
    t_restart = time.perf_counter() - start
    deadline = time.perf_counter() + 120
    while True:
        ready, pending = all_ready(stack)
        if ready and serves(stack, value):
            break
        if time.perf_counter() > deadline:
            raise SystemExit(f"restart path: not fresh and ready after 120 s ({pending})")
        time.sleep(POLL_S)
    return {"total": time.perf_counter() - start, "restart": t_restart}


def run(stack: Any, tmp: Path, reps: int) -> int:
    env = cslaunch_env(tmp / "pycache")
    print(f"stack   : {stack.dir} (project {stack.name})")
    t, data, proc = run_cslaunch(stack, env)
    if not data.get("ok"):
        print(f"FAIL: first cslaunch did not start the stack: {data.get('error')}\n{proc.stderr}")
        return 1
    t2, data, _ = run_cslaunch(stack, env)
    print(f"first cslaunch (start): {t:.1f}s; second: {t2:.2f}s up_to_date={data['up_to_date']}")
    token = secrets.token_hex(2)
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    for i in range(reps):
        for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
            value = f"bench {which}{i} {token}"
            set_message(stack, value)
            if which == "A":
                a.append(path_a(stack, env, value))
            else:
                b.append(path_b(stack, value))
            time.sleep(1)  # untimed: let the healthchecks settle before the next edit
    print("actions of cslaunch per service (rep 1): "
          + ", ".join(f"{k}: {v}" for k, v in a[0]["actions"].items()) + "\n")  # fmt: skip

    ta = [r["total"] for r in a]
    tb = [r["total"] for r in b]
    rows = [
        timing_row("(A) cslaunch: edit -> fresh and ready", ta, "1.00x"),
        timing_row("    of which the cslaunch command", [r["cmd"] for r in a], ""),
        timing_row("(B) rm __pycache__ + compose restart + wait", tb, ratio(tb, ta)),
        timing_row("    of which rm + docker compose restart", [r["restart"] for r in b], ""),
    ]
    print(table([*TIMING_HEADERS, "vs A"], rows))
    print()
    rb = med(tb) / med(ta)
    print(f"RATIO B/A (restart path / cslaunch): {rb:.2f}x   target {TARGET_RATIO:.0f}x: "
          + ("MET" if rb >= TARGET_RATIO else "MISSED"))  # fmt: skip
    fresh = sum(1 for r in a if r["fresh_on_return"])
    print(f"cslaunch served the new value the moment it returned: {fresh}/{len(a)} reps")
    print()
    names: list[str] = []
    for r in a:
        names += [n for n in r["steps"] if n not in names]
    srows = [
        [n, sum(1 for r in a if n in r["steps"]), fmt_s(med([r["steps"].get(n, 0.0) for r in a]))]
        for n in names
    ]
    steps_sum = [sum(r["steps"].values()) for r in a]
    overhead = [r["cmd"] - s for r, s in zip(a, steps_sum, strict=True)]
    srows.append(["sum of steps", len(a), fmt_s(med(steps_sum))])
    srows.append(["process start, imports, lock, report", len(a), fmt_s(med(overhead))])
    print("cslaunch's own step times (--json), medians over the A reps:")
    print(table(["step", "n", "median"], srows))
    print()
    edits = iter(range(100))
    launch_timeline(
        stack,
        "untimed diagnostic: in-process cslaunch after a one-file edit",
        expect_up_to_date=False,
        prepare=lambda: set_message(stack, f"bench T{next(edits)} {token}"),
    )
    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
