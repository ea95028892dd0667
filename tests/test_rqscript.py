"""The in-container helper (cslaunch.rqscript), run here on the host: its pure parts, then
against a real redis-server on a free loopback port and the venv's rq, with workers that
really die (SIGKILL) or jobs put into a started registry by a worker whose connection is
gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch import jobs, model, rqscript
from tests.redisutil import (
    RedisServer,
    call,
    free_port,
    ghost_started,
    old_jobs,
    queue,
    status_of,
    wait_for,
    wip_ids,
)

# --- pure helpers ---------------------------------------------------------------------------


def _exc(name: str, *bases: type[BaseException]) -> BaseException:
    cls = type(name, bases or (Exception,), {})
    return cls("boom")


def test_classify_redis_troubles() -> None:
    conn_error = type("ConnectionError", (Exception,), {})
    assert rqscript.classify(_exc("BusyLoadingError", conn_error))[0] == "loading"
    assert rqscript.classify(_exc("AuthenticationError", conn_error))[0] == "auth"
    assert rqscript.classify(Exception("NOAUTH Authentication required."))[0] == "auth"
    assert rqscript.classify(Exception("WRONGPASS invalid username-password pair"))[0] == "auth"
    assert rqscript.classify(_exc("TimeoutError"))[0] == "unreachable"
    assert rqscript.classify(ConnectionRefusedError("refused"))[0] == "unreachable"
    state, message = rqscript.classify(ValueError("a\nb"))
    assert state == "error" and message == "ValueError: b"


def test_redact_and_times() -> None:
    assert rqscript.redact("redis://:secret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert rqscript.redact("redis://user:pw@h/0") == "redis://user:***@h/0"
    assert rqscript.redact("redis://h/0") == "redis://h/0"
    ts = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc).timestamp()
    assert rqscript.parse_time("2024-01-02T03:04:05.678901Z") == pytest.approx(ts)
    assert rqscript.parse_time(b"2024-01-02T03:04:05Z") == pytest.approx(int(ts))
    assert rqscript.parse_time("1700000000.5") == 1700000000.5
    assert rqscript.parse_time("") is None and rqscript.parse_time("garbage") is None
    assert rqscript.version_tuple("2.4.1rc1") == (2, 4, 1)


def test_bad_request() -> None:
    assert rqscript.run({"action": "nope"})["state"] == "error"


# --- against a real Redis ------------------------------------------------------------------


def test_killed_worker_job_requeued_at_front(server: RedisServer, r: Any, spawn: Any) -> None:
    q = queue(r)
    slow = q.enqueue("time.sleep", 30)
    worker = spawn()
    wait_for(lambda: status_of(r, slow.id) == "started", what="the job to start")
    waiting = q.enqueue("time.sleep", 0)  # queued behind it
    worker.kill()

    # Redis drops the dead connections on its next event-loop turn, a moment after the kill.
    before = wait_for(
        lambda: (st := call(server, "status"))["started"][0]["orphaned"] and st,
        what="Redis to drop the killed worker's connections",
    )
    [row] = before["started"]
    assert row["id"] == slow.id and row["orphaned"] and not row["worker_alive"]
    assert row["func"] == "time.sleep"
    assert before["liveness"] == "connection"

    result = call(server, "recover")
    [job] = result["jobs"]
    assert (job["id"], job["action"], job["func"], job["queue"]) == (
        slow.id,
        "requeue",
        "time.sleep",
        "default",
    )
    assert "gone" in job["reason"]
    assert [w["name"] for w in result["workers_cleaned"]] == [row["worker"]]
    assert q.get_job_ids() == [slow.id, waiting.id]  # at the front
    assert status_of(r, slow.id) == "queued"
    assert wip_ids(r) == []
    assert r.smembers("rq:workers") == set()
    # A second run finds nothing left to do.
    assert call(server, "recover")["jobs"] == []
    # A new worker takes the recovered job first.
    spawn()
    wait_for(lambda: status_of(r, slow.id) == "started", what="the job to run again")
    assert status_of(r, waiting.id) == "queued"


def test_policy_fail_moves_to_failed_with_reason(server: RedisServer, r: Any) -> None:
    [job_id] = ghost_started(server, r, 1)
    result = call(server, "recover", policy="fail")
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(job_id, "fail")]
    from rq.registry import FailedJobRegistry

    assert job_id in FailedJobRegistry("default", connection=r).get_job_ids()
    assert status_of(r, job_id) == "failed"
    st = call(server, "status")
    [failed] = st["failed"]
    assert failed["id"] == job_id
    assert "interrupted by cslaunch relaunch (worker ghost gone)" in failed["error"]
    assert queue(r).get_job_ids() == []  # not requeued, not deleted
    assert r.exists(f"rq:job:{job_id}")


def test_live_worker_and_its_job_untouched(server: RedisServer, r: Any, spawn: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 30)
    spawn()
    wait_for(lambda: status_of(r, job.id) == "started", what="the job to start")
    members = r.smembers("rq:workers")
    result = call(server, "recover")
    assert result["jobs"] == [] and result["workers_cleaned"] == []
    assert result["live_started"] == 1
    assert status_of(r, job.id) == "started" and wip_ids(r) == [job.id]
    assert r.smembers("rq:workers") == members
    st = call(server, "status")
    assert st["started"][0]["worker_alive"] and not st["started"][0]["orphaned"]
    assert [w["alive"] for w in st["workers"]] == [True]


def test_dry_run_changes_nothing(server: RedisServer, r: Any) -> None:
    ids = ghost_started(server, r, 2)
    snapshot = {k: r.dump(k) for k in r.keys("*")}
    result = call(server, "recover", dry_run=True)
    assert sorted(j["id"] for j in result["jobs"]) == sorted(ids)
    assert {j["action"] for j in result["jobs"]} == {"requeue"}
    assert [w["name"] for w in result["workers_cleaned"]] == ["ghost"]
    # Only our own client name may differ; every key is as it was.
    assert {k: r.dump(k) for k in r.keys("*")} == snapshot


def test_leftover_entries_are_cleared_not_requeued(server: RedisServer, r: Any) -> None:
    finished, missing = ghost_started(server, r, 2)
    r.hset(f"rq:job:{finished}", "status", "finished")  # it ended; the entry stayed (#2289)
    r.delete(f"rq:job:{missing}")
    result = call(server, "recover")
    actions = {j["id"]: j["action"] for j in result["jobs"]}
    assert actions == {finished: "clear", missing: "clear"}
    assert wip_ids(r) == [] and queue(r).get_job_ids() == []
    assert status_of(r, finished) == "finished"


def test_racing_runs_recover_each_job_once(server: RedisServer, r: Any) -> None:
    ids = ghost_started(server, r, 40)
    barrier = threading.Barrier(4)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        return call(server, "recover")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    requeued = [j["id"] for res in results for j in res["jobs"] if j["action"] == "requeue"]
    assert sorted(requeued) == sorted(ids)  # each exactly once across the runs
    on_queue = [j.decode() for j in r.lrange("rq:queue:default", 0, -1)]
    assert sorted(on_queue) == sorted(ids)  # no duplicates on the queue
    assert wip_ids(r) == []


def test_lost_job_requeued_after_grace(server: RedisServer, r: Any) -> None:
    """A worker took the job off the queue and died before registering it as started."""
    q = queue(r)
    lost = q.enqueue("time.sleep", 0)
    other = q.enqueue("time.sleep", 0)
    in_flight = q.enqueue("time.sleep", 0)
    r.lrem("rq:queue:default", 0, lost.id)  # RQ 1: BLPOP
    r.lrem("rq:queue:default", 0, in_flight.id)
    r.rpush("rq:queue:default:intermediate", in_flight.id)  # RQ 2+: BLMOVE

    def finish_in_flight() -> None:
        time.sleep(0.1)  # a live worker picks it up within the grace period
        r.hset(f"rq:job:{in_flight.id}", "status", "started")

    t = threading.Thread(target=finish_in_flight)
    t.start()
    result = call(server, "recover", grace=0.5)
    t.join()
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(lost.id, "requeue")]
    assert q.get_job_ids()[0] == lost.id and other.id in q.get_job_ids()


def test_intermediate_list_job_requeued(server: RedisServer, r: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 0)
    r.lmove("rq:queue:default", "rq:queue:default:intermediate")
    result = call(server, "recover", grace=0.2)
    assert [(j["id"], j["action"]) for j in result["jobs"]] == [(job.id, "requeue")]
    assert q.get_job_ids() == [job.id]
    assert r.llen("rq:queue:default:intermediate") == 0


def test_racing_runs_recover_a_lost_job_once(server: RedisServer, r: Any) -> None:
    q = queue(r)
    ids = [q.enqueue("time.sleep", 0).id for _ in range(10)]
    for _ in ids:
        r.lmove("rq:queue:default", "rq:queue:default:intermediate", "LEFT", "RIGHT")
    barrier = threading.Barrier(3)

    def one(_: int) -> dict[str, Any]:
        barrier.wait()
        return call(server, "recover", grace=0.3)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    requeued = [j["id"] for res in results for j in res["jobs"] if j["action"] == "requeue"]
    assert sorted(requeued) == sorted(ids)
    assert sorted(q.get_job_ids()) == sorted(ids)


def test_config_module_gives_url_and_queues(
    server: RedisServer, r: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rq worker --config settings`: REDIS_URL and QUEUES come from that module."""
    (tmp_path / "rqsettings_cslt.py").write_text(
        f"REDIS_URL = {server.url!r}\nQUEUES = ['emails']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("RQ_REDIS_URL", raising=False)
    result = rqscript.run({"action": "status", "config_module": "rqsettings_cslt"})
    assert result["ok"] and result["redis_url"] == server.url
    assert [q["name"] for q in result["queues"]] == ["emails"]
    svc = model.parse_service("w", {"command": ["rq", "worker", "-c", "rqsettings_cslt"]})
    assert jobs.parse_worker_command(svc.words) == (
        "python3",
        {"config": "rqsettings_cslt"},
        ("default",),
    )


def test_run_as_script_subprocess(server: RedisServer, r: Any) -> None:
    """The exact way cslaunch runs it in a container: python -B -c <source> <request>."""
    ids = ghost_started(server, r, 1)
    request = json.dumps({"action": "recover", "url": server.url, "queues": []})
    out = subprocess.run(
        [sys.executable, "-B", "-c", jobs.script_text(), request],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = jobs.parse_output(out.stdout)
    assert doc is not None and doc["ok"], out
    assert [j["id"] for j in doc["jobs"]] == ids


def test_unreachable_auth_and_loading(redis_bin: str, tmp_path: Path, monkeypatch: Any) -> None:
    port = free_port()
    down = rqscript.run({"action": "status", "url": f"redis://127.0.0.1:{port}/0"})
    assert (down["ok"], down["state"]) == (False, "unreachable")
    assert "\n" not in down["message"]

    locked = RedisServer(redis_bin, tmp_path / "auth", "--requirepass", "s3cret")
    try:
        noauth = rqscript.run({"action": "recover", "url": locked.url})
        assert (noauth["ok"], noauth["state"]) == (False, "auth")
        wrong = rqscript.run({"action": "status", "url": f"redis://:nope@127.0.0.1:{locked.port}"})
        assert wrong["state"] == "auth"
        right = rqscript.run({"action": "ping", "url": f"redis://:s3cret@127.0.0.1:{locked.port}"})
        assert right["ok"] and right["redis_url"] == f"redis://:***@127.0.0.1:{locked.port}"
    finally:
        locked.stop()

    import redis

    def loading(self: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        return {"redis_version": "7.0.0", "loading": 1, "loading_loaded_perc": 42.0}

    monkeypatch.setattr(redis.Redis, "info", loading)
    busy = rqscript.run({"action": "maintain", "url": f"redis://127.0.0.1:{port}/0"})
    assert (busy["ok"], busy["state"]) == (False, "loading")
    assert "42% done" in busy["message"]


# --- measure and maintain ------------------------------------------------------------------


def test_measure_counts_jobs_by_state(server: RedisServer, r: Any) -> None:
    old_jobs(r, 3, 2, days_ago=1)
    queue(r).enqueue("time.sleep", 0)
    m = call(server, "measure")
    assert m["jobs"]["by_status"] == {"failed": 2, "finished": 3, "queued": 1}
    assert m["jobs"]["total"] == 6
    assert m["memory"]["used"] > 0 and m["persistence"]["aof_enabled"] is False
    assert m["keyspace"]["db0"]["keys"] > 6


def test_maintain_purges_only_old_terminal_jobs(server: RedisServer, r: Any) -> None:
    old = old_jobs(r, 30, 10, days_ago=30)
    recent = old_jobs(r, 5, 0, days_ago=0.1)
    queued = [queue(r).enqueue("time.sleep", 0).id for _ in range(3)]
    [started] = ghost_started(server, r, 1)
    # Below every threshold: nothing is purged.
    quiet = call(server, "maintain")
    assert quiet["triggers"] == [] and quiet["actions"]["purge"] is None
    # The stale worker registration goes anyway.
    assert [w["name"] for w in quiet["actions"]["workers_cleaned"]] == ["ghost"]

    dry = call(server, "maintain", max_job_keys=10, dry_run=True)
    assert dry["triggers"] and dry["actions"]["purge"]["candidates"] == 40
    assert all(r.exists(f"rq:job:{j}") for j in old)

    done = call(server, "maintain", max_job_keys=10)
    assert done["actions"]["purge"]["deleted"] == 40
    assert done["actions"]["purge"]["by_status"] == {"failed": 10, "finished": 30}
    assert not any(r.exists(f"rq:job:{j}") for j in old)
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    assert sorted(FinishedJobRegistry("default", connection=r).get_job_ids()) == sorted(recent)
    assert FailedJobRegistry("default", connection=r).get_job_ids() == []
    assert queue(r).get_job_ids() == queued
    assert status_of(r, started) == "started"
    assert done["before"]["jobs"]["total"] == 49 and done["after"]["jobs"]["total"] == 9


def test_maintain_rewrites_a_grown_aof(redis_bin: str, tmp_path: Path) -> None:
    s = RedisServer(redis_bin, tmp_path / "aof", "--appendonly", "yes")
    try:
        r = s.client()
        old_jobs(r, 200, 0, days_ago=30)
        for i in range(300):  # churn: the AOF grows, the data does not
            r.set("scratch", "x" * 1000 + str(i))
        r.delete("scratch")
        before = rqscript.run({"action": "measure", "url": s.url})["persistence"]
        assert before["aof_current_size"] > 2 * before["aof_base_size"]
        result = rqscript.run(
            {"action": "maintain", "url": s.url, "aof_min_mb": 0.01, "max_job_keys": 100}
        )
        assert result["ok"], result
        aof = result["actions"]["aof_rewrite"]
        assert aof["done"] is True
        assert aof["after"] < aof["before"]
        assert result["after"]["jobs"]["total"] == 0
    finally:
        s.stop()


def test_cache_clearing_is_opt_in_and_exact(server: RedisServer, r: Any) -> None:
    q = queue(r)
    job = q.enqueue("time.sleep", 0)
    r.set("citation_cache:1", "a")
    r.set("citation_cache:2", "b")
    r.set("sessions:1", "keep")
    other = server.client(db=2)
    other.set("anything", "x")
    other.set("more", "y")
    nothing = call(server, "maintain")
    assert nothing["actions"]["cache"] is None and r.exists("citation_cache:1")

    caches = {"cache_patterns": ["citation_cache:*"], "cache_dbs": [2, 0]}
    dry = call(server, "maintain", dry_run=True, **caches)
    assert dry["actions"]["cache"]["deleted"] == 4 and r.exists("citation_cache:1")
    done = call(server, "maintain", **caches)
    assert done["actions"]["cache"]["patterns"] == {"citation_cache:*": 2}
    assert done["actions"]["cache"]["dbs"] == {"2": 2}
    assert any("db 0 is the RQ database" in n for n in done["notes"])
    assert r.get("sessions:1") == b"keep" and not r.exists("citation_cache:1")
    assert other.dbsize() == 0
    assert q.get_job_ids() == [job.id]


def test_where_the_helper_looks_for_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """RQ's --url, then a --config module's keys, then the environment; the stack's Redis
    service (`fallback_url`) only after a localhost nothing named."""
    from types import SimpleNamespace

    from cslaunch.rqscript import redis_urls

    for key in ("RQ_REDIS_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    fallback = {"fallback_url": "redis://:pw@redis:6379/0"}
    assert redis_urls({"url": "redis://q:1/2", **fallback}, None) == ["redis://q:1/2"]
    assert redis_urls(fallback, None) == ["redis://localhost:6379/0", fallback["fallback_url"]]
    settings = SimpleNamespace(REDIS_HOST="cache", REDIS_DB=1, REDIS_PASSWORD="a b")
    assert redis_urls(fallback, settings) == ["redis://:a%20b@cache:6379/1"]
    monkeypatch.setenv("REDIS_HOST", "r2")
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert redis_urls(fallback, None) == ["redis://r2:6380/0"]
    monkeypatch.setenv("REDIS_URL", "redis://env/3")
    assert redis_urls(fallback, settings) == ["redis://env/3"]
