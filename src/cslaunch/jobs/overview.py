"""What `cslaunch jobs` shows: the queues with their counts, started jobs with their
worker's liveness, the newest failed jobs and the workers. Changes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cslaunch import docker
from cslaunch.containers import Container, by_hostname
from cslaunch.jobs.helper import run_per_redis
from cslaunch.jobs.setup import RQSetup
from cslaunch.output import envelope
from cslaunch.ui import UI

QUEUE_COUNT_FIELDS = (
    "queued",
    "started",
    "failed",
    "finished",
    "deferred",
    "scheduled",
    "canceled",
)


@dataclass(frozen=True)
class QueueCounts:
    name: str
    queued: int = 0
    started: int = 0
    failed: int = 0
    finished: int = 0
    deferred: int = 0
    scheduled: int = 0
    canceled: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StartedJob:
    id: str
    func: str
    queue: str
    worker: str
    worker_alive: bool
    orphaned: bool  # its worker is gone: `cslaunch jobs recover` would recover it
    age: float | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailedJob:
    id: str
    func: str
    queue: str
    ended_at: str | None
    error: str  # the last line of the exception

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    state: str
    queues: tuple[str, ...]
    alive: bool
    heartbeat_age: float | None
    current_job: str = ""
    hostname: str = ""
    service: str = ""  # the Compose service whose container runs it, when one does

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["queues"] = list(self.queues)
        return data


@dataclass
class JobsStatus:
    ok: bool = True
    state: str = "ok"
    message: str = ""
    queues: list[QueueCounts] = field(default_factory=list)
    started: list[StartedJob] = field(default_factory=list)
    failed: list[FailedJob] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    liveness: str = ""
    rq_version: str = ""
    redis_version: str = ""
    service: str = ""

    @property
    def orphaned(self) -> list[StartedJob]:
        return [s for s in self.started if s.orphaned]

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "jobs",
            self.ok,
            state=self.state,
            message=self.message,
            rq_version=self.rq_version,
            redis_version=self.redis_version,
            liveness=self.liveness,
            queues=[q.to_json() for q in self.queues],
            started=[s.to_json() for s in self.started],
            failed=[f.to_json() for f in self.failed],
            workers=[w.to_json() for w in self.workers],
            service=self.service,
        )


def status(
    project: docker.ComposeProject,
    setup: RQSetup,
    *,
    failed_limit: int = 10,
    containers: Mapping[str, Sequence[Container]] | None = None,
) -> JobsStatus:
    """Queues with their counts, started jobs with their worker's liveness, the newest
    failed jobs with the last line of their exception, and the workers (with the service
    whose container runs each, from `containers`). Changes nothing."""
    result = JobsStatus()
    hosts = by_hostname(c for cs in (containers or {}).values() for c in cs)
    request = {"action": "status", "failed_limit": failed_limit}
    for doc in run_per_redis(project, setup, request, 60):
        _merge_status(result, doc, hosts)
    result.failed.sort(key=lambda f: f.ended_at or "", reverse=True)
    return result


def _merge_status(
    result: JobsStatus, doc: Mapping[str, Any], hosts: Mapping[str, Sequence[Container]]
) -> None:
    """Add one Redis's answer (one helper run) to `result`."""
    result.service = result.service or str(doc.get("service", ""))
    result.rq_version = result.rq_version or str(doc.get("rq_version") or "")
    result.redis_version = result.redis_version or str(doc.get("redis_version") or "")
    if not doc.get("ok"):
        result.ok = False
        result.state = str(doc.get("state") or "error")
        result.message = str(doc.get("message") or "")
        return
    result.liveness = result.liveness or str(doc.get("liveness") or "")
    for q in doc.get("queues") or []:
        result.queues.append(
            QueueCounts(name=str(q["name"]), **{k: int(q.get(k) or 0) for k in QUEUE_COUNT_FIELDS})
        )
    for s in doc.get("started") or []:
        result.started.append(
            StartedJob(
                id=str(s["id"]),
                func=str(s.get("func") or "?"),
                queue=str(s.get("queue") or ""),
                worker=str(s.get("worker") or ""),
                worker_alive=bool(s.get("worker_alive")),
                orphaned=bool(s.get("orphaned")),
                age=s.get("age"),
                reason=str(s.get("reason") or ""),
            )
        )
    for f in doc.get("failed") or []:
        result.failed.append(
            FailedJob(
                id=str(f["id"]),
                func=str(f.get("func") or "?"),
                queue=str(f.get("queue") or ""),
                ended_at=f.get("ended_at"),
                error=str(f.get("error") or ""),
            )
        )
    result.workers += [_worker_info(w, hosts) for w in doc.get("workers") or []]


def _worker_info(w: Mapping[str, Any], hosts: Mapping[str, Sequence[Container]]) -> WorkerInfo:
    host = str(w.get("hostname") or "")
    # One running container has that hostname: it runs the worker (on the host's network
    # they all have the host's, and nothing tells them apart).
    owners = hosts.get(host, [])
    return WorkerInfo(
        name=str(w["name"]),
        state=str(w.get("state") or ""),
        queues=tuple(w.get("queues") or ()),
        alive=bool(w.get("alive")),
        heartbeat_age=w.get("heartbeat_age"),
        current_job=str(w.get("current_job") or ""),
        hostname=host,
        service=owners[0].service if len(owners) == 1 else "",
    )


def render_status(ui: UI, st: JobsStatus) -> None:
    if not st.ok:
        ui.warn(f"cannot show jobs: {st.message}")
        return
    ui.echo(f"RQ {st.rq_version} on Redis {st.redis_version}")
    if not st.queues:
        ui.echo("  no queues yet")
    else:
        width = max(len(q.name) for q in st.queues)
        head = f"  {'queue':<{width}}  " + "  ".join(f"{f:>9}" for f in QUEUE_COUNT_FIELDS)
        ui.echo(ui.style(head, bold=True))
        for q in st.queues:
            counts = "  ".join(f"{getattr(q, f):>9}" for f in QUEUE_COUNT_FIELDS)
            ui.echo(f"  {q.name:<{width}}  {counts}")
    if st.workers:
        ui.echo("Workers:")
        for w in st.workers:
            mark = ui.ok_mark if w.alive else ui.fail_mark
            beat = f"heartbeat {w.heartbeat_age:.0f} s ago" if w.heartbeat_age is not None else ""
            state = w.state if w.alive else "gone"
            job = f"  job {w.current_job}" if w.current_job and w.alive else ""
            width = max(len(x.service) for x in st.workers)
            where = f"{w.service:<{width}}  " if width else ""
            line = f"  {mark} {where}{w.name}  {state:<9} {','.join(w.queues)}  {beat}{job}"
            ui.echo(line if w.alive else ui.style(line, fg="yellow"))
    if st.started:
        ui.echo("Started jobs:")
        for s in st.started:
            age = f"{s.age:.0f} s" if s.age is not None else "?"
            if s.orphaned:
                line = f"  {s.func}  {s.id}  {age}  INTERRUPTED ({s.reason})"
                ui.echo(ui.style(line, fg="yellow"))
            else:
                ui.echo(f"  {s.func}  {s.id}  {age}  on {s.worker}")
    if st.failed:
        ui.echo("Failed jobs, newest first:")
        for f in st.failed:
            ui.echo(f"  {f.ended_at or '?':<20} {f.func}  {f.id}")
            if f.error:
                ui.echo(ui.style(f"      {f.error}", fg="red"))
    if st.orphaned:
        ui.hint(
            f"{len(st.orphaned)} started job(s) lost their worker: "
            "`cslaunch jobs recover` puts them back on their queue"
        )
