"""The backend: a plain WSGI app (served by waitress in production) that enqueues RQ jobs.

GET  /casestrainer/api/health
GET  /casestrainer/api/greet?name=N
POST /casestrainer/api/jobs?seconds=S&name=N   -> {"id": ...} (a slow job when S > 0)
GET  /casestrainer/api/jobs/<id>               -> status, result, worker
GET  /casestrainer/api/workers                 -> the workers registered in Redis
"""

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from src.greeting import greet

PREFIX = "/casestrainer/api"

redis_conn = Redis.from_url(os.environ.get("REDIS_URL", "redis://redis:6379/0"))
queue = Queue(os.environ.get("RQ_QUEUE_NAME", "casestrainer"), connection=redis_conn)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _json(start_response: StartResponse, status: str, body: object) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _plain(value: object) -> str:
    """An RQ status enum as its value ("started"), whatever the RQ version makes of str()."""
    return str(getattr(value, "value", value))


def _job(job_id: str) -> dict[str, Any] | None:
    try:
        job = Job.fetch(job_id, connection=redis_conn)
    except NoSuchJobError:
        return None
    return {
        "id": job.id,
        "status": _plain(job.get_status()),
        "result": job.return_value(),
        "worker": job.worker_name,
        "error": _last_line(job.exc_info),
    }


def _last_line(text: str | None) -> str | None:
    """The exception line of a failed job's traceback (RQ's own reason for an abandoned job)."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else None


def _workers() -> list[dict[str, Any]]:
    return [
        {
            "name": w.name,
            "hostname": w.hostname,
            "pid": w.pid,
            "state": _plain(w.get_state()),
            "queues": w.queue_names(),
            "current_job": w.get_current_job_id(),
        }
        for w in Worker.all(connection=redis_conn)
    ]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name = query.get("name", ["world"])[0]
    if not path.startswith(PREFIX + "/"):
        return _json(start_response, "404 Not Found", {"error": "not found"})
    route = path[len(PREFIX) :]
    if method == "GET" and route == "/health":
        return _json(start_response, "200 OK", {"status": "healthy"})
    if method == "GET" and route == "/greet":
        return _json(start_response, "200 OK", {"message": greet(name)})
    if method == "POST" and route == "/jobs":
        seconds = float(query.get("seconds", ["0"])[0])
        if seconds > 0:
            job = queue.enqueue("src.tasks.slow_job", seconds, name, job_timeout=600)
        else:
            job = queue.enqueue("src.tasks.greet_job", name)
        return _json(start_response, "202 Accepted", {"id": job.id})
    if method == "GET" and route.startswith("/jobs/"):
        found = _job(route[len("/jobs/") :])
        if found is None:
            return _json(start_response, "404 Not Found", {"error": "no such job"})
        return _json(start_response, "200 OK", found)
    if method == "GET" and route == "/workers":
        return _json(start_response, "200 OK", {"workers": _workers()})
    return _json(start_response, "404 Not Found", {"error": "not found"})
