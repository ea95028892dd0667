"""`cslaunch up`: the launch, as the list of its steps, top to bottom."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cslaunch import changes, docker, index, proof, proofrun
from cslaunch.changes import ChangeSet
from cslaunch.containers import by_service, project_containers
from cslaunch.launch import before, prove, ready, restart
from cslaunch.launch.run import LaunchStep, Run
from cslaunch.plan import LEAVE
from cslaunch.project import Project
from cslaunch.report import LaunchReport
from cslaunch.stack import LaunchOptions, Prepared
from cslaunch.state import LAST_LAUNCH, read_json, write_json
from cslaunch.ui import UI

STEPS = (
    LaunchStep("detect", before.detect_stack),
    LaunchStep("changes", before.find_changes),
    LaunchStep("frontend build", before.build_frontend, before.frontend_due),
    # Everything the plan needs is there before anything stops: a pull or a build that
    # fails leaves the stack as it was.
    LaunchStep("bytecode", before.clean_bytecode),
    LaunchStep("pull", before.pull_images, before.pull_due),
    LaunchStep("build", before.build_images, before.build_due),
    LaunchStep("workers", before.read_workers, before.discovering),
    LaunchStep("dead workers", restart.clear_dead, restart.dead_workers),
    LaunchStep("restart", restart.restart, restart.changes_containers, restart.start_or_restart),
    LaunchStep("wait", ready.wait),
    LaunchStep("reload proxies", ready.reload_proxies, ready.proxies_due),
    LaunchStep("recover jobs", ready.recover, ready.recovering),
    LaunchStep("redis", ready.maintain_redis, ready.redis_due, waits=True),
    LaunchStep("verify", prove.collect_proof, prove.proving, waits=True),
    LaunchStep("repair", prove.repair, prove.found_stale, waits=True),
)


def launch(
    project: Project,
    options: LaunchOptions,
    ui: UI,
    prepared: Prepared | None = None,
    *,
    started: docker.Pending | None = None,
    ahead: proofrun.Ahead | None = None,
    newer_saves: Callable[[ChangeSet], bool] | None = None,
    on_held: Callable[[list[str]], None] | None = None,
) -> LaunchReport:
    """Run every step that applies, in order. `prepared`: detect and changes, done ahead by
    `watch`; `started`: the project's `docker compose config`, begun before this module
    loaded; `ahead`: the last launch's looks inside baked-code containers, asked again
    meanwhile (taken only by a no-op, which changes no container before it verifies);
    `newer_saves`: whether saves came in that this launch will not serve (watch), which
    end its waiting steps; `on_held`: told which containers the restart held back."""
    pool = ThreadPoolExecutor(max_workers=3)
    run = Run(project, options, ui, pool, prepared, started, ahead, newer_saves, on_held)
    try:
        for step in STEPS:
            if step.waits and run.superseded():
                continue
            if step.applies(run):
                with run.step(step.shown_as(run)) as st:
                    step.act(run, st)
    finally:
        # A proof that newer saves made moot is left to end on its own.
        pool.shutdown(wait=not run.ended_early, cancel_futures=run.ended_early)
    return finish(run)


def finish(run: Run) -> LaunchReport:
    """The verdict. Only a launch that fully worked moves the index on: after a failure the
    next run sees the same changes and does again what is needed."""
    report, checked = run.report, run.report.verification
    stale = checked.stale if checked else []
    report.ended_early = run.ended_early
    report.workers = run.workers
    # A recovery this launch was told to run and did not start (no RQ setup found, say:
    # workers held back have no registration to be found by) is still owed.
    report.recovery_owed |= run.options.recover_jobs and run.recovering is None
    report.ok = not run.failed and not stale and not run.ended_early
    # A launch that had to repair changed something, whatever the plan said.
    report.up_to_date = run.plan.noop and report.ok and not report.repaired
    if run.failed:
        report.error = "; ".join(f"{v.service}: {v.reason}" for v in run.failed)
    elif stale:
        report.error = "stale code after the launch: " + "; ".join(
            f"{v.service}: {v.problems[0][1]} ({v.problems[0][0]})" for v in stale
        )
        for h in run.hidden:
            if not h.renew and h.service in {v.service for v in stale}:
                report.error += (
                    f"; {h.service}: an anonymous volume at {h.target} hides the new image's "
                    f"code, and was not renewed: {h.why}. To renew it (its content is lost): "
                    f"`{h.command()}`; or drop the volume, or make it a bind mount"
                )
    elif run.ended_early:
        pass  # not proved: the next launch sees these changes again, with the newer ones
    else:
        fresh = run.changes.new_index()
        done = changes.after_jobs(
            fresh,
            run.found.stack,
            run.changes.files,
            run.found.python,
            _jobs_run(run),
            run.project.config.source_patterns,
        )
        left = run.changes.old
        if not run.changes.index_kept or done is not fresh:
            index.save(run.project.root, done)
            left = done
        if left is not None:
            changes.leave_git_view(run.project.root, run.changes, left)
        if checked and checked.proof:
            proof.save(run.project.root, checked.proof)
    raw = run.found.raw.get("services") or {}
    # Jobs that finished of their own (exit 0), with the config they ran with: the next
    # launch leaves them done while nothing they use changed (stack.with_jobs_done). A
    # launch newer saves ended before its wait recorded any keeps the last one's.
    if run.completed or not run.ended_early:
        completed = {n: index.config_hash(raw.get(n) or {}) for n in run.completed}
    else:
        completed = (read_json(run.project.root, LAST_LAUNCH) or {}).get("completed") or {}
    last = {"services": ready.touched(run), "ok": report.ok, "completed": completed}
    write_json(run.project.root, LAST_LAUNCH, last)
    return report


def _jobs_run(run: Run) -> dict[str, list[tuple[float, float]]]:
    """The jobs this launch ran to completion, with when each container ran."""
    ran = [n for n in run.completed if run.outcomes.get(n) and run.outcomes[n].action != LEAVE]
    if not ran:
        return {}
    now = by_service(project_containers(run.compose))
    return {
        n: [
            (c.started_at.timestamp(), c.finished_at.timestamp())
            for c in now.get(n, [])
            if c.started_at and c.finished_at
        ]
        for n in ran
    }
