"""The SigCgt mask of /proc/PID/status (procs), stop.decide and act's restarts."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cslaunch import procs
from cslaunch.config import ServiceConfig
from cslaunch.model import Service, parse_service
from cslaunch.procs import Process
from cslaunch.stop import DEFAULT_GRACE, HANG_LOOK_EVERY, decide

PROC_SELF = Path("/proc/self/status")


def sigterm_caught(status_text: str) -> bool | None:
    mask = procs.caught_mask(procs.parse_status(status_text))
    return None if mask is None else bool(mask & (1 << 14))


SIGTERM_BIT = 0x4000  # 1 << (15 - 1)


def status_text(sigcgt: str) -> str:
    return (
        "Name:\tgunicorn\nState:\tS (sleeping)\nPid:\t1\n"
        "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\n"
        f"SigCgt:\t{sigcgt}\nCapInh:\t0000000000000000\n"
    )


# --- sigterm_caught ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "caught"),
    [
        ("0000000000004000", True),  # only SIGTERM
        ("0000000180004a02", True),  # a typical Python server: SIGINT, SIGTERM, ...
        ("ffffffffffffffff", True),
        ("0000000000000000", False),
        ("0000000180000a02", False),  # SIGINT etc. but not SIGTERM (bash-like)
        ("0000000000008000", False),  # signal 16, the neighbour bit
        ("0000000000002000", False),  # signal 14 (SIGALRM)
    ],
)
def test_crafted_masks(mask: str, caught: bool) -> None:
    assert sigterm_caught(status_text(mask)) is caught


def test_mask_without_leading_zeros() -> None:
    assert sigterm_caught("SigCgt:\t4000\n") is True
    assert sigterm_caught("SigCgt:\t0\n") is False


def test_missing_sigcgt_line_is_unknown() -> None:
    text = status_text("0000000000004000").replace("SigCgt:", "SigXyz:")
    assert sigterm_caught(text) is None
    assert sigterm_caught("") is None


@pytest.mark.skipif(not PROC_SELF.is_file(), reason="needs Linux /proc")
def test_real_proc_status_follows_the_sigterm_handler() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        caught_with_handler = sigterm_caught(PROC_SELF.read_text())
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        caught_by_default = sigterm_caught(PROC_SELF.read_text())
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        caught_when_ignored = sigterm_caught(PROC_SELF.read_text())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert caught_with_handler is True
    assert caught_by_default is False
    assert caught_when_ignored is False


# --- decide ------------------------------------------------------------------------------


def service(**fields: Any) -> Service:
    return parse_service("worker", {"image": "app", **fields})


TERM, INT = 1 << 14, 1 << 1  # SigCgt bits of SIGTERM and SIGINT


def tree(*rows: tuple[int, int, str, int]) -> list[Process]:
    """Processes from (pid, ppid, name, SigCgt mask) rows."""
    return [Process(pid, ppid, name, mask) for pid, ppid, name, mask in rows]


CATCHES = tree((1, 0, "gunicorn", TERM))
IGNORES = tree((1, 0, "python3", 0))
# sh -c "python wait-for-redis.py && python src/rq_worker.py": dash stays PID 1.
WRAPPED = tree((1, 0, "sh", 0), (7, 1, "python", TERM), (9, 7, "python", 0))


@pytest.mark.parametrize("seen", [CATCHES, IGNORES, WRAPPED, None])
def test_configured_kill(seen: list[Process] | None) -> None:
    method = decide(service(init=True), ServiceConfig(stop="kill", grace=30), seen)
    assert (method.kind, method.grace) == ("kill", 0.0)
    assert "configured" in method.reason


@pytest.mark.parametrize("seen", [CATCHES, IGNORES, None])
def test_configured_graceful(seen: list[Process] | None) -> None:
    method = decide(service(stop_grace_period="20s"), ServiceConfig(stop="graceful"), seen)
    assert (method.kind, method.grace) == ("graceful", 20.0)


def test_configured_graceful_still_reaches_the_process_under_a_shell() -> None:
    method = decide(service(stop_grace_period="20s"), ServiceConfig(stop="graceful"), WRAPPED)
    assert (method.kind, method.grace) == ("forward", 20.0)


def test_init_forwards_sigterm() -> None:
    method = decide(service(init=True), ServiceConfig(), IGNORES)
    assert (method.kind, method.grace) == ("graceful", DEFAULT_GRACE)
    assert "init" in method.reason


def test_unknown_is_graceful() -> None:
    method = decide(service(), ServiceConfig(), None)
    assert (method.kind, method.grace) == ("graceful", DEFAULT_GRACE)
    assert "unknown" in method.reason


def test_caught_is_graceful_with_config_grace() -> None:
    method = decide(service(stop_grace_period="1m"), ServiceConfig(grace=3), CATCHES)
    assert (method.kind, method.grace) == ("graceful", 3.0)


def test_caught_is_graceful_with_service_stop_grace() -> None:
    method = decide(service(stop_grace_period="1m30s"), ServiceConfig(), CATCHES)
    assert (method.kind, method.grace) == ("graceful", 90.0)


def test_caught_is_graceful_with_default_grace() -> None:
    method = decide(service(), ServiceConfig(), CATCHES)
    assert (method.kind, method.grace) == ("graceful", 10.0)
    assert "handles SIGTERM" in method.reason


def test_config_grace_zero_is_kept() -> None:
    assert decide(service(stop_grace_period="30s"), ServiceConfig(grace=0), CATCHES).grace == 0.0


def test_not_caught_is_kill() -> None:
    method = decide(service(stop_grace_period="30s"), ServiceConfig(grace=5), IGNORES)
    assert (method.kind, method.grace) == ("kill", 0.0)
    assert "ignores SIGTERM" in method.reason


def test_service_stop_grace_zero_is_kept() -> None:
    s = service(stop_grace_period="0s")
    assert s.stop_grace == 0.0
    assert decide(s, ServiceConfig(), CATCHES).grace == 0.0


def test_a_shell_pid1_forwards_to_the_worker_under_it() -> None:
    method = decide(service(stop_grace_period="30s"), ServiceConfig(), WRAPPED)
    assert (method.kind, method.grace) == ("forward", 30.0)
    # The worker, not its work horse below it: the worker tells its horse.
    assert [p.pid for p in method.targets] == [7]
    assert "sh (PID 1) ignores SIGTERM" in method.reason


def test_a_shell_with_nothing_handling_the_signal_is_killed() -> None:
    seen = tree((1, 0, "sh", 0), (7, 1, "waitress-serve", 0))
    assert decide(service(), ServiceConfig(), seen).kind == "kill"


def test_stop_signal_is_the_signal_checked() -> None:
    # stop_signal: SIGINT and an app that handles SIGINT only: Compose stops it at once.
    seen = tree((1, 0, "python", INT))
    method = decide(service(stop_signal="SIGINT"), ServiceConfig(), seen)
    assert (method.kind, method.signal) == ("graceful", 2)
    assert "handles SIGINT" in method.reason
    assert decide(service(), ServiceConfig(), seen).kind == "kill"  # SIGTERM: ignored


def test_a_busy_worker_is_interrupted_under_requeue_and_waited_for_under_fail() -> None:
    s = service(stop_grace_period="30s")
    method = decide(s, ServiceConfig(), WRAPPED, busy="job-1", policy="requeue")
    assert method.kind == "kill" and "job-1" in method.reason
    method = decide(s, ServiceConfig(), WRAPPED, busy="job-1", policy="fail")
    assert (method.kind, method.grace) == ("forward", 30.0)
    method = decide(s, ServiceConfig(stop="graceful"), CATCHES, busy="job-1")
    assert method.kind == "graceful"


# --- procs: the process tree ------------------------------------------------------------


LISTING = """@1
Name:	sh
Pid:	1
PPid:	0
SigCgt:	0000000000010002
@7
Name:	python
Pid:	7
PPid:	1
SigCgt:	0000000180004002
@9
Name:	python
Pid:	9
PPid:	7
SigCgt:	0000000000000000
@12
"""


def test_parse_listing_reads_each_status_block() -> None:
    found = procs.parse_listing(LISTING)
    assert [(p.pid, p.ppid, p.name) for p in found] == [
        (1, 0, "sh"),
        (7, 1, "python"),
        (9, 7, "python"),
    ]
    assert not found[0].catches(15) and found[1].catches(15) and found[1].catches(2)
    assert [p.pid for p in procs.handlers(found, 15)] == [7]


def test_handlers_look_through_nested_shells() -> None:
    seen = tree(
        (1, 0, "sh", 0), (5, 1, "bash", 0), (8, 5, "gunicorn", TERM), (9, 8, "gunicorn", TERM)
    )
    assert [p.pid for p in procs.handlers(seen, 15)] == [8]


def test_named_finds_the_nginx_master_not_its_workers() -> None:
    seen = tree(
        (1, 0, "sh", 0), (8, 1, "nginx", TERM), (9, 8, "nginx", TERM), (10, 8, "nginx", TERM)
    )
    assert [p.pid for p in procs.named(seen, "nginx")] == [8]


@pytest.mark.parametrize(
    ("name", "number"),
    [(None, 15), ("SIGINT", 2), ("INT", 2), ("sigquit", 3), ("9", 9), ("SIGNOPE", 15)],
)
def test_signal_number(name: str | None, number: int) -> None:
    assert procs.signal_number(name) == number


@pytest.mark.skipif(not PROC_SELF.is_file(), reason="needs Linux /proc")
def test_host_proc_tree_of_a_real_process(tmp_path: Path) -> None:
    """The host-side reader on a real tree: a shell that ignores SIGTERM, a Python child
    that handles it. (A container's cgroup check is skipped with a fake container id
    found in our own cgroup file.)"""
    import subprocess
    import sys
    import time

    from cslaunch.containers import Container

    child = (
        "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
        "time.sleep(30)"
    )
    shell = subprocess.Popen(["sh", "-c", f"true && {sys.executable} -c '{child}'"])
    try:
        cgroup = Path(f"/proc/{shell.pid}/cgroup").read_text().strip().split("/")[-1] or "/"
        fake = Container(cgroup, "c", "s", "running", None, "", 0, 0, None, None, "i", shell.pid)
        deadline = time.monotonic() + 10
        found: list[Process] | None = None
        targets: list[Process] = []
        while not targets and time.monotonic() < deadline:  # until the child's handler is set
            time.sleep(0.05)
            found = procs.processes(fake)
            targets = procs.handlers(found or [], 15)
        assert found is not None and found[0].host_pid == shell.pid
        assert [p.name for p in targets] == [Path(sys.executable).name[:15]]
        procs.deliver(fake, targets, 15)
        assert shell.wait(timeout=10) == 0  # the child exited 0 on SIGTERM, so did sh
    finally:
        shell.kill()


# --- act.restart: each container on its own, or Compose when restarts depend on each other


def _restart_calls(
    monkeypatch: pytest.MonkeyPatch,
    compose: dict[str, Any],
    methods: dict[str, str],
    background: tuple[str, ...] = (),
    head_start: Callable[[Sequence[str]], None] | None = None,
    calls: list[list[str]] | None = None,
    hold: Callable[[], bool] | None = None,
    done: list[Any] | None = None,
) -> list[list[str]]:
    from datetime import datetime, timezone

    from cslaunch import act, docker
    from cslaunch.containers import Container
    from cslaunch.model import parse_stack
    from cslaunch.stop import StopMethod

    calls = [] if calls is None else calls
    monkeypatch.setenv("CSLAUNCH_DOCKER_API", "0")  # the CLI's argv is what this records

    def record(argv: list[str], **kwargs: Any) -> None:
        calls.append(list(argv))

    monkeypatch.setattr(docker, "step", record)
    now = datetime.now(timezone.utc)
    stack = parse_stack({"name": "p", "services": compose})
    status = {n: "exited" if k == "held" else "running" for n, k in methods.items()}
    containers = {
        name: [
            Container(
                f"id-{name}", name, name, status.get(name, "running"), None, "", 0, 0, now, now,
                "i", 1,
            )
        ]
        for name in compose
    }  # fmt: skip
    how = {
        n: [act.Stop(containers[n][0], StopMethod(k, 0.0 if k == "kill" else 7.0, "test"))]
        for n, k in methods.items()
    }
    restarted = act.restart(
        stack,
        how,
        lambda names: calls.append(["ready", *names]),
        background=background,
        head_start=head_start or (lambda names: calls.append(["head start", *names])),
        hold=hold,
    )
    if done is not None:
        done.append(restarted)
    return calls


def test_independent_restarts_go_straight_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    compose: dict[str, Any] = {"redis": {}, "web": {"depends_on": {"redis": {}}}, "worker": {}}
    calls = _restart_calls(monkeypatch, compose, {"web": "kill", "worker": "graceful"})
    assert sorted(calls) == [
        ["docker", "kill", "id-web"],
        ["docker", "start", "id-web"],
        ["docker", "start", "id-worker"],
        ["docker", "stop", "-t", "7", "id-worker"],
    ]
    assert calls.index(["docker", "kill", "id-web"]) < calls.index(["docker", "start", "id-web"])


def test_workers_stop_with_the_web_server_and_start_once_it_had_its_head_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compose: dict[str, Any] = {"web": {}, "worker": {}, "worker2": {}}
    methods = {"web": "kill", "worker": "graceful", "worker2": "graceful"}
    calls = _restart_calls(monkeypatch, compose, methods, background=("worker", "worker2"))
    head = calls.index(["head start", "web"])
    # Stopped at once, so that no old worker takes a job the new web server queues...
    assert calls.index(["docker", "kill", "id-web"]) < head
    # ...started once the web server is up, so that their start-up does not slow its own.
    for worker in ("id-worker", "id-worker2"):
        assert calls.index(["docker", "stop", "-t", "7", worker]) < calls.index(
            ["docker", "start", worker]
        )
        assert calls.index(["docker", "start", worker]) > head
    assert calls.index(["docker", "start", "id-web"]) < head


def test_workers_are_held_back_stopped_when_newer_saves_came_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compose: dict[str, Any] = {"web": {}, "worker": {}, "worker2": {}}
    methods = {"web": "kill", "worker": "graceful", "worker2": "graceful"}
    done: list[Any] = []
    calls = _restart_calls(
        monkeypatch, compose, methods, ("worker", "worker2"), hold=lambda: True, done=done
    )
    # Stopped all the same (no old worker takes a job), but not started: the next launch
    # starts them once its own web server answers.
    assert ["docker", "stop", "-t", "7", "id-worker"] in calls
    assert ["docker", "start", "id-worker"] not in calls
    assert ["docker", "start", "id-worker2"] not in calls
    assert ["docker", "start", "id-web"] in calls
    assert sorted(c.id for c in done[0].held) == ["id-worker", "id-worker2"]


def test_workers_start_when_no_newer_save_came_in(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[Any] = []
    calls = _restart_calls(
        monkeypatch,
        {"web": {}, "worker": {}},
        {"web": "kill", "worker": "graceful"},
        ("worker",),
        hold=lambda: False,
        done=done,
    )
    assert ["docker", "start", "id-worker"] in calls
    assert done[0].held == []


def test_held_back_workers_are_only_started_after_the_head_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done: list[Any] = []
    calls = _restart_calls(
        monkeypatch,
        {"web": {}, "worker": {}},
        {"web": "kill", "worker": "held"},
        ("worker",),
        hold=lambda: False,
        done=done,
    )
    worker = [c for c in calls if "id-worker" in c]
    assert worker == [["docker", "start", "id-worker"]]  # stopped already: no stop, no kill
    assert calls.index(worker[0]) > calls.index(["head start", "web"])
    assert done[0].killed == {"web"}  # a held worker was stopped by the last launch


def test_stop_plan_only_starts_a_held_back_container(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timezone

    from cslaunch import act, procs
    from cslaunch.config import Config
    from cslaunch.containers import Container
    from cslaunch.model import parse_stack
    from cslaunch.stop import HELD

    def no_look(c: Container) -> None:
        raise AssertionError("a stopped container has no processes to read")

    monkeypatch.setattr(procs, "processes", no_look)
    now = datetime.now(timezone.utc)
    held = Container("id-w", "w", "w", "exited", None, "", 0, 0, now, now, "i", 1)
    other = Container("id-o", "o", "o", "exited", None, "", 0, 0, now, now, "i", 1)
    stack = parse_stack({"name": "p", "services": {"w": {}, "o": {}}})
    plan = act.stop_plan(stack, Config(), {"w": [held], "o": [other]}, ["w", "o"], held={"id-w"})
    assert [s.method.kind for s in plan["w"]] == [HELD]
    assert plan["o"] == []  # stopped, not held back: left to `up` (the plan starts it)
    assert act.stop(plan["w"][0]) is False


def test_workers_alone_restart_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _restart_calls(monkeypatch, {"worker": {}}, {"worker": "graceful"}, ("worker",))
    assert calls == [["docker", "stop", "-t", "7", "id-worker"], ["docker", "start", "id-worker"]]


def test_workers_start_again_when_the_head_start_is_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(names: Sequence[str]) -> None:
        raise KeyboardInterrupt

    calls: list[list[str]] = []
    with pytest.raises(KeyboardInterrupt):
        _restart_calls(
            monkeypatch,
            {"web": {}, "worker": {}},
            {"web": "kill", "worker": "graceful"},
            ("worker",),
            interrupted,
            calls,
        )
    assert ["docker", "start", "id-worker"] in calls


def test_restarts_that_depend_on_each_other_start_in_order_after_the_awaited_are_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compose = {"web": {}, "front": {"depends_on": {"web": {"condition": "service_healthy"}}}}
    calls = _restart_calls(monkeypatch, compose, {"web": "kill", "front": "graceful"})
    stops, rest = calls[:2], calls[2:]
    assert sorted(stops) == [
        ["docker", "kill", "id-web"],
        ["docker", "stop", "-t", "7", "id-front"],
    ]
    # Not `docker compose start`, which would wait for Docker's first healthcheck of web,
    # one whole interval after its start: web starts, cslaunch's own checks see it ready,
    # then front starts.
    assert rest == [
        ["docker", "start", "id-web"],
        ["ready", "web"],
        ["docker", "start", "id-front"],
    ]


def test_start_order_and_what_is_awaited() -> None:
    from cslaunch import act
    from cslaunch.model import parse_stack

    stack = parse_stack(
        {
            "services": {
                "redis": {},
                "migrate": {"depends_on": {"redis": {"condition": "service_healthy"}}},
                "web": {
                    "depends_on": {
                        "migrate": {"condition": "service_completed_successfully"},
                        "redis": {"condition": "service_started"},
                    }
                },
                "nginx": {"depends_on": {"web": {"condition": "service_healthy"}}},
                "docs": {},
            }
        }
    )
    assert act.start_order(stack, stack.names()) == [
        ["docs", "redis"],
        ["migrate"],
        ["web"],
        ["nginx"],
    ]
    assert act.awaited(stack, ["docs", "redis"]) == ["redis"]
    assert act.awaited(stack, ["web", "migrate"]) == ["migrate", "web"]
    assert act.awaited(stack, ["nginx"]) == []


def test_an_rq_worker_gets_a_few_seconds_to_end_on_its_own_under_requeue() -> None:
    s = service(stop_grace_period="30s")
    # A job taken since Redis was read (or where Redis cannot tell): not waited for 30 s.
    method = decide(s, ServiceConfig(), WRAPPED, worker=True)
    assert (method.kind, method.grace) == ("forward", 3.0)
    assert decide(s, ServiceConfig(), CATCHES, worker=True).grace == 3.0
    # Jobs that must not run twice, or a grace the user set for cslaunch: the full grace.
    assert decide(s, ServiceConfig(), WRAPPED, worker=True, policy="fail").grace == 30.0
    assert decide(s, ServiceConfig(grace=20), CATCHES, worker=True).grace == 20.0
    assert decide(s, ServiceConfig(), CATCHES).grace == 30.0  # not a worker


def test_an_rq_worker_under_requeue_is_watched_for_a_hang_while_it_stops() -> None:
    s = service(stop_grace_period="30s")
    assert decide(s, ServiceConfig(), CATCHES, worker=True).look_every == HANG_LOOK_EVERY
    assert decide(s, ServiceConfig(), WRAPPED, worker=True).look_every == HANG_LOOK_EVERY
    # Not for what is not an RQ worker, nor where its job must finish or the user said how.
    assert decide(s, ServiceConfig(), CATCHES).look_every is None
    assert decide(s, ServiceConfig(), CATCHES, worker=True, policy="fail").look_every is None
    assert decide(s, ServiceConfig(grace=20), CATCHES, worker=True).look_every is None
    assert decide(s, ServiceConfig(stop="graceful"), CATCHES, worker=True).look_every is None


def _stop_minding_a_hang(
    monkeypatch: pytest.MonkeyPatch, kind: str, stop_takes: float, last_words: str
) -> list[str]:
    import time
    from datetime import datetime, timezone

    from cslaunch import act, docker
    from cslaunch.containers import Container
    from cslaunch.stop import StopMethod

    calls: list[str] = []

    def stop(ids: list[str], grace: float) -> None:
        calls.append(f"stop {grace}")
        end = time.monotonic() + stop_takes
        while time.monotonic() < end and "kill" not in calls:
            time.sleep(0.01)

    def logs(cid: str, *, since: datetime | None = None) -> list[str]:
        calls.append(f"logs since {since is not None}")
        return ["12:00:01 Worker w: warm shut down requested", last_words]

    monkeypatch.setattr(docker, "stop", stop)
    monkeypatch.setattr(docker, "last_log_lines", logs)
    monkeypatch.setattr(docker, "kill", lambda ids: calls.append("kill"))
    monkeypatch.setattr(docker, "signal", lambda cid, sig: calls.append(f"signal {sig}"))
    monkeypatch.setattr(docker, "inspect", lambda ids: [{"State": {"ExitCode": 0}}])
    monkeypatch.setattr(procs, "deliver", lambda c, targets, sig: calls.append(f"deliver {sig}"))
    now = datetime.now(timezone.utc)
    c = Container("id-w", "w", "w", "running", None, "", 0, 0, now, now, "i", 1)
    targets = tuple(p for p in WRAPPED if p.pid == 7)
    method = StopMethod(kind, 3.0, "test", signal.SIGTERM, targets, look_every=0.05)
    act.stop(act.Stop(c, method))
    return calls


def test_a_worker_hung_in_its_teardown_is_killed_during_docker_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    term = int(signal.SIGTERM)
    hung = "12:00:01 Worker w: unsubscribing from channel rq:pubsub:w"
    # Stopped within the first look's delay: `docker stop` alone, as for any container.
    assert _stop_minding_a_hang(monkeypatch, "graceful", 0, hung) == ["stop 3.0"]
    # Still stopping, its last words those of its teardown: killed.
    calls = _stop_minding_a_hang(monkeypatch, "graceful", 1, hung)
    assert calls == ["stop 3.0", "logs since True", "kill"]
    calls = _stop_minding_a_hang(monkeypatch, "forward", 1, hung)
    assert calls == [f"signal {term}", f"deliver {term}", "stop 3.0", "logs since True", "kill"]
    # Still stopping, finishing a job (or its logs say nothing): looked at again and again,
    # never killed by cslaunch; `docker stop` ends it at the end of its grace.
    busy = "12:00:01 default: app.tasks.slow(5) (job-1)"
    calls = _stop_minding_a_hang(monkeypatch, "graceful", 0.3, busy)
    assert calls[0] == "stop 3.0" and "kill" not in calls
    assert calls.count("logs since True") >= 2


def test_workers_that_may_hang_are_stopped_by_cslaunch_before_compose_recreates_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime, timezone

    from cslaunch import act
    from cslaunch.containers import Container
    from cslaunch.stop import StopMethod

    now = datetime.now(timezone.utc)
    c = Container("id-w", "w", "w", "running", None, "", 0, 0, now, now, "i", 1)
    worker = act.Stop(c, StopMethod("graceful", 3.0, "t", look_every=HANG_LOOK_EVERY))
    server = act.Stop(c, StopMethod("graceful", 10.0, "t"))
    stopped: list[act.Stop] = []

    def each(action: Callable[[act.Stop], object], stops: Sequence[act.Stop]) -> set[str]:
        stopped.extend(stops)
        return set()

    monkeypatch.setattr(act, "_each", each)
    act.stop_ahead({"worker": [worker], "web": [server]})
    assert stopped == [worker]
