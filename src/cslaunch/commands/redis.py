"""`cslaunch redis`: measure Redis and, past a threshold, purge old ended jobs and rewrite
the AOF. Never FLUSHDB; queued and started jobs are never touched."""

from __future__ import annotations

from cslaunch import errors, output
from cslaunch.commands.jobs import rq_setup
from cslaunch.jobs import redis as redis_maint
from cslaunch.lock import project_lock
from cslaunch.options import Globals


def redis(g: Globals, *, dry_run: bool, force: bool) -> None:
    project, setup, _ = rq_setup(g)
    with project_lock(project.root, wait=not g.no_wait, on_wait=g.ui().warn):
        result = redis_maint.maintain(project.compose, setup, dry_run=dry_run, force=force)
    if g.json:
        output.emit(result.to_json())
    else:
        redis_maint.render_maintenance(g.ui(), result)
    if not result.ok:
        raise errors.CslaunchError(result.message, reported=True)
