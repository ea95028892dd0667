"""RQ job recovery and Redis maintenance, run INSIDE a worker container.

cslaunch runs this file with the app's own interpreter, rq and redis-py:

    docker compose exec -T <worker> python3 -B -c "<this file>" '<request JSON>'

so it works with whatever RQ the app pins (1.x, 2.x with `job_id:execution_id` entries in the
started registry, 3.x) and reaches Redis the way the workers do, published or not. It prints
exactly one line, MARKER followed by a JSON document, and never a traceback: every failure
(Redis unreachable, NOAUTH, LOADING, an RQ API that changed) becomes a field of that document.

Self-contained on purpose: the standard library, rq and redis only, Python >= 3.8. Nothing is
imported from rq or redis at module level, so the host can import, lint, type-check and
unit-test this module without them.

Rules it keeps:
- A job is never deleted, except a finished/failed/canceled job older than the retention
  period when maintenance purges (never a queued, deferred, scheduled or started job).
- A worker is dead when its registration is gone, or it has no connection to Redis (its
  pubsub subscription and its named client connection both vanish when the process dies),
  or, where that probe cannot be trusted, when its heartbeat expired. A live worker and the
  job it runs are never touched.
- Each interrupted job is claimed atomically (WATCH on the job hash, then one MULTI/EXEC that
  removes the started-registry entry and requeues or fails the job), so two cslaunch runs
  racing each other recover a job exactly once.
- Never FLUSHDB/FLUSHALL. App caches are cleared only by exact configured patterns/db numbers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

MARKER = "CSLAUNCH-RQ-JSON:"
CLIENT_NAME = "cslaunch-rq"
TERMINAL = ("finished", "failed", "canceled", "stopped")
DEFAULT_REASON = "interrupted by cslaunch relaunch"
LOST_GRACE = 2.0  # seconds a dequeued-but-unstarted job must stay lost before it is requeued
MAX_SCAN = 500_000  # job keys scanned at most for lost jobs, counts and purges
BATCH = 500
WORKER_TTL_FALLBACK = 480.0  # RQ's default worker TTL (420 s) plus its 60 s margin


# --- entry point ---------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    try:
        # The request (with the Redis URL, maybe a password) comes on stdin, where `ps`
        # cannot see it; an argument is accepted too, for tests and by hand.
        request = json.loads(argv[0] if argv else sys.stdin.read() or "{}")
        if not isinstance(request, dict):
            raise ValueError("the request must be a JSON object")
    except ValueError as e:
        emit({"ok": False, "state": "error", "message": f"bad request: {e}"})
        return 0
    emit(run(request))
    return 0


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request; every failure becomes {"ok": false, "state": ..., "message": ...}."""
    action = request.get("action")
    handlers = {
        "status": do_status,
        "recover": do_recover,
        "measure": do_measure,
        "maintain": do_maintain,
        "ping": do_ping,
        "workers": do_workers,
    }
    if action not in handlers:
        return {"ok": False, "state": "error", "message": f"unknown action {action!r}"}
    try:
        ctx = Ctx(request)
    except ImportError as e:
        return {
            "ok": False,
            "state": "no-rq",
            "message": f"cannot import rq/redis in this container: {e}",
        }
    except Exception as e:
        state, message = classify(e)
        return {"ok": False, "state": state, "message": message}
    base: dict[str, Any] = {
        "ok": True,
        "state": "ok",
        "rq_version": ctx.rq_version,
        "redis_version": ctx.info.get("redis_version"),
        "redis_url": redact(ctx.url),
        "guessed": bool(ctx.url and ctx.url == request.get("fallback_url")),
        "db": ctx.db,
    }
    if ctx.loading:
        base.update(ok=False, state="loading", message=loading_message(ctx.info))
        return base
    try:
        base.update(handlers[action](ctx))
    except Exception as e:
        state, message = classify(e)
        base.update(ok=False, state=state, message=message)
    return base


def do_ping(ctx: Ctx) -> dict[str, Any]:
    """Connect and report versions only."""
    return {}


def do_workers(ctx: Ctx) -> dict[str, Any]:
    """Every worker registration with where it runs (hostname, pid) and what it does: the
    host maps them to the project's containers, whatever command started the workers."""
    found = read_workers(ctx)
    return {
        "liveness": found["liveness"],
        "workers": [
            {
                "name": w["name"],
                "hostname": w["hostname"],
                "pid": w["pid"],
                "state": w["state"],
                "queues": w["queues"],
                "current_job": w["current_job"],
                "alive": w["alive"],
                "birth": w["birth"],
            }
            for w in found["workers"].values()
            if w["registered"]
        ],
    }


# --- helpers without Redis ---------------------------------------------------------------
def redis_urls(request: dict[str, Any], settings: Any) -> list[str]:
    """Where the workers' Redis is, in the order RQ and apps look: the worker's --url, its
    --config module's REDIS_URL or REDIS_HOST/PORT/DB/PASSWORD, the environment's
    RQ_REDIS_URL, REDIS_URL or REDIS_HOST...; with nothing said but localhost, the stack's
    Redis service by name next (`fallback_url`: django-rq keeps it in Django's settings, other
    apps in their own config files)."""
    url = request.get("url") or getattr(settings, "REDIS_URL", None)
    url = url or os.environ.get("RQ_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        return [str(url)]

    def said(key: str, default: Any) -> Any:
        value = getattr(settings, key, None)
        return value if value not in (None, "") else os.environ.get(key) or default

    host = said("REDIS_HOST", "")
    password = said("REDIS_PASSWORD", "")
    scheme = "rediss" if str(said("REDIS_SSL", "")).lower() in ("1", "true", "yes") else "redis"
    auth = ":{}@".format(quote(str(password), safe="")) if password else ""
    own = "{}://{}{}:{}/{}".format(
        scheme, auth, host or "localhost", said("REDIS_PORT", 6379), said("REDIS_DB", 0)
    )
    fallback = request.get("fallback_url")
    return [own, fallback] if fallback and not host else [own]


def classify(exc: BaseException) -> tuple[str, str]:
    """Redis trouble, in one line: loading / auth / unreachable / error."""
    names = {c.__name__ for c in type(exc).__mro__}
    text = one_line(str(exc)) or type(exc).__name__
    upper = text.upper()
    if "BusyLoadingError" in names or upper.startswith("LOADING"):
        return "loading", "Redis is loading its dataset into memory"
    if (
        "AuthenticationError" in names
        or "AuthenticationWrongNumberOfArgsError" in names
        or "NOAUTH" in upper
        or "WRONGPASS" in upper
        or "NOPERM" in upper
        or "INVALID PASSWORD" in upper
        or "INVALID USERNAME-PASSWORD" in upper
    ):
        return "auth", f"Redis refused the credentials: {text}"
    if names & {"ConnectionError", "TimeoutError", "ConnectionRefusedError", "OSError"}:
        return "unreachable", f"Redis is unreachable: {text}"
    return "error", f"{type(exc).__name__}: {text}"


def one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def redact(url: str | None) -> str | None:
    """A Redis URL without its password."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def loading_message(info: dict[str, Any]) -> str:
    done = info.get("loading_loaded_perc")
    eta = info.get("loading_eta_seconds")
    text = "Redis is loading its dataset into memory"
    if done is not None:
        text += f" ({float(done):.0f}% done"
        text += f", about {int(eta)} s left)" if eta is not None else ")"
    return text


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_time(value: Any) -> float | None:
    """RQ's timestamps: '2024-01-02T03:04:05.678901Z' (utcformat), or a float epoch."""
    raw = text(value).strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    raw = raw.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(raw[:26], fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def func_from_description(description: str) -> str:
    return description.split("(", 1)[0].strip() or "?"


def version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def chunks(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def info_int(info: dict[str, Any], key: str) -> int | None:
    value = info.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- context ------------------------------------------------------------------------------
class Ctx:
    """One connection, the app's rq, and the key names its RQ version uses."""

    def __init__(self, request: dict[str, Any]):
        self.req = request
        redis = importlib.import_module("redis")
        self.redis_exceptions = importlib.import_module("redis.exceptions")
        self.rq = importlib.import_module("rq")
        self.rq_job = importlib.import_module("rq.job")
        self.rq_queue = importlib.import_module("rq.queue")
        self.rq_registry = importlib.import_module("rq.registry")
        self.rq_version = str(
            getattr(self.rq, "__version__", "") or getattr(self.rq, "VERSION", "")
        )
        self.major = version_tuple(self.rq_version)[0] if self.rq_version else 1
        self.settings: Any = None
        if request.get("config_module"):  # rq worker --config: REDIS_URL and QUEUES live there
            try:
                self.settings = importlib.import_module(request["config_module"])
            except Exception:
                self.settings = None
        timeouts = {"socket_connect_timeout": 5, "socket_timeout": 60}
        candidates = redis_urls(request, self.settings)
        for i, url in enumerate(candidates):
            self.url = url
            self.conn = redis.Redis.from_url(url, **timeouts)
            try:
                self.info: dict[str, Any] = self.conn.info()
                break
            except self.redis_exceptions.ConnectionError:
                if i == len(candidates) - 1:
                    raise
        self.db = int(self.conn.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.loading = str(self.info.get("loading", "0")) == "1"
        self.now = time.time()
        self.scan_truncated = False
        utils = importlib.import_module("rq.utils")
        self.import_attribute = utils.import_attribute
        self.Job: Any = self.rq_job.Job
        if request.get("job_class"):
            self.Job = self.import_attribute(request["job_class"])
        self.serializer: Any = None
        if request.get("serializer"):
            serializers = importlib.import_module("rq.serializers")
            self.serializer = serializers.resolve_serializer(request["serializer"])
        self.Queue: Any = self.rq_queue.Queue
        worker_mod = importlib.import_module("rq.worker")
        self.Worker: Any = worker_mod.Worker
        try:
            self.PUBSUB = str(importlib.import_module("rq.command").PUBSUB_CHANNEL_TEMPLATE)
        except (ImportError, AttributeError):
            self.PUBSUB = ""
        self.prefix = str(getattr(importlib.import_module("rq.defaults"), "RQ_KEY_PREFIX", "rq"))

    # key names, taken from the app's rq classes so a custom prefix (RQ 3) is honoured
    def job_key(self, job_id: str) -> str:
        return str(self.Job.redis_job_namespace_prefix) + job_id

    def queue_key(self, queue: str) -> str:
        return str(self.Queue.redis_queue_namespace_prefix) + queue

    def intermediate_key(self, queue: str) -> str | None:
        if self.major < 2:
            return None
        return self.queue_key(queue) + ":intermediate"

    def registry(self, kind: str, queue: str) -> Any:
        cls = getattr(self.rq_registry, kind, None)
        if cls is None:
            return None
        return cls(name=queue, connection=self.conn, job_class=self.Job, serializer=self.serializer)

    def registry_key(self, kind: str, queue: str) -> str | None:
        reg = self.registry(kind, queue)
        return str(reg.key) if reg is not None else None

    def worker_key(self, name: str) -> str:
        return str(self.Worker.redis_worker_namespace_prefix) + name

    def execution_key(self, entry: str) -> str:
        return f"{self.prefix}:execution:{entry}"

    def executions_key(self, job_id: str) -> str:
        return f"{self.prefix}:executions:{job_id}"

    def results_key(self, job_id: str) -> str:
        try:
            return str(importlib.import_module("rq.results").Result.get_key(job_id))
        except (ImportError, AttributeError):
            return f"{self.prefix}:results:{job_id}"

    def queue(self, name: str) -> Any:
        return self.Queue(
            name, connection=self.conn, job_class=self.Job, serializer=self.serializer
        )

    def fetch(self, job_id: str) -> Any:
        return self.Job.fetch(job_id, connection=self.conn, serializer=self.serializer)

    def status_enum(self, name: str) -> Any:
        status_cls = getattr(self.rq_job, "JobStatus", None)
        return status_cls(name) if status_cls is not None else name

    def queue_names(self) -> list[str]:
        """The queues the workers were started with, and every queue RQ knows of."""
        names = [q for q in self.req.get("queues") or [] if q]
        names += [str(q) for q in getattr(self.settings, "QUEUES", None) or []]
        prefix = str(self.Queue.redis_queue_namespace_prefix)
        for key in sorted(text(k) for k in self.conn.smembers(self.Queue.redis_queues_keys)):
            if key.startswith(prefix):
                names.append(key[len(prefix) :])
        return list(dict.fromkeys(names))


# --- workers ------------------------------------------------------------------------------
def read_workers(ctx: Ctx, extra: set[str] | None = None) -> dict[str, Any]:
    """Registered workers (and any named in `extra`) with their liveness.

    Returns {"workers": {name: {...}}, "liveness": "connection" | "heartbeat"}.
    """
    prefix = str(ctx.Worker.redis_worker_namespace_prefix)
    registered = {
        text(k)[len(prefix) :]
        for k in ctx.conn.smembers(ctx.Worker.redis_workers_keys)
        if text(k).startswith(prefix)
    }
    names = sorted(registered | set(extra or ()))
    pipe = ctx.conn.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(ctx.worker_key(name))
        pipe.ttl(ctx.worker_key(name))
    raw = pipe.execute() if names else []
    connected, trusted = probe_connections(ctx, names)
    workers: dict[str, Any] = {}
    for i, name in enumerate(names):
        data = {text(k): text(v) for k, v in (raw[2 * i] or {}).items()}
        ttl = raw[2 * i + 1]
        birth = parse_time(data.get("birth"))
        beat = parse_time(data.get("last_heartbeat"))
        exists = bool(data)
        w = {
            "name": name,
            "registered": name in registered,
            "exists": exists,
            "dead": bool(data.get("death")),
            "state": data.get("state", ""),
            "queues": [q for q in data.get("queues", "").split(",") if q],
            "current_job": data.get("current_job", ""),
            "birth": birth,
            "last_heartbeat": beat,
            "heartbeat_age": round(ctx.now - beat, 1) if beat else None,
            "ttl": ttl if isinstance(ttl, int) else None,
            "connected": connected.get(name) if connected is not None else None,
            "hostname": data.get("hostname", ""),
            "pid": data.get("pid", ""),
        }
        w["alive"] = worker_alive(w, trusted)
        workers[name] = w
    return {"workers": workers, "liveness": "connection" if trusted else "heartbeat"}


def worker_alive(w: dict[str, Any], trusted: bool) -> bool:
    if not w["exists"] or w["dead"]:
        return False
    if trusted:
        return bool(w["connected"])
    # Heartbeat only: RQ lets the key expire when heartbeats stop; a key without expiry is
    # judged by the age of its last heartbeat.
    if (w["ttl"] is None or w["ttl"] < 0) and w["heartbeat_age"] is not None:
        return bool(w["heartbeat_age"] < WORKER_TTL_FALLBACK)
    return True


def probe_connections(ctx: Ctx, names: list[str]) -> tuple[dict[str, bool] | None, bool]:
    """Which workers hold a connection to Redis right now.

    A running RQ worker (>= 1.6) names its connection after itself (CLIENT SETNAME) and
    subscribes to `rq:pubsub:<name>`; a killed one loses both the moment its process dies,
    while its heartbeat key lives on for minutes. The probe is trusted when this Redis shows
    us its clients (our own named connection is in CLIENT LIST) or at least one worker is
    seen connected; otherwise liveness falls back to heartbeats.
    """
    if version_tuple(ctx.rq_version or "0") < (1, 6) or not ctx.PUBSUB:
        return None, False
    client_names: set[str] | None = None
    sees_self = False
    try:
        ctx.conn.client_setname(CLIENT_NAME)
        client_names = {text(c.get("name")) for c in ctx.conn.client_list()}
        sees_self = CLIENT_NAME in client_names
    except Exception:
        client_names = None
    subscribed: dict[str, int] = {}
    try:
        for batch in chunks(names, 200):
            channels = [ctx.PUBSUB % n for n in batch]
            for channel, count in ctx.conn.pubsub_numsub(*channels):
                subscribed[text(channel)] = int(count)
    except Exception:
        if client_names is None:
            return None, False
    connected = {
        n: subscribed.get(ctx.PUBSUB % n, 0) > 0 or (client_names is not None and n in client_names)
        for n in names
    }
    return connected, sees_self or any(connected.values())


def clean_workers(ctx: Ctx, workers: dict[str, Any], dry_run: bool) -> list[dict[str, Any]]:
    """Drop the registrations of dead workers (RQ's register_death / clean_worker_registry).
    A live worker is never touched."""
    cleaned: list[dict[str, Any]] = []
    for w in workers.values():
        if w["alive"] or not w["registered"]:
            continue
        why = "registration expired" if not w["exists"] else "process gone"
        if w["exists"] and not w["dead"] and w["heartbeat_age"] is not None:
            why = f"process gone (last heartbeat {w['heartbeat_age']:.0f} s ago)"
        cleaned.append({"name": w["name"], "reason": why})
        if dry_run:
            continue
        key = ctx.worker_key(w["name"])
        if w["exists"]:
            try:
                found = ctx.Worker.find_by_key(
                    key, connection=ctx.conn, job_class=ctx.Job, serializer=ctx.serializer
                )
                if found is not None:
                    found.register_death()
                    continue
            except Exception:
                pass
            # RQ's register_death, by hand, for a registration its classes cannot load.
            pipe = ctx.conn.pipeline()
            pipe.srem(ctx.Worker.redis_workers_keys, key)
            for q in w["queues"]:
                pipe.srem(f"{ctx.prefix}:workers:{q}", key)
            pipe.hset(key, "death", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            pipe.expire(key, 60)
            pipe.execute()
        else:
            pipe = ctx.conn.pipeline()
            pipe.srem(ctx.Worker.redis_workers_keys, key)
            for q in ctx.queue_names():
                pipe.srem(f"{ctx.prefix}:workers:{q}", key)
            pipe.execute()
    return cleaned


# --- started registries -------------------------------------------------------------------
def read_started(ctx: Ctx, queues: list[str]) -> list[dict[str, Any]]:
    """Every entry of every started registry, with its job's state and worker."""
    entries: list[dict[str, Any]] = []
    for q in queues:
        key = ctx.registry_key("StartedJobRegistry", q)
        if key is None:
            continue
        for raw, score in ctx.conn.zrange(key, 0, -1, withscores=True):
            entry = text(raw)
            job_id, exec_id = entry, ""
            if ctx.major >= 2 and ":" in entry:
                job_id, exec_id = entry.rsplit(":", 1)
            entries.append(
                {
                    "queue": q,
                    "wip_key": key,
                    "entry": entry,
                    "job_id": job_id,
                    "exec_id": exec_id,
                    "score": float(score),
                }
            )
    if not entries:
        return entries
    pipe = ctx.conn.pipeline(transaction=False)
    for e in entries:
        pipe.hmget(
            ctx.job_key(e["job_id"]), "status", "worker_name", "started_at", "description", "origin"
        )
        if e["exec_id"]:
            pipe.hmget(ctx.execution_key(e["entry"]), "worker_name", "created_at")
    values = iter(pipe.execute())
    for e in entries:
        status, worker, started, description, origin = (text(v) for v in next(values))
        e["exists"] = bool(status or description or origin)
        e["status"] = status
        e["func"] = func_from_description(description) if description else "?"
        e["started_at"] = parse_time(started)
        e["worker"] = worker
        if e["exec_id"]:
            exec_worker, created = (text(v) for v in next(values))
            e["worker"] = exec_worker or worker
            e["started_at"] = e["started_at"] or parse_time(created)
    return entries


def judge(ctx: Ctx, e: dict[str, Any], workers: dict[str, Any]) -> str | None:
    """Why this started entry is orphaned (its worker is gone), or None while a live worker
    owns it."""
    name = e["worker"]
    if not name:
        if e["score"] < ctx.now:
            return "no worker recorded and its heartbeat expired"
        return None
    w = workers.get(name)
    if w is None or not w["alive"]:
        return f"worker {name} gone"
    # A worker started again under a fixed --name: alive, but born after this job started
    # and busy with something else (or idle).
    if (
        w["current_job"] != e["job_id"]
        and w["birth"] is not None
        and e["started_at"] is not None
        and w["birth"] > e["started_at"]
    ):
        return f"worker {name} restarted since the job started"
    return None


# --- recovery -----------------------------------------------------------------------------
def do_recover(ctx: Ctx) -> dict[str, Any]:
    policy = ctx.req.get("policy") or "requeue"
    if policy not in ("requeue", "fail"):
        raise ValueError(f"unknown policy {policy!r}")
    dry_run = bool(ctx.req.get("dry_run"))
    if ctx.req.get("workers_only"):
        # Before workers restart: a dead registration of a fixed name blocks its successor,
        # while the jobs wait for the new workers (requeued now, the old ones would run
        # them on the old code).
        found = read_workers(ctx)
        return {
            "policy": policy,
            "dry_run": dry_run,
            "liveness": found["liveness"],
            "jobs": [],
            "workers_cleaned": clean_workers(ctx, found["workers"], dry_run),
            "live_started": 0,
        }
    grace = float(ctx.req.get("grace", LOST_GRACE))
    queues = ctx.queue_names()
    lost_seen = time.monotonic()
    lost = find_lost(ctx, queues)
    started = read_started(ctx, queues)
    found = read_workers(ctx, {e["worker"] for e in started if e["worker"]})
    workers = found["workers"]
    orphans = [(e, why) for e in started for why in [judge(ctx, e, workers)] if why]
    # Oldest last: each requeue goes to the front, so the job that started first runs first.
    orphans.sort(key=lambda pair: pair[0]["started_at"] or 0.0, reverse=True)
    jobs = [recover_entry(ctx, e, why, policy, dry_run) for e, why in orphans]

    if lost:
        # A job a worker dequeued but had not yet registered as started looks the same as one
        # whose worker died in between; only one still lost after a grace period is recovered.
        time.sleep(max(0.0, grace - (time.monotonic() - lost_seen)))
        still = find_lost(ctx, queues)
        for job_id in sorted(set(lost) & set(still), key=lambda j: still[j]["enqueued_at"] or 0.0):
            jobs.append(recover_lost(ctx, still[job_id], dry_run))

    cleaned = clean_workers(ctx, workers, dry_run)
    return {
        "policy": policy,
        "dry_run": dry_run,
        "liveness": found["liveness"],
        "queues": queues,
        "jobs": jobs,
        "workers_cleaned": cleaned,
        "live_started": sum(1 for e in started if judge(ctx, e, workers) is None),
    }


def recover_entry(
    ctx: Ctx, e: dict[str, Any], why: str, policy: str, dry_run: bool
) -> dict[str, Any]:
    item = {
        "id": e["job_id"],
        "func": e["func"],
        "queue": e["queue"],
        "worker": e["worker"],
        "reason": why,
        "status": e["status"],
        "dry_run": dry_run,
    }
    if not e["exists"]:
        action = "clear"
        item["reason"] = why + "; the job's data is gone"
    elif e["status"] == "started":
        action = policy
    elif e["status"] == "queued":
        # RQ 2 registers the execution just before the work horse marks the job started:
        # this job never ran, so requeueing it is safe whatever the policy.
        action = "requeue"
        item["reason"] = why + " before the job started"
    else:
        action = "clear"
        item["reason"] = why + f"; the job already ended ({e['status']})"
    item["action"] = action
    if dry_run:
        return item
    try:
        item["action"] = claim(ctx, e, action, why)
    except Exception as exc:
        item["action"] = "error"
        item["error"] = classify(exc)[1]
    if item["action"] in ("requeue", "fail"):
        item["func"] = job_func(ctx, e["job_id"], e["func"])
    return item


def claim(ctx: Ctx, e: dict[str, Any], action: str, why: str) -> str:
    """Remove the started entry and requeue/fail its job in one transaction, if this run wins
    the entry. Returns the action taken, or "skipped" when another run got there first."""
    watch_error = ctx.redis_exceptions.WatchError
    job_key = ctx.job_key(e["job_id"])
    for attempt in range(50):
        with ctx.conn.pipeline() as pipe:
            try:
                # Every requeue/fail writes the job hash, so watching it serialises racers:
                # whoever commits second sees the WATCH fire and finds the entry gone.
                pipe.watch(job_key)
                if pipe.zscore(e["wip_key"], e["entry"]) is None:
                    pipe.unwatch()
                    return "skipped"
                status = text(pipe.hget(job_key, "status"))
                if action != "clear" and status not in ("started", "queued"):
                    action = "clear"
                if action == "clear":
                    pipe.multi()
                    remove_entry(ctx, pipe, e, None)
                    removed = pipe.execute()[0]
                    return "clear" if removed else "skipped"
                if status == "queued":
                    action = "requeue"
                job = ctx.fetch(e["job_id"])
                if getattr(job, "has_rate_limit", False):
                    # RQ 3 rate-limited job: its concurrency slot is RQ's to release, so its
                    # own abandoned-job cleanup handles it.
                    pipe.unwatch()
                    return "left"
                pipe.multi()
                remove_entry(ctx, pipe, e, job)
                if action == "requeue":
                    requeue_into(ctx, pipe, job, e["queue"])
                else:
                    fail_into(ctx, pipe, job, f"{ctx.req.get('reason') or DEFAULT_REASON} ({why})")
                pipe.execute()
                if action == "fail":
                    enqueue_dependents(ctx, job)
                return action
            except watch_error:
                time.sleep(min(0.2, 0.005 * (attempt + 1)))
    raise RuntimeError(f"job {e['job_id']} kept changing; left for the next run")


def remove_entry(ctx: Ctx, pipe: Any, e: dict[str, Any], job: Any) -> None:
    """Queue the removal of a started-registry entry (and its RQ 2+ execution) on `pipe`;
    the first command is the ZREM, whose reply tells whether the entry was still there."""
    pipe.zrem(e["wip_key"], e["entry"])
    if ctx.major < 2:
        if job is not None:
            ctx.registry("StartedJobRegistry", e["queue"]).remove(job, pipeline=pipe)
    elif e["exec_id"]:
        removed = False
        if job is not None:
            try:
                executions = importlib.import_module("rq.executions")
                execution = executions.Execution(
                    id=e["exec_id"], job_id=e["job_id"], connection=ctx.conn
                )
                execution.delete(job=job, pipeline=pipe)
                removed = True
            except Exception:
                removed = False
        if not removed:
            pipe.delete(ctx.execution_key(e["entry"]))
            pipe.zrem(ctx.executions_key(e["job_id"]), e["exec_id"])
    inter = ctx.intermediate_key(e["queue"])
    if inter:
        pipe.lrem(inter, 0, e["job_id"])


def requeue_into(ctx: Ctx, pipe: Any, job: Any, queue_name: str) -> None:
    """RQ's own enqueue, at the front of the job's queue, on the caller's transaction."""
    queue = ctx.queue(job.origin or queue_name)
    job.started_at = None
    job.ended_at = None
    if hasattr(job, "_exc_info"):
        job._exc_info = None
    enqueue = getattr(queue, "_enqueue_job", None) or queue.enqueue_job
    enqueue(job, pipeline=pipe, at_front=True)


def fail_into(ctx: Ctx, pipe: Any, job: Any, reason: str) -> None:
    """RQ's own failure path (status FAILED, FailedJobRegistry, failure result) on `pipe`."""
    utils = importlib.import_module("rq.utils")
    now = getattr(utils, "now", None) or utils.utcnow
    job.ended_at = now()
    exc_string = f"cslaunch.JobInterrupted: {reason}"
    job.set_status(ctx.status_enum("failed"), pipeline=pipe)
    handle = getattr(job, "_handle_failure", None)
    if handle is not None:
        handle(exc_string, pipe)
        return
    registry = ctx.registry("FailedJobRegistry", job.origin)
    registry.add(job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=pipe)


def enqueue_dependents(ctx: Ctx, job: Any) -> None:
    """What RQ does after a failure: dependents that allow failure get their turn."""
    with contextlib.suppress(Exception):
        ctx.queue(job.origin).enqueue_dependents(job)


def job_func(ctx: Ctx, job_id: str, fallback: str) -> str:
    try:
        return str(ctx.fetch(job_id).func_name)
    except Exception:
        return fallback


# --- lost jobs ----------------------------------------------------------------------------
def find_lost(ctx: Ctx, queues: list[str]) -> dict[str, dict[str, Any]]:
    """Queued jobs that are on no queue and in no started registry: a worker took them off
    the queue (BLPOP in RQ 1, BLMOVE to the intermediate list in RQ 2+) and died before it
    registered them as started. RQ 1 never finds these again; RQ 2 fails them much later."""
    in_started: set[str] = set()
    for q in queues:
        key = ctx.registry_key("StartedJobRegistry", q)
        if key:
            for raw in ctx.conn.zrange(key, 0, -1):
                entry = text(raw)
                in_started.add(entry.rsplit(":", 1)[0] if ctx.major >= 2 else entry)
    candidates: dict[str, dict[str, Any]] = {}
    for job_id, (status, origin, enqueued) in scan_jobs(ctx, ("status", "origin", "enqueued_at")):
        if status == "queued" and enqueued and job_id not in in_started:
            candidates[job_id] = {
                "id": job_id,
                "queue": origin,
                "enqueued_at": parse_time(enqueued),
                "enqueued_raw": enqueued,
            }
    if not candidates:
        return {}
    on_queue: dict[str, set[str]] = {}
    for q in {c["queue"] for c in candidates.values()}:
        on_queue[q] = {text(j) for j in ctx.conn.lrange(ctx.queue_key(q), 0, -1)}
    lost = {j: c for j, c in candidates.items() if j not in on_queue.get(c["queue"], set())}
    for c in lost.values():
        inter = ctx.intermediate_key(c["queue"]) if c["queue"] else None
        c["intermediate"] = bool(inter and on_list(ctx, inter, c["id"]))
    return lost


def recover_lost(ctx: Ctx, c: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    item = {
        "id": c["id"],
        "func": "?",
        "queue": c["queue"],
        "worker": "",
        "reason": "taken off the queue by a worker that died before starting it",
        "status": "queued",
        "action": "requeue",
        "dry_run": dry_run,
    }
    try:
        description = text(ctx.conn.hget(ctx.job_key(c["id"]), "description"))
        item["func"] = func_from_description(description) if description else "?"
    except Exception:
        pass
    if dry_run:
        return item
    watch_error = ctx.redis_exceptions.WatchError
    job_key = ctx.job_key(c["id"])
    inter = ctx.intermediate_key(c["queue"])
    for attempt in range(50):
        with ctx.conn.pipeline() as pipe:
            try:
                pipe.watch(job_key)
                status, enqueued = (text(v) for v in pipe.hmget(job_key, "status", "enqueued_at"))
                # A new enqueued_at means someone (another cslaunch run) requeued it meanwhile.
                if status != "queued" or enqueued != c["enqueued_raw"]:
                    pipe.unwatch()
                    item["action"] = "skipped"
                    return item
                if on_list(ctx, ctx.queue_key(c["queue"]), c["id"]) or (
                    ctx.major >= 2 and ctx.conn.zcard(ctx.executions_key(c["id"]))
                ):
                    pipe.unwatch()
                    item["action"] = "skipped"
                    return item
                job = ctx.fetch(c["id"])
                pipe.multi()
                if inter:
                    pipe.lrem(inter, 0, c["id"])
                requeue_into(ctx, pipe, job, c["queue"])
                pipe.execute()
                return item
            except watch_error:
                time.sleep(min(0.2, 0.005 * (attempt + 1)))
            except Exception as exc:
                item["action"] = "error"
                item["error"] = classify(exc)[1]
                return item
    item["action"] = "error"
    item["error"] = "kept changing; left for the next run"
    return item


def on_list(ctx: Ctx, key: str, value: str) -> bool:
    """LPOS (Redis >= 6.0.6), or a full LRANGE on older servers."""
    try:
        return ctx.conn.execute_command("LPOS", key, value) is not None
    except ctx.redis_exceptions.ResponseError:
        return value in {text(v) for v in ctx.conn.lrange(key, 0, -1)}


def scan_jobs(ctx: Ctx, fields: tuple[str, ...]) -> Any:
    """(job id, [field values as str]) for every RQ job hash, at most MAX_SCAN of them."""
    prefix = str(ctx.Job.redis_job_namespace_prefix)
    seen = 0
    batch: list[str] = []

    def flush(keys: list[str]) -> list[tuple[str, list[str]]]:
        pipe = ctx.conn.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, *fields)
        out = []
        for key, values in zip(keys, pipe.execute(raise_on_error=False)):  # noqa: B905
            if isinstance(values, Exception) or values is None:
                continue  # not a hash (dependents/dependencies sets)
            out.append((key[len(prefix) :], [text(v) for v in values]))
        return out

    for raw in ctx.conn.scan_iter(match=prefix + "*", count=1000):
        key = text(raw)
        if key.endswith((":dependents", ":dependencies")):
            continue
        batch.append(key)
        seen += 1
        if len(batch) >= BATCH:
            yield from flush(batch)
            batch = []
        if seen >= MAX_SCAN:
            ctx.scan_truncated = True
            break
    if batch:
        yield from flush(batch)


# --- status -------------------------------------------------------------------------------
REGISTRIES = (
    ("started", "StartedJobRegistry"),
    ("failed", "FailedJobRegistry"),
    ("finished", "FinishedJobRegistry"),
    ("deferred", "DeferredJobRegistry"),
    ("scheduled", "ScheduledJobRegistry"),
    ("canceled", "CanceledJobRegistry"),
)


def do_status(ctx: Ctx) -> dict[str, Any]:
    limit = int(ctx.req.get("failed_limit", 10))
    queues = ctx.queue_names()
    pipe = ctx.conn.pipeline(transaction=False)
    for q in queues:
        pipe.llen(ctx.queue_key(q))
        for _, kind in REGISTRIES:
            key = ctx.registry_key(kind, q)
            if key:
                pipe.zcard(key)
            else:
                pipe.exists(f"{ctx.prefix}:cslaunch:none")  # a zero for a registry RQ lacks
    counts = iter(pipe.execute() if queues else [])
    queue_rows = []
    for q in queues:
        row: dict[str, Any] = {"name": q, "queued": int(next(counts))}
        for label, _ in REGISTRIES:
            row[label] = int(next(counts))
        queue_rows.append(row)

    started = read_started(ctx, queues)
    found = read_workers(ctx, {e["worker"] for e in started if e["worker"]})
    workers = found["workers"]
    started_rows = []
    for e in started:
        why = judge(ctx, e, workers)
        w = workers.get(e["worker"])
        started_rows.append(
            {
                "id": e["job_id"],
                "func": e["func"],
                "queue": e["queue"],
                "status": e["status"],
                "worker": e["worker"],
                "worker_alive": bool(w and w["alive"]),
                "started_at": iso(e["started_at"]),
                "age": round(ctx.now - e["started_at"], 1) if e["started_at"] else None,
                "orphaned": why is not None,
                "reason": why or "",
            }
        )
    return {
        "liveness": found["liveness"],
        "queues": queue_rows,
        "started": started_rows,
        "failed": failed_jobs(ctx, queues, limit),
        "workers": [
            {
                "name": w["name"],
                "state": w["state"],
                "queues": w["queues"],
                "current_job": w["current_job"],
                "alive": w["alive"],
                "connected": w["connected"],
                "heartbeat_age": w["heartbeat_age"],
                "birth": iso(w["birth"]),
                "registered": w["registered"],
                "hostname": w["hostname"],
            }
            for w in workers.values()
            if w["registered"] or w["exists"]
        ],
    }


def failed_jobs(ctx: Ctx, queues: list[str], limit: int) -> list[dict[str, Any]]:
    """The newest failed jobs, with the last line of their exception."""
    rows: list[dict[str, Any]] = []
    for q in queues:
        key = ctx.registry_key("FailedJobRegistry", q)
        if not key or limit <= 0:
            continue
        for raw in ctx.conn.zrevrange(key, 0, 2 * limit - 1):
            job_id = text(raw)
            description, ended, enqueued = (
                text(v)
                for v in ctx.conn.hmget(
                    ctx.job_key(job_id), "description", "ended_at", "enqueued_at"
                )
            )
            rows.append(
                {
                    "id": job_id,
                    "func": func_from_description(description) if description else "?",
                    "queue": q,
                    "ended_at": parse_time(ended) or parse_time(enqueued),
                    "error": exception_line(ctx, job_id),
                }
            )
    rows.sort(key=lambda r: r["ended_at"] or 0.0, reverse=True)
    for r in rows:
        r["ended_at"] = iso(r["ended_at"])
    return rows[:limit]


def exception_line(ctx: Ctx, job_id: str) -> str:
    try:
        job = ctx.fetch(job_id)
        exc = None
        if hasattr(job, "latest_result"):  # RQ >= 1.12: results live in a stream
            result = job.latest_result()
            exc = getattr(result, "exc_string", None) if result is not None else None
        if not exc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exc = job.exc_info
        return one_line(text(exc))
    except Exception:
        return ""


# --- measure ------------------------------------------------------------------------------
def do_measure(ctx: Ctx) -> dict[str, Any]:
    return measure(ctx, count_jobs=True)


def measure(ctx: Ctx, *, count_jobs: bool) -> dict[str, Any]:
    """Memory, persistence and keyspace from INFO; RQ job keys by state from a SCAN."""
    info = ctx.conn.info()
    aof = str(info.get("aof_enabled", "0")) == "1"
    keyspace = {
        k: {"keys": int(v.get("keys", 0)), "expires": int(v.get("expires", 0))}
        for k, v in info.items()
        if k.startswith("db") and k[2:].isdigit() and isinstance(v, dict)
    }
    result: dict[str, Any] = {
        "memory": {
            "used": info_int(info, "used_memory"),
            "peak": info_int(info, "used_memory_peak"),
            "rss": info_int(info, "used_memory_rss"),
            "maxmemory": info_int(info, "maxmemory") or 0,
            "policy": info.get("maxmemory_policy"),
        },
        "persistence": {
            "aof_enabled": aof,
            "aof_current_size": info_int(info, "aof_current_size") if aof else None,
            "aof_base_size": info_int(info, "aof_base_size") if aof else None,
            "aof_rewrite_in_progress": str(info.get("aof_rewrite_in_progress", "0")) == "1",
            "aof_rewrite_scheduled": str(info.get("aof_rewrite_scheduled", "0")) == "1",
            "aof_last_rewrite_status": info.get("aof_last_bgrewrite_status"),
            "rdb_bgsave_in_progress": str(info.get("rdb_bgsave_in_progress", "0")) == "1",
            "loading": str(info.get("loading", "0")) == "1",
        },
        "keyspace": keyspace,
    }
    if count_jobs:
        ctx.scan_truncated = False
        by_status: dict[str, int] = {}
        for _, (status,) in scan_jobs(ctx, ("status",)):
            by_status[status or "unknown"] = by_status.get(status or "unknown", 0) + 1
        result["jobs"] = {
            "total": sum(by_status.values()),
            "by_status": dict(sorted(by_status.items())),
            "complete": not ctx.scan_truncated,
        }
        found = read_workers(ctx)
        workers = [w for w in found["workers"].values() if w["registered"]]
        result["workers"] = {
            "registered": len(workers),
            "alive": sum(1 for w in workers if w["alive"]),
            "stale": sum(1 for w in workers if not w["alive"]),
            "liveness": found["liveness"],
        }
    return result


# --- maintenance --------------------------------------------------------------------------
def do_maintain(ctx: Ctx) -> dict[str, Any]:
    r = ctx.req
    dry_run = bool(r.get("dry_run"))
    before = measure(ctx, count_jobs=True)
    triggers = thresholds_crossed(before, r)
    actions: dict[str, Any] = {}
    notes: list[str] = []

    found = read_workers(ctx)
    actions["workers_cleaned"] = clean_workers(ctx, found["workers"], dry_run)

    if triggers or r.get("force"):
        retention = float(r.get("retention_days", 7)) * 86400.0
        actions["purge"] = purge_old_jobs(ctx, ctx.now - retention, dry_run)
    else:
        actions["purge"] = None

    mid = measure(ctx, count_jobs=False)
    actions["aof_rewrite"] = rewrite_aof(ctx, mid, r, dry_run, bool(triggers or r.get("force")))

    if r.get("clear_cache", True) and (r.get("cache_patterns") or r.get("cache_dbs")):
        actions["cache"] = clear_caches(
            ctx, r.get("cache_patterns") or [], r.get("cache_dbs") or [], dry_run, notes
        )
    else:
        actions["cache"] = None

    after = measure(ctx, count_jobs=True) if not dry_run else before
    return {
        "dry_run": dry_run,
        "triggers": triggers,
        "before": before,
        "after": after,
        "actions": actions,
        "notes": notes,
    }


def thresholds_crossed(m: dict[str, Any], r: dict[str, Any]) -> list[str]:
    crossed: list[str] = []
    total = m.get("jobs", {}).get("total", 0)
    max_jobs = int(r.get("max_job_keys", 10_000))
    if total > max_jobs:
        crossed.append(f"{total} RQ job keys > {max_jobs}")
    used = m["memory"]["used"] or 0
    maxmemory = m["memory"]["maxmemory"] or 0
    if maxmemory:
        pct = float(r.get("max_memory_percent", 80.0))
        if used > maxmemory * pct / 100.0:
            crossed.append(f"memory {used * 100.0 / maxmemory:.0f}% of maxmemory > {pct:g}%")
    else:
        limit_mb = float(r.get("max_memory_mb", 512.0))
        if used > limit_mb * 1024 * 1024:
            crossed.append(f"memory {used / 1048576:.0f} MB > {limit_mb:g} MB")
    if aof_grown(m, r):
        p = m["persistence"]
        crossed.append(
            f"AOF {p['aof_current_size'] / 1048576:.1f} MB > "
            f"{float(r.get('aof_growth', 2.0)):g}x its base ({p['aof_base_size'] / 1048576:.1f} MB)"
        )
    return crossed


def aof_grown(m: dict[str, Any], r: dict[str, Any]) -> bool:
    p = m["persistence"]
    if not p["aof_enabled"] or p["aof_current_size"] is None:
        return False
    current = p["aof_current_size"]
    base = p["aof_base_size"] or 0
    return bool(
        current > float(r.get("aof_growth", 2.0)) * base
        and current > float(r.get("aof_min_mb", 64.0)) * 1024 * 1024
    )


def rewrite_aof(
    ctx: Ctx, m: dict[str, Any], r: dict[str, Any], dry_run: bool, triggered: bool
) -> dict[str, Any]:
    p = m["persistence"]
    if not p["aof_enabled"]:
        return {"done": False, "reason": "AOF is off"}
    if not aof_grown(m, r):
        return {"done": False, "reason": "AOF is within its limits"}
    if p["aof_rewrite_in_progress"] or p["aof_rewrite_scheduled"]:
        return {"done": False, "reason": "a rewrite is already running"}
    if dry_run:
        return {"done": False, "reason": "dry run", "would": True}
    before = p["aof_current_size"]
    try:
        ctx.conn.bgrewriteaof()
    except Exception as exc:
        return {"done": False, "reason": classify(exc)[1]}
    deadline = time.monotonic() + float(r.get("aof_wait", 120))
    finished = False
    while time.monotonic() < deadline:
        time.sleep(0.2)
        info = ctx.conn.info("persistence")
        if str(info.get("aof_rewrite_in_progress", "0")) != "1" and (
            str(info.get("aof_rewrite_scheduled", "0")) != "1"
        ):
            finished = True
            break
    after = info_int(ctx.conn.info("persistence"), "aof_current_size")
    return {
        "done": finished,
        "reason": "" if finished else "still rewriting in the background",
        "before": before,
        "after": after,
    }


def purge_old_jobs(ctx: Ctx, cutoff: float, dry_run: bool) -> dict[str, Any]:
    """Delete finished/failed/canceled/stopped jobs that ended before `cutoff`: out of RQ's
    registries, then their keys. Queued, deferred, scheduled and started jobs are never
    candidates; each batch is re-checked under WATCH before it is deleted."""
    ctx.scan_truncated = False
    old: list[str] = []
    by_status: dict[str, int] = {}
    fields = ("status", "ended_at", "enqueued_at", "created_at")
    for job_id, (status, ended, enqueued, created) in scan_jobs(ctx, fields):
        if status not in TERMINAL:
            continue
        when = parse_time(ended) or parse_time(enqueued) or parse_time(created)
        if when is not None and when < cutoff:
            old.append(job_id)
            by_status[status] = by_status.get(status, 0) + 1
    dangling = dangling_entries(ctx)
    result: dict[str, Any] = {
        "candidates": len(old),
        "by_status": by_status,
        "deleted": 0,
        "dangling_entries": sum(len(v) for v in dangling.values()),
        "complete": not ctx.scan_truncated,
    }
    if dry_run:
        return result
    for batch in chunks(old, BATCH):
        result["deleted"] += delete_batch(ctx, batch)
    for key, members in dangling.items():
        for part in chunks(members, 1000):
            ctx.conn.zrem(key, *part)
    return result


def delete_batch(ctx: Ctx, job_ids: list[str]) -> int:
    """Delete a batch of ended jobs in one transaction, re-checked under WATCH: a job that was
    requeued (or otherwise changed) since the scan makes the batch retry without it."""
    watch_error = ctx.redis_exceptions.WatchError
    keys = [ctx.job_key(j) for j in job_ids]
    for attempt in range(5):
        with ctx.conn.pipeline() as pipe:
            try:
                pipe.watch(*keys)
                reads = ctx.conn.pipeline(transaction=False)
                for key in keys:
                    reads.hmget(key, "status", "origin", "group_id")
                doomed = [
                    (j, *(text(v) for v in values))
                    for j, values in zip(job_ids, reads.execute())  # noqa: B905
                    if text(values[0]) in TERMINAL
                ]
                pipe.multi()
                for job_id, status, origin, group in doomed:
                    delete_job(ctx, pipe, job_id, status, origin, group)
                pipe.execute()
                return len(doomed)
            except watch_error:
                time.sleep(0.01 * (attempt + 1))
    if len(job_ids) == 1:
        return 0
    return sum(delete_batch(ctx, [j]) for j in job_ids)


STATUS_REGISTRY = {
    "finished": "FinishedJobRegistry",
    "failed": "FailedJobRegistry",
    "stopped": "FailedJobRegistry",  # RQ keeps stopped jobs in the failed registry
    "canceled": "CanceledJobRegistry",
}


def delete_job(ctx: Ctx, pipe: Any, job_id: str, status: str, origin: str, group: str) -> None:
    """What RQ's job.delete does to an ended job, queued on `pipe` without a read per job:
    out of its status's registry (RQ's registry.remove), then its hash, dependency sets,
    results stream, executions and group membership."""
    kind = STATUS_REGISTRY.get(status)
    registry = ctx.registry(kind, origin) if kind and origin else None
    if registry is not None:
        registry.remove(job_id, pipeline=pipe)
    key = ctx.job_key(job_id)
    pipe.delete(key, key + ":dependents", key + ":dependencies")
    pipe.delete(ctx.results_key(job_id), ctx.executions_key(job_id))
    if group:
        pipe.srem(f"{ctx.prefix}:group:{group}", job_id)


def dangling_entries(ctx: Ctx) -> dict[str, list[str]]:
    """Finished/failed/canceled registry entries whose job hash no longer exists."""
    found: dict[str, list[str]] = {}
    for q in ctx.queue_names():
        for kind in ("FinishedJobRegistry", "FailedJobRegistry", "CanceledJobRegistry"):
            key = ctx.registry_key(kind, q)
            if not key:
                continue
            members = [text(m) for m in ctx.conn.zrange(key, 0, -1)]
            pipe = ctx.conn.pipeline(transaction=False)
            for m in members:
                pipe.exists(ctx.job_key(m))
            gone = [m for m, ok in zip(members, pipe.execute()) if not ok]  # noqa: B905
            if gone:
                found[key] = gone
    return found


def clear_caches(
    ctx: Ctx, patterns: list[str], dbs: list[int], dry_run: bool, notes: list[str]
) -> dict[str, Any]:
    """Delete the app's cache keys: keys matching the configured patterns in the RQ database,
    and every key of the configured cache databases. RQ's own keys are never touched."""
    redis = importlib.import_module("redis")
    rq_prefix = ctx.prefix + ":"
    result: dict[str, Any] = {"patterns": {}, "dbs": {}, "deleted": 0}

    def sweep(conn: Any, pattern: str) -> int:
        count = 0
        batch: list[Any] = []
        for raw in conn.scan_iter(match=pattern, count=1000):
            if text(raw).startswith(rq_prefix):
                continue
            count += 1
            batch.append(raw)
            if len(batch) >= 1000 and not dry_run:
                unlink(conn, batch)
                batch = []
        if batch and not dry_run:
            unlink(conn, batch)
        return count

    for pattern in patterns:
        n = sweep(ctx.conn, pattern)
        result["patterns"][pattern] = n
        result["deleted"] += n
    for db in dbs:
        if int(db) == ctx.db:
            notes.append(f"cache db {db} is the RQ database: not cleared (only patterns apply)")
            continue
        pool = ctx.conn.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["db"] = int(db)
        other = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
        n = sweep(other, "*")
        result["dbs"][str(db)] = n
        result["deleted"] += n
    return result


def unlink(conn: Any, keys: list[Any]) -> None:
    try:
        conn.unlink(*keys)
    except Exception:
        conn.delete(*keys)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
