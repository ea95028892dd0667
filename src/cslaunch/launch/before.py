"""The steps before anything stops: what the stack is, what changed, and everything the
plan needs (bytecode gone, images pulled and built, workers found), so a failure here
leaves the stack running as it was."""

from __future__ import annotations

from cslaunch import act, changes, docker, frontend, jobs, model, pycs_inside
from cslaunch.errors import LaunchFailed
from cslaunch.launch.run import Run
from cslaunch.plan import REBUILD, RECREATE, START
from cslaunch.report import ServiceOutcome, clean_summary, show_skipped
from cslaunch.stack import built_images, compute, detect, invalidate_bytecode
from cslaunch.ui import StepResult, plural


def detect_stack(run: Run, st: StepResult) -> None:
    found = run.prepared.found if run.prepared else detect(run.project, started=run.started)
    run.found, run.project = found, found.project  # named: later steps ask the engine
    run.report.project = found.stack.name
    run.report.url = model.app_url(found.stack, run.project.config)
    run.running = any(c.running for cs in found.containers.values() for c in cs)
    run.report.mode = "relaunch" if run.running else "start"
    st.summary = (
        f"{run.report.project}: {plural(len(found.stack.services), 'service')}, "
        f"{'running' if run.running else 'not running'}"
    )
    for outside in found.roots.outside:
        run.ui.warn(
            f"not cleaning {outside}: bind-mounted but outside the project "
            "(list it in python_roots to include it)"
        )


def find_changes(run: Run, st: StepResult) -> None:
    if run.prepared:
        run.changes, run.plan = run.prepared.changes, run.prepared.plan
    else:
        run.changes, run.plan = compute(run.project, run.found, run.options)
    _outcomes(run)
    st.summary = _changes_summary(run.changes)


def frontend_due(run: Run) -> bool:
    bundle = run.project.config.frontend
    return bundle is not None and frontend.build_reason(bundle, run.changes) is not None


def build_frontend(run: Run, st: StepResult) -> None:
    bundle = run.project.config.frontend
    assert bundle is not None  # frontend_due
    why = frontend.build_reason(bundle, run.changes)
    frontend.build(bundle)
    # The build wrote its output: see it as a change like any other.
    run.changes, run.plan = compute(run.project, run.found, run.options)
    _outcomes(run)
    st.summary = f"{' '.join(bundle.build)} ({why})"


def _outcomes(run: Run) -> None:
    run.outcomes = {
        p.service: ServiceOutcome(p.service, p.action, p.reason, p.build, files=list(p.files))
        for p in run.plan.services
    }
    run.report.services = list(run.outcomes.values())
    cs = run.changes
    run.report.changes = sorted(cs.changes.all) if cs.old is not None else None


def clean_bytecode(run: Run, st: StepResult) -> None:
    if not run.plan.noop:
        # Which containers run RQ workers, and which of them are busy, is read from Redis
        # before anything stops (unless watch read it while it waited for saves);
        # meanwhile bytecode goes and images build.
        known = run.prepared.workers if run.prepared else None
        run.discovering = known or run.pool.submit(jobs.discover_stack, run.found)
    roots = run.found.roots.roots
    run.report.bytecode = cleaned = invalidate_bytecode(roots, run.changes)
    found = run.found
    cleaned.removed_elsewhere(pycs_inside.remove(cleaned.skipped, found.stack, found.containers))
    st.summary = clean_summary(run.report.bytecode) if roots else "no bind-mounted Python code"
    show_skipped(run.ui, run.report.bytecode)


def to_pull(run: Run) -> dict[str, str]:
    """Images of services about to be created that no service of the project builds and
    Compose may pull, by service (`up` would pull them itself, but only after cslaunch
    stopped what they replace)."""
    services = run.found.stack.services
    raw = run.found.raw.get("services") or {}
    built = set(built_images(run.found.stack).values())
    return {
        name: service.image
        for name in run.plan.with_action(START, REBUILD, RECREATE)
        for service in [services[name]]
        if service.image
        and not service.buildable
        and service.image not in built
        and (raw.get(name) or {}).get("pull_policy") not in ("never", "build")
    }


def pull_due(run: Run) -> bool:
    wanted = to_pull(run)
    present = docker.existing_images(sorted(set(wanted.values()))) if wanted else set()
    return any(image not in present for image in wanted.values())


def pull_images(run: Run, st: StepResult) -> None:
    wanted = to_pull(run)
    present = docker.existing_images(sorted(set(wanted.values())))
    missing = sorted(name for name, image in wanted.items() if image not in present)
    try:
        docker.pull(run.compose, missing)
    except LaunchFailed as e:
        images = ", ".join(f"{n} ({wanted[n]})" for n in missing)
        raise LaunchFailed(
            f"could not pull the image of {images}: {e.message.split(': ', 1)[-1]}",
            hint="nothing was stopped: the stack runs as before. Check the image name, "
            "and that the registry is reachable (`docker pull IMAGE`)",
        ) from None
    st.summary = ", ".join(missing)


def build_due(run: Run) -> bool:
    return bool(run.plan.build)


def build_images(run: Run, st: StepResult) -> None:
    refreshed = changes.refresh_mtimes(run.changes)
    if refreshed:
        run.ui.detail(
            f"refreshed the mtime of {plural(len(refreshed), 'file')} whose content changed "
            "with mtime and size kept, so the Docker build sees them"
        )
    act.build(run.compose, run.plan.build, run.found.stack)
    st.summary = ", ".join(run.plan.build)


def discovering(run: Run) -> bool:
    return run.discovering is not None


def read_workers(run: Run, st: StepResult) -> None:
    assert run.discovering is not None
    run.workers = workers = run.discovering.result()
    if workers.setup is None:
        st.summary = "no RQ workers" + (
            f" (Redis not read: {workers.problem})" if workers.problem else ""
        )
        return
    st.summary = "RQ workers: " + ", ".join(workers.setup.worker_services)
    if workers.busy:
        st.summary += (
            f"; {len(workers.busy)} busy ({', '.join(sorted(set(workers.busy.values())))})"
        )
    if workers.problem:
        st.summary += f" (Redis not read: {workers.problem})"


def _changes_summary(cs: changes.ChangeSet) -> str:
    if cs.old is None:
        indexed = plural(len(cs.entries), "file")
        return f"no index yet: {indexed} indexed, everything counts as changed"
    c = cs.changes
    parts = [f"{plural(len(cs.entries), 'file')} checked"]
    if cs.asked is not None:
        # The rest stands as the last launch left it: no file event named it since.
        parts = [f"{plural(len(cs.asked), 'saved file')} checked of {len(cs.entries):,}"]
    elif cs.git is not None and cs.git.view is not None:
        # The rest git vouched for: tracked, clean, and as the last launch indexed them
        asked = len(cs.git.asked) + len(cs.git.named.dirs)
        parts = [f"{len(cs.entries):,} files: git vouched for all but {plural(asked, 'path')}"]
    if c:
        parts.append(f"{len(c.modified)} modified, {len(c.added)} added, {len(c.deleted)} deleted")
    else:
        parts.append("no file changed")
    if cs.config_changed:
        parts.append(f"config changed: {', '.join(sorted(cs.config_changed))}")
    return "; ".join(parts)
