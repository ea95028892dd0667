"""How a launch grows with services and with files: generated stacks, cslaunch vs Compose.

    .venv/bin/python benchmarks/bench_scale.py [--reps N] [--services 5,15,30]
                                               [--files 1000,30000,100000]
                                               [--axis-files N] [--axis-services N]

Two axes, each on generated stacks (tests/stackutil.py `scale_stack`: Python HTTP services
sharing one bind-mounted tree; every service imports app/version.py):

  services: N services over a small tree (--axis-files, 1000 files);
  files:    --axis-services (3) services over a tree of F files.

For each size it times, in the same run and interleaved:
  - the first launch (starts everything, writes the index, proves every container),
  - a no-op launch, next to `docker compose up -d --wait` doing its own no-op,
  - a relaunch after an edit of app/version.py that keeps mtime and size (every service must
    serve the new version), next to `docker compose restart` (which serves the OLD code here:
    the pycs it trusts are the point of cslaunch, so only its time is comparable).

Each generated project is a git work tree with its files committed, as a project is (`--no-git`:
not, so every launch walks the tree): a launch after one that walked stands on git's word
(cslaunch.gitview).

Then it fits time = a + b * size per measurement and prints the growth exponent
ln(t_max / t_min) / ln(size_max / size_min): 1 is linear, below 1 is better than linear. A
last run combines the largest sizes (by default 30 services over 100k files) and checks it
completes.
Stacks, volumes and temp dirs are removed at the end.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _benchutil import (  # noqa: E402
    BASE_IMAGE,
    REPO,
    compose,
    cslaunch_env,
    exit_on_sigterm,
    fmt_s,
    med,
    print_footer,
    print_header,
    run_cslaunch,
    table,
    temp_dir,
    timed,
)

sys.path.insert(0, str(REPO))
from tests.stackutil import TestStack, edit_keeping_stat, get_text, scale_stack  # noqa: E402

VERSION_OLD, VERSION_NEW = '"v1"', '"v2"'


GIT = True  # each generated project a git work tree (--no-git: not)


def commit_all(where: Path) -> None:
    """Make the project a git work tree with every file committed, as a project's are."""
    (where / ".gitignore").write_text("__pycache__/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    for args in (
        ["init", "-q"],
        ["config", "gc.auto", "0"],
        ["config", "maintenance.auto", "false"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "tree"],
    ):
        subprocess.run(["git", "-C", str(where), *args], env=env, check=True,
                       capture_output=True)  # fmt: skip


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--services", type=ints, default=[5, 15, 30])
    parser.add_argument("--files", type=ints, default=[1000, 30000, 100000])
    parser.add_argument("--axis-files", type=int, default=1000, help="tree of the services axis")
    parser.add_argument("--axis-services", type=int, default=3, help="services of the files axis")
    parser.add_argument("--no-git", action="store_true", help="projects that are no git work tree")
    args = parser.parse_args()
    global GIT
    GIT = not args.no_git
    exit_on_sigterm()
    print_header("bench_scale: launch time against services and files, cslaunch vs Compose")
    print(
        "projects: " + ("git work trees, files committed" if GIT else "no git work tree (--no-git)")
    )
    results: dict[str, list[dict[str, Any]]] = {"services": [], "files": []}
    with temp_dir("bench-scale") as tmp:
        env = cslaunch_env(tmp / "pycache")
        for n in args.services:
            results["services"].append(
                measure(tmp / f"s{n}", env, n, args.axis_files, args.reps, "services", n)
            )
        for f in args.files:
            results["files"].append(
                measure(tmp / f"f{f}", env, args.axis_services, f, args.reps, "files", f)
            )
        print()
        for axis, rows in results.items():
            report(axis, rows)
        n, f = max(args.services), max(args.files)
        print(f"\ncombined: {n} services over {f} files (one launch each: first, edit)")
        combined = measure(tmp / "combined", env, n, f, 1, "combined", n, alternatives=False)
        print(
            f"combined {n} services x {f} files: first {fmt_s(combined['first'][0])}, "
            f"relaunch after an edit {fmt_s(combined['edit'][0])}, all served the new code"
        )
    print_footer()
    return 0


def measure(
    where: Path,
    env: dict[str, str],
    services: int,
    files: int,
    reps: int,
    axis: str,
    size: int,
    *,
    alternatives: bool = True,
) -> dict[str, Any]:
    stack = scale_stack(where, services=services, files=files, base_image=BASE_IMAGE)
    if GIT:
        commit_all(where)
    try:
        return _measure(stack, env, services, reps, axis, size, alternatives)
    finally:
        stack.down()


def _measure(
    stack: TestStack,
    env: dict[str, str],
    services: int,
    reps: int,
    axis: str,
    size: int,
    alternatives: bool,
) -> dict[str, Any]:
    version = stack.dir / "src" / "app" / "version.py"
    row: dict[str, Any] = {"size": size, "first": [], "noop": [], "edit": [], "dc_noop": []}
    row["dc_restart"] = []
    t, data, proc = run_cslaunch(stack, env)
    assert data.get("ok"), f"first launch failed: {data.get('error')}\n{proc.stderr[-3000:]}"
    row["first"].append(t)
    row["steps_first"] = {s["name"]: s["seconds"] for s in data["steps"]}
    current, new = VERSION_OLD, VERSION_NEW
    for i in range(reps):
        t, data, proc = run_cslaunch(stack, env)
        assert data.get("up_to_date"), f"not a no-op: {data}"
        row["noop"].append(t)
        row["steps_noop"] = {s["name"]: s["seconds"] for s in data["steps"]}
        edit_keeping_stat(version, current, new)
        t, data, proc = run_cslaunch(stack, env)
        assert data.get("ok"), f"relaunch failed: {data.get('error')}\n{proc.stderr[-3000:]}"
        row["edit"].append(t)
        row["steps_edit"] = {s["name"]: s["seconds"] for s in data["steps"]}
        served = {get_text(f"http://127.0.0.1:{p}/").split()[0] for p in stack.ports.values()}
        assert served == {new.strip('"')}, f"served {served} after the edit to {new}"
        current, new = new, current
        if alternatives:
            t, p = timed(lambda: compose(stack, "up", "-d", "--wait"))
            assert p.returncode == 0, p.stderr
            row["dc_noop"].append(t)
            if i == 0:  # 10 s of stop grace per run: once is enough to compare
                t, p = timed(lambda: compose(stack, "restart"))
                assert p.returncode == 0, p.stderr
                row["dc_restart"].append(t)
                run_cslaunch(stack, env)  # back to a state cslaunch has proved
    print(
        f"{axis}={size}: first {fmt_s(row['first'][0])}, no-op {fmt_s(med(row['noop']))}, "
        f"edit {fmt_s(med(row['edit']))}"
        + (
            f"; compose no-op {fmt_s(med(row['dc_noop']))}, "
            f"compose restart {fmt_s(med(row['dc_restart']))}"
            if alternatives
            else ""
        ),
        flush=True,
    )
    return row


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    if xs[-1] == xs[0]:
        return math.nan  # one size on this axis: no growth to tell
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


def report(axis: str, rows: list[dict[str, Any]]) -> None:
    unit = "service" if axis == "services" else "1k files"
    scale = 1 if axis == "services" else 1000
    sizes = [r["size"] for r in rows]
    print(f"growth with {axis} ({', '.join(str(s) for s in sizes)})")
    headers = ["measurement", *[f"{axis}={s}" for s in sizes], f"per {unit}", "exponent"]
    body = []
    for key, label in (
        ("first", "cslaunch first launch"),
        ("noop", "cslaunch no-op"),
        ("dc_noop", "compose up -d --wait no-op"),
        ("edit", "cslaunch relaunch after an edit"),
        ("dc_restart", "compose restart (serves old code)"),
    ):
        ys = [med(r[key]) for r in rows]
        _, b = fit([s / scale for s in sizes], ys)
        body.append([label, *[fmt_s(y) for y in ys], fmt_s(b), f"{exponent(sizes, ys):.2f}"])
    ratios = [med(r["noop"]) / med(r["dc_noop"]) for r in rows]
    print(table(headers, body))
    print("no-op cslaunch/compose: " + ", ".join(f"{x:.2f}x" for x in ratios))
    ratios = [med(r["edit"]) / med(r["dc_restart"]) for r in rows]
    print("relaunch cslaunch/compose restart: " + ", ".join(f"{x:.2f}x" for x in ratios))
    biggest = rows[-1]
    print(
        f"steps of the largest relaunch ({axis}={biggest['size']}): "
        + ", ".join(f"{k} {fmt_s(v)}" for k, v in biggest["steps_edit"].items())
    )
    print(
        f"steps of the largest no-op ({axis}={biggest['size']}): "
        + ", ".join(f"{k} {fmt_s(v)}" for k, v in biggest["steps_noop"].items())
    )
    print(
        "steps of the largest first launch: "
        + ", ".join(f"{k} {fmt_s(v)}" for k, v in biggest["steps_first"].items())
    )
    print()


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main())
