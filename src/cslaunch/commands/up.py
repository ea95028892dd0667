"""`cslaunch up` (and `cslaunch` alone): start or relaunch the stack, then report."""

from __future__ import annotations

from cslaunch import compose_config, errors, output
from cslaunch.lock import project_lock
from cslaunch.options import Globals


def up(g: Globals) -> None:
    ui = g.ui()
    project = g.project()
    started = compose_config.config_later(project.compose)  # runs while the launch loads
    waited = []

    def on_wait(message: str) -> None:
        waited.append(message)
        ui.warn(message)

    with project_lock(project.root, wait=not g.no_wait, on_wait=on_wait):
        if waited:  # another launch ran meanwhile: the files may have moved since
            started.cancel()
            started = compose_config.config_later(project.compose)
        from cslaunch import proofrun

        # Under the lock (no other launch moves the stack), before the launch machinery
        # loads: the looks run while it does.
        ahead = proofrun.ahead(project.root) if g.may_be_noop else None
        from cslaunch.launch import launch
        from cslaunch.report import render

        report = launch(project, g.launch_options(), ui, started=started, ahead=ahead)
    if g.json:
        output.emit(report.to_json())
    render(ui, report)
    if not report.ok:
        if report.verification and report.verification.stale:
            raise errors.StaleCode(report.error or "stale code", reported=True)
        raise errors.LaunchFailed(report.error or "launch failed", reported=True)
