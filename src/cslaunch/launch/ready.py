"""The steps once containers run: wait until every service is ready (recovering cut-short
jobs meanwhile), point proxies at the new containers, and keep Redis healthy."""

from __future__ import annotations

import time
from concurrent.futures import Future

from cslaunch import act, docker, jobs, proof
from cslaunch.containers import by_service, project_containers
from cslaunch.launch.checks import LOG_LINES, service_checks
from cslaunch.launch.prove import start_proof
from cslaunch.launch.restart import recover_jobs
from cslaunch.launch.run import Run
from cslaunch.plan import LEAVE
from cslaunch.state import read_json, write_json
from cslaunch.ui import StepResult
from cslaunch.wait import FAILED, Readiness, wait_ready

MAINTENANCE_EVERY = 3600.0  # seconds between Redis checks: each costs a container exec
LAST_MAINTENANCE = "last-redis-check.json"


def wait(run: Run, st: StepResult) -> None:
    found, plan = run.found, run.plan
    _recover_meanwhile(run)
    cs = run.changes
    run.last_proof = proof.load(run.project.root, cs.old.scanned_ns) if cs.old else None
    if plan.noop and run.options.verify:
        # A no-op touched no container: the proof starts now, alongside the wait, on the
        # containers detect read, and may rely on the last launch's where nothing moved.
        start_proof(run)
    current = found.containers if plan.noop else by_service(project_containers(run.compose))
    verdicts = wait_ready(
        run.compose,
        # A service scaled to 0 has no container to wait for
        [s for s in found.stack.services.values() if s.replicas != 0],
        timeout=run.timeout,
        initial=current,
        # Redis the last launch saw ready, same process: past loading its dataset.
        checks=service_checks(
            run, run.rq, proof.settled(run.last_proof, current), ahead=not plan.noop
        ),
        on_progress=lambda v, t: run.ui.progress(_waiting_line(v, t)),
        stop=run.superseded,
    )
    if run.ended_early:
        st.summary = "ended early: newer saves came in, the next launch waits for them"
        if run.report.recovery_owed:
            st.summary += " and recovers the jobs cut short"
        return
    _record(run, verdicts)
    run.failed = [v for v in verdicts if v.state == FAILED]
    ready = len(verdicts) - len(run.failed)
    st.summary = f"{ready}/{len(verdicts)} ready" if run.failed else f"all {ready} ready"
    if not run.failed and run.options.verify and run.proving is None:
        start_proof(run)  # every service is ready: the proof runs alongside the job steps


def _recover_meanwhile(run: Run) -> None:
    """Jobs a worker's stop cut short are recovered while the stack comes up: their workers
    are gone, and a requeued job waits at the front for the new ones. (Jobs of workers
    found dead before the launch wait for this too.)"""
    rq = run.rq
    if rq is None:
        return
    cut_short = bool(set(rq.worker_services) & run.interrupted)
    if not (cut_short or (run.workers and run.workers.dead) or run.options.recover_jobs):
        return
    if run.superseded():
        # Newer saves already ended it (the workers it would exec into may be held back
        # stopped): the next launch recovers once its own restarts are done.
        run.report.recovery_owed = True
        return
    run.recovering = run.pool.submit(jobs.recover, run.compose, rq)


def touched(run: Run) -> list[str]:
    return [o.service for o in run.outcomes.values() if o.action != LEAVE]


def proxies_due(run: Run) -> bool:
    return not run.failed and bool(act.proxies_to_reload(run.found.stack, touched(run)))


def reload_proxies(run: Run, st: StepResult) -> None:
    stack = run.found.stack
    touched_now = set(touched(run))
    proxies = act.proxies_to_reload(stack, touched_now)
    now = by_service(project_containers(run.compose))
    for name in proxies:
        service = stack.services[name]
        # Restarted when no master is seen only where it depends on what was touched: one
        # taken for a proxy by mistake is not restarted at every launch.
        upstream = bool(set(service.depends_on) & touched_now)
        how = act.reload_proxy(
            run.compose, stack, run.project.config, service, now.get(name, []), upstream
        )
        run.outcomes[name].detail += f"; {how}"
    st.summary = ", ".join(proxies)


def recovering(run: Run) -> bool:
    return run.recovering is not None


def recover(run: Run, st: StepResult) -> None:
    assert run.recovering is not None
    if run.superseded() and not _done_well(run.recovering):
        # The next launch recovers them (LaunchOptions.recover_jobs) once its own restarts
        # are done: it need not wait for this one (an exec into a worker it is about to
        # restart, 0.5 s while workers start), which ends on its own or fails harmlessly
        # (its workers held back, say: act.restart).
        run.report.recovery_owed = True
        st.summary = "left to the next launch: newer saves came in"
        return
    st.summary = recover_jobs(run.recovering, run.ui, run.report)


def _done_well(recovering: Future[jobs.RecoveryReport]) -> bool:
    return recovering.done() and recovering.exception() is None and recovering.result().ok


def redis_due(run: Run) -> bool:
    """On a first launch, then at most hourly: each check costs a container exec."""
    if run.rq is None or run.failed:
        return False
    last = read_json(run.project.root, LAST_MAINTENANCE) or {}
    return run.plan.first or time.time() - float(last.get("at", 0)) >= MAINTENANCE_EVERY


def maintain_redis(run: Run, st: StepResult) -> None:
    """Measure Redis (INFO), and only when a threshold is crossed purge old ended jobs and
    rewrite an overgrown AOF. Never FLUSHDB; queued and started jobs are never touched."""
    from cslaunch.jobs import (
        redis as redis_maint,  # at most hourly: not worth its import on every launch
    )

    assert run.rq is not None  # redis_due
    try:
        done = redis_maint.maintain(run.compose, run.rq)
    except jobs.JobsError as e:
        run.ui.warn(e.message)
        st.summary = "not checked: " + e.message
        return
    write_json(run.project.root, LAST_MAINTENANCE, {"at": time.time()})
    run.report.redis = done.to_json()
    if not done.ok:
        run.ui.warn(done.message)
    st.summary = done.message or ("no threshold crossed" if not done.triggers else "maintained")


def _waiting_line(verdicts: list[Readiness], elapsed: float) -> str:
    pending = [f"{v.service} ({v.reason})" for v in verdicts if not v.done]
    ready = sum(1 for v in verdicts if v.done)
    return f"waiting {elapsed:4.1f} s  {ready}/{len(verdicts)} ready  " + ", ".join(pending)


def _record(run: Run, verdicts: list[Readiness]) -> None:
    run.completed = [v.service for v in verdicts if v.completed]
    for v in verdicts:
        o = run.outcomes.get(v.service)
        if o is None:
            continue
        o.state, o.detail = v.state, v.reason
        if v.state == FAILED:
            o.logs = docker.logs(run.compose, v.service, tail=LOG_LINES)
    for o in run.outcomes.values():
        one_shot = run.found.stack.services[o.service].one_shot  # done: not running
        if o.action == LEAVE and o.state == "ready" and not one_shot:
            o.detail = o.detail + " (left running)"
