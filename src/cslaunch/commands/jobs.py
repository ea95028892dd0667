"""`cslaunch jobs` (queues, started jobs and their workers' liveness, failed jobs) and
`cslaunch jobs recover` (jobs whose worker is gone; never deletes one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from cslaunch import errors, jobs, output
from cslaunch.containers import Container
from cslaunch.lock import project_lock
from cslaunch.options import Globals
from cslaunch.project import Project
from cslaunch.stack import detect
from cslaunch.ui import UI


def rq_setup(g: Globals) -> tuple[Project, jobs.RQSetup, dict[str, list[Container]]]:
    """The project (named: the helper execs straight into a worker container), its RQ setup
    from the command lines, then Redis (every container holding a worker registration), and
    its containers."""
    found = detect(g.project())
    project = found.project
    discovered = jobs.discover_stack(found)
    if discovered.setup is None:
        raise errors.CslaunchError(
            "no RQ workers found: no command line runs `rq worker` and no running container "
            "holds a worker registration"
            + (f" ({discovered.problem})" if discovered.problem else ""),
            hint="start the stack (cslaunch), or name the worker services in "
            "[tool.cslaunch.rq] worker_services",
        )
    return project, discovered.setup, found.containers


def jobs_status(g: Globals) -> None:
    project, setup, containers = rq_setup(g)
    st = jobs.status(project.compose, setup, containers=containers)
    if g.json:
        output.emit(st.to_json())
    else:
        jobs.render_status(g.ui(), st)


def recover(g: Globals, *, dry_run: bool, policy: str | None) -> None:
    def act(project: Project, setup: jobs.RQSetup) -> jobs.RecoveryReport:
        return jobs.recover(project.compose, setup, policy=policy, dry_run=dry_run)

    on_rq(g, act, jobs.render_recovery)


class Outcome(Protocol):
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Outcome)


def on_rq(
    g: Globals,
    act: Callable[[Project, jobs.RQSetup], R],
    render: Callable[[UI, R], None],
) -> None:
    """Something that changes the app's Redis (recovery, maintenance): one cslaunch at a
    time on the project, then its JSON or its text, and a non-zero exit when it failed."""
    project, setup, _ = rq_setup(g)
    with project_lock(project.root, wait=not g.no_wait, on_wait=g.ui().warn):
        result = act(project, setup)
    if g.json:
        output.emit(result.to_json())
    else:
        render(g.ui(), result)
    if not result.ok:
        raise errors.CslaunchError(result.message, reported=True)
