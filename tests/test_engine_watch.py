"""`cslaunch watch` against a real engine: saves are served, bursts coalesce, failures recover."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.stackutil import PROD_WORKERS, ProdStack, TestStack

pytestmark = pytest.mark.engine

GREETING = Path("backend/src/app/greeting.py")


class Watcher:
    def __init__(self, stack: TestStack, *args: str) -> None:
        files = [a for f in stack.files for a in ("-f", f)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cslaunch", "watch", "--recheck", "60", *files, *args],
            cwd=stack.dir,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def launches(self) -> int:
        return sum(1 for line in self.lines if "] launch " in line)

    def wait_for(self, text: str, timeout: float = 90, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines[after:]):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=5)
        return code


def served(stack: TestStack, text: str, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if stack.greet() == text:
                return time.monotonic() - start
        except (OSError, http.client.HTTPException):
            pass  # restarting: refused, or a response cut short by its kill
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not served within {timeout} s")


def set_message(stack: TestStack, message: str) -> None:
    path = stack.dir / GREETING
    text = path.read_text()
    start = text.index('MESSAGE = "') + len('MESSAGE = "')
    end = text.index('"', start)
    path.write_text(text[:start] + message + text[end:])


def test_watch_serves_saves_coalesces_bursts_and_recovers(stack: TestStack) -> None:
    w = Watcher(stack)
    try:
        w.wait_for("watching ")
        assert w.launches() == 1

        set_message(stack, "watched v2")
        served(stack, "watched v2, t")
        w.wait_for("Relaunched", after=0)
        assert w.launches() == 2

        # A burst of 20 saves: one launch.
        mark = len(w.lines)
        for i in range(20):
            set_message(stack, f"burst {i:02d}")
        served(stack, "burst 19, t")
        time.sleep(2)
        assert w.launches() == 3, "\n".join(w.lines[mark:])

        # A syntax error fails the launch and keeps watching; the next good save recovers.
        path = stack.dir / GREETING
        good = path.read_text()
        mark = len(w.lines)
        path.write_text(good + "\ndef broken(:\n")
        w.wait_for("fix it and save again", after=mark)
        assert any("SyntaxError" in line for line in w.lines[mark:])
        path.write_text(good.replace("burst 19", "recovered"))
        served(stack, "recovered, t")
    finally:
        code = w.stop()
    assert code == 0, "\n".join(w.lines)
    assert any("stack keeps running" in line for line in w.lines)
    assert stack.greet() == "recovered, t"  # left running


def test_save_during_a_launch_gives_exactly_one_more(stack: TestStack) -> None:
    w = Watcher(stack)
    try:
        w.wait_for("watching ")
        reqs = stack.dir / "backend/requirements.txt"
        reqs.write_text(reqs.read_text() + "# slow: a rebuild\n")
        w.wait_for("launch 2")
        time.sleep(0.5)  # the rebuild is under way
        set_message(stack, "during launch")
        served(stack, "during launch, t")
        time.sleep(3)
        assert w.launches() == 3, "\n".join(w.lines)
    finally:
        w.stop()


def test_saves_a_second_apart_end_the_waiting_and_the_last_is_served(stack: TestStack) -> None:
    """Typing speed: a save that lands while a launch waits or proves ends that launch's
    waiting at once; the next launch serves it, and the last launch proves the last save."""
    w = Watcher(stack)
    try:
        w.wait_for("watching ")
        mark = len(w.lines)
        for i in range(8):
            set_message(stack, f"typed {i}")
            time.sleep(0.7)
        served(stack, "typed 7, t")
        w.wait_for("Relaunched", after=mark)
        time.sleep(2)
        after = w.lines[mark:]
        assert any("Newer saves came in" in line for line in after), "\n".join(after)
        last = max(i for i, line in enumerate(after) if "] launch " in line)
        assert any("Relaunched" in line for line in after[last:]), "\n".join(after)
        assert any("verify" in line for line in after[last:])
    finally:
        assert w.stop() == 0, "\n".join(w.lines)


def test_polling_sees_edits_that_keep_mtime_and_size(stack: TestStack) -> None:
    w = Watcher(stack, "--poll", "--poll-interval", "0.2", "--recheck", "3")
    try:
        w.wait_for("polling every")
        path = stack.dir / GREETING
        st = path.stat()
        path.write_text(path.read_text().replace("hello from v1", "hello from v8"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # invisible to mtime polling
        served(stack, "hello from v8, t")  # the periodic content re-check finds it
    finally:
        w.stop()


def _started(stack: TestStack, service: str) -> datetime:
    day, _, fraction = stack.started_at(service).rstrip("Z").partition(".")
    # Docker gives nanoseconds; Python takes microseconds.
    return datetime.fromisoformat(f"{day}.{fraction[:6]:0<6}+00:00")


def test_restarted_workers_start_once_the_web_server_answers(prod_stack: ProdStack) -> None:
    """Production shape: a save all of backend and the three `sh -c`-wrapped workers run.
    The workers stop with the backend (no old worker takes a job the new backend queues)
    and start once the backend answers, so that their start-up does not slow its own; the
    launch still waits for their registrations and every job runs the new code."""
    app = prod_stack.dir / "src/app_final.py"
    slow = "import time\n\ntime.sleep(2)  # a web app slow to import\n"
    app.write_text(slow + app.read_text())
    w = Watcher(prod_stack)
    try:
        w.wait_for("watching ", timeout=180)
        mark = len(w.lines)
        greeting = prod_stack.dir / "src/greeting.py"
        greeting.write_text(greeting.read_text().replace("hello from v1.0", "watched v2"))
        w.wait_for("Relaunched", after=mark, timeout=120)
        out = "\n".join(w.lines[mark:])
        backend = _started(prod_stack, "backend")
        for worker in PROD_WORKERS:
            delay = (_started(prod_stack, worker) - backend).total_seconds()
            assert delay >= 1.5, f"{worker} started {delay:.2f} s after the backend\n{out}"
            assert worker in out and "registered as an RQ worker" in out, out
        assert prod_stack.greet() == "watched v2, t", out
        assert prod_stack.run_job("w").startswith("watched v2")
    finally:
        assert w.stop() == 0, "\n".join(w.lines)


def _enqueue(stack: ProdStack, query: str, timeout: float = 15) -> str:
    """Queued through the backend, which may be restarting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return stack.enqueue(query)
        except OSError:
            assert time.monotonic() < deadline, "the backend never took the job"
            time.sleep(0.1)


def _running(stack: ProdStack, service: str) -> bool:
    ids = stack.compose("ps", "-a", "-q", service).stdout.split()
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return bool(state) and all(s == "true" for s in state)


def _warm_watch(stack: ProdStack) -> tuple[Watcher, Callable[[str], None]]:
    """watch on the production shape past its first batch of saves (which walks and reads
    the Compose model), so that later batches are quick; and a save of a new greeting."""
    w = Watcher(stack)
    greeting = stack.dir / "src/greeting.py"
    text = greeting.read_text()

    def save(message: str) -> None:
        greeting.write_text(text.replace("hello from v1.0", message))

    try:
        w.wait_for("watching ", timeout=180)
        mark = len(w.lines)
        save("warm")
        w.wait_for("Relaunched", after=mark, timeout=120)
    except BaseException:
        w.stop()
        raise
    return w, save


def test_while_saves_keep_coming_the_workers_wait_for_a_pause(prod_stack: ProdStack) -> None:
    """Typing on the production shape: saves 0.7 s apart each restart the backend at once.
    The three `sh -c`-wrapped workers (found through their Redis registrations only) stop
    with it, so no old worker takes a job, and are held back launch after launch until the
    saves pause, then start. The job a busy worker was running when it was killed is
    recovered (left from launch to launch, never dropped) and runs again on the new code; a
    job queued while they are held back waits in its queue, is not lost, and runs code no
    older than its save. Ctrl-C while they are held back starts them."""
    w, save = _warm_watch(prod_stack)
    try:
        busy = prod_stack.start_job(30, "busy")
        mark = len(w.lines)
        queued = ""
        for i in range(8):
            save(f"typed {i}")
            if i == 4:
                queued = _enqueue(prod_stack, "name=j")
            time.sleep(0.7)
        served(prod_stack, "typed 7, t")
        w.wait_for("Relaunched", after=mark, timeout=120)
        out = "\n".join(w.lines[mark:])
        held = sum("held back stopped: newer saves came in" in line for line in w.lines[mark:])
        assert held >= 2, out  # held back again by the launches after the first
        done = prod_stack.wait_job(busy, 90)
        assert done["result"] == "typed 7, busy", (done, out)
        result = str(prod_stack.wait_job(queued, 60)["result"])
        assert result.startswith("typed ") and int(result.split()[1].rstrip(",")) >= 4, result
        assert all(_running(prod_stack, worker) for worker in PROD_WORKERS), out
        assert prod_stack.run_job("after") == "typed 7, after"

        mark = len(w.lines)
        for i in range(8, 20):
            save(f"typed {i}")
            time.sleep(0.7)
            if any("held back stopped" in line for line in w.lines[mark:]):
                break
        w.wait_for("held back stopped", after=mark, timeout=30)
    finally:
        code = w.stop()
    assert code == 0, "\n".join(w.lines)
    # Wherever the Ctrl-C landed, no worker is left stopped.
    assert all(_running(prod_stack, worker) for worker in PROD_WORKERS), "\n".join(w.lines)
    assert prod_stack.run_job("end").startswith("typed ")


def test_a_job_cut_short_by_a_launch_that_held_the_workers_is_recovered(
    prod_stack: ProdStack,
) -> None:
    """Two saves 0.4 s apart while a worker runs a job, then none: the first launch kills
    the busy worker and holds the workers back; the second, for the last save, finds no
    registration of them (found only through Redis on this stack), yet takes them for
    workers as the first found them, starts them and recovers the job, which runs again
    on the new code instead of staying "started" on a dead worker."""
    w, save = _warm_watch(prod_stack)
    try:
        job = prod_stack.start_job(20, "long")
        mark = len(w.lines)
        save("typed A")
        time.sleep(0.4)
        save("typed B")
        served(prod_stack, "typed B, t")
        w.wait_for("Relaunched", after=mark, timeout=120)
        out = "\n".join(w.lines[mark:])
        assert "held back stopped" in out, out
        last = out[out.rindex("] launch ") :]
        # RQ's own clean-up may get to the job first: what counts here is that cslaunch
        # knew the held workers for workers and ran the recovery it owed.
        assert "no RQ workers" not in last and "recover jobs" in last, out
        assert prod_stack.wait_job(job, 60)["result"] == "typed B, long", out
    finally:
        assert w.stop() == 0, "\n".join(w.lines)


def test_saves_after_the_first_ask_only_the_saved_files(prod_stack: ProdStack) -> None:
    """Once a launch in watch ran to its end, a batch of saved sources asks only those files
    (the file events name them) instead of walking every tree, and still serves and runs
    the new code; a directory moved in walks again, and finds the file inside it."""
    w = Watcher(prod_stack)
    greeting = prod_stack.dir / "src/greeting.py"

    def save(old: str, new: str) -> str:
        mark = len(w.lines)
        greeting.write_text(greeting.read_text().replace(old, new))
        w.wait_for("Relaunched", after=mark, timeout=120)
        return "\n".join(w.lines[mark:])

    try:
        w.wait_for("watching ", timeout=180)
        out = save("hello from v1.0", "watched v2")
        assert "files checked" in out and "saved file" not in out, out  # the first: walked
        out = save("watched v2", "watched v3")
        assert "1 saved file checked of " in out and "1 modified" in out, out
        assert prod_stack.greet() == "watched v3, t", out
        assert prod_stack.run_job("w").startswith("watched v3")
        # A package made elsewhere and moved in: one event for its directory, none for
        # the module inside; the walk finds it.
        made = prod_stack.dir / "made"
        made.mkdir()
        (made / "extra.py").write_text("X = 1\n")
        mark = len(w.lines)
        made.rename(prod_stack.dir / "src/extra_pkg")
        w.wait_for("Relaunched", after=mark, timeout=120)
        out = "\n".join(w.lines[mark:])
        assert "files checked" in out and "1 added" in out, out
    finally:
        assert w.stop() == 0, "\n".join(w.lines)
