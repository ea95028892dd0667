"""`doctor.diagnose(doctor.gather(project))` against a real stack: a PID 1 that ignores SIGTERM
next to one with `init: true`, a bind mount hidden by an anonymous volume, workers behind
`sh -c` (with and without `init: true` and `exec`), and Redis with an AOF never rewritten."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from cslaunch import doctor
from cslaunch.output import SCHEMA
from cslaunch.project import resolve
from tests.stackutil import PROJECT_PREFIX, free_port

pytestmark = pytest.mark.engine

COMPOSE = """\
name: {name}
services:
  redis:
    image: {image}
    network_mode: host
    command: [redis-server, --bind, 127.0.0.1, --port, "{port}", --appendonly, "yes",
              --auto-aof-rewrite-percentage, "0", --dir, /data]
    volumes: [/data]
    healthcheck:
      test: [CMD, redis-cli, -p, "{port}", ping]
      interval: 1s
      timeout: 2s
      retries: 30
  bare:
    image: {image}
    network_mode: host
    command: [python3, -c, "import time\\nwhile True: time.sleep(1)"]
  inited:
    image: {image}
    network_mode: host
    init: true
    command: [python3, -c, "import time\\nwhile True: time.sleep(1)"]
  hidden:
    image: {image}
    network_mode: host
    init: true
    command: [sleep, infinity]
    volumes:
      - ./app:/app
      - /app/src
  worker:
    image: {image}
    network_mode: host
    command: [sh, -c, "echo starting; rq worker --url redis://127.0.0.1:{port}/0 default"]
    depends_on:
      redis:
        condition: service_healthy
  initworker:
    image: {image}
    network_mode: host
    init: true
    command: [sh, -c, "echo starting; rq worker --url redis://127.0.0.1:{port}/0 default"]
    depends_on:
      redis:
        condition: service_healthy
  execworker:
    image: {image}
    network_mode: host
    init: true
    stop_grace_period: 3m
    command: [sh, -c, "echo starting; exec rq worker --url redis://127.0.0.1:{port}/0 default"]
    depends_on:
      redis:
        condition: service_healthy
"""


def compose(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", "compose", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stderr}")
    return result


def codes(findings: list[doctor.Finding], service: str) -> set[str]:
    return {f.code for f in findings if f.service == service}


def test_doctor_on_a_real_stack(engine: str, tmp_path: Path) -> None:
    name = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "src" / "mod.py").write_text("VALUE = 1\n")
    (tmp_path / "compose.yaml").write_text(
        COMPOSE.format(name=name, image=engine, port=free_port())
    )
    try:
        compose(tmp_path, "up", "-d", "--wait")
        # The volume really hides the bind-mounted code: the container sees an empty dir.
        seen = compose(tmp_path, "exec", "-T", "hidden", "ls", "-A", "/app/src")
        assert seen.stdout.strip() == ""

        project = resolve(project_directory=tmp_path)
        started = time.monotonic()
        facts = doctor.gather(project)
        gathered = time.monotonic() - started
        findings = doctor.diagnose(facts)
        by_code = {(f.code, f.service): f for f in findings}

        assert facts.project == name
        assert facts.pid1["bare"].catches_sigterm is False
        assert facts.pid1["inited"].name == "docker-init"
        assert facts.pid1["worker"].name == "sh"
        assert facts.pid1["redis"].catches_sigterm is True
        assert facts.redis["redis"].live
        assert facts.clock is not None

        assert (doctor.PID1_SIGTERM, "bare") in by_code
        assert "init: true" in by_code[(doctor.PID1_SIGTERM, "bare")].fix
        assert codes(findings, "inited") == set()
        assert codes(findings, "hidden") == {doctor.BIND_HIDDEN}
        hidden = by_code[(doctor.BIND_HIDDEN, "hidden")]
        assert hidden.severity == doctor.ERROR
        assert "/app/src" in hidden.message and "./app/src" in hidden.message
        assert codes(findings, "worker") == {
            doctor.PID1_SHELL,
            doctor.STOP_GRACE,
            doctor.RQ_NO_HEALTHCHECK,
        }
        # init: true ends the stall but the worker behind the shell still gets no SIGTERM.
        assert codes(findings, "initworker") == {
            doctor.PID1_SHELL,
            doctor.STOP_GRACE,
            doctor.RQ_NO_HEALTHCHECK,
        }
        assert "exec rq worker" in by_code[(doctor.PID1_SHELL, "initworker")].fix
        assert codes(findings, "execworker") == {doctor.RQ_NO_HEALTHCHECK}
        assert codes(findings, "redis") == {doctor.REDIS_AOF_NO_REWRITE}
        assert doctor.CLOCK_SKEW not in {f.code for f in findings}
        assert doctor.exit_code(findings) == doctor.EXIT_ERRORS
        document = json.loads(json.dumps(doctor.to_json(findings, project=name)))
        assert document["schema"] == SCHEMA
        assert document["ok"] is False
        assert document["counts"]["error"] == 1
        assert gathered < 20, gathered

        # What the PID 1 findings predict: the SIGTERM-ignoring PID 1 waits out the stop
        # grace, the one behind `init: true` stops at once.
        start = time.monotonic()
        compose(tmp_path, "stop", "-t", "3", "inited")
        assert time.monotonic() - start < 2.5
        start = time.monotonic()
        compose(tmp_path, "stop", "-t", "3", "bare")
        assert time.monotonic() - start >= 2.8
        # And the shell finding: only the exec'd worker hears SIGTERM (RQ's warm shutdown).
        compose(tmp_path, "stop", "-t", "3", "initworker", "execworker")
        warm = "warm shut down requested"
        assert warm in compose(tmp_path, "logs", "execworker").stdout
        assert warm not in compose(tmp_path, "logs", "initworker").stdout
    finally:
        compose(tmp_path, "down", "-v", "-t", "0", "--remove-orphans", check=False)
