"""What a launch did, for people (a summary) and for scripts (one JSON object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cslaunch.bytecode import CleanResult
from cslaunch.changes import ChangeSet
from cslaunch.output import envelope
from cslaunch.plan import LEAVE, Plan
from cslaunch.ui import UI, human_bytes, plural
from cslaunch.verify import Verification

if TYPE_CHECKING:
    from cslaunch.jobs import Discovered


@dataclass
class Step:
    name: str
    seconds: float
    summary: str = ""


@dataclass
class ServiceOutcome:
    service: str
    action: str  # start / restart / leave / recreated
    reason: str
    build: bool = False
    stop: str | None = None  # how it was stopped for the restart, and why
    state: str = ""  # ready / waiting / failed
    detail: str = ""  # healthy, running, exited with code 1, ...
    logs: str = ""  # last log lines, for a failed service
    files: list[str] = field(default_factory=list)  # changed files behind the action


@dataclass
class LaunchReport:
    project: str
    mode: str  # "start" (the stack was down) or "relaunch"
    ok: bool = False
    steps: list[Step] = field(default_factory=list)
    bytecode: CleanResult | None = None
    services: list[ServiceOutcome] = field(default_factory=list)
    url: str | None = None
    error: str | None = None
    changes: list[str] | None = None  # changed files; None without an index (first launch)
    up_to_date: bool = False  # nothing changed: nothing was restarted
    ended_early: bool = False  # newer saves ended its waiting and proof (watch)
    verification: Verification | None = None
    jobs: dict[str, Any] | None = None  # recovery of interrupted RQ jobs, when it ran
    recovery_owed: bool = False  # ended early before it: the next launch recovers jobs
    held: list[str] = field(default_factory=list)  # containers left stopped (act.restart)
    # The RQ workers as found before the restart: held back, they have no registration for
    # the next launch to find them by, so watch passes these on.
    workers: Discovered | None = field(default=None, repr=False)
    redis: dict[str, Any] | None = None  # Redis maintenance, when it ran

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def repaired(self) -> list[str]:
        """Services the launch found stale and recreated."""
        return [o.service for o in self.services if o.action == "repaired"]

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "up",
            self.ok,
            project=self.project,
            mode=self.mode,
            up_to_date=self.up_to_date,
            ended_early=self.ended_early,
            changes=self.changes,
            seconds=round(self.seconds, 3),
            steps=[
                {"name": s.name, "seconds": round(s.seconds, 3), "summary": s.summary}
                for s in self.steps
            ],
            bytecode=clean_json(self.bytecode) if self.bytecode else None,
            services=[
                {
                    "name": o.service,
                    "action": o.action,
                    "reason": o.reason,
                    "files": o.files,
                    "build": o.build,
                    "stop": o.stop,
                    "state": o.state,
                    "detail": o.detail,
                    **({"logs": o.logs} if o.logs else {}),
                }
                for o in self.services
            ],
            url=self.url,
            verify=[v.to_json() for v in self.verification.verdicts] if self.verification else None,
            jobs=self.jobs,
            redis=self.redis,
            error=self.error,
        )


def clean_json(result: CleanResult, *, listing: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roots": [str(r) for r in result.roots],
        "files": result.files,
        "dirs": result.dirs,
        "bytes": result.bytes,
        "dry_run": result.dry_run,
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
        "reasons": result.reasons,
    }
    if listing:
        data["removed"] = [str(p) for p in result.removed]
    return data


def clean_summary(result: CleanResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    text = (
        f"{verb} {plural(result.files, 'bytecode file')}, {plural(result.dirs, '__pycache__ dir')}"
    )
    if result.sized:
        text += f" ({human_bytes(result.bytes)})"
    if result.reasons:
        text += " [" + ", ".join(f"{why} {n}" for why, n in sorted(result.reasons.items())) + "]"
    if result.skipped:
        text += f"; {len(result.skipped)} could not be removed"
    return text


def show_skipped(ui: UI, result: CleanResult, limit: int = 10) -> None:
    for s in result.skipped[:limit]:
        ui.warn(f"could not remove {s.path}: {s.reason}")
    if len(result.skipped) > limit:
        ui.warn(f"... and {len(result.skipped) - limit} more (see --json)")


def render(ui: UI, report: LaunchReport) -> None:
    """The closing summary: what happened to each service, and where the app is."""
    ui.line()
    width = max((len(o.service) for o in report.services), default=7)
    for o in report.services:
        mark = {"ready": ui.ok_mark, "failed": ui.fail_mark}.get(o.state, " ")
        colour = {"ready": "green", "failed": "red"}.get(o.state)
        action = o.action + (" +build" if o.build else "")
        line = f"  {mark} {o.service:<{width}}  {action:<16} {o.detail}"
        ui.line(ui.style(line, fg=colour) if colour else line)
        if o.stop and ui.verbose:
            ui.detail(f"    stop: {o.stop}")
    ui.line()
    if report.ended_early:
        ui.echo(
            ui.style(
                f"Newer saves came in after {report.seconds:.1f} s: launching again", bold=True
            )
        )
    elif report.ok:
        head = "Stack is up" if report.mode == "start" else "Relaunched"
        if report.up_to_date:
            head = "Up to date, nothing changed"
        elif report.repaired:
            head = f"Repaired stale code in {', '.join(report.repaired)}"
        # The result line shows even with -q: it is what the user ran cslaunch for.
        ui.echo(
            ui.style(
                f"{head}: every service ready in {report.seconds:.1f} s", fg="green", bold=True
            )
        )
        if report.url:
            ui.echo(f"  App: {ui.style(report.url, fg='cyan')}")
    for v in report.verification.stale if report.verification else []:
        ui.echo(ui.style(f"STALE {v.service}:", fg="red", bold=True), err=True)
        for path, reason in v.problems[:10]:
            ui.echo(f"  {path}: {reason}", err=True)
    for o in report.services:
        if o.logs:
            ui.echo(ui.style(f"--- last log lines of {o.service} ---", bold=True), err=True)
            ui.echo(_indent(o.logs), err=True)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def plan_json(project: str, cs: ChangeSet, plan: Plan) -> dict[str, Any]:
    return envelope(
        "plan",
        True,
        project=project,
        first=plan.first,
        up_to_date=plan.noop,
        changes=sorted(cs.changes.all) if cs.old is not None else None,
        config_changed=sorted(cs.config_changed),
        build=list(plan.build),
        services=[
            {
                "name": p.service,
                "action": p.action,
                "build": p.build,
                "reason": p.reason,
                "files": list(p.files),
            }
            for p in plan.services
        ],
    )


def render_plan(ui: UI, project: str, cs: ChangeSet, plan: Plan) -> None:
    if cs.old is None:
        ui.echo(f"{project}: no change index yet (first launch): everything counts as changed")
    elif not cs.changes and not cs.config_changed:
        ui.echo(f"{project}: no file changed since the last launch")
    else:
        ui.echo(f"{project}: {plural(len(cs.changes.all), 'file')} changed since the last launch")
    width = max((len(p.service) for p in plan.services), default=7)
    for p in plan.services:
        action = p.action + (" +build" if p.build else "")
        colour = None if p.action == LEAVE else "yellow"
        text = f"  {p.service:<{width}}  {action:<14} {p.reason}"
        ui.echo(ui.style(text, fg=colour) if colour else text)
    if plan.noop:
        ui.echo("Nothing to do: `cslaunch up` would only check health.")


def render_verification(ui: UI, checked: Verification) -> None:
    if not checked.verdicts:
        ui.echo(
            "no service found that runs Python: nothing to verify (if one does, set "
            "`python = true` in its [services.NAME] table)"
        )
        return
    width = max((len(v.service) for v in checked.verdicts), default=7)
    for v in checked.verdicts:
        colour = {"fresh": "green", "stale": "red"}.get(v.state, "yellow")
        what = (
            f"{plural(v.checked, 'file')}, {plural(v.pycs, 'pyc')}, {v.seconds * 1000:.0f} ms"
            if v.checked
            else ""
        )
        ui.echo(
            ui.style(f"  {v.service:<{width}}  {v.state.upper():<8}", fg=colour)
            + f" {v.detail}  {what}".rstrip()
        )
        for path, reason in v.problems[:20]:
            ui.echo(f"      {path}: {reason}")
