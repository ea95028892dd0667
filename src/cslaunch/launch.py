"""`cslaunch up`: the launch pipeline, top to bottom.

detect (model + containers) -> changes (index) -> plan -> bytecode -> build -> start/restart
-> wait -> save the index -> report
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from cslaunch import (
    act,
    bytecode,
    changes,
    docker,
    frontend,
    index,
    jobs,
    look,
    model,
    probes,
    proof,
    verify,
    volumes,
)
from cslaunch.containers import by_service, project_containers
from cslaunch.errors import LaunchFailed
from cslaunch.plan import LEAVE, REBUILD, RECREATE, RESTART, START, Plan
from cslaunch.project import Project
from cslaunch.report import LaunchReport, ServiceOutcome, Step, clean_summary, show_skipped
from cslaunch.stack import (
    Detected,
    LaunchOptions,
    Prepared,
    built_images,
    compute,
    detect,
    invalidate_bytecode,
)
from cslaunch.state import LAST_LAUNCH, read_json, write_json
from cslaunch.stop import FORWARD, KILL
from cslaunch.ui import UI, StepResult, plural
from cslaunch.wait import FAILED, Checks, Readiness, wait_ready

LOG_LINES = 30


def launch(
    project: Project,
    options: LaunchOptions,
    ui: UI,
    prepared: Prepared | None = None,
    *,
    started: docker.Pending | None = None,
    ahead: look.Ahead | None = None,
) -> LaunchReport:
    """`started`: the project's `docker compose config`, begun before this module loaded;
    `ahead`: the last launch's looks inside baked-code containers, asked again meanwhile
    (taken only by a no-op, which changes no container before it verifies)."""
    timeout = options.timeout or project.config.timeout
    report = LaunchReport(project="", mode="relaunch")

    with _step(ui, report, "detect") as st:
        found = prepared.found if prepared else detect(project, started=started)
        project, compose = found.project, found.project.compose
        report.project = found.stack.name
        report.url = model.app_url(found.stack, project.config)
        running = any(c.running for cs in found.containers.values() for c in cs)
        report.mode = "relaunch" if running else "start"
        st.summary = (
            f"{report.project}: {plural(len(found.stack.services), 'service')}, "
            f"{'running' if running else 'not running'}"
        )
    for outside in found.roots.outside:
        ui.warn(
            f"not cleaning {outside}: bind-mounted but outside the project "
            "(list it in python_roots to include it)"
        )

    with _step(ui, report, "changes") as st:
        cs, plan = (
            (prepared.changes, prepared.plan) if prepared else compute(project, found, options)
        )
        st.summary = _changes_summary(cs)
    bundle = project.config.frontend
    why = frontend.build_reason(bundle, cs) if bundle else None
    if bundle and why:
        with _step(ui, report, "frontend build") as st:
            frontend.build(bundle)
            # The build wrote its output: see it as a change like any other.
            cs, plan = compute(project, found, options)
            st.summary = f"{' '.join(bundle.build)} ({why})"
    outcomes = {
        p.service: ServiceOutcome(p.service, p.action, p.reason, p.build, files=list(p.files))
        for p in plan.services
    }
    report.services = list(outcomes.values())
    report.changes = sorted(cs.changes.all) if cs.old is not None else None

    with ThreadPoolExecutor(max_workers=1) as ahead_of_stops:
        # Which containers run RQ workers, and which of them are busy, is read from Redis
        # before anything stops; meanwhile bytecode goes and images build.
        discovering = (
            ahead_of_stops.submit(discover_workers, project, found) if not plan.noop else None
        )
        with _step(ui, report, "bytecode") as st:
            report.bytecode = invalidate_bytecode(found.roots.roots, cs)
            st.summary = (
                clean_summary(report.bytecode)
                if found.roots.roots
                else "no bind-mounted Python code"
            )
        show_skipped(ui, report.bytecode)
        # Everything the plan needs is there before anything stops: a pull or build that
        # fails leaves the stack as it was.
        _pull(ui, report, compose, found, plan)
        _build(ui, report, compose, plan, cs)
        workers = None
        if discovering:
            with _step(ui, report, "workers") as st:
                workers = discovering.result()
                st.summary = _workers_summary(workers)
    rq = workers.setup if workers else jobs.find_rq(found.stack, project.config.rq, found.raw)

    def clear_dead() -> None:
        # Dead registrations go before workers start: one of a fixed name blocks its
        # successor ("There exists an active worker named ...") until RQ's TTL runs out.
        if rq is not None:
            with _step(ui, report, "dead workers") as st, ThreadPoolExecutor(1) as now:
                cleared = now.submit(jobs.recover, compose, rq, workers_only=True)
                st.summary = recover_jobs(cleared, ui, report)

    if workers and workers.dead:
        clear_dead()
    interrupted: set[str] = set()
    if not plan.noop:
        with _step(ui, report, "restart" if running else "start") as st:
            ready = _ready(project, found, timeout)
            st.summary, interrupted = _apply(
                project,
                found,
                plan,
                outcomes,
                ready,
                busy=workers.busy if workers else {},
                named=set(workers.named) if workers else set(),
                workers=rq.worker_services if rq else (),
                clear_dead=clear_dead,
            )

    with ThreadPoolExecutor(max_workers=2) as background:
        # Jobs a worker's stop cut short are recovered while the stack comes up: their
        # workers are gone, and a requeued job waits at the front for the new ones.
        # (Jobs of workers found dead before the launch wait for this too.)
        cut_short = rq is not None and (
            bool(set(rq.worker_services) & interrupted) or bool(workers and workers.dead)
        )
        recovering = background.submit(jobs.recover, compose, rq) if rq and cut_short else None
        # The proof reads files and pycs in the containers. A no-op touched no container, so
        # it starts now, alongside the wait, on the containers detect read; otherwise once
        # every service is ready, alongside the job steps. A no-op may rely on the last
        # launch's proof where nothing it rests on moved.
        last = proof.load(project.root, cs.old.scanned_ns) if cs.old else None
        previous = last if plan.noop else None

        def prove() -> Future[verify.Verification]:
            containers = found.containers if plan.noop else None
            return background.submit(
                verify.verify_stack,
                found,
                cs,
                compose,
                containers,
                previous=previous,
                ahead=ahead if plan.noop else None,
            )

        proving = prove() if plan.noop and options.verify else None
        with _step(ui, report, "wait") as st:
            # Nothing was touched: the containers detect just read are the current ones.
            current = found.containers if plan.noop else by_service(project_containers(compose))
            baseline = {
                name: max((c.restart_count for c in cs_), default=0)
                for name, cs_ in current.items()
            }
            verdicts = wait_ready(
                compose,
                list(found.stack.services.values()),
                timeout=timeout,
                restarts_before=baseline,
                initial=current,
                # Redis the last launch saw ready, same process: past loading its dataset.
                checks=service_checks(
                    project, found, proof.settled(last, current), rq, ahead=not plan.noop
                ),
                on_progress=lambda v, t: ui.progress(_waiting_line(v, t)),
            )
            _record(outcomes, verdicts, compose)
            failed = [v for v in verdicts if v.state == FAILED]
            st.summary = (
                f"{len(verdicts) - len(failed)}/{len(verdicts)} ready"
                if failed
                else f"all {len(verdicts)} ready"
            )

        touched = [o.service for o in outcomes.values() if o.action != LEAVE]
        proxies = act.proxies_to_reload(found.stack, touched) if not failed else []
        if proxies:
            with _step(ui, report, "reload proxies") as st:
                now = by_service(project_containers(compose))
                for name in proxies:
                    reloaded = act.reload_proxy(
                        compose,
                        found.stack,
                        project.config,
                        found.stack.services[name],
                        now.get(name, []),
                    )
                    outcomes[name].detail += f"; {reloaded}"
                st.summary = ", ".join(proxies)

        if proving is None and not failed and options.verify:
            proving = prove()
        if recovering is not None:
            with _step(ui, report, "recover jobs") as st:
                st.summary = recover_jobs(recovering, ui, report)
        if rq is not None and not failed and (plan.first or _maintenance_due(project)):
            with _step(ui, report, "redis") as st:
                st.summary = maintain_redis(project, rq, ui, report)
        if proving is not None and not failed:
            with _step(ui, report, "verify") as st:
                report.verification = proving.result()
                st.summary = verify.summary(report.verification)
    checked = report.verification
    hidden: list[volumes.Hidden] = []
    if checked is not None and checked.stale:
        # Something changed the code behind our back (a `docker cp`, a file written in the
        # container, a stale pyc): one repair pass, then the verdict stands.
        with _step(ui, report, "repair") as st:
            names = sorted({v.service for v in checked.stale})
            verdicts, hidden = repair(project, found, cs, checked, names, timeout)
            for v in verdicts:
                # Recreated, not left running: its state is the repair's.
                outcome = outcomes[v.service]
                outcome.action, outcome.state, outcome.detail = "repaired", v.state, v.reason
            for h in hidden:
                outcomes[h.service].detail += (
                    f"; its anonymous volume at {h.target} hid the image's new code: renewed"
                    if h.renew
                    else f"; an anonymous volume at {h.target} hides the image's code"
                )
            report.verification = checked = verify.verify_stack(found, cs, compose)
            st.summary = f"recreated {', '.join(names)}; " + verify.summary(checked)

    report.ok = not failed and not (report.verification and report.verification.stale)
    # A launch that had to repair changed something, whatever the plan said.
    report.up_to_date = plan.noop and report.ok and not report.repaired
    if failed:
        report.error = "; ".join(f"{v.service}: {v.reason}" for v in failed)
    elif report.verification and report.verification.stale:
        report.error = "stale code after the launch: " + "; ".join(
            f"{v.service}: {v.problems[0][1]} ({v.problems[0][0]})"
            for v in report.verification.stale
        )
        for h in hidden:
            if not h.renew and h.service in {v.service for v in report.verification.stale}:
                report.error += (
                    f"; {h.service}: an anonymous volume at {h.target} hides the new image's "
                    f"code, and was not renewed: {h.why}. To renew it (its content is lost): "
                    f"`{h.command()}`; or drop the volume, or make it a bind mount"
                )
    else:
        # Only a launch that fully worked moves the index on: after a failure the next run
        # sees the same changes and does again what is needed.
        if not cs.index_kept:
            index.save(project.root, cs.new_index())
        if report.verification and report.verification.proof:
            proof.save(project.root, report.verification.proof)
    write_json(project.root, LAST_LAUNCH, {"services": touched, "ok": report.ok})
    return report


def discover_workers(project: Project, found: Detected) -> jobs.Discovered:
    """The stack's RQ workers, from the command lines and from Redis (jobs.discover)."""
    return jobs.discover(
        project.compose,
        found.stack,
        project.config.rq,
        found.raw,
        found.python,
        found.containers,
    )


def _ready(project: Project, found: Detected, timeout: float) -> act.Ready:
    """For services others wait for while the stack comes up: the wait step's checks."""

    def ready(names: Sequence[str]) -> None:
        compose = project.compose
        current = by_service(project_containers(compose))
        verdicts = wait_ready(
            compose,
            [found.stack.services[n] for n in names],
            timeout=timeout,
            restarts_before={
                n: max((c.restart_count for c in current.get(n, [])), default=0) for n in names
            },
            initial=current,
            checks=service_checks(project, found),
        )
        failed = [v for v in verdicts if v.state == FAILED]
        if failed:
            raise LaunchFailed(
                "; ".join(f"{v.service}: {v.reason}" for v in failed),
                detail="\n\n".join(docker.logs(compose, v.service, tail=LOG_LINES) for v in failed),
            )

    return ready


def _workers_summary(workers: jobs.Discovered) -> str:
    if workers.setup is None:
        return "no RQ workers" + (
            f" (Redis not read: {workers.problem})" if workers.problem else ""
        )
    text = "RQ workers: " + ", ".join(workers.setup.worker_services)
    if workers.busy:
        text += f"; {len(workers.busy)} busy ({', '.join(sorted(set(workers.busy.values())))})"
    if workers.problem:
        text += f" (Redis not read: {workers.problem})"
    return text


def _pull(
    ui: UI, report: LaunchReport, compose: docker.ComposeProject, found: Detected, plan: Plan
) -> None:
    """Pull the images of services about to be created that are not here (`up` would pull
    them itself, but only after cslaunch stopped what they replace)."""
    services = found.stack.services
    raw = found.raw.get("services") or {}
    # An image another service of the project builds is there once the build step ran.
    built = set(built_images(found.stack).values())
    wanted = {
        name: service.image
        for name in plan.with_action(START, REBUILD, RECREATE)
        for service in [services[name]]
        if service.image
        and not service.buildable
        and service.image not in built
        and (raw.get(name) or {}).get("pull_policy") not in ("never", "build")
    }
    present = docker.existing_images(sorted(set(wanted.values())))
    missing = sorted(name for name, image in wanted.items() if image not in present)
    if not missing:
        return
    with _step(ui, report, "pull") as st:
        try:
            docker.pull(compose, missing)
        except LaunchFailed as e:
            images = ", ".join(f"{n} ({wanted[n]})" for n in missing)
            raise LaunchFailed(
                f"could not pull the image of {images}: {e.message.split(': ', 1)[-1]}",
                hint="nothing was stopped: the stack runs as before. Check the image name, "
                "and that the registry is reachable (`docker pull IMAGE`)",
            ) from None
        st.summary = ", ".join(missing)


def _build(
    ui: UI, report: LaunchReport, compose: docker.ComposeProject, plan: Plan, cs: changes.ChangeSet
) -> None:
    if not plan.build:
        return
    refreshed = changes.refresh_mtimes(cs)
    if refreshed:
        ui.detail(
            f"refreshed the mtime of {plural(len(refreshed), 'file')} whose content changed "
            "with mtime and size kept, so the Docker build sees them"
        )
    with _step(ui, report, "build") as st:
        act.build(compose, plan.build)
        st.summary = ", ".join(plan.build)


def _apply(
    project: Project,
    found: Detected,
    plan: Plan,
    outcomes: dict[str, ServiceOutcome],
    ready: act.Ready,
    *,
    busy: dict[str, str],
    named: set[str],
    workers: Collection[str],
    clear_dead: Callable[[], None],
) -> tuple[str, set[str]]:
    """What was done in a few words, and the services whose processes may have been cut
    short (killed, stopped by Compose, or started after they died), so RQ jobs may wait for
    recovery. `named`: containers whose worker has a fixed name: killed, it leaves a registration
    that blocks its successor, cleared by `clear_dead` before it starts again."""
    compose = project.compose
    # Compose stops a container it recreates with the stop grace: a PID 1 that ignores its
    # stop signal would stall it. Those are stopped first, their own way; `up` then
    # recreates them at once.
    replaced = [s for s in plan.with_action(REBUILD, RECREATE) if s in found.containers]
    first = act.stop_plan(found.stack, project.config, found.containers, replaced, busy, workers)
    # Containers Compose recreates are stopped by it, within their grace or not: a worker's
    # job may be cut short there as well.
    interrupted = act.stop_ahead(first) | set(replaced)
    if plan.with_action(START, REBUILD, RECREATE):
        try:
            act.converge(compose, found.stack, ready)
        except LaunchFailed as e:
            # What was stopped for a replacement that never came is started again.
            back, down = act.put_back(first)
            raise LaunchFailed(
                e.message
                + (f"; started again as they were: {', '.join(back)}" if back else "")
                + (f"; still down: {', '.join(down)}" if down else ""),
                hint=e.hint,
                detail=e.detail,
            ) from None
        after = by_service(project_containers(compose))
    else:
        after = found.containers  # restarts only: nothing for `up` to create or recreate
    wanted = plan.with_action(RESTART, REBUILD, RECREATE)
    stale = act.untouched(found.containers, after, wanted)
    for name in set(wanted) - set(stale):
        if outcomes[name].action == RESTART:
            outcomes[name].action = "recreated"
    stops = act.stop_plan(found.stack, project.config, after, stale, busy, workers)
    blocking = [s for g in stops.values() for s in g if s.method.kind == KILL]
    blocking = [s for s in blocking if s.container.id in named]
    if blocking:
        interrupted |= act.stop_ahead({"": blocking})  # their registrations die with them
        clear_dead()
    interrupted |= act.restart(found.stack, stops, ready)
    for name, group in {**first, **stops}.items():
        if group:
            outcomes[name].stop = act.describe(group)
    summary = _restart_summary(plan.with_action(START), stale, stops, set(wanted) - set(stale))
    return summary, interrupted | set(plan.with_action(START))


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


MAINTENANCE_EVERY = 3600.0  # seconds between Redis checks: each costs a container exec
LAST_MAINTENANCE = "last-redis-check.json"


def _maintenance_due(project: Project) -> bool:
    last = read_json(project.root, LAST_MAINTENANCE) or {}
    return time.time() - float(last.get("at", 0)) >= MAINTENANCE_EVERY


def maintain_redis(project: Project, rq: jobs.RQSetup, ui: UI, report: LaunchReport) -> str:
    """Measure Redis (INFO), and only when a threshold is crossed purge old ended jobs and
    rewrite an overgrown AOF. Never FLUSHDB; queued and started jobs are never touched."""
    # At most hourly: not worth its import on every launch.
    from cslaunch.jobs import redis as redis_maint

    try:
        done = redis_maint.maintain(project.compose, rq)
    except jobs.JobsError as e:
        ui.warn(e.message)
        return "not checked: " + e.message
    write_json(project.root, LAST_MAINTENANCE, {"at": time.time()})
    report.redis = done.to_json()
    if not done.ok:
        ui.warn(done.message)
    return done.message or ("no threshold crossed" if not done.triggers else "maintained")


def repair(
    project: Project,
    found: Detected,
    cs: changes.ChangeSet,
    checked: verify.Verification,
    names: list[str],
    timeout: float,
) -> tuple[list[Readiness], list[volumes.Hidden]]:
    """Remove stale bytecode the host holds for the stale services, then recreate them from
    their images (a recreated container drops whatever was written into it). Where an
    anonymous volume hides the image's code, it is renewed if it holds nothing else.
    Returns how ready each is after, and those volumes."""
    compose = project.compose
    host_pycs = [
        (host, "stale")
        for v in checked.stale
        for path, _ in v.problems
        if path.endswith((".pyc", ".pyo"))
        for host in [verify.host_path(found.stack.services[v.service], path)]
        if host is not None
    ]
    bytecode.remove(host_pycs, roots=list(found.roots.roots))
    current = by_service(project_containers(compose))
    stale_paths = {v.service: [path for path, _ in v.problems] for v in checked.stale}
    hidden = volumes.find_hidden(found.stack.services, stale_paths, cs.files, cs.entries, current)
    renew = sorted(h.service for h in hidden if h.renew)
    act.stop_ahead(act.stop_plan(found.stack, project.config, current, names))
    for group, flags in (
        ([n for n in names if n not in renew], ()),
        (renew, ("--renew-anon-volumes",)),
    ):
        if group:
            docker.compose_step(
                compose,
                "up",
                "--detach",
                "--no-build",
                "--force-recreate",
                *flags,
                "--no-deps",
                *group,
                what="docker compose up --force-recreate",
            )
    ready = wait_ready(
        compose,
        [found.stack.services[n] for n in names],
        timeout=timeout,
        checks=service_checks(project, found),
    )
    return ready, hidden


def service_checks(
    project: Project,
    found: Detected,
    settled: Collection[str] = (),
    rq: jobs.RQSetup | None = None,
    *,
    ahead: bool = True,
) -> dict[str, Checks]:
    """What says each service is ready beyond its container state. An RQ worker: a live
    registration (`rq`); a service with a healthcheck: that check, run now (`ahead`: not on
    a no-op, whose containers are past their first check) rather than on Docker's schedule;
    then a configured endpoint, or Redis past loading (unless `settled`: seen ready by the
    last launch, same process)."""
    live = (
        jobs.LiveWorkers(
            project.compose,
            jobs.helper_services(found.stack, project.config.rq, found.raw, found.python),
            rq.worker_services,
        )
        if rq and ahead
        else None
    )
    checks = {}
    for name, service in found.stack.services.items():
        cfg = project.config.service(name)
        also = probes.for_service(service, cfg.health, cfg.health_status, settled=name in settled)
        ready: probes.Probe | None = None
        passed = "ready"
        if live is not None and name in live.workers:
            ready, passed = live.probe, "registered as an RQ worker"
        elif ahead:
            ready, passed = probes.healthcheck(service), "healthy"
        if ready or also:
            checks[name] = Checks(ready, also, passed)
    return checks


def _changes_summary(cs: changes.ChangeSet) -> str:
    if cs.old is None:
        indexed = plural(len(cs.entries), "file")
        return f"no index yet: {indexed} indexed, everything counts as changed"
    c = cs.changes
    parts = [f"{plural(len(cs.entries), 'file')} checked"]
    if c:
        parts.append(f"{len(c.modified)} modified, {len(c.added)} added, {len(c.deleted)} deleted")
    else:
        parts.append("no file changed")
    if cs.config_changed:
        parts.append(f"config changed: {', '.join(sorted(cs.config_changed))}")
    return "; ".join(parts)


@contextmanager
def _step(ui: UI, report: LaunchReport, name: str) -> Iterator[StepResult]:
    with ui.step(name) as st:
        yield st
    report.steps.append(Step(name, st.seconds, st.summary))


def _restart_summary(
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


def _waiting_line(verdicts: list[Readiness], elapsed: float) -> str:
    pending = [f"{v.service} ({v.reason})" for v in verdicts if not v.done]
    ready = sum(1 for v in verdicts if v.done)
    return f"waiting {elapsed:4.1f} s  {ready}/{len(verdicts)} ready  " + ", ".join(pending)


def _record(
    outcomes: dict[str, ServiceOutcome], verdicts: list[Readiness], compose: docker.ComposeProject
) -> None:
    for v in verdicts:
        o = outcomes.get(v.service)
        if o is None:
            continue
        o.state, o.detail = v.state, v.reason
        if v.state == FAILED:
            o.logs = docker.logs(compose, v.service, tail=LOG_LINES)
    for o in outcomes.values():
        if o.action == LEAVE and o.state == "ready":
            o.detail = o.detail + " (left running)"
