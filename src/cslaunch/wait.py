"""Readiness: decide from container state whether each service is ready, still starting, or
has failed, and poll until every service is decided or the deadline passes.

Docker runs a container's first healthcheck one whole `interval` after it starts (30-60 s in
real Compose files), so "healthy" follows Docker's schedule, not the app. A service with a
`ready` probe (its own healthcheck test run by cslaunch inside the container; an RQ worker's
live registration) is ready as soon as that probe passes in every container, or when Docker
says healthy, whichever comes first. Probes run in the background at a fast cadence that
backs off, so a slow probe never holds up watching the others.

`assess` is pure; `wait_ready` is the polling loop around the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from cslaunch import docker
from cslaunch.containers import Container, by_service, project_containers
from cslaunch.model import Service
from cslaunch.readiness import Probe, image_healthcheck

READY, WAITING, FAILED = "ready", "waiting", "failed"

# A service without a healthcheck counts as ready once it has stayed up this long: a process
# that dies on import (a SyntaxError) is gone well within it.
STABLE_SECONDS = 1.5
# Restarts by a restart policy after which a service counts as crash-looping.
CRASH_LOOP_RESTARTS = 2
POLL_SECONDS = 0.1  # container state: one Engine API call of a few ms
# A probe's cadence: first at once, then each wait this much longer, up to the last.
PROBE_DELAYS = (0.1, 0.15, 0.25, 0.4, 0.6, 1.0)


@dataclass(frozen=True)
class Checks:
    """What beyond its container state says a service is ready."""

    ready: Probe | None = None  # answers for the service once its containers run
    also: Probe | None = None  # must pass too, once the rest says ready (Redis past loading)
    passed: str = "ready"  # what a passed `ready` probe is called in the report


@dataclass(frozen=True)
class Readiness:
    service: str
    state: str  # ready / waiting / failed
    reason: str
    completed: bool = False  # it exited 0 of its own: a job, done

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
        if c.exit_code == 0 and (service.healthcheck is None or service.one_shot):
            # A one-shot service (migrations, a build step) that finished is done, not broken.
            return Readiness(name, READY, "completed (exit 0)", completed=True)
        return Readiness(name, FAILED, f"exited with code {c.exit_code}")
    if restarted >= CRASH_LOOP_RESTARTS:
        return Readiness(
            name, FAILED, f"crash-looping (restarted {restarted}x, last exit code {c.exit_code})"
        )
    if service.one_shot:
        # What waits for it waits for it to finish, not to be up (Compose's
        # service_completed_successfully): running is not ready yet.
        return Readiness(name, WAITING, f"{c.status}; waited for until it completes")
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
    checks: Mapping[str, Checks] | None = None,
    initial: Mapping[str, Sequence[Container]] | None = None,
    on_progress: Callable[[list[Readiness], float], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[Readiness]:
    """Poll until every service is ready, one fails, `timeout` seconds pass, or `stop` says
    so (then the verdicts so far are returned as they are).

    Returns the last assessment of every service; the caller decides what failure means.
    A service that failed ends the wait at once: its logs matter more than the others'.
    `initial`: the containers as the caller just saw them; restarts they show already
    happened before the wait and do not count as crashes.
    """
    restarts_before = {
        name: max((c.restart_count for c in cs), default=0) for name, cs in (initial or {}).items()
    }
    checks = checks or {}
    start = time.monotonic()
    # Not a `with`: leaving the wait must not wait for a probe still running (a healthcheck
    # may take its whole timeout).
    pool = ThreadPoolExecutor(max_workers=8)
    prober = _Prober(pool)
    try:
        while True:
            containers = initial if initial is not None else by_service(project_containers(project))
            initial = None
            now = datetime.now(timezone.utc)
            verdicts = [
                _judge(
                    s,
                    containers.get(s.name, []),
                    now,
                    restarts_before.get(s.name, 0),
                    checks.get(s.name, Checks()),
                    prober,
                )
                for s in services
            ]
            elapsed = time.monotonic() - start
            if on_progress:
                on_progress(verdicts, elapsed)
            if all(v.done for v in verdicts) or any(v.state == FAILED for v in verdicts):
                return verdicts
            if stop is not None and stop():
                return verdicts
            if elapsed >= timeout:
                return [
                    v
                    if v.done
                    else Readiness(
                        v.service,
                        FAILED,
                        # A migration may just need longer: say where the limit is set.
                        f"not ready after {timeout:.0f} s ({v.reason}); --timeout or "
                        "`timeout` in [tool.cslaunch] sets the limit",
                    )
                    for v in verdicts
                ]
            time.sleep(POLL_SECONDS)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _judge(
    service: Service,
    containers: Sequence[Container],
    now: datetime,
    restarts_before: int,
    checks: Checks,
    prober: _Prober,
) -> Readiness:
    verdict = assess(service, containers, now, restarts_before)
    running = [c for c in containers if c.running]
    if verdict.state == FAILED or not running or service.one_shot:
        return verdict
    if checks.ready is not None and not (verdict.state == READY and verdict.reason == "healthy"):
        # Healthy by Docker's own check counts; "running for a while" does not, where the
        # service has a signal of its own.
        answers = [prober.ask(("ready", c.id), checks.ready, c) for c in running]
        waiting = [a for a in answers if a is not None]
        if waiting:
            return Readiness(service.name, WAITING, waiting[0] or "checking")
        verdict = Readiness(service.name, READY, checks.passed)
    starting = [c for c in running if c.health == "starting"]
    if checks.ready is None and verdict.state == WAITING and starting:
        # An image's own HEALTHCHECK (the Compose model shows none): run now, not one whole
        # interval after the start
        answers = [prober.ask(("image", c.id), image_healthcheck, c) for c in starting]
        waiting = [a for a in answers if a is not None]
        if waiting:
            return Readiness(service.name, WAITING, waiting[0] or "checking")
        verdict = Readiness(service.name, READY, "healthy")
    if verdict.state == READY and checks.also is not None:
        problem = prober.ask(("also", service.name), checks.also, running[0])
        if problem is not None:
            return Readiness(service.name, WAITING, problem or "checking")
    return verdict


class _Prober:
    """Runs probes in the background: at most one at a time for each key, again after a
    delay that grows; a key that passed once is not asked again."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool
        self.passed: set[tuple[str, str]] = set()
        self.running: dict[tuple[str, str], Future[str | None]] = {}
        self.last: dict[tuple[str, str], str] = {}
        self.tries: dict[tuple[str, str], int] = {}
        self.next_at: dict[tuple[str, str], float] = {}

    def ask(self, key: tuple[str, str], probe: Probe, container: Container) -> str | None:
        """None once the probe passed; else the reason it has not (or "" before its first
        answer)."""
        if key in self.passed:
            return None
        future = self.running.get(key)
        if future is not None and future.done():
            del self.running[key]
            try:
                answer = future.result()
            except Exception as e:  # a probe that broke is a probe that did not pass
                answer = f"check failed: {e}"
            if answer is None:
                self.passed.add(key)
                return None
            self.last[key] = answer
            tries = self.tries[key] = self.tries.get(key, 0) + 1
            self.next_at[key] = time.monotonic() + PROBE_DELAYS[min(tries, len(PROBE_DELAYS)) - 1]
        if key not in self.running and time.monotonic() >= self.next_at.get(key, 0.0):
            self.running[key] = self.pool.submit(probe, container)
        return self.last.get(key, "")
