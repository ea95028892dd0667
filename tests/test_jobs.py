"""RQ job recovery and Redis maintenance, without Docker.

The pure parts (finding workers in the Compose model, the [tool.cslaunch.rq] table, running the
helper through `docker compose exec`) run anywhere. The in-container helper
(cslaunch.rqscript) runs here on the host against a real redis-server on a free loopback port
and the venv's rq, with workers that really die (SIGKILL) or jobs put into a started registry
by a worker whose connection is gone.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch import docker, jobs, model, rqscript
from cslaunch.docker import ComposeProject
from cslaunch.errors import ConfigError
from cslaunch.jobs import RQSetup, RQWorkerService, find_rq
from cslaunch.jobs import redis as redis_maint
from cslaunch.rqconfig import RQConfig, parse_rq_config
from cslaunch.ui import UI

# Every module of cslaunch.jobs but redis (Redis maintenance), which reports through
# cslaunch.report.
JOBS_ROOMS = ("setup", "helper", "workers", "recovery", "overview")

# These fake the docker CLI: container calls must take it, not the Engine API.
pytestmark = pytest.mark.usefixtures("cli_path")

# --- find_rq ---------------------------------------------------------------------------------


def compose_json(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "demo", "services": services}


def stack_of(raw: dict[str, Any]) -> model.Stack:
    return model.parse_stack(raw)


EXAMPLE = compose_json(
    redis={
        "image": "redis:7-alpine",
        "command": ["redis-server", "--port", "6390"],
    },
    backend={
        "image": "app",
        "command": ["python3", "-m", "app.server"],
        "environment": {"REDIS_URL": "redis://127.0.0.1:6390/0"},
    },
    worker1={
        "image": "app",
        "command": ["rq", "worker", "--url", "redis://127.0.0.1:6390/0", "default"],
        "environment": {"REDIS_URL": "redis://ignored:1/0"},
    },
    worker2={
        "image": "app",
        "command": ["rq", "worker", "-u", "redis://127.0.0.1:6390/0", "high", "low"],
    },
)


def test_find_rq_example_stack() -> None:
    setup = find_rq(stack_of(EXAMPLE), RQConfig(), EXAMPLE)
    assert setup is not None
    assert setup.worker_services == ("worker1", "worker2")
    w1, w2 = setup.workers
    assert (w1.redis_url, w1.url_source, w1.queues) == (
        "redis://127.0.0.1:6390/0",
        "command",
        ("default",),
    )
    assert w2.queues == ("high", "low")
    assert setup.queues == ("default", "high", "low")
    assert setup.redis_service == "redis"
    assert w1.python == "python3"
    assert len(setup.targets()) == 1  # both use the same Redis


@pytest.mark.parametrize(
    ("command", "python", "queues", "options"),
    [
        (["rq", "worker"], "python3", ("default",), {}),
        (["rqworker", "-u", "redis://r/1", "a"], "python3", ("a",), {"url": "redis://r/1"}),
        (
            ["python", "-m", "rq.cli", "worker", "--url=redis://r:1/2", "-b", "q1"],
            "python",
            ("q1",),
            {"url": "redis://r:1/2"},
        ),
        (
            ["/venv/bin/rq", "worker", "--with-scheduler", "-S", "rq.serializers.JSONSerializer"],
            "/venv/bin/python",
            ("default",),
            {"serializer": "rq.serializers.JSONSerializer"},
        ),
        (
            ["rq", "worker-pool", "-n", "3", "--url", "redis://x/0", "emails"],
            "python3",
            ("emails",),
            {"name": "3", "url": "redis://x/0"},
        ),
        (
            ["sh", "-c", "python wait.py && rq worker --url $REDIS_URL high; echo done"],
            "python3",
            ("high",),
            {"url": "$REDIS_URL"},
        ),
    ],
)
def test_parse_worker_command(
    command: list[str], python: str, queues: tuple[str, ...], options: dict[str, str]
) -> None:
    svc = model.parse_service("w", {"command": command})
    parsed = jobs.parse_worker_command(svc.words)
    assert parsed is not None
    assert parsed == (python, options, queues)


@pytest.mark.parametrize(
    "command",
    [
        ["rq", "info"],
        ["python3", "-m", "app.server"],
        ["python", "src/rq_worker.py"],
        ["redis-server"],
        ["python", "rq.cli", "worker"],  # a script argument, not `-m rq.cli`
    ],
)
def test_not_a_worker(command: list[str]) -> None:
    assert jobs.parse_worker_command(model.parse_service("x", {"command": command}).words) is None


def test_worker_entrypoint_and_command_combined() -> None:
    svc = model.parse_service("w", {"entrypoint": ["rq"], "command": ["worker", "jobs"]})
    assert jobs.parse_worker_command(svc.words) == ("python3", {}, ("jobs",))


def test_url_from_environment_then_config_then_container() -> None:
    worker = ["rq", "worker"]
    raw = compose_json(
        a={"image": "app", "command": worker, "environment": {"RQ_REDIS_URL": "redis://a/1"}},
        b={"image": "app", "command": worker, "environment": {"REDIS_URL": "redis://b/2"}},
        c={"image": "app", "command": worker},
        # Compose turns `$$MY_URL` into `$MY_URL`, for the shell to expand.
        d={
            "image": "app",
            "command": ["sh", "-c", "rq worker --url $MY_URL"],
            "environment": {"MY_URL": "redis://d/3"},
        },
    )
    with_config = find_rq(stack_of(raw), RQConfig(redis_url="redis://conf/4"), raw)
    assert with_config is not None
    urls = {w.service: (w.redis_url, w.url_source) for w in with_config.workers}
    assert urls == {
        "a": ("redis://a/1", "environment"),
        "b": ("redis://b/2", "environment"),
        "c": ("redis://conf/4", "config"),
        "d": ("redis://d/3", "command"),
    }
    bare = find_rq(stack_of(raw), RQConfig(), raw)
    assert bare is not None
    assert {w.service: w.url_source for w in bare.workers}["c"] == "container"
    assert len(bare.targets()) == 4


def test_configured_worker_service_with_custom_script() -> None:
    raw = compose_json(
        rqworker1={"image": "app", "command": ["python", "src/rq_worker.py"]},
        redis={"image": "bitnami/redis:7.2"},
    )
    assert find_rq(stack_of(raw), RQConfig(), raw) is None
    setup = find_rq(stack_of(raw), RQConfig(worker_services=("rqworker1",)), raw)
    assert setup is not None
    assert setup.workers[0].queues == ()  # the helper discovers queues from Redis
    assert setup.redis_service == "redis"


def test_find_rq_disabled_or_absent() -> None:
    assert find_rq(stack_of(EXAMPLE), RQConfig(enabled=False), EXAMPLE) is None
    raw = compose_json(web={"image": "nginx"})
    assert find_rq(stack_of(raw), RQConfig(), raw) is None


def test_redis_service_matches_url_host() -> None:
    raw = compose_json(
        cache={"image": "redis:7"},
        queue={"image": "redis:7"},
        worker={"image": "app", "command": ["rq", "worker", "--url", "redis://queue:6379/0"]},
    )
    setup = find_rq(stack_of(raw), RQConfig(), raw)
    assert setup is not None and setup.redis_service == "queue"


# --- parse_rq_config -------------------------------------------------------------------------


def fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"pyproject.toml: tool.cslaunch.{key}: {problem}")


def test_rq_config_defaults_and_full_table() -> None:
    assert parse_rq_config({}, fail) == RQConfig()
    cfg = parse_rq_config(
        {
            "enabled": True,
            "policy": "fail",
            "redis_url": "redis://:pw@redis:6379/1",
            "worker_services": ["rqworker1", "rqworker2"],
            "max_job_keys": 5000,
            "max_memory_percent": 90,
            "max_memory_mb": 256.5,
            "aof_growth": 3,
            "aof_min_mb": 0,
            "retention_days": 1.5,
            "cache_patterns": ["citation_cache:*"],
            "cache_dbs": [2, 3, 2],
        },
        fail,
    )
    assert cfg.policy == "fail"
    assert cfg.worker_services == ("rqworker1", "rqworker2")
    assert cfg.max_job_keys == 5000 and cfg.aof_growth == 3.0 and cfg.retention_days == 1.5
    assert cfg.cache_patterns == ("citation_cache:*",) and cfg.cache_dbs == (2, 3)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"polcy": "fail"}, "rq.polcy: unknown key"),
        ({"policy": "delete"}, "rq.policy: expected one of requeue, fail"),
        ({"policy": 1}, "rq.policy: expected a string, got int"),
        ({"enabled": "yes"}, "rq.enabled: expected true/false"),
        ({"redis_url": "http://x"}, "rq.redis_url: not a Redis URL"),
        ({"worker_services": "w1"}, "rq.worker_services: expected a list"),
        ({"worker_services": ["w1", ""]}, "rq.worker_services: expected a list of non-empty"),
        ({"max_job_keys": True}, "rq.max_job_keys: expected a whole number, got bool"),
        ({"max_job_keys": 1.5}, "rq.max_job_keys: expected a whole number, got float"),
        ({"max_job_keys": 0}, "rq.max_job_keys: must be at least 1"),
        ({"max_memory_percent": 120}, "rq.max_memory_percent: must be more than 0 and at most"),
        ({"aof_growth": 0.5}, "rq.aof_growth: must be at least 1"),
        ({"retention_days": -1}, "rq.retention_days: must be at least 0"),
        ({"retention_days": float("nan")}, "rq.retention_days: must be"),
        ({"cache_patterns": ["*"]}, "rq.cache_patterns: '*' would match"),
        ({"cache_patterns": ["rq:*"]}, "rq.cache_patterns: 'rq:*' would match"),
        ({"cache_dbs": [0, "1"]}, "rq.cache_dbs: expected database numbers"),
        ({"cache_dbs": [-1]}, "rq.cache_dbs: expected database numbers"),
    ],
)
def test_rq_config_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rq_config(table, fail)
    assert message in info.value.message
    assert info.value.message.startswith("pyproject.toml: tool.cslaunch.rq")


def test_rq_config_not_a_table() -> None:
    with pytest.raises(ConfigError, match="expected a table"):
        parse_rq_config(["policy"], fail)  # type: ignore[arg-type]


# --- running the helper through docker compose exec ----------------------------------------


class FakeRun:
    """docker.run replaced: answers per (service, python)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, str, str]]):
        self.answers = answers
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert isinstance(argv, list)
        if argv[:2] == ["docker", "ps"]:  # a named project's container lookup
            label = "label=com.docker.compose.service="
            service = next(a[len(label) :] for a in argv if a.startswith(label))
            return subprocess.CompletedProcess(argv, 0, f"cid-{service}\n", "")
        self.calls.append(argv)
        self.inputs.append(kwargs.get("input"))
        i = argv.index("exec")
        if argv[i + 1] == "-i":  # docker exec -i CONTAINER ...
            service, python = argv[i + 2].removeprefix("cid-"), argv[i + 3]
        else:  # docker compose exec -T SERVICE ...
            service, python = argv[i + 2], argv[i + 3]
        code, out, err = self.answers.get((service, python), (1, "", "unexpected"))
        return subprocess.CompletedProcess(argv, code, out, err)


def two_workers() -> list[RQWorkerService]:
    return [
        RQWorkerService("worker1", "redis://r/0", "command", ("default",), "python3"),
        RQWorkerService("worker2", "redis://r/0", "command", ("high",), "/venv/bin/python"),
    ]


def test_run_helper_argv_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = rqscript.MARKER + json.dumps({"ok": True, "state": "ok"}) + "\n"
    fake = FakeRun(
        {
            ("worker1", "python3"): (1, "", 'service "worker1" is not running'),
            ("worker2", "/venv/bin/python"): (126, "", "OCI runtime exec failed: no such file"),
            ("worker2", "python3"): (0, "some noise\n" + ok, ""),
        }
    )
    monkeypatch.setattr(docker, "run", fake)
    project = ComposeProject(Path("/p"), files=("a.yml",), name="demo")
    doc = jobs.run_helper(project, two_workers(), {"action": "status"})
    assert doc["ok"] is True and doc["service"] == "worker2"
    argv = fake.calls[-1]
    # Named project: straight into the running container, no Compose model loaded.
    assert argv[:7] == ["docker", "exec", "-i", "cid-worker2", "python3", "-B", "-c"]
    assert argv[7:] == [jobs.script_text()]  # no request in the arguments: `ps` shows those
    request = json.loads(fake.inputs[-1] or "")
    assert request["action"] == "status" and request["url"] == "redis://r/0"
    assert request["queues"] == ["default", "high"]


def test_run_helper_of_an_unnamed_project_goes_through_compose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok = rqscript.MARKER + json.dumps({"ok": True, "state": "ok"}) + "\n"
    fake = FakeRun({("worker1", "python3"): (0, ok, "")})
    monkeypatch.setattr(docker, "run", fake)
    jobs.run_helper(ComposeProject(Path("/p"), files=("a.yml",)), two_workers(), {})
    assert fake.calls[-1][:8] == ["docker", "compose", "-f", "a.yml", "exec", "-T", "worker1",
                                  "python3"]  # fmt: skip


def test_run_helper_nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "run", FakeRun({}))
    with pytest.raises(jobs.JobsError, match="could not reach RQ through any worker container"):
        jobs.run_helper(ComposeProject(Path("/p")), two_workers(), {"action": "status"})


def test_run_helper_crash_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    tb = "Traceback (most recent call last):\n  File x\nNameError: name 'x' is not defined\n"
    monkeypatch.setattr(docker, "run", FakeRun({("worker1", "python3"): (1, "", tb)}))
    with pytest.raises(jobs.JobsError) as info:
        jobs.run_helper(ComposeProject(Path("/p")), two_workers(), {"action": "status"})
    assert "NameError" in info.value.message and "\n" not in info.value.message


def test_parse_output_ignores_noise() -> None:
    assert jobs.parse_output("x\n" + rqscript.MARKER + '{"a": 1}\ny\n') == {"a": 1}
    assert jobs.parse_output("no marker") is None
    assert jobs.parse_output(rqscript.MARKER + "{broken") is None


def test_script_is_self_contained() -> None:
    """The helper runs with only the app's rq and redis: nothing from cslaunch, no third-party
    import at module level, and nothing newer than Python 3.8 needs."""
    source = jobs.script_text()
    assert "from cslaunch" not in source and "import cslaunch" not in source
    top_imports = [
        line
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and "__future__" not in line
    ]
    for line in top_imports:
        module = line.split()[1].split(".")[0]
        assert module in sys.stdlib_module_names, line
    ast.parse(source, feature_version=(3, 8))  # best effort: grammar newer than 3.8 fails


# --- rqscript pure helpers ------------------------------------------------------------------


def _exc(name: str, *bases: type[BaseException]) -> BaseException:
    cls = type(name, bases or (Exception,), {})
    return cls("boom")


def test_classify_redis_troubles() -> None:
    conn_error = type("ConnectionError", (Exception,), {})
    assert rqscript.classify(_exc("BusyLoadingError", conn_error))[0] == "loading"
    assert rqscript.classify(_exc("AuthenticationError", conn_error))[0] == "auth"
    assert rqscript.classify(Exception("NOAUTH Authentication required."))[0] == "auth"
    assert rqscript.classify(Exception("WRONGPASS invalid username-password pair"))[0] == "auth"
    assert rqscript.classify(_exc("TimeoutError"))[0] == "unreachable"
    assert rqscript.classify(ConnectionRefusedError("refused"))[0] == "unreachable"
    state, message = rqscript.classify(ValueError("a\nb"))
    assert state == "error" and message == "ValueError: b"


def test_redact_and_times() -> None:
    assert rqscript.redact("redis://:secret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert rqscript.redact("redis://user:pw@h/0") == "redis://user:***@h/0"
    assert rqscript.redact("redis://h/0") == "redis://h/0"
    ts = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc).timestamp()
    assert rqscript.parse_time("2024-01-02T03:04:05.678901Z") == pytest.approx(ts)
    assert rqscript.parse_time(b"2024-01-02T03:04:05Z") == pytest.approx(int(ts))
    assert rqscript.parse_time("1700000000.5") == 1700000000.5
    assert rqscript.parse_time("") is None and rqscript.parse_time("garbage") is None
    assert rqscript.version_tuple("2.4.1rc1") == (2, 4, 1)


def test_bad_request() -> None:
    assert rqscript.run({"action": "nope"})["state"] == "error"


# --- the helper against a real Redis --------------------------------------------------------


def _require(what: str) -> None:
    if os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
        pytest.fail(f"this test must run here, but {what}")
    pytest.skip(what)


@pytest.fixture(scope="module")
def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        _require("redis-server is not installed (apt-get install redis-server)")
    try:
        import redis  # noqa: F401
        import rq  # noqa: F401
    except ImportError:
        _require("rq is not installed in the venv (pip install -e '.[test]')")
    assert found
    return found


class RedisServer:
    def __init__(self, binary: str, directory: Path, *args: str):
        self.port = _free_port()
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(directory), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except Exception as e:
                if "NOAUTH" in str(e) or "Authentication" in type(e).__name__:
                    return
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self, db: int = 0) -> Any:
        from redis import Redis

        return Redis(host="127.0.0.1", port=self.port, db=db)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(redis_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(redis_bin, tmp_path_factory.mktemp("redis"), "--appendonly", "no")
    yield s
    s.stop()


@pytest.fixture
def r(server: RedisServer) -> Any:
    client = server.client()
    client.flushall()  # the test's own throwaway server
    return client


def call(server: RedisServer, action: str, **kw: Any) -> dict[str, Any]:
    result = rqscript.run({"action": action, "url": server.url, "queues": ["default"], **kw})
    assert result["ok"], result
    return result


class Worker:
    """A real `rq worker` process (the venv's), killable like a container stop."""

    def __init__(self, server: RedisServer, *queues: str):
        rq_cli = Path(sys.executable).parent / "rq"
        self.proc = subprocess.Popen(
            [str(rq_cli), "worker", "--url", server.url, *(queues or ("default",))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the work horse dies with it
        )

    def kill(self) -> None:
        """SIGKILL the worker and its work horse, as a container stop does. (The horse runs in
        a session of its own and holds copies of the worker's Redis connections.)"""
        if self.proc.poll() is None:
            for pid in [*_children(self.proc.pid), self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [*_children(child), child]
    return found


@pytest.fixture
def spawn(server: RedisServer) -> Iterator[Any]:
    started: list[Worker] = []

    def make(*queues: str) -> Worker:
        w = Worker(server, *queues)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def queue(r: Any, name: str = "default") -> Any:
    from rq import Queue

    return Queue(name, connection=r)


def status_of(r: Any, job_id: str) -> str:
    return str((r.hget(f"rq:job:{job_id}", "status") or b"").decode())


def wip_ids(r: Any, name: str = "default") -> list[str]:
    return [m.decode().split(":")[0] for m in r.zrange(f"rq:wip:{name}", 0, -1)]


def ghost_started(server: RedisServer, r: Any, count: int, name: str = "ghost") -> list[str]:
    """Jobs a worker registered as started before its connection died (a killed worker,
    without the wait): its registration and heartbeat are fresh, its connection is gone."""
    from redis import Redis
    from rq import Worker as RQWorker

    q = queue(r)
    ids = [q.enqueue("time.sleep", 60).id for _ in range(count)]
    conn = Redis(host="127.0.0.1", port=server.port)
    worker = RQWorker([queue(conn)], connection=conn, name=name)
    worker.register_birth()
    for job_id in ids:
        r.lrem("rq:queue:default", 0, job_id)
        job = queue(conn).fetch_job(job_id)
        if hasattr(worker, "prepare_execution"):  # RQ 2+
            worker.prepare_execution(job)
        worker.prepare_job_execution(job)
    conn.connection_pool.disconnect()
    return ids


def test_killed_worker_job_requeued_at_front(server: RedisServer, r: Any, spawn: Any) -> None:
    q = queue(r)
    slow = q.enqueue("time.sleep", 30)
    worker = spawn()
    wait_for(lambda: status_of(r, slow.id) == "started", what="the job to start")
    waiting = q.enqueue("time.sleep", 0)  # queued behind it
    worker.kill()

    # Redis drops the dead connections on its next event-loop turn, a moment after the kill.
    before = wait_for(
        lambda: (st := call(server, "status"))["started"][0]["orphaned"] and st,
        what="Redis to drop the killed worker's connections",
    )
    [row] = before["started"]
    assert row["id"] == slow.id and row["orphaned"] and not row["worker_alive"]
    assert row["func"] == "time.sleep"
    assert before["liveness"] == "connection"

    result = call(server, "recover")
    [job] = result["jobs"]
    assert (job["id"], job["action"], job["func"], job["queue"]) == (
        slow.id,
        "requeue",
        "time.sleep",
        "default",
    )
    assert "gone" in job["reason"]
    assert [w["name"] for w in result["workers_cleaned"]] == [row["worker"]]
    assert q.get_job_ids() == [slow.id, waiting.id]  # at the front
    assert status_of(r, slow.id) == "queued"
    assert wip_ids(r) == []
    assert r.smembers("rq:workers") == set()
    # A second run finds nothing left to do.
    assert call(server, "recover")["jobs"] == []
    # A new worker takes the recovered job first.
    spawn()
    wait_for(lambda: status_of(r, slow.id) == "started", what="the job to run again")
    assert status_of(r, waiting.id) == "queued"


def test_policy_fail_moves_to_failed_with_reason(server: RedisServer, r: Any) -> None:
    [job_id] = ghost_started(server, r, 1)
    result = call(server, "recover", policy="fail")
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(job_id, "fail")]
    from rq.registry import FailedJobRegistry

    assert job_id in FailedJobRegistry("default", connection=r).get_job_ids()
    assert status_of(r, job_id) == "failed"
    st = call(server, "status")
    [failed] = st["failed"]
    assert failed["id"] == job_id
    assert "interrupted by cslaunch relaunch (worker ghost gone)" in failed["error"]
    assert queue(r).get_job_ids() == []  # not requeued, not deleted
    assert r.exists(f"rq:job:{job_id}")


def test_live_worker_and_its_job_untouched(server: RedisServer, r: Any, spawn: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 30)
    spawn()
    wait_for(lambda: status_of(r, job.id) == "started", what="the job to start")
    members = r.smembers("rq:workers")
    result = call(server, "recover")
    assert result["jobs"] == [] and result["workers_cleaned"] == []
    assert result["live_started"] == 1
    assert status_of(r, job.id) == "started" and wip_ids(r) == [job.id]
    assert r.smembers("rq:workers") == members
    st = call(server, "status")
    assert st["started"][0]["worker_alive"] and not st["started"][0]["orphaned"]
    assert [w["alive"] for w in st["workers"]] == [True]


def test_dry_run_changes_nothing(server: RedisServer, r: Any) -> None:
    ids = ghost_started(server, r, 2)
    snapshot = {k: r.dump(k) for k in r.keys("*")}
    result = call(server, "recover", dry_run=True)
    assert sorted(j["id"] for j in result["jobs"]) == sorted(ids)
    assert {j["action"] for j in result["jobs"]} == {"requeue"}
    assert [w["name"] for w in result["workers_cleaned"]] == ["ghost"]
    # Only our own client name may differ; every key is as it was.
    assert {k: r.dump(k) for k in r.keys("*")} == snapshot


def test_leftover_entries_are_cleared_not_requeued(server: RedisServer, r: Any) -> None:
    finished, missing = ghost_started(server, r, 2)
    r.hset(f"rq:job:{finished}", "status", "finished")  # it ended; the entry stayed (#2289)
    r.delete(f"rq:job:{missing}")
    result = call(server, "recover")
    actions = {j["id"]: j["action"] for j in result["jobs"]}
    assert actions == {finished: "clear", missing: "clear"}
    assert wip_ids(r) == [] and queue(r).get_job_ids() == []
    assert status_of(r, finished) == "finished"


def test_racing_runs_recover_each_job_once(server: RedisServer, r: Any) -> None:
    ids = ghost_started(server, r, 40)
    barrier = threading.Barrier(4)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        return call(server, "recover")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    requeued = [j["id"] for res in results for j in res["jobs"] if j["action"] == "requeue"]
    assert sorted(requeued) == sorted(ids)  # each exactly once across the runs
    on_queue = [j.decode() for j in r.lrange("rq:queue:default", 0, -1)]
    assert sorted(on_queue) == sorted(ids)  # no duplicates on the queue
    assert wip_ids(r) == []


def test_lost_job_requeued_after_grace(server: RedisServer, r: Any) -> None:
    """A worker took the job off the queue and died before registering it as started."""
    q = queue(r)
    lost = q.enqueue("time.sleep", 0)
    other = q.enqueue("time.sleep", 0)
    in_flight = q.enqueue("time.sleep", 0)
    r.lrem("rq:queue:default", 0, lost.id)  # RQ 1: BLPOP
    r.lrem("rq:queue:default", 0, in_flight.id)
    r.rpush("rq:queue:default:intermediate", in_flight.id)  # RQ 2+: BLMOVE

    def finish_in_flight() -> None:
        time.sleep(0.1)  # a live worker picks it up within the grace period
        r.hset(f"rq:job:{in_flight.id}", "status", "started")

    t = threading.Thread(target=finish_in_flight)
    t.start()
    result = call(server, "recover", grace=0.5)
    t.join()
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(lost.id, "requeue")]
    assert q.get_job_ids()[0] == lost.id and other.id in q.get_job_ids()


def test_intermediate_list_job_requeued(server: RedisServer, r: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 0)
    r.lmove("rq:queue:default", "rq:queue:default:intermediate")
    result = call(server, "recover", grace=0.2)
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(job.id, "requeue")]
    assert q.get_job_ids() == [job.id]
    assert r.llen("rq:queue:default:intermediate") == 0


def test_racing_runs_recover_a_lost_job_once(server: RedisServer, r: Any) -> None:
    q = queue(r)
    ids = [q.enqueue("time.sleep", 0).id for _ in range(10)]
    for _ in ids:
        r.lmove("rq:queue:default", "rq:queue:default:intermediate", "LEFT", "RIGHT")
    barrier = threading.Barrier(3)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        return call(server, "recover", grace=0.3)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    requeued = [j["id"] for res in results for j in res["jobs"] if j["action"] == "requeue"]
    assert sorted(requeued) == sorted(ids)
    assert sorted(q.get_job_ids()) == sorted(ids)


def test_config_module_gives_url_and_queues(
    server: RedisServer, r: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rq worker --config settings`: REDIS_URL and QUEUES come from that module."""
    (tmp_path / "rqsettings_cslt.py").write_text(
        f"REDIS_URL = {server.url!r}\nQUEUES = ['emails']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("RQ_REDIS_URL", raising=False)
    result = rqscript.run({"action": "status", "config_module": "rqsettings_cslt"})
    assert result["ok"] and result["redis_url"] == server.url
    assert [q["name"] for q in result["queues"]] == ["emails"]
    svc = model.parse_service("w", {"command": ["rq", "worker", "-c", "rqsettings_cslt"]})
    assert jobs.parse_worker_command(svc.words) == (
        "python3",
        {"config": "rqsettings_cslt"},
        ("default",),
    )


def test_jobs_module_does_not_import_config() -> None:
    """The jobs machinery imports neither cslaunch.config nor cslaunch.model (which imports
    config): RQConfig lives in rqconfig, apart from both, so no cycle can form."""
    rooms = ", ".join(f"cslaunch.jobs.{room}" for room in JOBS_ROOMS)
    code = f"import sys, {rooms}; print(sorted(m for m in sys.modules if 'cslaunch.' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "cslaunch.config" not in out and "cslaunch.model" not in out


def test_package_face_is_lazy_and_complete() -> None:
    """`import cslaunch.jobs` loads no room; each name it offers comes from its room."""
    code = (
        "import sys, cslaunch.jobs as j; print(sorted(m for m in sys.modules if 'jobs.' in m)); "
        "print(all(getattr(j, n).__module__.startswith('cslaunch.jobs.') for n in j.__all__))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
    with pytest.raises(AttributeError):
        _ = jobs.no_such_name  # type: ignore[attr-defined]


def test_run_as_script_subprocess(server: RedisServer, r: Any) -> None:
    """The exact way cslaunch runs it in a container: python -B -c <source> <request>."""
    ids = ghost_started(server, r, 1)
    request = json.dumps({"action": "recover", "url": server.url, "queues": []})
    out = subprocess.run(
        [sys.executable, "-B", "-c", jobs.script_text(), request],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = jobs.parse_output(out.stdout)
    assert doc is not None and doc["ok"], out
    assert [j["id"] for j in doc["jobs"]] == ids


def test_unreachable_auth_and_loading(redis_bin: str, tmp_path: Path, monkeypatch: Any) -> None:
    port = _free_port()
    down = rqscript.run({"action": "status", "url": f"redis://127.0.0.1:{port}/0"})
    assert (down["ok"], down["state"]) == (False, "unreachable")
    assert "\n" not in down["message"]

    locked = RedisServer(redis_bin, tmp_path / "auth", "--requirepass", "s3cret")
    try:
        noauth = rqscript.run({"action": "recover", "url": locked.url})
        assert (noauth["ok"], noauth["state"]) == (False, "auth")
        wrong = rqscript.run({"action": "status", "url": f"redis://:nope@127.0.0.1:{locked.port}"})
        assert wrong["state"] == "auth"
        right = rqscript.run({"action": "ping", "url": f"redis://:s3cret@127.0.0.1:{locked.port}"})
        assert right["ok"] and right["redis_url"] == f"redis://:***@127.0.0.1:{locked.port}"
    finally:
        locked.stop()

    import redis

    def loading(self: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        return {"redis_version": "7.0.0", "loading": 1, "loading_loaded_perc": 42.0}

    monkeypatch.setattr(redis.Redis, "info", loading)
    busy = rqscript.run({"action": "maintain", "url": f"redis://127.0.0.1:{port}/0"})
    assert (busy["ok"], busy["state"]) == (False, "loading")
    assert "42% done" in busy["message"]


# --- measure and maintain ------------------------------------------------------------------


def old_jobs(r: Any, finished: int, failed: int, *, days_ago: float) -> list[str]:
    """Jobs that ran and ended `days_ago` (kept forever: result_ttl=-1)."""
    from rq import SimpleWorker

    q = queue(r)
    ids = [q.enqueue("builtins.len", "abc", result_ttl=-1).id for _ in range(finished)]
    ids += [q.enqueue("builtins.int", "x", failure_ttl=10**8).id for _ in range(failed)]
    SimpleWorker([q], connection=r).work(burst=True)
    ended = (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    for job_id in ids:
        r.hset(f"rq:job:{job_id}", "ended_at", ended)
    return ids


def test_measure_counts_jobs_by_state(server: RedisServer, r: Any) -> None:
    old_jobs(r, 3, 2, days_ago=1)
    queue(r).enqueue("time.sleep", 0)
    m = call(server, "measure")
    assert m["jobs"]["by_status"] == {"failed": 2, "finished": 3, "queued": 1}
    assert m["jobs"]["total"] == 6
    assert m["memory"]["used"] > 0 and m["persistence"]["aof_enabled"] is False
    assert m["keyspace"]["db0"]["keys"] > 6


def test_maintain_purges_only_old_terminal_jobs(server: RedisServer, r: Any) -> None:
    old = old_jobs(r, 30, 10, days_ago=30)
    recent = old_jobs(r, 5, 0, days_ago=0.1)
    queued = [queue(r).enqueue("time.sleep", 0).id for _ in range(3)]
    [started] = ghost_started(server, r, 1)
    # Below every threshold: nothing is purged.
    quiet = call(server, "maintain")
    assert quiet["triggers"] == [] and quiet["actions"]["purge"] is None
    # The stale worker registration goes anyway.
    assert [w["name"] for w in quiet["actions"]["workers_cleaned"]] == ["ghost"]

    dry = call(server, "maintain", max_job_keys=10, dry_run=True)
    assert dry["triggers"] and dry["actions"]["purge"]["candidates"] == 40
    assert all(r.exists(f"rq:job:{j}") for j in old)

    done = call(server, "maintain", max_job_keys=10)
    assert done["actions"]["purge"]["deleted"] == 40
    assert done["actions"]["purge"]["by_status"] == {"failed": 10, "finished": 30}
    assert not any(r.exists(f"rq:job:{j}") for j in old)
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    assert sorted(FinishedJobRegistry("default", connection=r).get_job_ids()) == sorted(recent)
    assert FailedJobRegistry("default", connection=r).get_job_ids() == []
    assert queue(r).get_job_ids() == queued
    assert status_of(r, started) == "started"
    assert done["before"]["jobs"]["total"] == 49 and done["after"]["jobs"]["total"] == 9


def test_maintain_rewrites_a_grown_aof(redis_bin: str, tmp_path: Path) -> None:
    s = RedisServer(redis_bin, tmp_path / "aof", "--appendonly", "yes")
    try:
        r = s.client()
        old_jobs(r, 200, 0, days_ago=30)
        for i in range(300):  # churn: the AOF grows, the data does not
            r.set("scratch", "x" * 1000 + str(i))
        r.delete("scratch")
        before = rqscript.run({"action": "measure", "url": s.url})["persistence"]
        assert before["aof_current_size"] > 2 * before["aof_base_size"]
        result = rqscript.run(
            {"action": "maintain", "url": s.url, "aof_min_mb": 0.01, "max_job_keys": 100}
        )
        assert result["ok"], result
        aof = result["actions"]["aof_rewrite"]
        assert aof["done"] is True
        assert aof["after"] < aof["before"]
        assert result["after"]["jobs"]["total"] == 0
    finally:
        s.stop()


def test_cache_clearing_is_opt_in_and_exact(server: RedisServer, r: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 0)
    r.set("citation_cache:1", "a")
    r.set("citation_cache:2", "b")
    r.set("sessions:1", "keep")
    other = server.client(db=2)
    other.set("anything", "x")
    other.set("more", "y")
    nothing = call(server, "maintain")
    assert nothing["actions"]["cache"] is None and r.exists("citation_cache:1")

    caches = {"cache_patterns": ["citation_cache:*"], "cache_dbs": [2, 0]}
    dry = call(server, "maintain", dry_run=True, **caches)
    assert dry["actions"]["cache"]["deleted"] == 4 and r.exists("citation_cache:1")
    done = call(server, "maintain", **caches)
    assert done["actions"]["cache"]["patterns"] == {"citation_cache:*": 2}
    assert done["actions"]["cache"]["dbs"] == {"2": 2}
    assert any("db 0 is the RQ database" in n for n in done["notes"])
    assert r.get("sessions:1") == b"keep" and not r.exists("citation_cache:1")
    assert other.dbsize() == 0
    assert q.get_job_ids() == [job.id]


# --- host-side API with the helper run in-process --------------------------------------------


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker compose exec replaced by running the helper right here."""

    def fake_run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        request = json.loads(kw["input"])  # on stdin: the URL may hold a password
        result = rqscript.run(request)
        return subprocess.CompletedProcess(argv, 0, rqscript.MARKER + json.dumps(result), "")

    monkeypatch.setattr(docker, "run", fake_run)


def setup_for(server: RedisServer, config: RQConfig | None = None) -> RQSetup:
    worker = RQWorkerService("worker", server.url, "command", ("default",), "python3")
    return RQSetup(workers=(worker,), redis_service="redis", config=config or RQConfig())


def test_api_recover_status_render(
    server: RedisServer, r: Any, in_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ComposeProject(Path("."))
    ids = ghost_started(server, r, 2)
    setup = setup_for(server)

    st = jobs.status(project, setup)
    assert st.ok and [s.orphaned for s in st.started] == [True, True]
    assert st.queues[0].name == "default" and st.queues[0].started == 2
    jobs.render_status(UI(), st)
    assert "INTERRUPTED" in capsys.readouterr().out

    dry = jobs.recover(project, setup, dry_run=True)
    assert dry.count("requeue") == 2 and jobs.recovery_summary(dry).startswith("would requeue 2")
    report = jobs.recover(project, setup)
    assert sorted(j.id for j in report.jobs) == sorted(ids)
    assert report.to_json()["jobs"][0]["action"] == "requeue"
    assert jobs.recovery_summary(report) == (
        "requeued 2 interrupted jobs; removed 1 dead worker registration of ghost (process gone)"
    )
    jobs.render_recovery(UI(), report)
    assert "requeued at the front of its queue" in capsys.readouterr().out
    json.dumps(report.to_json())
    json.dumps(st.to_json())


def test_api_policy_from_config(server: RedisServer, r: Any, in_process: None) -> None:
    ghost_started(server, r, 1)
    report = jobs.recover(ComposeProject(Path(".")), setup_for(server, RQConfig(policy="fail")))
    assert report.policy == "fail" and report.count("fail") == 1


def test_api_redis_down_is_a_warning(in_process: None) -> None:
    setup = RQSetup(
        (RQWorkerService("w", f"redis://127.0.0.1:{_free_port()}/0", "command", (), "python3"),),
        None,
    )
    report = jobs.recover(ComposeProject(Path(".")), setup)
    assert not report.ok and report.state == "unreachable" and report.warning
    assert jobs.recovery_summary(report).startswith("skipped: Redis is unreachable")
    health = redis_maint.measure(ComposeProject(Path(".")), setup)
    assert not health.ok and health.state == "unreachable"
    result = redis_maint.maintain(ComposeProject(Path(".")), setup)
    assert not result.ok and result.warning


def test_api_measure_and_maintain(
    server: RedisServer, r: Any, in_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    old_jobs(r, 12, 3, days_ago=30)
    project = ComposeProject(Path("."))
    setup = setup_for(server, RQConfig(max_job_keys=10, cache_patterns=("c:*",)))
    r.set("c:1", "x")
    health = redis_maint.measure(project, setup)
    assert health.ok and health.job_keys == 15 and health.jobs_by_status["finished"] == 12
    redis_maint.render_health(UI(), health)
    result = redis_maint.maintain(project, setup)
    assert result.ok and result.purged == 15 and result.cache_deleted == 1
    assert result.before and result.after and result.after.job_keys == 0
    redis_maint.render_maintenance(UI(), result)
    out = capsys.readouterr().out
    assert "Purged 15 old jobs" in out and "RQ jobs 15 -> 0" in out
    json.dumps(result.to_json())


def test_workers_only_clears_dead_registrations_and_leaves_their_jobs(
    server: RedisServer, r: Any, in_process: None
) -> None:
    """Before workers restart: the registration a dead worker of a fixed name leaves is
    removed (its successor could not start), its jobs wait for the new workers."""
    project = ComposeProject(Path("."))
    setup = setup_for(server)
    ids = ghost_started(server, r, 1, name="w1")
    before = jobs.recover(project, setup, workers_only=True)
    assert [w.name for w in before.workers_cleaned] == ["w1"] and before.jobs == []
    assert status_of(r, ids[0]) == "started"  # left for the recovery after the restart
    after = jobs.recover(project, setup)
    assert [(j.id, j.action) for j in after.jobs] == [(ids[0], "requeue")]
