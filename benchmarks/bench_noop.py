"""Benchmark the no-op relaunch: `cslaunch --json` vs `docker compose up -d --wait` on a running
copy of the example stack where nothing changed.

    .venv/bin/python benchmarks/bench_noop.py [--reps N]

Starts a private copy of examples/ (tests/stackutil.py: free ports, unique project name), runs
cslaunch once to start it and write the change index, checks that the next run reports
`up_to_date: true`, then times both commands (subprocess wall time), interleaved. Neither may
restart a container (checked through State.StartedAt). Target from the issue: cslaunch no-op
under 0.5 s. The breakdown that follows says where cslaunch's time goes: interpreter start,
imports, every docker subprocess of an in-process launch, and the docker commands alone.
The stack, its volumes, its images and the temp dir are removed at the end.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _benchutil import (  # noqa: E402
    TIMING_HEADERS,
    compose,
    container_starts,
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
    timed,
    timing_row,
)

TARGET_S = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed runs per command (default 10)")
    args = parser.parse_args()
    exit_on_sigterm()
    print_header("bench_noop: no-op relaunch, cslaunch vs docker compose up -d --wait")
    with temp_dir("bench-noop") as tmp, example_stack(tmp) as stack:
        return run(stack, tmp, args.reps)


def run(stack: Any, tmp: Path, reps: int) -> int:
    env = cslaunch_env(tmp / "pycache")
    print(f"stack   : {stack.dir} (project {stack.name})")
    t, data, proc = run_cslaunch(stack, env)
    if not data.get("ok"):
        print(f"FAIL: first cslaunch did not start the stack: {data.get('error')}\n{proc.stderr}")
        return 1
    print(f"first cslaunch (start, build, write index): {t:.1f}s, mode {data['mode']}")
    for attempt in (1, 2):
        t, data, proc = run_cslaunch(stack, env)
        print(
            f"cslaunch run {attempt + 1}: {t:.2f}s, up_to_date={data.get('up_to_date')}, "
            f"changes={data.get('changes')}, actions="
            + ",".join(f"{s['name']}:{s['action']}" for s in data.get("services", []))
        )
        if data.get("up_to_date"):
            break
    else:
        print("FAIL: cslaunch does not reach up_to_date on an unchanged stack")
        return 1
    warm = compose(stack, "up", "-d", "--wait")
    assert warm.returncode == 0, warm.stderr
    before = container_starts(stack)
    print(f"containers: {len(before)}\n", flush=True)

    cs_times: list[float] = []
    dc_times: list[float] = []
    cs_steps: dict[str, list[float]] = {}
    cs_outside: list[float] = []
    for i in range(reps):
        for which in ("cs", "dc") if i % 2 == 0 else ("dc", "cs"):
            if which == "cs":
                t, data, proc = run_cslaunch(stack, env)
                if not (data.get("ok") and data.get("up_to_date")):
                    print(f"FAIL: no-op run {i} not up_to_date: {data}\n{proc.stderr[-2000:]}")
                    return 1
                cs_times.append(t)
                cs_outside.append(t - sum(step["seconds"] for step in data["steps"]))
                for step in data["steps"]:
                    cs_steps.setdefault(step["name"], []).append(step["seconds"])
            else:
                t, proc = timed(lambda: compose(stack, "up", "-d", "--wait"))
                assert proc.returncode == 0, proc.stderr
                dc_times.append(t)
    after = container_starts(stack)
    restarted = sorted(n for n in before if after.get(n) != before[n])

    rows = [
        timing_row("cslaunch --json (no-op)", cs_times, ratio(cs_times, dc_times)),
        timing_row("docker compose up -d --wait (no-op)", dc_times, "1.00x"),
    ]
    print(table([*TIMING_HEADERS, "vs compose"], rows))
    print()
    print(f"RATIO cslaunch/compose no-op: {ratio(cs_times, dc_times)}")
    verdict = "MET" if med(cs_times) < TARGET_S else "MISSED"
    print(f"target cslaunch no-op < {TARGET_S}s: {verdict} (median {fmt_s(med(cs_times))})")
    print("containers restarted during the timed runs: " + (", ".join(restarted) or "none"))
    print(
        "cslaunch's own step times (--json, medians): "
        + ", ".join(f"{k} {fmt_s(med(v))}" for k, v in cs_steps.items())
        + f"; sum {fmt_s(sum(med(v) for v in cs_steps.values()))}; outside the steps "
        f"(process start, imports, config, lock, JSON) {fmt_s(med(cs_outside))}"
    )
    print()
    breakdown(stack, env)
    print_footer()
    return 0 if not restarted else 1


# --- where the time goes -------------------------------------------------------------------


def breakdown(stack: Any, env: dict[str, str], n: int = 5) -> None:
    print("Where a no-op cslaunch spends its time")
    print("--------------------------------------")
    py = sys.executable
    cold_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cold_env.pop("PYTHONPYCACHEPREFIX", None)

    def wall(argv: list[str], e: dict[str, str]) -> list[float]:
        out = []
        for _ in range(n):
            t, _p = timed(lambda: subprocess.run(argv, env=e, capture_output=True, check=False))
            out.append(t)
        return out

    start = wall([py, "-c", "pass"], env)
    imp = wall([py, "-c", "import cslaunch.cli"], env)
    imp_cold = wall([py, "-c", "import cslaunch.cli"], cold_env)
    ids = compose(stack, "ps", "-q").stdout.split()
    images = [f"{stack.name}-app", f"{stack.name}-frontend"]

    def dwall(argv: list[str]) -> list[float]:
        out = []
        for _ in range(n):
            t, _p = timed(
                lambda: subprocess.run(argv, cwd=stack.dir, capture_output=True, check=False)
            )
            out.append(t)
        return out

    rows = [
        timing_row("python -c pass (interpreter start)", start),
        timing_row("python -c 'import cslaunch.cli' (with bytecode)", imp),
        timing_row("  same without bytecode (this machine's default env)", imp_cold),
        timing_row("docker compose config --format json", dwall(
            ["docker", "compose", "config", "--format", "json"])),
        timing_row("docker compose ps --all --format json", dwall(
            ["docker", "compose", "ps", "--all", "--format", "json"])),
        timing_row(f"docker inspect <{len(ids)} containers>", dwall(["docker", "inspect", *ids])),
        timing_row("docker image inspect <2 images>", dwall(
            ["docker", "image", "inspect", "--format", "{{json .RepoTags}}", *images])),
    ]  # fmt: skip
    print(table(TIMING_HEADERS, rows))
    print(f"imports of cslaunch.cli with bytecode: ~{fmt_s(med(imp) - med(start))} over a bare "
          f"interpreter; without bytecode: ~{fmt_s(med(imp_cold) - med(start))}")  # fmt: skip
    importtime(env)
    print()
    launch_timeline(stack, "in-process no-op launch", expect_up_to_date=True)


def importtime(env: dict[str, str]) -> None:
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cslaunch.cli"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[int, int, str]] = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(cumulative), int(own), name.rstrip()))
    rows.sort(reverse=True)
    print("-X importtime of `import cslaunch.cli` (with bytecode), biggest by cumulative time:")
    print(
        table(
            ["module (indent = nesting)", "cumulative", "self"],
            [[name, f"{c / 1000:.1f}ms", f"{o / 1000:.1f}ms"] for c, o, name in rows[:14]],
        )
    )


if __name__ == "__main__":
    sys.exit(main())
