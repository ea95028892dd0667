"""stop.sigterm_caught (the SigCgt mask of /proc/PID/status) and stop.decide."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from cslaunch.config import ServiceConfig
from cslaunch.model import Service, parse_service
from cslaunch.stop import DEFAULT_GRACE, decide, sigterm_caught

PROC_SELF = Path("/proc/self/status")
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


@pytest.mark.parametrize("caught", [True, False, None])
def test_configured_kill(caught: bool | None) -> None:
    method = decide(service(init=True), ServiceConfig(stop="kill", grace=30), caught)
    assert (method.kind, method.grace) == ("kill", 0.0)
    assert "configured" in method.reason


@pytest.mark.parametrize("caught", [True, False, None])
def test_configured_graceful(caught: bool | None) -> None:
    method = decide(service(stop_grace_period="20s"), ServiceConfig(stop="graceful"), caught)
    assert (method.kind, method.grace) == ("graceful", 20.0)
    assert "configured" in method.reason


def test_init_forwards_sigterm() -> None:
    method = decide(service(init=True), ServiceConfig(), False)
    assert (method.kind, method.grace) == ("graceful", DEFAULT_GRACE)
    assert "init" in method.reason


def test_unknown_is_graceful() -> None:
    method = decide(service(), ServiceConfig(), None)
    assert (method.kind, method.grace) == ("graceful", DEFAULT_GRACE)
    assert "unknown" in method.reason


def test_caught_is_graceful_with_config_grace() -> None:
    method = decide(service(stop_grace_period="1m"), ServiceConfig(grace=3), True)
    assert (method.kind, method.grace) == ("graceful", 3.0)


def test_caught_is_graceful_with_service_stop_grace() -> None:
    method = decide(service(stop_grace_period="1m30s"), ServiceConfig(), True)
    assert (method.kind, method.grace) == ("graceful", 90.0)


def test_caught_is_graceful_with_default_grace() -> None:
    method = decide(service(), ServiceConfig(), True)
    assert (method.kind, method.grace) == ("graceful", 10.0)
    assert "handles SIGTERM" in method.reason


def test_config_grace_zero_is_kept() -> None:
    assert decide(service(stop_grace_period="30s"), ServiceConfig(grace=0), True).grace == 0.0


def test_not_caught_is_kill() -> None:
    method = decide(service(stop_grace_period="30s"), ServiceConfig(grace=5), False)
    assert (method.kind, method.grace) == ("kill", 0.0)
    assert "ignores SIGTERM" in method.reason


def test_service_stop_grace_zero_is_kept() -> None:
    s = service(stop_grace_period="0s")
    assert s.stop_grace == 0.0
    assert decide(s, ServiceConfig(), True).grace == 0.0


# --- act.restart: each container on its own, or Compose when restarts depend on each other


def _restart_calls(
    monkeypatch: pytest.MonkeyPatch, compose: dict[str, Any], methods: dict[str, str]
) -> list[list[str]]:
    from datetime import datetime, timezone

    from cslaunch import act, docker
    from cslaunch.containers import Container
    from cslaunch.model import parse_stack
    from cslaunch.stop import StopMethod

    calls: list[list[str]] = []
    monkeypatch.setenv("CSLAUNCH_DOCKER_API", "0")  # the CLI's argv is what this records

    def record(argv: list[str], **kwargs: Any) -> None:
        calls.append(list(argv))

    monkeypatch.setattr(docker, "step", record)
    now = datetime.now(timezone.utc)
    stack = parse_stack({"name": "p", "services": compose})
    containers = {
        name: [Container(f"id-{name}", name, name, "running", None, "", 0, 0, now, now, "i", 1)]
        for name in compose
    }
    how = {n: StopMethod(k, 0.0 if k == "kill" else 7.0, "test") for n, k in methods.items()}
    act.restart(docker.ComposeProject(Path(".")), stack, containers, how)
    return calls


def test_independent_restarts_go_straight_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = {"redis": {}, "web": {"depends_on": {"redis": {}}}, "worker": {}}
    calls = _restart_calls(monkeypatch, compose, {"web": "kill", "worker": "graceful"})
    assert sorted(calls) == [
        ["docker", "kill", "id-web"],
        ["docker", "start", "id-web"],
        ["docker", "start", "id-worker"],
        ["docker", "stop", "-t", "7", "id-worker"],
    ]
    assert calls.index(["docker", "kill", "id-web"]) < calls.index(["docker", "start", "id-web"])


def test_restarts_that_depend_on_each_other_are_started_by_compose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compose = {"web": {}, "front": {"depends_on": {"web": {"condition": "service_healthy"}}}}
    calls = _restart_calls(monkeypatch, compose, {"web": "kill", "front": "graceful"})
    stops, start = calls[:-1], calls[-1]
    assert sorted(stops) == [
        ["docker", "kill", "id-web"],
        ["docker", "stop", "-t", "7", "id-front"],
    ]
    assert start[-3:] == ["start", "web", "front"] and start[:2] == ["docker", "compose"]
