"""Faults during a launch: interrupted runs, crash loops, services that never get ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cslaunch import index
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
    for written in (stack.dir / ".cslaunch").iterdir():
        assert "hunter2hunter2" not in written.read_text(errors="replace")
