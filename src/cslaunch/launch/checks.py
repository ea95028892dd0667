"""What says a service is ready beyond its container state, for the wait and for services
others wait for while the stack comes up."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from cslaunch import act, docker, jobs, readiness
from cslaunch.containers import by_service, project_containers
from cslaunch.errors import LaunchFailed
from cslaunch.launch.run import Run
from cslaunch.wait import FAILED, Checks, wait_ready

LOG_LINES = 30  # of a failed service's log, in the report


# How long restarted RQ workers wait for the restarted web servers before they start too.
HEAD_START_S = 2.0
# While saves keep coming, how long a pause in them the workers wait for once the web
# servers answer: longer than the gap between saves of someone typing and saving.
TYPING_PAUSE_S = 1.0
PAUSE_POLL_S = 0.02


def head_start(run: Run) -> act.Ready:
    """Waits until those of these services that can say they answer (a healthcheck, a
    configured endpoint) are ready or failed, at most HEAD_START_S or until newer saves
    come in. Never raises: the wait step judges them. A service with no such signal is
    not waited for: it would count as ready only after running STABLE_SECONDS, a guess
    that would hold the workers back longer than its start-up.

    While saves keep coming (LaunchOptions.typing) they then wait for a pause too, at most
    TYPING_PAUSE_S: a save a second after the last otherwise lands while the workers start,
    and their start-up, killed before it is done, slows the web server's next start (saves
    1 s apart, median save to served: 0.61 s without the pause, 0.47 s with no workers to
    restart at all). A newer save within it holds them back (act.restart)."""

    def wait(names: Sequence[str]) -> None:
        checks = service_checks(run)
        answering = [run.found.stack.services[n] for n in names if n in checks]
        if answering:
            wait_ready(
                run.compose,
                answering,
                timeout=HEAD_START_S,
                initial=by_service(project_containers(run.compose)),
                checks=checks,
                stop=run.superseded,
            )
        if run.options.typing:
            pause = time.monotonic() + TYPING_PAUSE_S
            while time.monotonic() < pause and not run.superseded():
                time.sleep(PAUSE_POLL_S)

    return wait


def service_checks(
    run: Run,
    rq: jobs.RQSetup | None = None,
    settled: Collection[str] = (),
    *,
    ahead: bool = True,
) -> dict[str, Checks]:
    """What says each service is ready beyond its container state. An RQ worker (with
    `rq`): a live registration; a service with a healthcheck: that check, run now (`ahead`:
    not on a no-op, whose containers are past their first check) rather than on Docker's
    schedule;
    then a configured endpoint, or Redis past loading (unless `settled`: seen ready by the
    last launch, same process)."""
    found, config = run.found, run.project.config
    live = (
        jobs.LiveWorkers(
            run.compose,
            jobs.helper_services(found.stack, config.rq, found.raw, found.python),
            rq.worker_services,
        )
        if rq and ahead
        else None
    )
    checks = {}
    for name, service in found.stack.services.items():
        cfg = config.service(name)
        also = readiness.for_service(
            service, cfg.health, cfg.health_status, settled=name in settled
        )
        ready: readiness.Probe | None = None
        passed = "ready"
        if live is not None and name in live.workers:
            ready, passed = live.probe, "registered as an RQ worker"
            if ahead and service.healthcheck:
                # A worker beside a server in one container (`rq worker & exec gunicorn`):
                # its own check too
                also = readiness.both(readiness.healthcheck(service), also)
        elif ahead:
            ready, passed = readiness.healthcheck(service), "healthy"
        if ready or also:
            checks[name] = Checks(ready, also, passed)
    return checks


def ready_check(run: Run) -> act.Ready:
    """For services others wait for while the stack comes up: the wait step's checks."""

    def ready(names: Sequence[str]) -> None:
        compose = run.compose
        current = by_service(project_containers(compose))
        verdicts = wait_ready(
            compose,
            [run.found.stack.services[n] for n in names],
            timeout=run.timeout,
            initial=current,
            checks=service_checks(run),
        )
        failed = [v for v in verdicts if v.state == FAILED]
        if failed:
            raise LaunchFailed(
                "; ".join(f"{v.service}: {v.reason}" for v in failed),
                detail="\n\n".join(docker.logs(compose, v.service, tail=LOG_LINES) for v in failed),
            )

    return ready
