"""Recovery of the jobs a restart interrupted: requeued at the front of their queue or
moved to Failed, dead workers' registrations removed; and how that is told."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cslaunch import docker
from cslaunch.jobs.helper import run_per_redis
from cslaunch.jobs.setup import RQSetup, generated_name
from cslaunch.output import envelope
from cslaunch.rqconfig import POLICIES
from cslaunch.ui import UI


@dataclass(frozen=True)
class RecoveredJob:
    id: str
    func: str
    queue: str
    action: str  # requeue / fail / clear / left / skipped / error
    reason: str
    worker: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.error:
            del data["error"]
        return data


@dataclass(frozen=True)
class CleanedWorker:
    name: str
    reason: str


@dataclass
class RecoveryReport:
    """What `recover` did (or, with dry_run, would do)."""

    policy: str
    dry_run: bool
    ok: bool = True
    state: str = "ok"  # ok / loading / unreachable / auth / error / no-rq
    message: str = ""
    jobs: list[RecoveredJob] = field(default_factory=list)
    workers_cleaned: list[CleanedWorker] = field(default_factory=list)
    live_started: int = 0  # started jobs a live worker still runs (left alone)
    liveness: str = ""  # connection / heartbeat: how worker liveness was judged
    rq_version: str = ""
    service: str = ""  # the container the helper ran in
    seconds: float = 0.0

    def count(self, action: str) -> int:
        return sum(1 for j in self.jobs if j.action == action)

    @property
    def warning(self) -> str | None:
        """One line for the caller when recovery could not look at the jobs."""
        return None if self.ok else self.message

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "jobs recover",
            self.ok,
            state=self.state,
            message=self.message,
            policy=self.policy,
            dry_run=self.dry_run,
            jobs=[j.to_json() for j in self.jobs],
            workers_cleaned=[asdict(w) for w in self.workers_cleaned],
            live_started=self.live_started,
            liveness=self.liveness,
            rq_version=self.rq_version,
            service=self.service,
            seconds=round(self.seconds, 3),
        )


def recover(
    project: docker.ComposeProject,
    setup: RQSetup,
    *,
    policy: str | None = None,
    dry_run: bool = False,
    reason: str | None = None,
    grace: float | None = None,
    workers_only: bool = False,
) -> RecoveryReport:
    """Recover every job whose worker is gone, at once, after workers were restarted
    (`workers_only`: only remove the registrations of dead workers, before they restart).

    Each job in a started registry whose worker no longer runs is requeued at the front of
    its queue (policy "requeue") or moved to Failed with `reason` (policy "fail"); a job a
    dead worker had taken off its queue but not started is requeued whatever the policy.
    Registry entries of jobs that already ended are cleared. Registrations of dead workers
    are removed. Nothing a live worker owns is touched, no job is deleted, and racing
    cslaunch runs recover each job once. `policy` defaults to the configured one.
    """
    policy = policy or setup.config.policy
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    request: dict[str, Any] = {"action": "recover", "policy": policy, "dry_run": dry_run}
    if reason:
        request["reason"] = reason
    if grace is not None:
        request["grace"] = grace
    if workers_only:
        request["workers_only"] = True
    start = time.monotonic()
    report = RecoveryReport(policy=policy, dry_run=dry_run)
    for doc in run_per_redis(project, setup, request, timeout=180):
        _merge_recovery(report, doc)
    report.seconds = time.monotonic() - start
    return report


def _merge_recovery(report: RecoveryReport, doc: Mapping[str, Any]) -> None:
    report.service = report.service or str(doc.get("service", ""))
    report.rq_version = report.rq_version or str(doc.get("rq_version") or "")
    if not doc.get("ok"):
        report.ok = False
        report.state = str(doc.get("state") or "error")
        report.message = str(doc.get("message") or "RQ recovery failed")
        return
    report.liveness = report.liveness or str(doc.get("liveness") or "")
    report.live_started += int(doc.get("live_started") or 0)
    for j in doc.get("jobs") or []:
        report.jobs.append(
            RecoveredJob(
                id=str(j.get("id", "")),
                func=str(j.get("func") or "?"),
                queue=str(j.get("queue") or ""),
                action=str(j.get("action") or ""),
                reason=str(j.get("reason") or ""),
                worker=str(j.get("worker") or ""),
                error=str(j.get("error") or ""),
            )
        )
    for w in doc.get("workers_cleaned") or []:
        report.workers_cleaned.append(CleanedWorker(str(w.get("name")), str(w.get("reason"))))


def recovery_summary(report: RecoveryReport) -> str:
    """One line, for the launch step: "requeued 2 interrupted jobs; removed 2 stale workers"."""
    if not report.ok:
        return f"skipped: {report.message}"
    would = "would " if report.dry_run else ""
    parts = []
    verbs = {"requeue": "requeued", "fail": "failed", "clear": "cleared"}
    if report.dry_run:
        verbs = {"requeue": "requeue", "fail": "fail", "clear": "clear"}
    for action, noun in (("requeue", "interrupted"), ("fail", "interrupted"), ("clear", "stale")):
        n = report.count(action)
        if n:
            jobs = "job" if n == 1 else "jobs"
            entries = "entry" if n == 1 else "entries"
            what = f"{noun} {jobs}" if action != "clear" else f"stale registry {entries}"
            parts.append(f"{would}{verbs[action]} {n} {what}")
    if report.workers_cleaned:
        n = len(report.workers_cleaned)
        verb = "would remove" if report.dry_run else "removed"
        names = [w.name[:8] if generated_name(w.name) else w.name for w in report.workers_cleaned]
        whose = f" of {', '.join(names)}" if n <= 4 else ""
        why = "; ".join(sorted({w.reason.split(" (", 1)[0] for w in report.workers_cleaned}))
        parts.append(f"{verb} {n} dead worker registration{'s' if n != 1 else ''}{whose} ({why})")
    errors = report.count("error")
    if errors:
        parts.append(f"{errors} could not be recovered")
    return "; ".join(parts) if parts else "no interrupted jobs"


def render_recovery(ui: UI, report: RecoveryReport) -> None:
    if not report.ok:
        ui.warn(f"jobs not recovered: {report.message}")
        return
    heading = "Dry run: " if report.dry_run else ""
    ui.echo(heading + recovery_summary(report))
    verbs = {
        "requeue": "requeued at the front of its queue",
        "fail": "moved to Failed",
        "clear": "registry entry cleared",
        "left": "left to RQ",
        "skipped": "already recovered by another run",
        "error": "NOT recovered",
    }
    if report.dry_run:
        verbs.update(
            requeue="would be requeued at the front of its queue",
            fail="would be moved to Failed",
            clear="registry entry would be cleared",
        )
    width = max((len(j.func) for j in report.jobs), default=4)
    for j in report.jobs:
        verb = verbs.get(j.action, j.action)
        colour = {"error": "red", "fail": "yellow"}.get(j.action)
        line = f"  {j.func:<{width}}  {j.queue:<10} {j.id}  {verb}"
        ui.echo(ui.style(line, fg=colour) if colour else line)
        ui.detail(f"    {j.reason}" + (f": {j.error}" if j.error else ""))
    for w in report.workers_cleaned:
        ui.detail(f"  worker {w.name}: {w.reason}")
