"""Readiness: decide from container state whether each service is ready, still starting, or
has failed, and poll until every service is decided or the deadline passes.

`assess` is pure; `wait_ready` is the polling loop around docker inspect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cslaunch import docker
from cslaunch.containers import Container, by_service, project_containers
from cslaunch.model import Service
from cslaunch.probes import Probe

READY, WAITING, FAILED = "ready", "waiting", "failed"

# A service without a healthcheck counts as ready once it has stayed up this long: a process
# that dies on import (a SyntaxError) is gone well within it.
STABLE_SECONDS = 1.5
# Restarts by a restart policy after which a service counts as crash-looping.
CRASH_LOOP_RESTARTS = 2
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Readiness:
    service: str
    state: str  # ready / waiting / failed
    reason: str

    @property
    def done(self) -> bool:
        return self.state != WAITING


def assess(
    service: Service,
    containers: Sequence[Container],
    now: datetime,
    restarts_before: int = 0,
) -> Readiness:
    """One service's readiness from its containers' state (all replicas must be ready)."""
    name = service.name
    if not containers:
        return Readiness(name, WAITING, "no container yet")
    verdicts = [_assess_one(service, c, now, restarts_before) for c in containers]
    for verdict in verdicts:
        if verdict.state == FAILED:
            return verdict
    for verdict in verdicts:
        if verdict.state == WAITING:
            return verdict
    return verdicts[0]


def _assess_one(service: Service, c: Container, now: datetime, restarts_before: int) -> Readiness:
    name = service.name
    restarted = c.restart_count - restarts_before
    if c.status in ("exited", "dead"):
        if c.exit_code == 0 and service.healthcheck is None:
            # A one-shot service (migrations, a build step) that finished is done, not broken.
            return Readiness(name, READY, "completed (exit 0)")
        return Readiness(name, FAILED, f"exited with code {c.exit_code}")
    if restarted >= CRASH_LOOP_RESTARTS:
        return Readiness(
            name, FAILED, f"crash-looping (restarted {restarted}x, last exit code {c.exit_code})"
        )
    if c.status == "restarting":
        return Readiness(name, WAITING, f"restarting (exit code {c.exit_code})")
    if c.status != "running":
        return Readiness(name, WAITING, c.status)
    if c.health == "healthy":
        return Readiness(name, READY, "healthy")
    if c.health == "unhealthy":
        why = c.health_output.splitlines()[-1] if c.health_output else "healthcheck failing"
        return Readiness(name, FAILED, f"unhealthy: {why}")
    if c.health == "starting":
        return Readiness(name, WAITING, "health: starting")
    up_for = (now - c.started_at).total_seconds() if c.started_at else 0.0
    if up_for >= STABLE_SECONDS:
        return Readiness(name, READY, "running")
    return Readiness(name, WAITING, "starting")


def wait_ready(
    project: docker.ComposeProject,
    services: Sequence[Service],
    *,
    timeout: float,
    restarts_before: dict[str, int] | None = None,
    probes: Mapping[str, Probe] | None = None,
    initial: Mapping[str, Sequence[Container]] | None = None,
    on_progress: Callable[[list[Readiness], float], None] | None = None,
) -> list[Readiness]:
    """Poll until every service is ready, one fails, or `timeout` seconds pass.

    Returns the last assessment of every service; the caller decides what failure means.
    A service that failed ends the wait at once: its logs matter more than the others'.
    """
    restarts_before = restarts_before or {}
    probes = probes or {}
    passed: set[str] = set()  # services whose probe answered once: not asked again
    start = time.monotonic()
    while True:
        containers = initial if initial is not None else by_service(project_containers(project))
        initial = None
        now = datetime.now(timezone.utc)
        verdicts = []
        for s in services:
            cs = containers.get(s.name, [])
            verdict = assess(s, cs, now, restarts_before.get(s.name, 0))
            probe = probes.get(s.name)
            running = [c for c in cs if c.running]
            if verdict.state == READY and probe and running and s.name not in passed:
                problem = probe(running[0])
                if problem:
                    verdict = Readiness(s.name, WAITING, problem)
                else:
                    passed.add(s.name)
            verdicts.append(verdict)
        elapsed = time.monotonic() - start
        if on_progress:
            on_progress(verdicts, elapsed)
        if all(v.done for v in verdicts) or any(v.state == FAILED for v in verdicts):
            return verdicts
        if elapsed >= timeout:
            return [
                v
                if v.done
                else Readiness(v.service, FAILED, f"not ready after {timeout:.0f} s ({v.reason})")
                for v in verdicts
            ]
        time.sleep(POLL_SECONDS)
