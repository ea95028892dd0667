"""Background jobs survive a relaunch, against a real engine: RQ workers killed mid-job
(`docker compose kill`, what a stop past its grace period amounts to), then `recover`.

The current RQ of the base image (2.x) and RQ 1.x (tests/stacks/rq1) both; Redis maintenance
on a Redis full of old jobs; and a load run with repeated kill/start+recover cycles.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cslaunch import compose_config, jobs, model
from cslaunch.docker import ComposeProject
from cslaunch.jobs import RQSetup
from cslaunch.jobs import redis as redis_maint
from cslaunch.rqconfig import RQConfig
from tests.stackutil import TestStack

pytestmark = pytest.mark.engine

RQ1 = Path(__file__).parent / "stacks" / "rq1"


# --- helpers ---------------------------------------------------------------------------------
def start(stack: TestStack, *files: str) -> ComposeProject:
    args = [a for f in files for a in ("-f", f)]
    result = stack.cslaunch(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return ComposeProject(stack.dir, files=files)


def rq_setup(project: ComposeProject, config: RQConfig | None = None) -> RQSetup:
    raw = compose_config.config(project)
    setup = jobs.find_rq(model.parse_stack(raw), config or RQConfig(), raw)
    assert setup is not None
    assert setup.worker_services == ("worker1", "worker2")
    return setup


def post_job(stack: TestStack, seconds: float, name: str = "t") -> str:

    url = stack.url(f"/api/jobs?seconds={seconds}&name={name}")
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
        return str(json.loads(r.read())["id"])


def job_status(stack: TestStack, job_id: str) -> str:
    return str(stack.get(f"/api/jobs/{job_id}")["status"])


def wait_status(stack: TestStack, job_id: str, want: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = job_status(stack, job_id)
        if seen == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is {seen!r}, not {want!r}, after {timeout} s")


def py(stack: TestStack, service: str, code: str, timeout: float = 300) -> str:
    """Run Python in a container of the stack (the app's own rq and redis-py)."""
    return stack.compose("exec", "-T", service, "python3", "-c", code, timeout=timeout).stdout


def kill_start(stack: TestStack, *services: str) -> None:
    stack.compose("kill", *services)
    stack.compose("start", *services)


def alive_workers(project: ComposeProject, setup: RQSetup) -> set[str]:
    return {w.name for w in jobs.status(project, setup).workers if w.alive}


def wait_workers(project: ComposeProject, setup: RQSetup, count: int) -> set[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = alive_workers(project, setup)
        if len(alive) >= count:
            return alive
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} live workers")


# --- the current RQ -------------------------------------------------------------------------
def test_killed_workers_jobs_requeued_or_failed(stack: TestStack) -> None:
    project = start(stack)
    setup = rq_setup(project)
    old_workers = wait_workers(project, setup, 2)

    # Both workers killed while a slow job runs: the job is requeued and finishes.
    slow = post_job(stack, 8, "slow")
    wait_status(stack, slow, "started", 20)
    kill_start(stack, "worker1", "worker2")
    assert job_status(stack, slow) == "started"  # RQ alone would say so for ~10 minutes
    before = jobs.status(project, setup)
    assert [(s.id, s.orphaned) for s in before.started] == [(slow, True)]

    report = jobs.recover(project, setup)
    assert report.ok, report.message
    assert [(j.id, j.action, j.func, j.queue) for j in report.jobs] == [
        (slow, "requeue", "app.tasks.slow_job", "default")
    ]
    # The killed workers' registrations are gone; the new workers are untouched.
    assert {w.name for w in report.workers_cleaned} == old_workers
    assert report.liveness == "connection"
    wait_status(stack, slow, "finished", 30)
    assert stack.get(f"/api/jobs/{slow}")["result"] == "hello from v1, slow"
    new_workers = wait_workers(project, setup, 2)
    assert not new_workers & old_workers

    # Policy fail, and a live worker's job left alone: only worker1 is killed.
    first, second = post_job(stack, 6, "a"), post_job(stack, 6, "b")
    wait_status(stack, first, "started", 20)
    wait_status(stack, second, "started", 20)
    kill_start(stack, "worker1")
    report = jobs.recover(project, setup, policy="fail")
    assert report.ok, report.message
    [failed] = report.jobs
    assert failed.action == "fail" and failed.id in (first, second)
    survivor = second if failed.id == first else first
    assert report.live_started == 1
    assert job_status(stack, failed.id) == "failed"
    assert job_status(stack, survivor) == "started"
    assert len(report.workers_cleaned) == 1
    assert report.workers_cleaned[0].name in new_workers
    wait_status(stack, survivor, "finished", 30)  # its worker was never touched
    st = jobs.status(project, setup)
    assert st.failed[0].id == failed.id
    assert "interrupted by cslaunch relaunch" in st.failed[0].error
    assert "gone" in st.failed[0].error
    assert st.queues[0].name == "default" and st.queues[0].failed == 1
    assert all(w.alive for w in st.workers) and len(st.workers) == 2


FILL = """
import json, os
from datetime import datetime, timezone
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

r = Redis.from_url(os.environ["REDIS_URL"])
finished = FinishedJobRegistry("default", connection=r)
failed = FailedJobRegistry("default", connection=r)
old = datetime(2020, 1, 1, tzinfo=timezone.utc)
payload = "x" * 2000
with r.pipeline(transaction=False) as p:
    for i in range(__COUNT__):
        job = Job.create("app.tasks.greet_job", args=(payload,), connection=r, result_ttl=-1,
                         origin="default")
        job.enqueued_at = job.started_at = job.ended_at = old
        status = JobStatus.FAILED if i % 10 == 0 else JobStatus.FINISHED
        job.set_status(status, pipeline=p)
        job.save(pipeline=p)
        (failed if i % 10 == 0 else finished).add(job, -1, pipeline=p)
        if i % 500 == 0:
            p.execute()
    p.execute()
parked = Queue("parked", connection=r)
print(json.dumps([parked.enqueue("app.tasks.greet_job", "keep").id for _ in range(5)]))
"""


def test_maintenance_shrinks_job_keys_and_aof(stack: TestStack) -> None:
    project = start(stack)
    config = RQConfig(max_job_keys=1000, aof_min_mb=1)
    setup = rq_setup(project, config)
    count = 8000
    parked = json.loads(py(stack, "worker1", FILL.replace("__COUNT__", str(count))).strip())

    before = redis_maint.measure(project, setup)
    assert before.ok and before.aof_enabled
    assert before.job_keys == count + 5
    assert before.aof_current_size and before.aof_current_size > 5 * 1024 * 1024

    dry = redis_maint.maintain(project, setup, dry_run=True)
    assert dry.ok and dry.triggers and dry.purge_candidates == count and dry.purged == 0
    assert dry.aof.get("would") is True

    result = redis_maint.maintain(project, setup)
    assert result.ok, result.message
    assert result.purged == count
    assert result.purged_by_status == {"failed": count // 10, "finished": count - count // 10}
    assert result.aof["done"] is True
    assert result.before and result.after
    assert result.after.job_keys == 5  # the queued jobs, intact
    assert result.after.aof_current_size is not None and before.aof_current_size is not None
    assert result.after.aof_current_size < before.aof_current_size / 4
    left = py(
        stack,
        "worker1",
        "import os, json; from redis import Redis; from rq import Queue;"
        "q = Queue('parked', connection=Redis.from_url(os.environ['REDIS_URL']));"
        "print(json.dumps([q.job_ids, [j.get_status() for j in q.jobs]]))",
    )
    assert json.loads(left) == [parked, ["queued"] * 5]
    print(
        f"\nMAINTENANCE: {count} old jobs purged in {result.seconds:.1f} s; AOF "
        f"{before.aof_current_size / 1048576:.1f} MB -> "
        f"{result.after.aof_current_size / 1048576:.1f} MB"
    )


# --- RQ 1.x ---------------------------------------------------------------------------------
def test_rq1_recover_requeue_and_fail(stack: TestStack) -> None:
    shutil.copy(RQ1 / "Dockerfile", stack.dir / "backend" / "Dockerfile.rq1")
    shutil.copy(RQ1 / "rq1.yml", stack.dir / "rq1.yml")
    project = start(stack, "docker-compose.yml", "rq1.yml")
    setup = rq_setup(project)
    st = jobs.status(project, setup)
    assert st.ok and st.rq_version.startswith("1."), st.rq_version
    wait_workers(project, setup, 2)

    slow = post_job(stack, 5, "one")
    wait_status(stack, slow, "started", 20)
    kill_start(stack, "worker1", "worker2")
    report = jobs.recover(project, setup)
    assert report.ok, report.message
    assert [(j.id, j.action) for j in report.jobs] == [(slow, "requeue")]
    assert len(report.workers_cleaned) == 2
    wait_status(stack, slow, "finished", 30)

    doomed = post_job(stack, 30, "two")
    wait_status(stack, doomed, "started", 20)
    kill_start(stack, "worker1", "worker2")
    report = jobs.recover(project, setup, policy="fail")
    assert [(j.id, j.action) for j in report.jobs] == [(doomed, "fail")]
    assert job_status(stack, doomed) == "failed"
    st = jobs.status(project, setup)
    assert st.failed[0].id == doomed and "interrupted by cslaunch relaunch" in st.failed[0].error


# --- load ----------------------------------------------------------------------------------
LOAD_TASK = '''"""Load-test job: counts its starts and its completions per job id."""

import os
import time
import urllib.request

from redis import Redis
from rq import get_current_job

redis = Redis.from_url(os.environ["REDIS_URL"])


def work(seconds: float) -> str:
    job = get_current_job()
    started = time.time()
    redis.hincrby("cslt:starts", job.id, 1)
    time.sleep(seconds)
    redis.hincrby("cslt:ends", job.id, 1)
    redis.rpush("cslt:spans", f"{job.id} {started} {time.time()}")
    return job.id
'''

ENQUEUE = """
import json, os
from redis import Redis
from rq import Queue
q = Queue("default", connection=Redis.from_url(os.environ["REDIS_URL"]))
print(json.dumps([q.enqueue("app.loadtask.work", SECONDS).id for _ in range(COUNT)]))
"""

TALLY = """
import json, os
from redis import Redis
from rq.job import Job
r = Redis.from_url(os.environ["REDIS_URL"])
ids = json.loads(IDS)
statuses = {}
for job in Job.fetch_many(ids, connection=r):
    s = job.get_status() if job else "missing"
    statuses[s] = statuses.get(s, 0) + 1
starts = {k.decode(): int(v) for k, v in r.hgetall("cslt:starts").items()}
ends = {k.decode(): int(v) for k, v in r.hgetall("cslt:ends").items()}
spans = [s.decode().split() for s in r.lrange("cslt:spans", 0, -1)]
print(json.dumps({"statuses": statuses, "starts": starts, "ends": ends, "spans": spans}))
"""


def test_load_kill_cycles_every_job_finishes(stack: TestStack) -> None:
    (stack.dir / "backend/src/app/loadtask.py").write_text(LOAD_TASK)
    project = start(stack)
    setup = rq_setup(project)
    wait_workers(project, setup, 2)
    count, seconds, cycles = 200, 0.1, 5
    ids = json.loads(
        py(stack, "backend", ENQUEUE.replace("SECONDS", str(seconds)).replace("COUNT", str(count)))
    )
    assert len(ids) == count

    recovered, lost, seconds_recover = 0, 0, 0.0
    for _ in range(cycles):
        time.sleep(1.5)
        kill_start(stack, "worker1", "worker2")
        report = jobs.recover(project, setup)
        assert report.ok, report.message
        assert report.count("error") == 0, report.to_json()
        recovered += report.count("requeue")
        lost += sum(1 for j in report.jobs if j.action == "requeue" and not j.worker)
        seconds_recover += report.seconds

    def tally() -> dict[str, Any]:
        out = py(stack, "backend", TALLY.replace("IDS", repr(json.dumps(ids))))
        data: dict[str, Any] = json.loads(out)
        return data

    deadline = time.monotonic() + 120
    data = tally()
    while data["statuses"].get("finished", 0) < count and time.monotonic() < deadline:
        time.sleep(1)
        data = tally()
    assert data["statuses"] == {"finished": count}, data["statuses"]
    started_twice = sorted(j for j, n in data["starts"].items() if n > 1)
    finished_twice = sorted(j for j, n in data["ends"].items() if n > 1)
    assert all(data["ends"].get(j, 0) >= 1 for j in ids)  # every job ran to its end
    # A job that ran to the end twice did so one run after the other, never concurrently:
    # recovery never requeued a job a live worker was still running.
    runs: dict[str, list[tuple[float, float]]] = {}
    for job_id, begin, end in data["spans"]:
        runs.setdefault(job_id, []).append((float(begin), float(end)))
    for spans in runs.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    print(
        f"\nLOAD: {count} jobs, {cycles} kill/start+recover cycles: {recovered} requeued "
        f"({lost} taken off the queue but never started), recover {seconds_recover / cycles:.1f} s"
        " on average; "
        f"{len(started_twice)} started more than once, {len(finished_twice)} ran to the end "
        f"twice ({finished_twice[:5]})"
    )
    # A job killed after its function returned but before RQ recorded the result runs
    # again (at-least-once); with one kill per cycle that is at most a few.
    assert len(finished_twice) <= 2 * cycles


def test_200_jobs_in_flight_across_10_relaunches_none_lost(stack: TestStack) -> None:
    """Ten consecutive `cslaunch` relaunches, each killing both workers mid-job (stop =
    "kill"), with 200 jobs queued and running throughout: every job ends finished."""
    (stack.dir / "backend/src/app/loadtask.py").write_text(LOAD_TASK)
    (stack.dir / "cslaunch.toml").write_text(
        '[services.worker1]\nstop = "kill"\n[services.worker2]\nstop = "kill"\n'
    )
    stack.launched()
    count, relaunches = 200, 10
    ids = json.loads(py(stack, "backend", ENQUEUE.replace("SECONDS", "0.3").replace(
        "COUNT", str(count))))  # fmt: skip
    recovered = 0
    greeting = stack.dir / "backend/src/app/greeting.py"
    for n in range(relaunches):
        # A real edit every time: the workers import it, so each launch restarts them.
        greeting.write_text(greeting.read_text() + f"# edit {n}\n")
        report = stack.launched()
        assert {s["name"]: s["action"] for s in report["services"]}["worker1"] == "restart"
        recovered += sum(1 for j in (report.get("jobs") or {}).get("jobs", []))

    deadline = time.monotonic() + 180
    while True:
        out = py(stack, "backend", TALLY.replace("IDS", repr(json.dumps(ids))))
        data = json.loads(out)
        if data["statuses"].get("finished", 0) == count or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert data["statuses"] == {"finished": count}, data["statuses"]
    assert all(data["ends"].get(j, 0) >= 1 for j in ids)
    assert recovered >= relaunches // 2, "the relaunches were meant to cut jobs off"
    twice = sum(1 for n in data["ends"].values() if n > 1)
    print(f"\nLOAD: {count} jobs across {relaunches} relaunches: {recovered} recovered by "
          f"the launches, 0 lost, {twice} ran to the end twice (at-least-once)")  # fmt: skip


def test_a_launch_recovers_the_job_its_restart_interrupted(stack: TestStack) -> None:
    """End to end: the worker's stop grace is shorter than the job, the launch kills it
    mid-job, and the same launch puts the job back at the front of its queue."""
    (stack.dir / "cslaunch.toml").write_text(
        "[services.worker1]\ngrace = 1\n[services.worker2]\ngrace = 1\n"
    )
    stack.launched()
    job_id = stack.start_job(6, "cut")

    report = stack.launched("--force")
    assert any(s["name"] == "recover jobs" for s in report["steps"])
    recovered = {j["id"]: j["action"] for j in report["jobs"]["jobs"]}
    assert recovered == {job_id: "requeue"}
    deadline = time.monotonic() + 60
    while (state := stack.get(f"/api/jobs/{job_id}"))["status"] != "finished":
        assert state["status"] in ("queued", "started"), state  # never lost, never deleted
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["result"] == "hello from v1, cut"


def test_a_stale_worker_key_does_not_count_as_a_live_worker(stack: TestStack) -> None:
    """worker2 runs but never registers; a dead worker's key with a fresh heartbeat sits in
    Redis. A launch must not take that key for worker2's registration."""
    compose = stack.dir / "docker-compose.yml"
    rq_command = '["rq", "worker", "--url", "redis://127.0.0.1:${REDIS_PORT:-6390}/0", "default"]'
    marker = f"  worker2:\n    <<: *app\n    command: {rq_command}\n"
    idle = '["python3", "-c", "import time; time.sleep(1e6)"]'
    assert marker in compose.read_text()
    compose.write_text(
        compose.read_text().replace(marker, f"  worker2:\n    <<: *app\n    command: {idle}\n")
    )
    (stack.dir / "cslaunch.toml").write_text('[rq]\nworker_services = ["worker1", "worker2"]\n')
    stack.compose("up", "-d", "--wait", timeout=300)
    port = str(stack.ports["REDIS_PORT"])
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cli = ("exec", "-T", "redis", "redis-cli", "-p", port)
    stack.compose(*cli, "SADD", "rq:workers", "rq:worker:ghost")
    stack.compose(*cli, "SADD", "rq:workers:default", "rq:worker:ghost")
    stack.compose(
        *cli,
        "HSET",
        "rq:worker:ghost",
        "birth",
        now,
        "last_heartbeat",
        now,
        "queues",
        "default",
        "state",
        "idle",
        "hostname",
        "gone",
        "pid",
        "1",
    )
    stack.compose(*cli, "EXPIRE", "rq:worker:ghost", "600")

    result = stack.cslaunch("--timeout", "8")
    assert result.returncode == 1, result.stdout + result.stderr
    # The ghost's fresh heartbeat does not make it a live worker (no connection to Redis).
    assert "1 live RQ worker registration(s) for 2 worker containers" in result.stderr
