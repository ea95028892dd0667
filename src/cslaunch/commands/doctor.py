"""`cslaunch doctor`: setups that make stale code or slow restarts likely, each with a fix."""

from __future__ import annotations

from cslaunch import doctor as diagnosis
from cslaunch import errors, output
from cslaunch.options import Globals


def doctor(g: Globals) -> None:
    facts = diagnosis.gather(g.project())
    found = diagnosis.diagnose(facts)
    if g.json:
        output.emit(diagnosis.to_json(found, project=facts.project, notes=facts.notes))
    else:
        diagnosis.render(g.ui(), found, project=facts.project, notes=facts.notes)
    code = diagnosis.exit_code(found)
    if code:
        raise errors.CslaunchError("doctor found errors", reported=True).with_code(code)
