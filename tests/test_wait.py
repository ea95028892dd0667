"""wait.assess: readiness of one service from hand-made container state."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cslaunch.containers import Container
from cslaunch.model import Service, parse_service
from cslaunch.wait import CRASH_LOOP_RESTARTS, FAILED, READY, STABLE_SECONDS, WAITING, assess

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
CHECK = {"test": ["CMD", "curl", "-f", "http://localhost/health"]}


def service(*, healthcheck: bool = False) -> Service:
    fields: dict[str, Any] = {"image": "app"}
    if healthcheck:
        fields["healthcheck"] = CHECK
    return parse_service("web", fields)


def container(
    status: str = "running", *, up: float = 60.0, cid: str = "c1", **fields: Any
) -> Container:
    base = Container(
        id=cid,
        name=f"proj-web-{cid}",
        service="web",
        status=status,
        health=None,
        health_output="",
        exit_code=0,
        restart_count=0,
        started_at=NOW - timedelta(seconds=up),
        created=NOW - timedelta(seconds=up + 1),
        image_id="sha256:abc",
        pid=1234,
    )
    return dataclasses.replace(base, **fields)


def test_healthy_is_ready() -> None:
    verdict = assess(service(healthcheck=True), [container(health="healthy")], NOW)
    assert (verdict.service, verdict.state, verdict.reason) == ("web", READY, "healthy")
    assert verdict.done


def test_health_starting_is_waiting() -> None:
    verdict = assess(service(healthcheck=True), [container(health="starting", up=300)], NOW)
    assert verdict.state == WAITING
    assert not verdict.done
    assert "starting" in verdict.reason


def test_unhealthy_fails_with_last_line_of_the_check_output() -> None:
    output = "  % Total    % Received\ncurl: (7) Failed to connect to localhost port 80"
    c = container(health="unhealthy", health_output=output)
    verdict = assess(service(healthcheck=True), [c], NOW)
    assert verdict.state == FAILED
    assert verdict.reason == "unhealthy: curl: (7) Failed to connect to localhost port 80"


def test_unhealthy_without_output() -> None:
    verdict = assess(service(healthcheck=True), [container(health="unhealthy")], NOW)
    assert verdict.state == FAILED
    assert verdict.reason == "unhealthy: healthcheck failing"


def test_no_healthcheck_stable_is_ready() -> None:
    verdict = assess(service(), [container(up=STABLE_SECONDS)], NOW)
    assert (verdict.state, verdict.reason) == (READY, "running")


def test_no_healthcheck_just_started_is_waiting() -> None:
    verdict = assess(service(), [container(up=STABLE_SECONDS - 0.5)], NOW)
    assert verdict.state == WAITING


def test_running_without_start_time_is_waiting() -> None:
    verdict = assess(service(), [container(started_at=None)], NOW)
    assert verdict.state == WAITING


def test_exited_with_error_fails() -> None:
    verdict = assess(service(), [container("exited", exit_code=1)], NOW)
    assert (verdict.state, verdict.reason) == (FAILED, "exited with code 1")


def test_dead_container_fails() -> None:
    verdict = assess(service(), [container("dead", exit_code=137)], NOW)
    assert (verdict.state, verdict.reason) == (FAILED, "exited with code 137")


def test_one_shot_exit_zero_is_ready() -> None:
    verdict = assess(service(), [container("exited", exit_code=0)], NOW)
    assert verdict.state == READY
    assert "exit 0" in verdict.reason


def test_exit_zero_of_a_service_with_healthcheck_fails() -> None:
    # A server that is meant to stay up and answer its healthcheck must not just finish.
    verdict = assess(service(healthcheck=True), [container("exited", exit_code=0)], NOW)
    assert (verdict.state, verdict.reason) == (FAILED, "exited with code 0")


@pytest.mark.parametrize("status", ["running", "restarting"])
def test_crash_looping_fails(status: str) -> None:
    c = container(status, restart_count=5 + CRASH_LOOP_RESTARTS, exit_code=1)
    verdict = assess(service(), [c], NOW, restarts_before=5)
    assert verdict.state == FAILED
    assert verdict.reason == f"crash-looping (restarted {CRASH_LOOP_RESTARTS}x, last exit code 1)"


def test_restarts_before_the_launch_do_not_count() -> None:
    c = container(restart_count=7)
    assert assess(service(), [c], NOW, restarts_before=7).state == READY
    assert assess(service(), [c], NOW, restarts_before=0).state == FAILED


def test_restarting_once_is_waiting() -> None:
    c = container("restarting", restart_count=1, exit_code=1)
    verdict = assess(service(), [c], NOW)
    assert verdict.state == WAITING
    assert verdict.reason == "restarting (exit code 1)"


@pytest.mark.parametrize("status", ["created", "paused", "removing"])
def test_other_states_are_waiting(status: str) -> None:
    verdict = assess(service(), [container(status)], NOW)
    assert (verdict.state, verdict.reason) == (WAITING, status)


def test_no_containers_is_waiting() -> None:
    verdict = assess(service(), [], NOW)
    assert (verdict.state, verdict.reason) == (WAITING, "no container yet")


def test_one_failed_replica_fails_the_service() -> None:
    good = container(cid="a", health="healthy")
    bad = container("exited", cid="b", exit_code=2)
    for replicas in ([good, bad], [bad, good]):
        verdict = assess(service(healthcheck=True), replicas, NOW)
        assert (verdict.state, verdict.reason) == (FAILED, "exited with code 2")


def test_one_waiting_replica_keeps_the_service_waiting() -> None:
    replicas = [container(cid="a", health="healthy"), container(cid="b", health="starting")]
    assert assess(service(healthcheck=True), replicas, NOW).state == WAITING


def test_failed_wins_over_waiting() -> None:
    replicas = [container(cid="a", health="starting"), container(cid="b", health="unhealthy")]
    assert assess(service(healthcheck=True), replicas, NOW).state == FAILED


def test_all_replicas_ready() -> None:
    replicas = [container(cid=c, health="healthy") for c in "abc"]
    assert assess(service(healthcheck=True), replicas, NOW).state == READY


# --- wait_ready with checks: the service's own signal, not Docker's schedule ----------------


def _wait(
    monkeypatch: pytest.MonkeyPatch,
    services: list[Service],
    containers: list[Container],
    checks: dict[str, Any],
    timeout: float = 5.0,
) -> tuple[list[Any], float]:
    import time
    from pathlib import Path

    from cslaunch import wait
    from cslaunch.docker import ComposeProject

    monkeypatch.setattr(wait, "project_containers", lambda project: containers)
    start = time.monotonic()
    verdicts = wait.wait_ready(ComposeProject(Path(".")), services, timeout=timeout, checks=checks)
    return verdicts, time.monotonic() - start


def _named(name: str, **fields: Any) -> Service:
    return parse_service(name, {"image": "app", **fields})


def test_a_passing_healthcheck_run_now_beats_dockers_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cslaunch.wait import Checks

    answers = iter(["healthcheck: exit 7", "healthcheck: exit 7", None])
    # Docker's own check has not run yet (interval 30 s): "starting" for the whole test.
    c = container(health="starting", up=0.2, started_at=datetime.now(timezone.utc))
    checks = {"web": Checks(ready=lambda c: next(answers), passed="healthy")}
    verdicts, took = _wait(monkeypatch, [service(healthcheck=True)], [c], checks)
    assert [(v.state, v.reason) for v in verdicts] == [(READY, "healthy")]
    assert took < 2.0  # three tries at 0.1-0.25 s apart


def test_a_slow_check_does_not_hold_up_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from cslaunch.wait import Checks

    def slow(c: Container) -> str | None:
        time.sleep(3)
        return None

    web = container(health="starting", started_at=datetime.now(timezone.utc))
    api = dataclasses.replace(web, id="c2", service="api")
    checks = {"web": Checks(ready=slow), "api": Checks(ready=lambda c: "not yet")}
    verdicts, took = _wait(
        monkeypatch, [service(healthcheck=True), _named("api")], [web, api], checks, timeout=1.0
    )
    assert took < 2.0  # the 3 s check was not waited for, not even at the end
    assert {v.service: v.state for v in verdicts} == {"web": FAILED, "api": FAILED}
    assert "not yet" in next(v.reason for v in verdicts if v.service == "api")


def test_a_worker_is_not_ready_by_the_stable_window_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from cslaunch.wait import Checks

    worker = _named("worker")
    c = dataclasses.replace(container(up=60.0), service="worker")  # long past the window
    checks = {"worker": Checks(ready=lambda c: "no live RQ worker registration yet")}
    verdicts, _ = _wait(monkeypatch, [worker], [c], checks, timeout=0.5)
    assert verdicts[0].state == FAILED
    assert "registration" in verdicts[0].reason
    assert "--timeout" in verdicts[0].reason  # where the limit is raised


def test_dockers_unhealthy_fails_even_while_the_check_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cslaunch.wait import Checks

    c = container(health="unhealthy", health_output="boom")
    checks = {"web": Checks(ready=lambda c: "not yet")}
    verdicts, took = _wait(monkeypatch, [service(healthcheck=True)], [c], checks)
    assert (verdicts[0].state, verdicts[0].reason) == (FAILED, "unhealthy: boom")
    assert took < 1.0


def test_restarts_the_initial_containers_show_are_before_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from cslaunch import wait
    from cslaunch.docker import ComposeProject

    c = container(restart_count=7)
    monkeypatch.setattr(wait, "project_containers", lambda project: [c])
    project, web = ComposeProject(Path(".")), service()
    seen = wait.wait_ready(project, [web], timeout=5, initial={web.name: [c]})
    assert seen[0].state == READY
    # Without a first look the wait has no baseline: 7 restarts are a crash loop.
    assert wait.wait_ready(project, [web], timeout=5)[0].state == FAILED


def _one_shot() -> Service:
    return dataclasses.replace(service(healthcheck=True), one_shot=True)


def test_a_one_shot_is_ready_when_it_completed_not_while_it_runs() -> None:
    """`condition: service_completed_successfully`: its dependents wait for exit 0, however
    long it has been running, whatever its healthcheck says."""
    assert assess(_one_shot(), [container("running", up=600)], NOW).state == WAITING
    assert assess(_one_shot(), [container("running", health="healthy")], NOW).state == WAITING
    done = assess(_one_shot(), [container("exited", exit_code=0)], NOW)
    assert (done.state, done.reason) == (READY, "completed (exit 0)")
    failed = assess(_one_shot(), [container("exited", exit_code=3)], NOW)
    assert (failed.state, failed.reason) == (FAILED, "exited with code 3")
