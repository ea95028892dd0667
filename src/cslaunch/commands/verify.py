"""`cslaunch verify`: does every Python container run the code on disk? Changes nothing."""

from __future__ import annotations

from cslaunch import errors, output
from cslaunch.options import Globals
from cslaunch.report import render_verification
from cslaunch.stack import change_set, detect
from cslaunch.verify import verify_stack


def verify(g: Globals) -> None:
    project = g.project()
    found = detect(project)
    checked = verify_stack(found, change_set(project, found), project.compose)
    if g.json:
        output.emit(
            output.envelope(
                "verify", not checked.stale, services=[v.to_json() for v in checked.verdicts]
            )
        )
    else:
        render_verification(g.ui(), checked)
    if checked.stale:
        names = ", ".join(sorted({v.service for v in checked.stale}))
        raise errors.StaleCode(
            f"stale code in {names}", reported=True, hint="run cslaunch to relaunch what changed"
        )
