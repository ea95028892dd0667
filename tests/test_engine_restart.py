"""Restarts that do not stall and readiness that means ready, against a real engine."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from cslaunch import readiness
from cslaunch.containers import parse_container
from cslaunch.stop import WORKER_PATIENCE
from tests.stackutil import ProdStack, TestStack, free_port

pytestmark = pytest.mark.engine


def service(report: dict, name: str) -> dict:
    return next(s for s in report["services"] if s["name"] == name)


def step(report: dict, name: str) -> float:
    return float(next(s["seconds"] for s in report["steps"] if s["name"] == name))


GRACEFUL = """
import pathlib, signal, sys, time
marker = pathlib.Path("/marks/sigterm")
def bye(signum, frame):
    marker.write_text("got SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
while True:
    time.sleep(0.1)
"""


def add_script_service(
    stack: TestStack, name: str, script: str, marks: Path, extra: str = ""
) -> tuple[str, ...]:
    """A service running a Python script as PID 1, with `marks` mounted at /marks for what
    it wants to tell the test; the -f arguments that include it."""
    marks.mkdir()
    (stack.dir / f"{name}.yml").write_text(
        "services:\n"
        f"  {name}:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        f"{extra}"
        f"    volumes: ['{marks}:/marks']\n"
        "    command: [python3, -c, " + json.dumps(script) + "]\n"
    )
    stack.files = ("docker-compose.yml", f"{name}.yml")
    return ("-f", "docker-compose.yml", "-f", f"{name}.yml")


def test_sigterm_ignoring_pid1_is_killed_and_a_handler_gets_sigterm(
    stack: TestStack, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    files = add_script_service(stack, "graceful", GRACEFUL, marks)
    stack.launched(*files)

    report = stack.launched(*files, "--force")
    assert report["ok"], report["error"]
    backend = service(report, "backend")
    assert backend["stop"].startswith("kill"), backend["stop"]  # python PID 1, no handler
    graceful = service(report, "graceful")
    assert graceful["stop"].startswith("graceful"), graceful["stop"]
    assert (marks / "sigterm").read_text() == "got SIGTERM"
    # The 10 s stop grace of a PID 1 that ignores SIGTERM was not waited for.
    assert step(report, "restart") < 5, report["steps"]


SIGINT_ONLY = """
import pathlib, signal, sys, time
marker = pathlib.Path("/marks/sigint")
def bye(signum, frame):
    marker.write_text("got SIGINT")
    sys.exit(0)
signal.signal(signal.SIGINT, bye)
signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as PID 1: ignored
while True:
    time.sleep(0.1)
"""


def test_stop_signal_is_the_signal_checked_and_sent(stack: TestStack, tmp_path: Path) -> None:
    """`stop_signal: SIGINT` and an app that handles SIGINT only: stopped gracefully with
    SIGINT (as Compose does, in well under a second), not killed as "PID 1 ignores
    SIGTERM"; doctor does not warn about a stall."""
    marks = tmp_path / "marks"
    files = add_script_service(stack, "sigint", SIGINT_ONLY, marks, "    stop_signal: SIGINT\n")
    stack.launched(*files)

    report = stack.launched(*files, "--force")
    assert service(report, "sigint")["stop"] == "graceful: PID 1 handles SIGINT"
    assert (marks / "sigint").read_text() == "got SIGINT"
    assert step(report, "restart") < 5, report["steps"]
    doctor = json.loads(stack.cslaunch("doctor", "--json", *files).stdout)
    about = [f["code"] for f in doctor["findings"] if f["service"] == "sigint"]
    assert "pid1-ignores-sigterm" not in about, doctor["findings"]


def test_worker_with_a_running_job_gets_a_warm_shutdown(stack: TestStack) -> None:
    stack.launched()
    # Shorter than the 3 s an RQ worker is given to end on its own (policy requeue).
    job_id = stack.start_job(1.5, "warm")

    report = stack.launched("--force")
    assert report["ok"], report["error"]
    for name in ("worker1", "worker2"):
        assert service(report, name)["stop"].startswith("graceful")
    # Warm shutdown: the worker finished the job before it stopped.
    state = stack.get(f"/api/jobs/{job_id}")
    assert state == {"status": "finished", "result": "hello from v1, warm"}


HANGING_WORKER = """
import pathlib, time
from rq import Worker

class HangingWorker(Worker):
    \"\"\"Hangs where RQ's own does at times (rq/rq#1613): after it logged that it is
    unsubscribing, in its pubsub thread's stop(), until a second signal.\"\"\"

    def unsubscribe(self):
        thread = self.pubsub_thread
        if thread is not None:
            stop = thread.stop

            def hang(*args, **kwargs):
                pathlib.Path("/hang/teardown").write_text("hung")
                time.sleep(60)
                return stop(*args, **kwargs)

            thread.stop = hang
        super().unsubscribe()
"""


def test_an_idle_worker_hung_in_its_warm_shutdown_is_killed_without_waiting_its_grace(
    stack: TestStack, tmp_path: Path
) -> None:
    """An RQ worker started through its own Worker subclass whose warm shutdown hangs after
    it deregistered: killed as soon as its logs say so, not at the end of its grace."""
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "hang.py").write_text(HANGING_WORKER)
    (stack.dir / "hang.yml").write_text(
        "services:\n"
        "  hangworker:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        "    environment: {PYTHONPATH: /hang}\n"
        f"    volumes: ['{hang}:/hang']\n"
        "    command: [rq, worker, -w, hang.HangingWorker,\n"
        "              --url, 'redis://127.0.0.1:${REDIS_PORT}/0', hang]\n"
    )
    stack.files = ("docker-compose.yml", "hang.yml")
    files = ("-f", "docker-compose.yml", "-f", "hang.yml")
    stack.launched(*files)

    report = stack.launched(*files, "--force")
    assert service(report, "hangworker")["stop"].startswith("graceful"), report["services"]
    assert (hang / "teardown").read_text() == "hung"
    # Killed at the end of its grace, the restart would have taken that long at least.
    assert step(report, "restart") < WORKER_PATIENCE, report["steps"]


HANG_PATCH = """
import time as _time

_rq_unsubscribe = RobustWorker.unsubscribe


def _hanging_unsubscribe(self):  # where RQ hangs at times (rq/rq#1613), made certain
    thread = self.pubsub_thread
    if thread is not None:
        stop = thread.stop

        def hang(*args, **kwargs):
            _time.sleep(60)
            return stop(*args, **kwargs)

        thread.stop = hang
    _rq_unsubscribe(self)


RobustWorker.unsubscribe = _hanging_unsubscribe


"""


def test_wrapped_workers_of_the_production_shape_hung_in_teardown_are_killed_at_once(
    prod_stack: ProdStack,
) -> None:
    """The production shape: three workers started as `sh -c "python wait-for-redis.py &&
    python src/rq_worker.py"` (a Worker subclass), on a bridge network, Redis with a
    password, 60 s healthchecks. Every one of them hangs in its teardown: each is killed as
    soon as its logs say so, not at the end of its grace, and jobs run after."""
    prod_stack.launched()
    script = prod_stack.dir / "src/rq_worker.py"
    text = script.read_text()
    script.write_text(text.replace("def _on_sigterm(", HANG_PATCH + "def _on_sigterm(", 1))
    prod_stack.launched()  # the workers now run the hanging teardown

    report = prod_stack.launched("--force")
    workers = [s for s in report["services"] if s["name"].startswith("rqworker")]
    assert len(workers) == 3 and all(w["stop"].startswith("forward") for w in workers), workers
    # Killed at the end of its grace, the restart would have taken that long at least.
    assert step(report, "restart") < WORKER_PATIENCE, report["steps"]
    assert prod_stack.run_job("after").startswith("hello")


def test_a_worker_finishing_a_long_job_keeps_its_grace_and_its_job(stack: TestStack) -> None:
    """Host networking: Redis cannot say which container's worker is busy, so a worker with
    a job longer than its 3 s is stopped as an idle one, its logs looked at while it stops.
    Its job is never left "started": killed at the end of the grace and requeued, it runs
    to its end."""
    stack.launched()
    job_id = stack.start_job(6, "long")

    report = stack.launched("--force")
    assert report["ok"], report["error"]
    deadline = time.monotonic() + 60
    while (state := stack.get(f"/api/jobs/{job_id}"))["status"] != "finished":
        assert state["status"] in ("queued", "started"), state
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["result"] == "hello from v1, long"


def test_failing_http_probe_keeps_waiting_then_fails_with_the_reason(stack: TestStack) -> None:
    stack.launched()
    port = stack.ports["BACKEND_PORT"]
    (stack.dir / "cslaunch.toml").write_text(
        f'[services.backend]\nhealth = "http://127.0.0.1:{port}/not-there"\n'
    )
    started = time.monotonic()
    result = stack.cslaunch("--timeout", "15", "--force")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started >= 15  # it waited for the probe
    assert "backend" in result.stderr and "404" in result.stderr


def test_redis_loading_is_reported_not_down(stack: TestStack) -> None:
    stack.launched()
    port = str(stack.ports["REDIS_PORT"])
    cli = ("exec", "-T", "redis", "redis-cli", "-p", port)
    # Enough data that loading it back takes a noticeable moment.
    fill = "for i=1,3000000 do redis.call('SET','k'..i,string.rep('x',64)) end return 1"
    stack.compose(*cli, "EVAL", fill, "0", timeout=180)
    # The stack runs Redis with appendonly: the data must be in the AOF base to load back
    # (Redis may have started that rewrite on its own already).
    stack.compose(*cli, "BGREWRITEAOF", check=False)
    deadline = time.monotonic() + 120
    while "aof_rewrite_in_progress:1" in stack.compose(*cli, "INFO", "persistence").stdout or (
        "aof_rewrite_scheduled:1" in stack.compose(*cli, "INFO", "persistence").stdout
    ):
        assert time.monotonic() < deadline, "AOF rewrite did not finish"
        time.sleep(0.5)

    seen: list[str | None] = []

    def restart() -> None:
        stack.compose("restart", "-t", "0", "redis")

    worker = threading.Thread(target=restart)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            container = parse_container(stack.inspect("redis"))
        except (AssertionError, IndexError):
            container = None  # between containers: not there for a moment
        if container is not None and container.running:
            answer = readiness.redis(int(port))(container)
            seen.append(answer)
            if answer is None and readiness.REDIS_LOADING in seen:
                break
        time.sleep(0.05)
    worker.join()
    assert readiness.REDIS_LOADING in seen, seen
    assert seen[-1] is None  # then ready


NGINX_CONF = """
daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{listen};
        location / {{ proxy_pass http://127.0.0.1:{backend}; }}
    }}
}}
"""


def test_nginx_in_front_of_a_recreated_backend_is_reloaded(stack: TestStack) -> None:
    listen = free_port()
    (stack.dir / "nginx.conf").write_text(
        NGINX_CONF.format(listen=listen, backend=stack.ports["BACKEND_PORT"])
    )
    (stack.dir / "proxy.yml").write_text(
        "services:\n"
        "  proxy:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        "    command: [nginx, -c, /etc/nginx/proxy.conf]\n"
        "    volumes: ['./nginx.conf:/etc/nginx/proxy.conf:ro']\n"
        "    depends_on: [backend]\n"
    )
    stack.files = ("docker-compose.yml", "proxy.yml")
    files = ("-f", "docker-compose.yml", "-f", "proxy.yml")
    stack.ports["PROXY_PORT"] = listen
    stack.launched(*files)
    assert stack.get("/api/greet?name=p", "PROXY_PORT")["message"] == "hello from v1, p"

    # A Compose config change recreates the backend: a new container behind the proxy.
    compose = stack.dir / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace(
            '    command: ["python3", "-m", "app.server"]',
            '    command: ["python3", "-m", "app.server", "--recreated"]',
        )
    )
    report = stack.launched(*files)
    assert report["ok"], report["error"]
    assert service(report, "backend")["action"] == "recreate"
    assert "reloaded" in service(report, "proxy")["detail"]
    assert any(s["name"] == "reload proxies" for s in report["steps"])
    assert stack.get("/api/greet?name=p", "PROXY_PORT")["message"] == "hello from v1, p"
