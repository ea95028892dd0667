"""The Docker daemon going away in the middle of a launch, on a private daemon of the test's own.

Stopping the daemon every other test uses would break them (and a developer's own Docker), so
this test starts a second `dockerd` with its own data root and socket, loads the base image
into it, runs the example stack there and stops that daemon while cslaunch waits for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cslaunch import index
from tests.conftest import EXAMPLES
from tests.stackutil import TestStack

pytestmark = pytest.mark.engine

ROOT = Path("/var/lib/cslaunch-test-dockerd")  # overlay2 needs a real disk, not a tmpfs


class PrivateDaemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = f"unix://{root / 'docker.sock'}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"),
                "-H", self.host,
                "--bridge=none",
                "--iptables=false",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.answers():
            assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the private dockerd did not come up"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def answers(self) -> bool:
        r = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, "DOCKER_HOST": self.host},
            capture_output=True,
            check=False,
        )
        return r.returncode == 0


@pytest.fixture
def daemon(engine: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateDaemon]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        message = "a private dockerd needs root and dockerd on PATH"
        if os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
            pytest.fail(message)
        pytest.skip(message)
    remove(ROOT)
    ROOT.mkdir(parents=True)
    d = PrivateDaemon(ROOT)
    d.start()
    try:
        saved = subprocess.Popen(["docker", "save", engine], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "load", "-q"],
            stdin=saved.stdout,
            env={**os.environ, "DOCKER_HOST": d.host},
            check=True,
            capture_output=True,
        )
        assert saved.wait() == 0
        monkeypatch.setenv("DOCKER_HOST", d.host)  # cslaunch, Compose and the helpers use it
        yield d
    finally:
        if not d.answers():
            d.start()
        subprocess.run(
            ["docker", "rm", "-f", *_all_containers(d)],
            env={**os.environ, "DOCKER_HOST": d.host},
            capture_output=True,
            check=False,
        )
        d.stop()
        remove(ROOT)


def remove(root: Path) -> None:
    """The daemon's directories, after the mounts it leaves under its exec root (netns)."""
    with open("/proc/self/mounts", encoding="utf-8") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def _all_containers(d: PrivateDaemon) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-aq"],
        env={**os.environ, "DOCKER_HOST": d.host},
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()


def test_daemon_stopping_mid_launch_is_named_and_the_next_run_recovers(
    daemon: PrivateDaemon, engine: str, tmp_path: Path
) -> None:
    stack = TestStack.create(EXAMPLES, tmp_path / "stack", base_image=engine)
    stack.launched()
    before = index.load(stack.dir)
    assert before is not None
    greeting = stack.dir / "backend/src/app/greeting.py"
    greeting.write_text(greeting.read_text().replace("v1", "v2"))
    # A service that takes long to get healthy keeps the launch in its wait step.
    (stack.dir / "slow.yml").write_text(
        "services:\n"
        "  slow:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        "    command: [python3, -c, 'import time; time.sleep(600)']\n"
        "    healthcheck:\n"
        "      test: [CMD, python3, -c, 'import sys; sys.exit(1)']\n"
        "      interval: 1s\n"
        "      retries: 100\n"
    )
    files = ("-f", "docker-compose.yml", "-f", "slow.yml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cslaunch", *files, "--timeout", "300"],
        cwd=stack.dir,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("▸ wait"):
            break
    time.sleep(1)  # well inside the wait: `slow` never gets healthy
    daemon.stop()
    stopped = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - stopped < 30, "cslaunch kept waiting for a daemon that is gone"
    assert proc.returncode == 4, out + err
    assert "the Docker daemon" in err and "Traceback" not in out + err
    assert "run cslaunch again" in err
    after = index.load(stack.dir)
    assert after is not None and after.scanned_ns == before.scanned_ns  # not advanced

    daemon.start()  # its containers stopped with it: the next run starts the stack again
    report = stack.launched("--no-wait")  # and the lock was released
    assert report["mode"] == "start"
    assert stack.greet() == "hello from v2, t"
