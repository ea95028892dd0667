"""RQ workers found from what runs (jobs.discover) and their readiness (jobs.LiveWorkers),
both in cslaunch.jobs.workers, with the helper's answer faked at the run_helper boundary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch import jobs, model
from cslaunch.containers import Container
from cslaunch.docker import ComposeProject
from cslaunch.jobs import workers
from cslaunch.rqconfig import RQConfig

NOW = datetime.now(timezone.utc)
PASSWORD_URL = "redis://:s3cret@redis:6379/0"

# CaseStrainer's production shape: workers started by a script under sh -c, no `rq worker`
# on any command line; the backend enqueues.
RAW: dict[str, Any] = {
    "name": "prod",
    "services": {
        "redis": {"image": "redis:7", "command": ["redis-server", "--requirepass", "x"]},
        "backend": {
            "build": {"context": "."},
            "command": ["waitress-serve", "--port=5000", "src.app:app"],
            "environment": {"REDIS_URL": PASSWORD_URL},
        },
        **{
            name: {
                "build": {"context": "."},
                "command": ["sh", "-c", "python wait-for-redis.py && python src/rq_worker.py"],
                "environment": {"REDIS_URL": PASSWORD_URL, "RQ_QUEUE_NAME": "casestrainer"},
            }
            for name in ("rqworker", "rqworker2", "rqworker3")
        },
        "nginx": {"image": "nginx", "depends_on": {"backend": {}}},
    },
}
STACK = model.parse_stack(RAW)
PYTHON = frozenset({"backend", "rqworker", "rqworker2", "rqworker3"})


def container(service: str, hostname: str, *, started: datetime = NOW) -> Container:
    return Container(
        f"id-{service}", service, service, "running", None, "", 0, 0, started, started, "i", 1,
        hostname=hostname,
    )  # fmt: skip


CONTAINERS = {
    name: [container(name, f"host-{name}")]
    for name in ("redis", "backend", "rqworker", "rqworker2", "rqworker3", "nginx")
}


def registration(hostname: str, *, state: str = "idle", job: str = "", alive: bool = True,
                 birth: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "name": f"w-{hostname}",
        "hostname": hostname,
        "pid": "7",
        "state": state,
        "queues": ["casestrainer"],
        "current_job": job,
        "alive": alive,
        "birth": birth if birth is not None else NOW.timestamp(),
    }


@dataclass
class FakeHelper:
    answer: list[dict[str, Any]] = field(default_factory=list)  # the registrations it reports
    calls: list[list[str]] = field(default_factory=list)  # the services offered, each call


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> FakeHelper:
    fake = FakeHelper()

    def run_helper(project: Any, services: Any, request: Any, **kw: Any) -> dict[str, Any]:
        assert request == {"action": "workers"}
        fake.calls.append([w.service for w in services])
        return {"ok": True, "workers": list(fake.answer), "service": services[0].service}

    monkeypatch.setattr(workers, "run_helper", run_helper)
    return fake


def discover(containers: dict[str, list[Container]] = CONTAINERS) -> jobs.Discovered:
    return jobs.discover(ComposeProject(Path(".")), STACK, RQConfig(), RAW, PYTHON, containers)


def test_command_lines_alone_find_no_worker() -> None:
    assert jobs.find_rq(STACK, RQConfig(), RAW) is None


def test_workers_are_the_containers_that_hold_live_registrations(
    helper: FakeHelper,
) -> None:
    helper.answer += [
        registration("host-rqworker"),
        registration("host-rqworker2", state="busy", job="job-7"),
        registration("host-rqworker3"),
        registration("host-gone", alive=False),  # a dead worker of a removed container
    ]
    found = discover()
    assert found.setup is not None
    assert found.setup.worker_services == ("rqworker", "rqworker2", "rqworker3")
    assert found.setup.redis_service == "redis"
    # Their Redis, password included, from the services' own environment.
    assert {w.redis_url for w in found.setup.workers} == {PASSWORD_URL}
    assert found.setup.queues == ("casestrainer",)
    assert found.busy == {"id-rqworker2": "job-7"}
    # The helper ran where it could: the backend, a Python service that names a Redis.
    assert helper.calls[0][0] == "backend"


def test_no_registration_no_worker(helper: FakeHelper) -> None:
    assert discover().setup is None


def test_redis_unreadable_keeps_the_command_line_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **kw: Any) -> dict[str, Any]:
        return {"ok": False, "state": "auth", "message": "NOAUTH Authentication required."}

    monkeypatch.setattr(workers, "run_helper", refuse)
    found = discover()
    assert found.setup is None and "NOAUTH" in found.problem


def test_host_network_hostnames_are_not_asked(helper: FakeHelper) -> None:
    # Every container has the host's hostname: a registration cannot name its container.
    shared = {name: [container(name, "the-host")] for name in CONTAINERS}
    helper.answer.append(registration("the-host", state="busy", job="j"))
    found = discover(shared)
    assert found.setup is None and found.busy == {}
    assert helper.calls == []


# --- LiveWorkers: a worker container is ready once it holds a fresh, live registration --


def live(monkeypatch: pytest.MonkeyPatch, containers: list[Container]) -> jobs.LiveWorkers:
    monkeypatch.setattr(workers, "project_containers", lambda project: containers)
    helpers = jobs.helper_services(STACK, RQConfig(), RAW, PYTHON)
    return jobs.LiveWorkers(ComposeProject(Path(".")), helpers, ("rqworker", "rqworker2"))


def test_ready_once_a_registration_born_after_the_start_is_alive(
    monkeypatch: pytest.MonkeyPatch, helper: FakeHelper
) -> None:
    restarted = container("rqworker", "host-rqworker", started=NOW)
    watch = live(monkeypatch, [restarted, container("backend", "host-backend")])
    # The registration of the worker that ran before the restart does not count.
    helper.answer.append(
        registration("host-rqworker", birth=(NOW - timedelta(minutes=5)).timestamp())
    )
    assert watch.probe(restarted) == "no live RQ worker registration yet"
    helper.answer.append(registration("host-rqworker", birth=NOW.timestamp() + 0.5))
    watch.read_at = 0.0  # the next probe reads Redis again
    assert watch.probe(restarted) is None


def test_one_read_serves_every_container_asking_at_once(
    monkeypatch: pytest.MonkeyPatch, helper: FakeHelper
) -> None:
    a = container("rqworker", "host-a")
    b = container("rqworker2", "host-b")
    watch = live(monkeypatch, [a, b])
    helper.answer += [registration("host-a"), registration("host-b")]
    assert watch.probe(a) is None and watch.probe(b) is None
    assert len(helper.calls) == 1


def test_shared_hostnames_need_one_registration_each(
    monkeypatch: pytest.MonkeyPatch, helper: FakeHelper
) -> None:
    a, b = container("rqworker", "the-host"), container("rqworker2", "the-host")
    watch = live(monkeypatch, [a, b])
    helper.answer.append(registration("the-host"))
    assert watch.probe(a) is not None
    helper.answer.append(registration("the-host"))
    watch.read_at = 0.0
    assert watch.probe(a) is None


def test_cannot_read_redis_is_not_the_workers_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **kw: Any) -> dict[str, Any]:
        return {"ok": False, "state": "auth", "message": "NOAUTH"}

    monkeypatch.setattr(workers, "run_helper", refuse)
    c = container("rqworker", "host-a")
    assert live(monkeypatch, [c]).probe(c) is None


def test_no_running_helper_container_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    c = container("rqworker", "host-a")
    stopped = [Container("x", "x", "backend", "exited", None, "", 0, 0, None, None, "i", 0)]
    assert live(monkeypatch, stopped).probe(c) == "reading RQ's workers"


def test_registrations_are_read_at_most_every_quarter_second(
    monkeypatch: pytest.MonkeyPatch, helper: FakeHelper
) -> None:
    c = container("rqworker", "host-a")
    watch = live(monkeypatch, [c])
    for _ in range(5):
        watch.probe(c)
    assert len(helper.calls) == 1
    time.sleep(0.3)
    watch.probe(c)
    assert len(helper.calls) == 2


def test_shared_hostnames_started_apart(
    monkeypatch: pytest.MonkeyPatch, helper: FakeHelper
) -> None:
    # worker1 ran all along; worker2 was just recreated (an environment change).
    old = container("rqworker", "the-host", started=NOW - timedelta(minutes=10))
    new = container("rqworker2", "the-host", started=NOW)
    watch = live(monkeypatch, [old, new])
    helper.answer.append(registration("the-host", birth=(NOW - timedelta(minutes=9)).timestamp()))
    assert watch.probe(new) is not None  # only worker1's registration: worker2 not yet
    assert watch.probe(old) is not None  # two containers since worker1 started, one registered
    helper.answer.append(registration("the-host", birth=NOW.timestamp() + 0.5))
    watch.read_at = 0.0
    assert watch.probe(new) is None and watch.probe(old) is None


def test_no_registration_in_a_guessed_redis_is_unknown_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read in the stack's Redis service by name (the workers' settings named none), the
    workers' registrations may live in another database: past a grace, a missing one counts
    as unknown, not as a worker that never came up (the launch failed at its time limit)."""

    def guessed(*a: Any, **kw: Any) -> dict[str, Any]:
        return {"ok": True, "workers": [], "guessed": True, "service": "rqworker"}

    monkeypatch.setattr(workers, "run_helper", guessed)
    fresh = container("rqworker", "host-a", started=datetime.now(timezone.utc))
    assert live(monkeypatch, [fresh]).probe(fresh) == "no live RQ worker registration yet"
    old = container("rqworker", "host-a", started=NOW - timedelta(minutes=1))
    assert live(monkeypatch, [old]).probe(old) is None
