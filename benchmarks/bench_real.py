"""Benchmark edit-to-fresh-and-ready on a stack shaped like a real production compose file
(tests/stacks/prodlike: `-f docker-compose.prod.yml`, 30-60 s healthchecks, waitress, three
`sh -c` RQ workers, nginx in front by container name), with a worker busy on a job.

    .venv/bin/python benchmarks/bench_real.py [--reps N] [--busy-seconds S] [--cslaunch-arg A]

Starts a private copy of the stack with cslaunch (no cslaunch configuration). Each rep, for
each path: start a slow job and wait until a worker runs it, edit src/greeting.py keeping its
size and mtime (a new value every time), then time, from the moment the command starts, until
the new value is served by the backend directly AND through nginx AND every service is ready:

  (A) `cslaunch -f docker-compose.prod.yml` (its exit is the end: it waits for readiness
      itself, running each service's healthcheck test and reading each worker's registration;
      the new value is then checked, and polled if it is not served yet. Docker's own health
      status catches up only at its next scheduled check, 30-60 s later, and is not waited
      for: it says when Docker looked, not when the app was ready)
  (B) the seed's way: `rm -rf` every __pycache__ under src, `docker compose -f
      docker-compose.prod.yml restart backend rqworker rqworker2 rqworker3`, then poll until
      `docker inspect` says every container healthy and the new value is served both ways

A and B alternate (A B A B ...). Reported: each run, medians, RATIO B/A, and what became of
the busy job (finished where it ran, requeued and finished, failed, or lost: "started" on a
worker that is gone). Everything it creates is removed, images included.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _benchutil import (  # noqa: E402
    BASE_IMAGE,
    REPO,
    TIMING_HEADERS,
    cslaunch_env,
    exit_on_sigterm,
    fmt_s,
    med,
    print_footer,
    print_header,
    ratio,
    run_cslaunch,
    table,
    temp_dir,
    timing_row,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.stackutil import PROD_FILE, PROD_WORKERS, ProdStack, edit_keeping_stat  # noqa: E402

POLL_S = 0.25
GREETING = Path("src/greeting.py")
FIRST_VALUE = "hello from v1.0"
# Past this after the command returned, a path counts as never fresh-and-ready.
CONVERGE_S = 240.0


@contextmanager
def prod_stack(tmp: Path) -> Iterator[ProdStack]:
    stack = ProdStack.create_prod(tmp / "stack", base_image=BASE_IMAGE)
    try:
        yield stack
    finally:
        stack.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed runs per path (default 3)")
    parser.add_argument(
        "--busy-seconds", type=float, default=20, help="the job a worker runs during each edit"
    )
    parser.add_argument(
        "--cslaunch-arg",
        action="append",
        default=[],
        help="extra argument for every cslaunch run (repeatable), e.g. --no-verify",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    print_header(
        "bench_real: one-file edit to fresh-and-ready on the production-shaped stack, "
        "cslaunch vs restart script",
        [f"cslaunch args: -f {PROD_FILE} {' '.join(args.cslaunch_arg)}".rstrip()],
    )
    with temp_dir("bench-real") as tmp, prod_stack(tmp) as stack:
        return run(stack, tmp, args.reps, args.busy_seconds, args.cslaunch_arg)


# --- observations --------------------------------------------------------------------------
def says(fn: Callable[[], str], value: str) -> bool:
    try:
        return fn().startswith(value + ",")
    except Exception:  # refused, reset, a 502 from nginx: not serving it
        return False


class Watch:
    """Polls the three criteria and remembers when each first held, and when all did."""

    def __init__(
        self, stack: ProdStack, value: str, start: float, *, docker_health: bool = True
    ) -> None:
        self.stack, self.value, self.start = stack, value, start
        # Docker's own health status is the seed's readiness signal. cslaunch runs the same
        # healthcheck tests itself and returns once they pass; Docker's status only catches
        # up at its next scheduled check (30-60 s here), which says nothing about the app.
        self.docker_health = docker_health
        self.first: dict[str, float] = {}
        self.pending = ""

    def poll(self) -> bool:
        now = time.perf_counter() - self.start
        pending = self.stack.not_healthy() if self.docker_health else []
        ok = {
            "direct": says(self.stack.greet, self.value),
            "nginx": says(self.stack.greet_nginx, self.value),
            "healthy": not pending,
        }
        # nginx holding a dead upstream address must not hide how long the rest took.
        ok["direct+healthy"] = ok["direct"] and ok["healthy"]
        for key, held in ok.items():
            if held:
                self.first.setdefault(key, now)
        self.pending = " ".join(
            [k for k in ("direct", "nginx") if not ok[k]] + ([" ".join(pending)] if pending else [])
        )
        return all(ok.values())

    def until_all(self, deadline: float) -> float | None:
        """Seconds from the start until all held at once, or None past the deadline."""
        while True:
            if self.poll():
                return time.perf_counter() - self.start
            if time.perf_counter() > deadline:
                return None
            time.sleep(POLL_S)


def job_fate(stack: ProdStack, job_id: str, worker: str, timeout: float) -> str:
    """finished / requeued+finished / failed / LOST / still running, after at most timeout."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = stack.job(job_id)
        except Exception as exc:  # the backend itself down: keep asking
            state = {"status": f"unknown ({type(exc).__name__})"}
        if not seen or seen[-1] != state["status"]:
            seen.append(state["status"])
        if state["status"] in ("finished", "failed"):
            break
        time.sleep(0.5)
    history = ">".join(seen)
    status = state.get("status")
    if status == "finished":
        again = "queued" in seen or state.get("worker") != worker
        return ("requeued, finished" if again else "finished") + f" [{history}]"
    if status == "failed":
        return f"FAILED: {state.get('error')} [{history}]"
    live = {w["name"] for w in stack.workers()}
    if status == "started" and state.get("worker") not in live:
        return f"LOST: started on a worker that is gone [{history}]"
    return f"not finished after {timeout:.0f} s [{history}]"


def settle(stack: ProdStack, value: str) -> str:
    """Untimed, between runs: every container healthy and the current value served both
    ways. nginx still holding a dead upstream address after a path gets a restart (noted)."""
    watch = Watch(stack, value, time.perf_counter())
    if watch.until_all(time.perf_counter() + 300) is not None:
        return ""
    if "nginx" in watch.pending.split():
        stack.compose("restart", "nginx")
        if watch.until_all(time.perf_counter() + 300) is not None:
            return "nginx had to be restarted before the next run"
    raise SystemExit(f"the stack did not settle: {watch.pending}")


def start_busy(stack: ProdStack, seconds: float) -> tuple[str, str]:
    job_id = stack.start_job(seconds, "busy")
    return job_id, str(stack.job(job_id)["worker"])


# --- the two paths -------------------------------------------------------------------------
def path_a(stack: ProdStack, env: dict[str, str], value: str, extra: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    t_cmd, data, proc = run_cslaunch(stack, env, *extra, "-f", PROD_FILE)
    # Its exit is its readiness verdict: every healthcheck passed when cslaunch ran it, every
    # worker registered. From then on the new value must be served both ways.
    watch = Watch(stack, value, start, docker_health=False)
    fresh_on_return = watch.poll()
    total = watch.until_all(time.perf_counter() + CONVERGE_S)
    return {
        "total": total,
        "cmd": t_cmd,
        "exit": proc.returncode,
        "error": data.get("error"),
        "fresh_on_return": fresh_on_return,
        "first": watch.first,
        "pending": watch.pending,
        "steps": [(s["name"], s["seconds"], s.get("summary", "")) for s in data.get("steps", [])],
        "actions": {
            s["name"]: s["action"] + (f" ({s['detail']})" if s.get("detail") else "")
            for s in data.get("services", [])
        },
        "url": data.get("url"),
    }


def path_b(stack: ProdStack, value: str) -> dict[str, Any]:
    start = time.perf_counter()
    for dirpath, dirs, _files in os.walk(stack.dir / "src"):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(dirpath, "__pycache__"))
            dirs.remove("__pycache__")
    proc = stack.compose("restart", "backend", *PROD_WORKERS, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"docker compose restart failed: {proc.stderr}")
    t_restart = time.perf_counter() - start
    watch = Watch(stack, value, start)
    total = watch.until_all(time.perf_counter() + CONVERGE_S)
    return {"total": total, "restart": t_restart, "first": watch.first, "pending": watch.pending}


def run(stack: ProdStack, tmp: Path, reps: int, busy_s: float, extra: list[str]) -> int:
    env = cslaunch_env(tmp / "pycache")
    print(f"stack   : {stack.dir} (project {stack.name}); nginx on {stack.ports['HTTP_PORT']}")
    t, data, proc = run_cslaunch(stack, env, *extra, "-f", PROD_FILE)
    print(f"first cslaunch (build + start): {t:.1f}s exit {proc.returncode} ok={data.get('ok')}"
          + (f"  error: {data.get('error')}" if not data.get("ok") else ""))  # fmt: skip
    print(
        "  steps: " + ", ".join(f"{s['name']} {fmt_s(s['seconds'])}" for s in data.get("steps", []))
    )
    print(f"  url: {data.get('url')}")
    value = FIRST_VALUE
    note = settle(stack, value)
    if note:
        print(f"  note: {note}")
    print(flush=True)

    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    serial = iter(range(1000))
    for i in range(reps):
        for which in ("A", "B"):
            new = f"hello from {which}{next(serial):03d}"
            job_id, worker = start_busy(stack, busy_s)
            edit_keeping_stat(stack.dir / GREETING, value, new)
            value = new
            r = path_a(stack, env, value, extra) if which == "A" else path_b(stack, value)
            # Requeued at once it runs busy_s again; lost, it would stay "started" for minutes.
            r["job"] = job_fate(stack, job_id, worker, busy_s + 60)
            r["settle"] = settle(stack, value)
            (a if which == "A" else b).append(r)
            report_run(which, i + 1, r)
            time.sleep(1)  # untimed: let the healthchecks settle before the next edit

    print()
    ta = [r["total"] for r in a if r["total"] is not None]
    tb = [r["total"] for r in b if r["total"] is not None]
    rows = []
    if ta:
        rows.append(timing_row("(A) cslaunch: edit -> fresh and ready", ta, "1.00x"))
    rows.append(timing_row("    of which the cslaunch command", [r["cmd"] for r in a], ""))
    if tb:
        rows.append(
            timing_row("(B) rm __pycache__ + restart + wait", tb, ratio(tb, ta) if ta else "")
        )
    rows.append(
        timing_row("    of which rm + docker compose restart", [r["restart"] for r in b], "")
    )
    # The same runs, nginx aside: until the backend serves the edit and every container is
    # healthy (what remains comparable when nginx never serves it on one path or both).
    na = [r["first"]["direct+healthy"] for r in a if "direct+healthy" in r["first"]]
    nb = [r["first"]["direct+healthy"] for r in b if "direct+healthy" in r["first"]]
    if na:
        rows.append(timing_row("(A) nginx aside: fresh directly, all healthy", na, "1.00x"))
    if nb:
        rows.append(
            timing_row(
                "(B) nginx aside: fresh directly, all healthy", nb, ratio(nb, na) if na else ""
            )
        )
    print(table([*TIMING_HEADERS, "vs A"], rows))
    never = [
        f"{w}: {sum(1 for r in rs if r['total'] is None)}/{len(rs)}"
        for w, rs in (("A", a), ("B", b))
    ]
    print(f"never fresh-and-ready within {CONVERGE_S:.0f} s of the command: " + ", ".join(never))
    if ta and tb:
        print(f"RATIO B/A (restart path / cslaunch): {med(tb) / med(ta):.2f}x")
    else:
        print("RATIO B/A: n/a (a path never served the edit through nginx)")
    if na and nb:
        print(f"RATIO B/A, nginx aside: {med(nb) / med(na):.2f}x")
    for label, rs in (("A", a), ("B", b)):
        print(f"busy job, {label}: " + "; ".join(r["job"].split(" [")[0] for r in rs))
    print(f"cslaunch exit codes: {[r['exit'] for r in a]}; served the new value both ways the "
          f"moment it returned: {sum(1 for r in a if r['fresh_on_return'])}/{len(a)}")  # fmt: skip
    print()
    print_footer()
    return 0


def report_run(which: str, n: int, r: dict[str, Any]) -> None:
    total = fmt_s(r["total"]) if r["total"] is not None else f"NEVER ({r['pending']})"
    firsts = ", ".join(
        f"{k} at {fmt_s(v)}" for k, v in sorted(r["first"].items(), key=lambda x: x[1])
    )
    if which == "A":
        print(
            f"A{n}: {total}  (cslaunch {fmt_s(r['cmd'])}, exit {r['exit']}; first held: {firsts})"
        )
        if r["error"]:
            print(f"    error: {r['error']}")
        for name, seconds, summary in r["steps"]:
            print(f"    step {name:<15} {fmt_s(seconds):>7}  {summary}")
        print("    actions: " + "; ".join(f"{k}: {v}" for k, v in r["actions"].items()))
        print(f"    url: {r['url']}")
    else:
        print(f"B{n}: {total}  (rm + compose restart {fmt_s(r['restart'])}; first held: {firsts})")
    print(f"    busy job: {r['job']}")
    if r["settle"]:
        print(f"    after: {r['settle']}")
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
