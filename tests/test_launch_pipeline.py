"""The launch pipeline without an engine: the step list, the loop, each step's `applies`,
and the verdict, against a fake run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cslaunch import model
from cslaunch.bytecode import CleanResult
from cslaunch.config import Config
from cslaunch.docker import ComposeProject
from cslaunch.launch import before, checks, pipeline, prove, ready, restart
from cslaunch.launch.run import LaunchStep, Run
from cslaunch.plan import LEAVE, RESTART, START, Plan, ServicePlan
from cslaunch.project import Project
from cslaunch.stack import LaunchOptions
from cslaunch.ui import UI, StepResult
from cslaunch.wait import FAILED, Readiness

STACK = {
    "name": "shop",
    "services": {
        "web": {"image": "shop-web", "build": {"context": "."}, "command": ["python", "app.py"]},
        "redis": {"image": "redis:7"},
    },
}


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    project = Project(ComposeProject(tmp_path), Config(), tmp_path)
    with ThreadPoolExecutor(1) as pool:
        r = Run(project, LaunchOptions(), UI(quiet=True), pool)
        stack = model.parse_stack(STACK)
        r.found = _Found(stack)  # type: ignore[assignment]
        r.plan = Plan(True, (ServicePlan("web", LEAVE, False, ""),), ())
        yield r


class _Found:
    """What the steps read of a detected stack, without Compose."""

    def __init__(self, stack: model.Stack) -> None:
        self.stack = stack
        self.raw: dict[str, Any] = STACK
        self.containers: dict[str, list[Any]] = {}
        self.python = frozenset({"web"})
        self.project = SimpleNamespace(config=Config())


def test_the_steps_are_listed_in_the_documented_order() -> None:
    names = [s.name for s in pipeline.STEPS]
    assert names == [
        "detect",
        "changes",
        "frontend build",
        "bytecode",
        "pull",
        "build",
        "workers",
        "dead workers",
        "restart",
        "wait",
        "reload proxies",
        "recover jobs",
        "redis",
        "verify",
        "repair",
    ]


def test_the_loop_runs_what_applies_and_records_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done: list[str] = []

    def act(name: str) -> Any:
        def step(run: Run, st: StepResult) -> None:
            done.append(name)
            st.summary = f"{name} done"

        return step

    steps = (
        LaunchStep("one", act("one")),
        LaunchStep("skipped", act("skipped"), lambda r: False),
        LaunchStep("three", act("three"), title=lambda r: "third"),
    )
    monkeypatch.setattr(pipeline, "STEPS", steps)
    monkeypatch.setattr(pipeline, "finish", lambda run: run.report)
    project = Project(ComposeProject(tmp_path), Config(), tmp_path)
    report = pipeline.launch(project, LaunchOptions(), UI(quiet=True))
    assert done == ["one", "three"]
    assert [(s.name, s.summary) for s in report.steps] == [
        ("one", "one done"),
        ("third", "three done"),
    ]


def test_a_failing_step_ends_the_launch_and_is_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(run: Run, st: StepResult) -> None:
        raise RuntimeError("no")

    def never(run: Run, st: StepResult) -> None:
        raise AssertionError("a step after a failure ran")

    monkeypatch.setattr(pipeline, "STEPS", (LaunchStep("boom", boom), LaunchStep("x", never)))
    project = Project(ComposeProject(tmp_path), Config(), tmp_path)
    with pytest.raises(RuntimeError):
        pipeline.launch(project, LaunchOptions(), UI(quiet=True))


def test_restart_applies_only_when_the_plan_changes_containers(run: Run) -> None:
    assert not restart.changes_containers(run)
    run.plan = Plan(True, (ServicePlan("web", RESTART, False, "changed"),), ())
    assert restart.changes_containers(run)
    run.running = False
    assert restart.start_or_restart(run) == "start"
    run.running = True
    assert restart.start_or_restart(run) == "restart"


def test_pull_applies_to_missing_images_no_service_builds(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.plan = Plan(
        False, (ServicePlan("web", START, True, ""), ServicePlan("redis", START, False, "")), ()
    )
    assert before.to_pull(run) == {"redis": "redis:7"}  # web builds its own
    monkeypatch.setattr("cslaunch.docker.existing_images", lambda names: set(names))
    assert not before.pull_due(run)
    monkeypatch.setattr("cslaunch.docker.existing_images", lambda names: set())
    assert before.pull_due(run)


def test_pull_respects_pull_policy_never(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    run.found.raw = {"services": {"redis": {"pull_policy": "never"}}}  # type: ignore[misc]
    run.plan = Plan(False, (ServicePlan("redis", START, False, ""),), ())
    assert before.to_pull(run) == {}


def test_the_proof_is_collected_only_when_started_and_nothing_failed(run: Run) -> None:
    assert not prove.proving(run)
    run.proving = run.pool.submit(lambda: None)  # type: ignore[arg-type,return-value]
    assert prove.proving(run)
    run.failed = [Readiness("web", FAILED, "exited with code 1")]
    assert not prove.proving(run)


def test_redis_is_not_maintained_after_a_failure_or_without_rq(run: Run) -> None:
    assert run.rq is None  # no worker command, no config: no RQ
    assert not ready.redis_due(run)


def test_proxies_are_not_reloaded_after_a_failure(run: Run) -> None:
    run.failed = [Readiness("web", FAILED, "exited")]
    assert not ready.proxies_due(run)


def test_a_failed_launch_keeps_the_index(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[object] = []
    monkeypatch.setattr("cslaunch.index.save", lambda root, idx: saved.append(idx))
    run.failed = [Readiness("web", FAILED, "exited with code 1")]
    report = pipeline.finish(run)
    assert not report.ok and report.error == "web: exited with code 1"
    assert saved == []


def test_newer_saves_skip_the_waiting_steps_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done: list[str] = []

    def act(name: str) -> Any:
        return lambda run, st: done.append(name)

    def changes(run: Run, st: StepResult) -> None:
        run.changes = object()  # type: ignore[assignment]

    steps = (
        LaunchStep("changes", changes),
        LaunchStep("restart", act("restart")),
        LaunchStep("recover jobs", act("recover jobs")),
        LaunchStep("verify", act("verify"), waits=True),
    )
    monkeypatch.setattr(pipeline, "STEPS", steps)
    monkeypatch.setattr(pipeline, "finish", lambda run: run)
    project = Project(ComposeProject(tmp_path), Config(), tmp_path)
    run = pipeline.launch(project, LaunchOptions(), UI(quiet=True), newer_saves=lambda cs: True)
    assert done == ["restart", "recover jobs"]  # jobs cut short are still recovered
    assert run.ended_early  # type: ignore[attr-defined]


def test_a_launch_ended_early_moves_no_index(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[object] = []
    monkeypatch.setattr("cslaunch.index.save", lambda root, idx: saved.append(idx))
    monkeypatch.setattr("cslaunch.proof.save", lambda root, p: saved.append(p))
    run.ended_early = True
    report = pipeline.finish(run)
    assert report.ended_early and not report.ok and report.error is None
    assert saved == []
    assert report.to_json()["ended_early"] is True


def test_a_recovery_a_launch_was_told_to_run_stays_owed_until_one_is_started(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No RQ setup found (workers held back have no registration), or ended before its
    wait: the debt is passed on, never dropped."""
    from dataclasses import replace

    monkeypatch.setattr(pipeline, "write_json", lambda *a: None)
    run.ended_early = True
    run.options = replace(run.options, recover_jobs=True)
    assert pipeline.finish(run).recovery_owed
    run.report.recovery_owed = False
    run.recovering = object()  # type: ignore[assignment]
    assert not pipeline.finish(run).recovery_owed


def test_the_head_start_waits_only_for_services_that_can_say_they_answer(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = {
        "web": {"image": "w", "healthcheck": {"test": ["CMD", "true"], "interval": "30s"}},
        "plain": {"image": "p", "command": ["python", "serve.py"]},
    }
    run.found = _Found(model.parse_stack({"name": "shop", "services": services}))  # type: ignore[assignment]
    waited: list[list[str]] = []

    def wait_ready(project: Any, found: list[model.Service], **kwargs: Any) -> None:
        waited.append([s.name for s in found])

    monkeypatch.setattr(checks, "wait_ready", wait_ready)
    monkeypatch.setattr(checks, "project_containers", lambda compose: [])
    checks.head_start(run)(["plain", "web"])
    checks.head_start(run)(["plain"])  # nothing to tell when it answers: no wait at all
    assert waited == [["web"]]


def test_while_typing_the_head_start_waits_for_a_pause_in_the_saves(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saves still coming in: the workers wait for a pause after the web server answers,
    ended at once by a newer save."""
    from dataclasses import replace

    monkeypatch.setattr(checks, "TYPING_PAUSE_S", 0.3)
    run.options = replace(run.options, typing=True)
    started = time.monotonic()
    checks.head_start(run)(["web"])  # nothing to wait for but the pause
    assert time.monotonic() - started >= 0.3

    saves = {"newer": False}
    run.newer_saves = lambda cs: saves["newer"]
    run.changes = object()  # type: ignore[assignment]
    monkeypatch.setattr(checks, "TYPING_PAUSE_S", 30.0)
    threading.Timer(0.2, lambda: saves.update(newer=True)).start()
    started = time.monotonic()
    checks.head_start(run)(["web"])
    assert time.monotonic() - started < 5 and run.ended_early


def test_a_recovery_newer_saves_overtook_is_left_to_the_next_launch(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It is not waited for (the next launch restarts the workers it execs into), and the
    next launch recovers jobs whatever it restarts."""
    from concurrent.futures import Future
    from dataclasses import replace

    from cslaunch import jobs

    pending: Future[Any] = Future()
    run.recovering = pending
    run.ended_early = True
    with run.ui.step("recover jobs") as st:
        ready.recover(run, st)
    assert run.report.recovery_owed and "next launch" in st.summary
    # One that could not reach RQ (its workers held back stopped) is owed too.
    failed: Future[Any] = Future()
    failed.set_result(
        jobs.RecoveryReport(policy="requeue", dry_run=False, ok=False, state="unreachable")
    )
    run.recovering, run.report.recovery_owed = failed, False
    with run.ui.step("recover jobs") as st:
        ready.recover(run, st)
    assert run.report.recovery_owed

    submitted: list[Any] = []
    monkeypatch.setattr(run.pool, "submit", lambda *a: submitted.append(a))
    monkeypatch.setattr(Run, "rq", property(lambda self: SimpleNamespace(worker_services=("w",))))
    run.recovering, run.report.recovery_owed = None, False
    run.options = replace(run.options, recover_jobs=True)
    ready._recover_meanwhile(run)  # already ended early: not even started, owed
    assert submitted == [] and run.report.recovery_owed
    run.ended_early, run.report.recovery_owed = False, False
    run.options = replace(run.options, recover_jobs=False)
    ready._recover_meanwhile(run)  # nothing cut short, no dead workers: nothing to do
    assert submitted == []
    run.options = replace(run.options, recover_jobs=True)
    ready._recover_meanwhile(run)
    assert submitted and submitted[0][0] is jobs.recover


def test_a_no_op_proof_takes_the_bytecode_its_walk_found(run: Run, tmp_path: Path) -> None:
    root = tmp_path / "src"
    mine, theirs = str(root / "__pycache__" / "a.pyc"), str(tmp_path / "web" / "b.pyc")
    run.found.roots = SimpleNamespace(roots=(root,))  # type: ignore[attr-defined]
    run.changes = SimpleNamespace(
        walked=True,
        scan=SimpleNamespace(bytecode=[mine, theirs], tops=[], unreadable=[], started_ns=1),
    )  # type: ignore[assignment]
    root.mkdir()
    run.report.bytecode = CleanResult(roots=[root])
    assert prove._listed(run) is None  # a walk that began elsewhere: not known to enter it
    run.changes.scan.tops = [str(tmp_path)]  # type: ignore[attr-defined]
    listed = prove._listed(run)
    assert listed is not None and (listed.bytecode, listed.tops) == ([mine], [str(root)])
    run.report.bytecode = CleanResult(roots=[root], files=1)  # removed since: list again
    assert prove._listed(run) is None
    run.report.bytecode = CleanResult(roots=[root])
    run.changes.walked = False  # type: ignore[misc]  # watch asked only the saved files
    assert prove._listed(run) is None


def test_anonymous_volumes_are_renewed_only_when_the_image_says_what_it_declares(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image the engine did not show (another name, an inspect that failed) may declare
    a VOLUME holding data: nothing is renewed (`--renew-anon-volumes` renews them all)."""
    from cslaunch import docker
    from cslaunch.plan import REBUILD

    web = {
        **STACK["services"]["web"],  # type: ignore[index]
        "volumes": [
            {"type": "bind", "source": "/p", "target": "/app"},
            {"type": "volume", "target": "/app/node_modules"},
        ],
    }
    found = _Found(model.parse_stack({"name": "shop", "services": {"web": web}}))
    found.containers = {"web": [SimpleNamespace(running=True)]}
    run.found = found  # type: ignore[assignment]
    run.plan = Plan(True, (ServicePlan("web", REBUILD, True, ""),), ("web",))
    shown: dict[str, dict[str, Any]] = {}
    monkeypatch.setattr(docker, "image_configs", lambda names: shown)
    assert restart.renewed(run) == []
    shown["shop-web"] = {"Volumes": None}
    assert restart.renewed(run) == ["web"]
    shown["shop-web"] = {"Volumes": {"/app/media": {}}}
    assert restart.renewed(run) == []
