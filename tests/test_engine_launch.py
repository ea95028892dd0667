"""`cslaunch up` against a real engine: stale bytecode, baked code, failures, stopped stacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.stackutil import TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine

GREETING = Path("backend/src/app/greeting.py")


def test_start_then_stale_bytecode_is_invalidated(stack: TestStack) -> None:
    report = stack.launched()
    assert report["mode"] == "start"
    assert {s["name"]: s["state"] for s in report["services"]} == dict.fromkeys(
        ["backend", "frontend", "redis", "worker1", "worker2"], "ready"
    )
    assert stack.greet() == "hello from v1, t"
    assert stack.run_job() == "hello from v1, t"
    pyc = list((stack.dir / "backend/src/app/__pycache__").glob("greeting.*.pyc"))
    assert pyc, "the container should have written bytecode into the bind mount"

    # Same size, same mtime: the timestamp pyc still matches, so Python trusts it.
    edit_keeping_stat(stack.dir / GREETING, "hello from v1", "hello from v2")

    # Proof the scenario is real: a plain restart of the process serves the old code.
    stack.compose("kill", "backend")
    stack.compose("start", "backend")
    stack.wait_http("/health")
    assert stack.greet() == "hello from v1, t"
    assert stack.run_job() == "hello from v1, t"

    report = stack.launched()
    assert report["mode"] == "relaunch"
    assert report["bytecode"]["files"] >= 1
    assert stack.greet() == "hello from v2, t"
    assert stack.run_job() == "hello from v2, t"
    actions = {s["name"]: s["action"] for s in report["services"]}
    assert actions["redis"] == "leave"  # runs none of the project's code
    assert actions["backend"] == "restart"


def test_baked_in_service_serves_new_code(stack: TestStack) -> None:
    """A Python service whose code is COPYed into its image (no bind mount) and the frontend
    bundle built in its image: both serve the new code after cslaunch."""
    files = stack.add_baked_service(context="backend")  # the backend, without its mount
    stack.launched(*files)
    assert stack.get("/api/greet?name=b", "BAKED_PORT")["message"] == "hello from v1, b"
    assert "frontend v1" in _bundle(stack)

    # An ordinary save. (A save that keeps mtime and size is invisible to BuildKit's context
    # transfer: the change index handles that case.)
    greeting = stack.dir / GREETING
    greeting.write_text(greeting.read_text().replace("hello from v1", "hello from v3"))
    app_js = stack.dir / "frontend/src/app.js"
    app_js.write_text(app_js.read_text().replace("frontend v1", "frontend v2"))

    report = stack.launched(*files)
    assert stack.get("/api/greet?name=b", "BAKED_PORT")["message"] == "hello from v3, b"
    assert "frontend v2" in _bundle(stack)
    actions = {s["name"]: s["action"] for s in report["services"]}
    assert actions["baked"] == "rebuild"  # a new image, so Compose recreates the container


def _bundle(stack: TestStack) -> str:
    index = stack.get("/", "FRONTEND_PORT")
    name = index.split('src="', 1)[1].split('"', 1)[0]
    return str(stack.get("/" + name, "FRONTEND_PORT"))


def test_syntax_error_fails_fast_and_names_the_service(stack: TestStack) -> None:
    stack.launched()
    path = stack.dir / GREETING
    path.write_text(path.read_text() + "\ndef broken(:\n")
    start = time.monotonic()
    result = stack.cslaunch("--timeout", "90")
    took = time.monotonic() - start
    assert result.returncode == 1, result.stdout + result.stderr
    assert took < 60, f"a crashed service must not be waited for ({took:.0f} s)"
    output = result.stdout + result.stderr
    assert "backend" in output
    assert "exited with code" in output
    assert "SyntaxError" in output
    assert "Traceback" not in output.split("last log lines")[0]  # no traceback of ours


def test_stopped_stack_is_started(stack: TestStack) -> None:
    stack.launched()
    stack.compose("stop", "-t", "0")
    report = stack.launched()
    assert report["mode"] == "start"
    assert stack.greet() == "hello from v1, t"


def test_status_reports_services(stack: TestStack) -> None:
    stack.launched()
    result = stack.cslaunch("status", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["services"]}
    assert rows["backend"]["state"] == "running"
    assert rows["backend"]["health"] == "healthy"
    assert rows["worker1"]["uptime_seconds"] >= 0
    human = stack.cslaunch("status")
    assert "backend" in human.stdout and "IMAGE AGE" in human.stdout


def test_clean_command_uses_derived_roots(stack: TestStack) -> None:
    stack.launched()
    assert list((stack.dir / "backend/src/app/__pycache__").glob("*.pyc"))
    dry = stack.cslaunch("clean", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    listing = json.loads(dry.stdout)
    assert listing["files"] >= 1 and listing["removed"]
    assert list((stack.dir / "backend/src/app/__pycache__").glob("*.pyc"))
    real = stack.cslaunch("clean")
    assert real.returncode == 0, real.stderr
    assert not (stack.dir / "backend/src/app/__pycache__").exists()
    assert "removed" in real.stdout


def test_logs_show_what_the_last_launch_restarted(stack: TestStack) -> None:
    stack.launched()
    (stack.dir / GREETING).write_text((stack.dir / GREETING).read_text().replace("v1", "v6"))
    stack.launched()
    result = stack.cslaunch("logs", "--no-follow", "-n", "20")
    assert result.returncode == 0, result.stderr
    assert "backend, worker1, worker2" in result.stdout
    assert "backend listening" in result.stdout
    assert "redis-1" not in result.stdout  # left alone by the launch, so not shown
