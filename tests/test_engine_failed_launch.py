"""A launch that fails leaves the stack as it was: nothing is stopped before what replaces it
can start, and what fails after a restart is named while the rest keeps running."""

from __future__ import annotations

import json
import time

import pytest

from cslaunch import index
from tests.stackutil import TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine

NEVER = "cslaunch-test.invalid/no-such-image:never"  # no registry anywhere has it


def test_an_image_that_cannot_be_pulled_stops_nothing(stack: TestStack) -> None:
    stack.launched()
    started = stack.started_at("backend")
    before = index.load(stack.dir)
    # A backend config change (recreate) together with a Redis image no registry has: what
    # `./scripts/demo` users hit when they ran `cslaunch` without its image variables.
    override = "services:\n  backend:\n    environment:\n      FLAG: '1'\n"
    (stack.dir / "docker-compose.override.yml").write_text(override)
    env = stack.dir / ".env"
    lines = [ln for ln in env.read_text().splitlines() if not ln.startswith("REDIS_IMAGE=")]
    env.write_text("\n".join([*lines, f"REDIS_IMAGE={NEVER}"]) + "\n")

    result = stack.cslaunch()
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "could not pull the image of redis" in errors[0], result.stderr
    assert "nothing was stopped" in result.stderr
    assert result.stderr.count("no-such-image") <= 2  # the reason once, not once per service
    assert "Traceback" not in result.stderr
    # The backend was not touched and still answers; the index stayed where it was.
    assert stack.started_at("backend") == started
    assert stack.greet() == "hello from v1, t"
    after = index.load(stack.dir)
    assert before is not None and after is not None and after.scanned_ns == before.scanned_ns


def test_a_service_that_dies_after_the_restarts_is_named_and_the_rest_runs(
    stack: TestStack,
) -> None:
    stack.launched()
    before = index.load(stack.dir)
    edit_keeping_stat(stack.dir / "backend/src/app/greeting.py", "v1", "v2")
    crash = "import sys; print('worker2 cannot start'); sys.exit(3)"
    (stack.dir / "docker-compose.override.yml").write_text(
        f'services:\n  worker2:\n    command: ["python3", "-c", "{crash}"]\n'
    )

    result = stack.cslaunch("--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    failed = {s["name"]: s for s in report["services"] if s["state"] == "failed"}
    assert set(failed) == {"worker2"}, report["services"]
    assert "exited with code 3" in failed["worker2"]["detail"]
    assert "worker2 cannot start" in failed["worker2"].get("logs", "")
    # The others run the new code; the index did not move, so the next run redoes it all.
    # The failure ended the wait at once: the backend may still be starting (cslaunch no
    # longer lingers at exit for a probe still under way).
    stack.wait_http("/api/greet?name=t")
    assert stack.greet() == "hello from v2, t"
    running = stack.compose("ps", "--status", "running", "--services").stdout.split()
    assert {"backend", "worker1", "redis", "frontend"} <= set(running)
    after = index.load(stack.dir)
    assert before is not None and after is not None and after.scanned_ns == before.scanned_ns


def test_named_workers_hard_killed_come_back(stack: TestStack) -> None:
    """Workers with fixed names (`rq worker --name w1`), killed the way the OOM killer or a
    Docker Desktop restart kills them: their registrations stay in Redis, and a new worker of
    the same name refuses to start ("There exists an active worker named 'w1' already")."""
    url = "redis://127.0.0.1:${REDIS_PORT:-6390}/0"
    (stack.dir / "docker-compose.override.yml").write_text(
        "services:\n"
        + "".join(
            f"  worker{n}:\n    command: [rq, worker, --name, w{n}, --url, '{url}', default]\n"
            for n in (1, 2)
        )
    )
    stack.launched()
    job = stack.start_job(30, "killed")
    stack.compose("kill", "worker1", "worker2")
    # Without cslaunch: the registrations block both workers.
    stack.compose("start", "worker1", "worker2", check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = stack.compose("ps", "-a", "--format", "{{.Service}} {{.State}}").stdout
        if "worker1 exited" in states and "worker2 exited" in states:
            break
        time.sleep(0.5)
    logs = stack.compose("logs", "worker1").stdout + stack.compose("logs", "worker1").stderr
    assert "There exists an active worker named" in logs

    result = stack.cslaunch("--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    cleaned = {w["name"] for w in report["jobs"]["workers_cleaned"]}
    assert {"w1", "w2"} <= cleaned, report["jobs"]
    assert any(s["name"] == "dead workers" for s in report["steps"])
    running = stack.compose("ps", "--status", "running", "--services").stdout.split()
    assert {"worker1", "worker2"} <= set(running)
    # Both registered again, a new job runs, and the job the kill interrupted is requeued
    # and finishes.
    assert stack.run_job("after") == "hello from v1, after"
    deadline = time.monotonic() + 90
    while stack.get(f"/api/jobs/{job}")["status"] != "finished":
        assert time.monotonic() < deadline, stack.get(f"/api/jobs/{job}")
        time.sleep(0.5)
