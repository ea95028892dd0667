"""Keep the app's Redis healthy: measure it, and maintain it when a threshold is crossed.

Measured through Redis itself (INFO: memory, persistence, keyspace) and a SCAN of RQ's job
keys, never by parsing `du` of a data directory. Maintenance purges finished/failed/canceled
jobs older than the retention period through RQ (never a queued, deferred, scheduled or
started job), drops registrations of dead workers, and runs BGREWRITEAOF when the
append-only file has grown well past its base. It never runs FLUSHDB or FLUSHALL; the app's
cache is cleared only when configured by exact key patterns or database numbers.

Like job recovery it runs inside a worker container (cslaunch.rqscript), so it reaches the
Redis the workers use whether or not it is published. Redis being unreachable, refusing the
credentials or still loading its dataset comes back as a result that says so, never as an
exception.

Thresholds (RQConfig, `[tool.cslaunch.rq]`), with their defaults:
    max_job_keys = 10000          RQ job keys
    max_memory_percent = 80       of maxmemory, when Redis has one
    max_memory_mb = 512           used memory, when Redis has no maxmemory
    aof_growth = 2.0, aof_min_mb = 64
                                  AOF larger than 2x its base and larger than 64 MB
    retention_days = 7            finished/failed jobs older than this are purged
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cslaunch import docker
from cslaunch.jobs.helper import run_helper
from cslaunch.jobs.setup import RQSetup
from cslaunch.output import envelope
from cslaunch.rqconfig import RQConfig
from cslaunch.ui import UI, human_bytes


@dataclass(frozen=True)
class RedisHealth:
    """One measurement of the app's Redis."""

    ok: bool
    state: str  # ok / loading / unreachable / auth / error / no-rq
    message: str = ""
    redis_version: str = ""
    used_memory: int | None = None
    maxmemory: int = 0
    peak_memory: int | None = None
    aof_enabled: bool = False
    aof_current_size: int | None = None
    aof_base_size: int | None = None
    aof_rewrite_in_progress: bool = False
    loading: bool = False
    keyspace: dict[str, dict[str, int]] = field(default_factory=dict)
    job_keys: int | None = None
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    workers_registered: int = 0
    workers_stale: int = 0
    service: str = ""

    @property
    def warning(self) -> str | None:
        """One line for the caller when Redis could not be measured."""
        return None if self.ok else self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "message": self.message,
            "redis_version": self.redis_version,
            "memory": {
                "used": self.used_memory,
                "maxmemory": self.maxmemory,
                "peak": self.peak_memory,
            },
            "persistence": {
                "aof_enabled": self.aof_enabled,
                "aof_current_size": self.aof_current_size,
                "aof_base_size": self.aof_base_size,
                "aof_rewrite_in_progress": self.aof_rewrite_in_progress,
                "loading": self.loading,
            },
            "keyspace": self.keyspace,
            "jobs": {"total": self.job_keys, "by_status": self.jobs_by_status},
            "workers": {"registered": self.workers_registered, "stale": self.workers_stale},
            "service": self.service,
        }


def health_from(doc: dict[str, Any], service: str = "") -> RedisHealth:
    """A RedisHealth from the helper's measurement (or its failure document)."""
    if not doc.get("ok", True) or "memory" not in doc:
        return RedisHealth(
            ok=False,
            state=str(doc.get("state") or "error"),
            message=str(doc.get("message") or "Redis could not be measured"),
            redis_version=str(doc.get("redis_version") or ""),
            loading=doc.get("state") == "loading",
            service=service,
        )
    memory = doc.get("memory") or {}
    persistence = doc.get("persistence") or {}
    jobs = doc.get("jobs") or {}
    workers = doc.get("workers") or {}
    return RedisHealth(
        ok=True,
        state="ok",
        redis_version=str(doc.get("redis_version") or ""),
        used_memory=memory.get("used"),
        maxmemory=int(memory.get("maxmemory") or 0),
        peak_memory=memory.get("peak"),
        aof_enabled=bool(persistence.get("aof_enabled")),
        aof_current_size=persistence.get("aof_current_size"),
        aof_base_size=persistence.get("aof_base_size"),
        aof_rewrite_in_progress=bool(persistence.get("aof_rewrite_in_progress")),
        loading=bool(persistence.get("loading")),
        keyspace={str(k): dict(v) for k, v in (doc.get("keyspace") or {}).items()},
        job_keys=jobs.get("total"),
        jobs_by_status=dict(jobs.get("by_status") or {}),
        workers_registered=int(workers.get("registered") or 0),
        workers_stale=int(workers.get("stale") or 0),
        service=service,
    )


def measure(project: docker.ComposeProject, setup: RQSetup) -> RedisHealth:
    """Memory, persistence, keyspace and RQ job keys by state of the workers' Redis."""
    workers = setup.targets()[0]
    doc = run_helper(project, workers, {"action": "measure"}, timeout=120)
    return health_from(doc, str(doc.get("service", "")))


@dataclass
class MaintenanceResult:
    ok: bool
    state: str
    dry_run: bool
    message: str = ""
    forced: bool = False
    triggers: list[str] = field(default_factory=list)  # thresholds crossed; empty: all fine
    before: RedisHealth | None = None
    after: RedisHealth | None = None
    purge_candidates: int = 0
    purged: int = 0
    purged_by_status: dict[str, int] = field(default_factory=dict)
    workers_cleaned: list[str] = field(default_factory=list)
    aof: dict[str, Any] = field(default_factory=dict)  # done / reason / before / after
    cache_deleted: int | None = None  # None: no cache configured
    cache: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def warning(self) -> str | None:
        return None if self.ok else self.message

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "redis",
            self.ok,
            state=self.state,
            message=self.message,
            dry_run=self.dry_run,
            forced=self.forced,
            triggers=self.triggers,
            before=self.before.to_json() if self.before else None,
            after=self.after.to_json() if self.after else None,
            purge={
                "candidates": self.purge_candidates,
                "deleted": self.purged,
                "by_status": self.purged_by_status,
            },
            workers_cleaned=self.workers_cleaned,
            aof_rewrite=self.aof,
            cache={"deleted": self.cache_deleted, **self.cache},
            notes=self.notes,
            seconds=round(self.seconds, 3),
        )


def maintain(
    project: docker.ComposeProject,
    setup: RQSetup,
    config: RQConfig | None = None,
    *,
    dry_run: bool = False,
    force: bool = False,
    clear_cache: bool = True,
) -> MaintenanceResult:
    """Measure, and when a threshold is crossed (or `force`): purge old finished/failed jobs,
    drop dead worker registrations, rewrite an overgrown AOF. Then clear the configured app
    cache (`clear_cache`), and measure again. With `dry_run`, only say what would be done."""
    config = config or setup.config
    request = {
        "action": "maintain",
        "dry_run": dry_run,
        "force": force,
        "clear_cache": clear_cache,
        "max_job_keys": config.max_job_keys,
        "max_memory_percent": config.max_memory_percent,
        "max_memory_mb": config.max_memory_mb,
        "aof_growth": config.aof_growth,
        "aof_min_mb": config.aof_min_mb,
        "retention_days": config.retention_days,
        "cache_patterns": list(config.cache_patterns),
        "cache_dbs": list(config.cache_dbs),
    }
    start = time.monotonic()
    doc = run_helper(project, setup.targets()[0], request, timeout=900)
    service = str(doc.get("service", ""))
    if not doc.get("ok"):
        return MaintenanceResult(
            ok=False,
            state=str(doc.get("state") or "error"),
            dry_run=dry_run,
            message=str(doc.get("message") or "Redis maintenance failed"),
            seconds=time.monotonic() - start,
        )
    actions = doc.get("actions") or {}
    purge = actions.get("purge") or {}
    cache = actions.get("cache")
    base = {k: doc.get(k) for k in ("ok", "state", "redis_version")}
    return MaintenanceResult(
        ok=True,
        state="ok",
        dry_run=dry_run,
        forced=force,
        triggers=[str(t) for t in doc.get("triggers") or []],
        before=health_from({**base, **(doc.get("before") or {})}, service),
        after=health_from({**base, **(doc.get("after") or {})}, service),
        purge_candidates=int(purge.get("candidates") or 0),
        purged=int(purge.get("deleted") or 0),
        purged_by_status=dict(purge.get("by_status") or {}),
        workers_cleaned=[str(w.get("name")) for w in actions.get("workers_cleaned") or []],
        aof=dict(actions.get("aof_rewrite") or {}),
        cache_deleted=int(cache.get("deleted") or 0) if cache else None,
        cache={k: v for k, v in (cache or {}).items() if k != "deleted"},
        notes=[str(n) for n in doc.get("notes") or []],
        seconds=time.monotonic() - start,
    )


def _size(n: int | None) -> str:
    return human_bytes(n) if n is not None else "?"


def health_lines(h: RedisHealth) -> list[str]:
    if not h.ok:
        return [h.message]
    memory = f"memory {_size(h.used_memory)}"
    memory += f" of {_size(h.maxmemory)} max" if h.maxmemory else " (no maxmemory)"
    lines = [f"Redis {h.redis_version}: {memory}"]
    if h.aof_enabled:
        lines.append(
            f"AOF {_size(h.aof_current_size)} (base {_size(h.aof_base_size)})"
            + (", rewriting" if h.aof_rewrite_in_progress else "")
        )
    else:
        lines.append("AOF off")
    keys = ", ".join(f"{db}: {v.get('keys', 0)} keys" for db, v in sorted(h.keyspace.items()))
    lines.append(f"keyspace {keys or 'empty'}")
    if h.job_keys is not None:
        states = ", ".join(f"{n} {s}" for s, n in sorted(h.jobs_by_status.items()))
        lines.append(f"RQ jobs {h.job_keys}" + (f" ({states})" if states else ""))
    if h.workers_stale:
        lines.append(f"{h.workers_stale} dead worker registration(s)")
    return lines


def render_health(ui: UI, h: RedisHealth) -> None:
    if not h.ok:
        ui.warn(h.message)
        return
    for line in health_lines(h):
        ui.echo(line)


def render_maintenance(ui: UI, m: MaintenanceResult) -> None:
    if not m.ok:
        ui.warn(f"Redis not maintained: {m.message}")
        return
    if m.before:
        for line in health_lines(m.before):
            ui.line(line)
    if m.triggers:
        ui.echo("Thresholds crossed: " + "; ".join(m.triggers))
    else:
        ui.line("No threshold crossed" + (": maintenance forced." if m.forced else "."))
    if m.purge_candidates or m.purged:
        count = m.purge_candidates if m.dry_run else m.purged
        by = ", ".join(f"{n} {s}" for s, n in sorted(m.purged_by_status.items()))
        verb = "Would purge" if m.dry_run else "Purged"
        ui.echo(f"{verb} {count} old jobs ({by})")
    if m.workers_cleaned:
        verb = "would remove" if m.dry_run else "removed"
        ui.echo(f"{verb.capitalize()} {len(m.workers_cleaned)} dead worker registration(s)")
    if m.aof.get("done"):
        ui.echo(f"AOF rewritten: {_size(m.aof.get('before'))} -> {_size(m.aof.get('after'))}")
    elif m.aof.get("would"):
        ui.echo("Would rewrite the AOF (BGREWRITEAOF)")
    elif m.aof.get("reason") and m.triggers:
        ui.line(f"AOF not rewritten: {m.aof['reason']}")
    if m.cache_deleted is not None:
        verb = "would delete" if m.dry_run else "deleted"
        ui.echo(f"Cache: {verb} {m.cache_deleted} keys")
    for note in m.notes:
        ui.warn(note)
    if m.before and m.after and not m.dry_run and (m.triggers or m.forced or m.purged):
        ui.echo(
            f"Before -> after: memory {_size(m.before.used_memory)} -> "
            f"{_size(m.after.used_memory)}, RQ jobs {m.before.job_keys} -> {m.after.job_keys}"
            + (
                f", AOF {_size(m.before.aof_current_size)} -> {_size(m.after.aof_current_size)}"
                if m.before.aof_enabled
                else ""
            )
        )
