"""Faults during a launch: interrupted runs, crash loops, services that never get ready."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cslaunch import index, state
from tests.stackutil import TestStack

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_launch_exits_130_and_the_next_run_redoes_it(
    stack: TestStack, signum: int
) -> None:
    stack.launched()
    before = index.load(stack.dir)
    assert before is not None
    greeting = stack.dir / "backend/src/app/greeting.py"
    greeting.write_text(greeting.read_text().replace("v1", "v2"))
    reqs = stack.dir / "backend/requirements.txt"
    reqs.write_text(reqs.read_text() + "# bump\n")  # a rebuild: a launch long enough to stop

    proc = subprocess.Popen(
        [sys.executable, "-m", "cslaunch"],
        cwd=stack.dir,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # interrupt once the build has begun
        if "build" in line:
            break
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    after = index.load(stack.dir)
    assert after is not None and after.scanned_ns == before.scanned_ns  # not advanced

    report = stack.launched("--no-wait")  # the lock was released
    assert str(greeting) in report["changes"]  # the change is still seen, and applied
    assert stack.greet() == "hello from v2, t"


def test_crash_looping_service_fails_fast_with_its_logs(stack: TestStack) -> None:
    (stack.dir / "crash.yml").write_text(
        "services:\n"
        "  crasher:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        "    restart: always\n"
        "    command: [python3, -c, \"import sys; print('cannot start: missing SETTING'); "
        'sys.exit(3)"]\n'
    )
    stack.files = ("docker-compose.yml", "crash.yml")
    start = time.monotonic()
    result = stack.cslaunch("-f", "docker-compose.yml", "-f", "crash.yml", "--timeout", "100")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - start < 60
    assert "crasher" in result.stderr and "crash-looping" in result.stderr
    assert "cannot start: missing SETTING" in result.stderr


def test_port_already_taken_is_named(stack: TestStack) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.ports["BACKEND_PORT"]))
        taken.listen()
        result = stack.cslaunch("--timeout", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "backend" in result.stderr
    assert "Address already in use" in result.stderr  # from the service's own logs
    assert "Traceback (most recent call last)" not in result.stderr.split("last log lines")[0]


def test_hostile_service_name_cannot_inject(stack: TestStack, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # Compose itself restricts names; a name with shell syntax must never reach a shell.
    (stack.dir / "odd.yml").write_text(
        "services:\n"
        "  odd-name_1:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        f"    command: [python3, -c, 'import time; time.sleep(600)', '$(touch {marker})']\n"
    )
    stack.files = ("docker-compose.yml", "odd.yml")
    stack.launched("-f", "docker-compose.yml", "-f", "odd.yml")
    assert not marker.exists()


def test_secrets_never_reach_the_output(stack: TestStack) -> None:
    (stack.dir / "leaky.yml").write_text(
        "services:\n"
        "  leaky:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        "    environment:\n"
        "      DB_PASSWORD: hunter2hunter2\n"
        "      CACHE_URL: redis://:urlsecret77@127.0.0.1:1/0\n"
        "    command: [python3, -c, \"import os; print('pw', os.environ['DB_PASSWORD'],"
        " os.environ['CACHE_URL']); raise SystemExit(2)\"]\n"
    )
    stack.launched()  # an index to look into afterwards
    stack.files = ("docker-compose.yml", "leaky.yml")
    for args in ((), ("--json",)):
        result = stack.cslaunch("-f", "docker-compose.yml", "-f", "leaky.yml", *args)
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "leaky" in output and "pw ***" in output  # its log is shown, masked
        assert "hunter2hunter2" not in output and "urlsecret77" not in output
    written = list(state.project_state(stack.dir).iterdir())
    assert written  # the index, the proof: none may hold the secret
    for path in written:
        assert "hunter2hunter2" not in path.read_text(errors="replace")


AUTH_YML = """\
x-url: &url "redis://:s3cr3tpass77@127.0.0.1:${REDIS_PORT}/0"
services:
  redis:
    command: [redis-server, --bind, 127.0.0.1, --port, "${REDIS_PORT}",
              --requirepass, s3cr3tpass77, --appendonly, "yes", --dir, /data]
    healthcheck:
      test: [CMD, redis-cli, -p, "${REDIS_PORT}", -a, s3cr3tpass77, --no-auth-warning, ping]
  backend:
    environment: {REDIS_URL: *url}
  worker1:
    environment: {REDIS_URL: *url}
    command: [rq, worker, --url, *url, default]
  worker2:
    environment: {REDIS_URL: *url}
    command: [rq, worker, --url, *url, default]
"""


HIDDEN_PASSWORD_WORKERS = """\
services:
  worker1: &hidden
    environment: {REDIS_URL: "redis://127.0.0.1:${REDIS_PORT}/0", REDIS_PORT: "${REDIS_PORT}"}
    command: [python3, -c, "import os; from redis import Redis; from rq import Worker;
      pw = open('/app/src/app/redis_pw.txt').read().strip();
      r = Redis(port=int(os.environ['REDIS_PORT']), password=pw);
      Worker(['default'], connection=r).work()"]
  worker2: *hidden
"""


def test_redis_with_a_password_works_and_a_missing_one_is_one_warning(stack: TestStack) -> None:
    (stack.dir / "auth.yml").write_text(AUTH_YML)
    stack.files = ("docker-compose.yml", "auth.yml")
    files = ("-f", "docker-compose.yml", "-f", "auth.yml")
    stack.launched(*files)
    # The password comes from the workers' own --url: recovery works, and never shows it.
    job_id = stack.start_job(30, "pw")
    (stack.dir / "cslaunch.toml").write_text(
        '[services.worker1]\nstop = "kill"\n[services.worker2]\nstop = "kill"\n'
    )
    result = stack.cslaunch("--json", *files, "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [j["id"] for j in report["jobs"]["jobs"]] == [job_id]
    assert "s3cr3tpass77" not in result.stdout + result.stderr

    # Workers that read the password from a file of their own, which cslaunch cannot see:
    # the stack still comes up, and one warning says why jobs were not checked.
    (stack.dir / "backend/src/app/redis_pw.txt").write_text("s3cr3tpass77\n")
    (stack.dir / "hidden.yml").write_text(HIDDEN_PASSWORD_WORKERS)
    (stack.dir / "cslaunch.toml").write_text('[rq]\nworker_services = ["worker1", "worker2"]\n')
    stack.files = (*stack.files, "hidden.yml")
    result = stack.cslaunch(*files, "-f", "hidden.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "Redis refused the credentials" in warnings[0], warnings
    assert "s3cr3tpass77" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
