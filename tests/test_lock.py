"""Two cslaunch runs on one project never interleave; a killed run leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cslaunch.errors import LockedError
from cslaunch.lock import project_lock

HOLD = """
import sys, time
from pathlib import Path
from cslaunch.lock import project_lock
with project_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(root: Path, *args: str, script: str = HOLD) -> subprocess.Popen[str]:
    """A process that holds the project lock, running `script` (it prints "held" first)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root), *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def cslaunch(cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cslaunch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_second_run_with_no_wait_exits_with_the_holder(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    holder = hold(tmp_path, "30")
    try:
        with pytest.raises(LockedError) as err, project_lock(tmp_path, wait=False):
            pass
        assert f"pid {holder.pid}" in err.value.message
        cli = cslaunch(tmp_path, "--no-wait", timeout=60)
        assert cli.returncode == 6, cli.stderr
        assert "another cslaunch is running" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        holder.kill()
        holder.wait()


def test_second_run_waits_for_the_first(tmp_path: Path) -> None:
    holder = hold(tmp_path, "1.5")
    said: list[str] = []
    start = time.monotonic()
    with project_lock(tmp_path, wait=True, on_wait=said.append):
        waited = time.monotonic() - start
    holder.wait()
    assert said and "waiting" in said[0]
    assert waited >= 0.5  # it queued behind the holder instead of running alongside


FIX_THEN_RELEASE = """
import sys, time
from pathlib import Path
from cslaunch.lock import project_lock
root = Path(sys.argv[1])
with project_lock(root):
    print("held", flush=True)
    time.sleep(2)
    (root / "compose.yaml").write_text("services: {}\\n")
"""


def test_a_run_that_waited_reads_the_compose_files_as_they_are_after(tmp_path: Path) -> None:
    """`up` starts `docker compose config` before it takes the lock: after waiting, what it
    read before is void (the run it waited for may have changed the files)."""
    (tmp_path / "compose.yaml").write_text("services: [broken\n")
    holder = hold(tmp_path, script=FIX_THEN_RELEASE)
    cli = cslaunch(tmp_path, "--no-verify", timeout=120)
    holder.wait()
    assert "waiting" in cli.stderr
    assert cli.returncode != 5 and "docker compose:" not in cli.stderr, cli.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this platform")
def test_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = hold(tmp_path, "60")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    with project_lock(tmp_path, wait=False):
        pass
    assert time.monotonic() - start < 1
