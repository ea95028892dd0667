"""The diagnosis: every check run over the facts, in one order; its exit code; and how it is
shown, as JSON or as text."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from cslaunch import errors
from cslaunch.doctor.checks_code import (
    check_anonymous_over_code,
    check_baked_code,
    check_bytecode,
    check_clock,
    check_file_sharing,
    check_hidden_binds,
)
from cslaunch.doctor.checks_restarts import (
    check_fixed_worker_names,
    check_pid1,
    check_redis,
    check_rq_health,
    check_stop_grace,
)
from cslaunch.doctor.facts import ERROR, INFO, WARNING, Facts, Finding
from cslaunch.output import envelope
from cslaunch.ui import UI

EXIT_ERRORS = errors.DOCTOR  # `cslaunch doctor` found at least one error-level finding
_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


CHECKS: tuple[Callable[[Facts], Iterable[Finding]], ...] = (
    check_hidden_binds,
    check_pid1,
    check_stop_grace,
    check_clock,
    check_file_sharing,
    check_redis,
    check_baked_code,
    check_anonymous_over_code,
    check_fixed_worker_names,
    check_rq_health,
    check_bytecode,
)


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, errors first, then by service and code."""
    findings = [f for check in CHECKS for f in check(facts)]
    return sorted(findings, key=lambda f: (_RANK[f.severity], f.service or "", f.code))


def exit_code(findings: Iterable[Finding]) -> int:
    """Non-zero (EXIT_ERRORS) when any finding is an error; warnings and info pass."""
    return EXIT_ERRORS if any(f.severity == ERROR for f in findings) else 0


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    found: dict[str, int] = {ERROR: 0, WARNING: 0, INFO: 0}
    for f in findings:
        found[f.severity] += 1
    return found


def to_json(
    findings: list[Finding], *, project: str | None = None, notes: Iterable[str] = ()
) -> dict[str, Any]:
    return envelope(
        "doctor",
        exit_code(findings) == 0,
        project=project,
        counts=counts(findings),
        findings=[asdict(f) for f in findings],
        not_checked=list(notes),
    )


def render(
    ui: UI, findings: list[Finding], *, project: str | None = None, notes: Iterable[str] = ()
) -> None:
    colours = {ERROR: "red", WARNING: "yellow", INFO: "cyan"}
    marks = {ERROR: ui.fail_mark, WARNING: "!", INFO: "i"}
    if project:
        ui.line(ui.style(project, bold=True))
    for f in findings:
        if f.severity == INFO and ui.quiet:
            continue
        head = f"{marks[f.severity]} {f.severity}: {f.message}"
        ui.echo(ui.style(head, fg=colours[f.severity]) + ui.style(f"  [{f.code}]", dim=True))
        ui.echo(ui.style("    fix: ", fg="cyan") + f.fix)
    for note in notes:
        ui.line(ui.style(f"  not checked: {note}", dim=True))
    n = counts(findings)
    if not findings:
        ui.echo(ui.style(f"{ui.ok_mark} no problems found", fg="green", bold=True))
        return
    summary = f"{n[ERROR]} error(s), {n[WARNING]} warning(s), {n[INFO]} info"
    colour = "red" if n[ERROR] else ("yellow" if n[WARNING] else "green")
    ui.echo(ui.style(summary, fg=colour, bold=True))
