"""`[tool.cslaunch.rq]`: how cslaunch treats RQ jobs and the app's Redis, validated strictly.

Apart from cslaunch.jobs, which acts on it: reading a project's config happens on every
start-up, before anything else, and need not load the machinery that runs jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cslaunch.redact import scrub
from cslaunch.toml_reader import Fail, Reader

POLICIES = ("requeue", "fail")
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class RQConfig:
    """`[tool.cslaunch.rq]`: how cslaunch treats RQ jobs and the app's Redis.

    enabled: false turns off job recovery and Redis maintenance altogether.
    policy: what happens to a job whose worker a relaunch stopped mid-job:
        "requeue" (default) puts it back at the front of its queue, to run again;
        "fail" moves it to RQ's Failed registry with the reason (for jobs that must not run
        twice). A job is never deleted.
    redis_url: the Redis URL, used when a worker's command (--url) and environment
        (RQ_REDIS_URL, REDIS_URL) do not say.
    worker_services: services that run RQ workers without an `rq worker` command cslaunch can
        see (a custom worker script).

    Redis maintenance runs when one of these thresholds is crossed:
    max_job_keys: more RQ job keys than this (default 10000).
    max_memory_percent: used memory above this share of maxmemory (default 80), or, when
        Redis has no maxmemory, max_memory_mb: used memory above this (default 512 MB).
    aof_growth / aof_min_mb: the append-only file larger than aof_growth times its base
        (default 2.0) and larger than aof_min_mb (default 64 MB); also what decides a
        BGREWRITEAOF.
    It then purges finished/failed/canceled jobs that ended more than retention_days ago
    (default 7), drops stale worker registrations and rewrites an overgrown AOF.

    cache_patterns: exact Redis key patterns (SCAN MATCH globs, e.g. "myapp:cache:*") of the
        app's cache in the RQ database, deleted by `cslaunch redis`. Opt-in; RQ's own `rq:`
        keys are never matched.
    cache_dbs: Redis database numbers that hold only the app's cache, emptied key by key by
        `cslaunch redis` (never FLUSHDB; the RQ database is refused).
    """

    enabled: bool = True
    policy: str = "requeue"
    redis_url: str | None = None
    worker_services: tuple[str, ...] = ()
    max_job_keys: int = 10_000
    max_memory_percent: float = 80.0
    max_memory_mb: float = 512.0
    aof_growth: float = 2.0
    aof_min_mb: float = 64.0
    retention_days: float = 7.0
    cache_patterns: tuple[str, ...] = ()
    cache_dbs: tuple[int, ...] = ()


RQ_KEYS = frozenset(
    {
        "enabled",
        "policy",
        "redis_url",
        "worker_services",
        "max_job_keys",
        "max_memory_percent",
        "max_memory_mb",
        "aof_growth",
        "aof_min_mb",
        "retention_days",
        "cache_patterns",
        "cache_dbs",
    }
)


def parse_rq_config(table: Mapping[str, Any], fail: Fail) -> RQConfig:
    """Validate the `[tool.cslaunch.rq]` table strictly. `fail(key, problem)` builds the error
    to raise; keys are passed as "rq.<key>" so messages name the full setting."""
    if not isinstance(table, Mapping):
        raise fail("rq", f"expected a table, got {type(table).__name__}")
    rq = Reader(table, fail, "rq.")
    rq.only(RQ_KEYS)
    defaults = RQConfig()

    def number(
        key: str, default: float, low: float, low_ok: bool, high: float | None = None
    ) -> float:
        value = rq.number(key, low=low, low_ok=low_ok, high=high)
        return default if value is None else value

    policy = rq.get("policy", str)
    if policy is not None and policy not in POLICIES:
        raise rq.error("policy", f"expected one of {', '.join(POLICIES)}, got {policy!r}")
    url = rq.get("redis_url", str)
    if url is not None and not url.startswith(REDIS_URL_SCHEMES):
        raise rq.error(
            "redis_url", f"not a Redis URL (redis://, rediss://, unix://): {scrub(url)!r}"
        )
    max_jobs = rq.get("max_job_keys", int, "a whole number")
    if max_jobs is not None and max_jobs < 1:
        raise rq.error("max_job_keys", f"must be at least 1, got {max_jobs}")
    patterns = _cache_patterns(rq)
    dbs = _cache_dbs(rq)
    return RQConfig(
        enabled=bool(rq.get("enabled", bool) if "enabled" in table else True),
        policy=policy or defaults.policy,
        redis_url=url,
        worker_services=_strings(rq, "worker_services"),
        max_job_keys=int(max_jobs) if max_jobs is not None else defaults.max_job_keys,
        max_memory_percent=number(
            "max_memory_percent", defaults.max_memory_percent, low=0, low_ok=False, high=100
        ),
        max_memory_mb=number("max_memory_mb", defaults.max_memory_mb, low=0, low_ok=False),
        aof_growth=number("aof_growth", defaults.aof_growth, low=1, low_ok=True),
        aof_min_mb=number("aof_min_mb", defaults.aof_min_mb, low=0, low_ok=True),
        retention_days=number("retention_days", defaults.retention_days, low=0, low_ok=True),
        cache_patterns=patterns,
        cache_dbs=dbs,
    )


def _strings(rq: Reader, key: str) -> tuple[str, ...]:
    return rq.strings(key, what="a list of strings", blank_ok=False) or ()


def _cache_patterns(rq: Reader) -> tuple[str, ...]:
    patterns = _strings(rq, "cache_patterns")
    for pattern in patterns:
        if pattern.strip("*?") == "" or pattern.startswith(("rq:", "rq*", "r*", "r?")):
            raise rq.error(
                "cache_patterns",
                f"{pattern!r} would match RQ's own keys or everything; name the cache's keys",
            )
    return patterns


def _cache_dbs(rq: Reader) -> tuple[int, ...]:
    dbs = rq.get("cache_dbs", list, "a list of database numbers")
    for db in dbs or []:
        if not isinstance(db, int) or isinstance(db, bool) or db < 0:
            raise rq.error("cache_dbs", f"expected database numbers (0, 1, ...), got {db!r}")
    return tuple(dict.fromkeys(dbs or []))
