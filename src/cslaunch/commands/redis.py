"""`cslaunch redis`: measure Redis and, past a threshold, purge old ended jobs and rewrite
the AOF. Never FLUSHDB; queued and started jobs are never touched."""

from __future__ import annotations

from cslaunch.commands.jobs import on_rq
from cslaunch.jobs import RQSetup
from cslaunch.jobs import redis as redis_maint
from cslaunch.options import Globals
from cslaunch.project import Project


def redis(g: Globals, *, dry_run: bool, force: bool) -> None:
    def act(project: Project, setup: RQSetup) -> redis_maint.MaintenanceResult:
        return redis_maint.maintain(project.compose, setup, dry_run=dry_run, force=force)

    on_rq(g, act, redis_maint.render_maintenance)
