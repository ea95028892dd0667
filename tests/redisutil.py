"""A throwaway redis-server on a free loopback port, real `rq worker` processes that die
as a stopped container's do, and RQ jobs in the states recovery and maintenance act on.

The fixtures that use them (redis_bin, server, r, spawn, in_process) are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch import rqscript
from cslaunch.jobs import RQSetup, RQWorkerService
from cslaunch.rqconfig import RQConfig


def require(what: str) -> None:
    if os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
        pytest.fail(f"this test must run here, but {what}")
    pytest.skip(what)


class RedisServer:
    def __init__(self, binary: str, directory: Path, *args: str):
        self.port = free_port()
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(directory), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except Exception as e:
                if "NOAUTH" in str(e) or "Authentication" in type(e).__name__:
                    return
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self, db: int = 0) -> Any:
        from redis import Redis

        return Redis(host="127.0.0.1", port=self.port, db=db)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(server: RedisServer, action: str, **kw: Any) -> dict[str, Any]:
    result = rqscript.run({"action": action, "url": server.url, "queues": ["default"], **kw})
    assert result["ok"], result
    return result


class Worker:
    """A real `rq worker` process (the venv's), killable like a container stop."""

    def __init__(self, server: RedisServer, *queues: str):
        rq_cli = Path(sys.executable).parent / "rq"
        self.proc = subprocess.Popen(
            [str(rq_cli), "worker", "--url", server.url, *(queues or ("default",))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the work horse dies with it
        )

    def kill(self) -> None:
        """SIGKILL the worker and its work horse, as a container stop does. (The horse runs in
        a session of its own and holds copies of the worker's Redis connections.)"""
        if self.proc.poll() is None:
            for pid in [*_children(self.proc.pid), self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [*_children(child), child]
    return found


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def queue(r: Any, name: str = "default") -> Any:
    from rq import Queue

    return Queue(name, connection=r)


def status_of(r: Any, job_id: str) -> str:
    return str((r.hget(f"rq:job:{job_id}", "status") or b"").decode())


def wip_ids(r: Any, name: str = "default") -> list[str]:
    return [m.decode().split(":")[0] for m in r.zrange(f"rq:wip:{name}", 0, -1)]


def ghost_started(server: RedisServer, r: Any, count: int, name: str = "ghost") -> list[str]:
    """Jobs a worker registered as started before its connection died (a killed worker,
    without the wait): its registration and heartbeat are fresh, its connection is gone."""
    from redis import Redis
    from rq import Worker as RQWorker

    q = queue(r)
    ids = [q.enqueue("time.sleep", 60).id for _ in range(count)]
    conn = Redis(host="127.0.0.1", port=server.port)
    worker = RQWorker([queue(conn)], connection=conn, name=name)
    worker.register_birth()
    for job_id in ids:
        r.lrem("rq:queue:default", 0, job_id)
        job = queue(conn).fetch_job(job_id)
        if hasattr(worker, "prepare_execution"):  # RQ 2+
            worker.prepare_execution(job)
        worker.prepare_job_execution(job)
    conn.connection_pool.disconnect()
    return ids


def old_jobs(r: Any, finished: int, failed: int, *, days_ago: float) -> list[str]:
    """Jobs that ran and ended `days_ago` (kept forever: result_ttl=-1)."""
    from rq import SimpleWorker

    q = queue(r)
    ids = [q.enqueue("builtins.len", "abc", result_ttl=-1).id for _ in range(finished)]
    ids += [q.enqueue("builtins.int", "x", failure_ttl=10**8).id for _ in range(failed)]
    SimpleWorker([q], connection=r).work(burst=True)
    ended = (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    for job_id in ids:
        r.hset(f"rq:job:{job_id}", "ended_at", ended)
    return ids


def setup_for(server: RedisServer, config: RQConfig | None = None) -> RQSetup:
    worker = RQWorkerService("worker", server.url, "command", ("default",), "python3")
    return RQSetup(workers=(worker,), redis_service="redis", config=config or RQConfig())
