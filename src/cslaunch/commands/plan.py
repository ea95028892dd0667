"""`cslaunch plan`: what `cslaunch up` would do to each service and why. Changes nothing."""

from __future__ import annotations

from cslaunch import output
from cslaunch.options import Globals
from cslaunch.report import plan_json, render_plan
from cslaunch.stack import compute, detect


def plan(g: Globals) -> None:
    project = g.project()
    found = detect(project)
    cs, the_plan = compute(project, found, g.launch_options())
    if g.json:
        output.emit(plan_json(found.stack.name, cs, the_plan))
    else:
        render_plan(g.ui(), found.stack.name, cs, the_plan)
