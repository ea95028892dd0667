"""The steps that change containers: clear dead worker registrations, then start, recreate
and restart what the plan says, each stopped its own way (cslaunch.stop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from cslaunch import act, docker, jobs
from cslaunch.containers import Container, by_service, project_containers
from cslaunch.errors import CslaunchError, LaunchFailed
from cslaunch.launch.checks import head_start, ready_check
from cslaunch.launch.run import Run
from cslaunch.plan import LEAVE, REBUILD, RECREATE, RESTART, START
from cslaunch.report import LaunchReport
from cslaunch.stack import built_images
from cslaunch.stop import FORWARD, KILL
from cslaunch.ui import UI, StepResult


def dead_workers(run: Run) -> bool:
    return bool(run.workers and run.workers.dead and run.rq)


def clear_dead(run: Run, st: StepResult) -> None:
    """Dead registrations go before workers start: one of a fixed name blocks its successor
    ("There exists an active worker named ...") until RQ's TTL runs out."""
    assert run.rq is not None  # registrations were read: the stack has RQ workers
    cleared = run.pool.submit(jobs.recover, run.compose, run.rq, workers_only=True)
    st.summary = recover_jobs(cleared, run.ui, run.report)


def changes_containers(run: Run) -> bool:
    return not run.plan.noop


def start_or_restart(run: Run) -> str:
    return "restart" if run.running else "start"


def restart(run: Run, st: StepResult) -> None:
    """Containers Compose recreates are stopped first, their own way (Compose would stop
    them with the stop grace, which a PID 1 that ignores its signal stalls); `up` then
    creates and recreates level by level on cslaunch's own readiness checks; what is left
    to restart is stopped and started the way its processes need."""
    found, plan, config = run.found, run.plan, run.project.config
    busy = run.workers.busy if run.workers else {}
    workers = run.rq.worker_services if run.rq else ()
    held = run.options.held
    replaced = [s for s in plan.with_action(REBUILD, RECREATE) if s in found.containers]
    first = act.stop_plan(found.stack, config, found.containers, replaced, busy, workers, held)
    # Compose stops what it recreates within the grace or not: a job may be cut short there.
    run.interrupted = act.stop_ahead(first) | set(replaced)
    after = _converge(run, first) if plan.with_action(START, REBUILD, RECREATE) else None
    after = after or found.containers  # restarts only: nothing for `up` to create
    wanted = plan.with_action(RESTART, REBUILD, RECREATE)
    stale = act.untouched(found.containers, after, wanted)
    for name in set(wanted) - set(stale):
        if run.outcomes[name].action == RESTART:
            run.outcomes[name].action = "recreated"
    stops = act.stop_plan(found.stack, config, after, stale, busy, workers, held)
    named = set(run.workers.named) if run.workers else set()
    blocking = [s for g in stops.values() for s in g if s.method.kind == KILL]
    blocking = [s for s in blocking if s.container.id in named]
    if blocking and run.rq:
        # Killed, a worker of a fixed name leaves a registration that blocks its successor.
        run.interrupted |= act.stop_ahead({"": blocking})
        with run.step("dead workers") as dead:
            clear_dead(run, dead)
    web_first = run.options.web_first
    done = act.restart(
        found.stack,
        stops,
        ready_check(run),
        background=workers,
        head_start=head_start(run) if web_first else None,
        hold=run.superseded if web_first else None,
    )
    run.interrupted |= done.killed
    run.report.held = [c.id for c in done.held]
    if run.on_held is not None:
        run.on_held(run.report.held)
    run.interrupted |= set(plan.with_action(START))  # started after their worker died
    for name, group in {**first, **stops}.items():
        if group:
            run.outcomes[name].stop = act.describe(group)
    st.summary = _summary(plan.with_action(START), stale, stops, set(wanted) - set(stale))
    if done.held:
        names = sorted({c.service for c in done.held})
        st.summary += f"; {', '.join(names)} held back stopped: newer saves came in"


def completed(run: Run) -> list[str]:
    """One-shot services the plan leaves: done, and nothing they use changed."""
    services = run.found.stack.services
    return [n for n in run.plan.with_action(LEAVE) if services[n].one_shot]


def renewed(run: Run) -> list[str]:
    """Services about to run a new image whose anonymous volumes hide what it installed."""
    services, existing = run.found.stack.services, run.found.containers
    candidates = [
        p.service
        for p in run.plan.services
        if p.build and existing.get(p.service) and act.renewable(services[p.service])
    ]
    if not candidates:
        return []
    # The built images' own VOLUMEs are renewed too: none may be more than dependencies.
    images = built_images(run.found.stack)
    try:
        configs = docker.image_configs(sorted({images[n] for n in candidates}))
    except CslaunchError:
        return []  # cannot tell what the images declare: renew nothing

    # An image not found (under another name than the one looked for) declares nothing
    # cslaunch can tell: its VOLUMEs may hold data, so it is not renewed.
    return [
        n
        for n in candidates
        if images[n] in configs
        and act.renewable(services[n], configs[images[n]].get("Volumes") or {})
    ]


def _converge(run: Run, stopped: Mapping[str, Sequence[act.Stop]]) -> dict[str, list[Container]]:
    try:
        act.converge(run.compose, run.found.stack, ready_check(run), completed(run), renewed(run))
    except LaunchFailed as e:
        # What was stopped for a replacement that never came is started again.
        back, down = act.put_back(stopped)
        raise LaunchFailed(
            e.message
            + (f"; started again as they were: {', '.join(back)}" if back else "")
            + (f"; still down: {', '.join(down)}" if down else ""),
            hint=e.hint,
            detail=e.detail,
        ) from None
    return by_service(project_containers(run.compose))


def recover_jobs(recovering: Future[jobs.RecoveryReport], ui: UI, report: LaunchReport) -> str:
    """Jobs the restarted workers were running go back to the front of their queue (or to
    Failed, with policy "fail") at once, instead of RQ noticing minutes later; never deleted.
    Only where a worker may have cut a job short: one that ended on its own within its grace
    (RQ's warm shutdown) left none behind. A problem here is a warning: the stack is up."""
    try:
        recovered = recovering.result()
    except jobs.JobsError as e:
        ui.warn(e.message)
        return "not checked: " + e.message
    done = recovered.to_json()
    if report.jobs:  # dead workers were cleared before the restarts: keep what that did too
        done["jobs"] = report.jobs["jobs"] + done["jobs"]
        done["workers_cleaned"] = report.jobs["workers_cleaned"] + done["workers_cleaned"]
    report.jobs = done
    if recovered.warning:
        ui.warn(recovered.warning)
    for job in recovered.jobs:
        ui.detail(f"{job.action} {job.id} {job.func} (queue {job.queue})")
    return jobs.recovery_summary(recovered)


def _summary(
    started: list[str],
    restarted: list[str],
    stops: Mapping[str, Sequence[act.Stop]],
    recreated: set[str],
) -> str:
    parts = []
    if started:
        parts.append(f"started {', '.join(started)}")
    if recreated:
        parts.append(f"recreated {', '.join(sorted(recreated))}")
    if restarted:
        kinds = [s.method for name in restarted for s in stops.get(name, [])]
        notes = []
        ignores = sum(1 for m in kinds if m.kind == KILL and "ignores" in m.reason)
        busy = sum(1 for m in kinds if m.kind == KILL and "busy" in m.reason)
        forwarded = sum(1 for m in kinds if m.kind == FORWARD)
        if ignores:
            notes.append(f"{ignores} killed at once: PID 1 ignores its stop signal")
        if busy:
            notes.append(f"{busy} busy RQ worker(s) interrupted, their jobs to run again")
        if forwarded:
            notes.append(f"{forwarded} stopped through the shell that wraps them")
        note = f" ({'; '.join(notes)})" if notes else ""
        parts.append(f"restarted {', '.join(restarted)}{note}")
    return "; ".join(parts) or "nothing to restart"
