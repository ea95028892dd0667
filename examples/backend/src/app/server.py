"""A small JSON API: /health, /api/greet, /api/jobs (enqueue) and /api/jobs/<id> (result)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from redis import Redis
from rq import Queue
from rq.job import Job

from app.greeting import greet

redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0"))
queue = Queue("default", connection=redis)


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/health":
            self._send(200, {"ok": True})
        elif url.path == "/api/greet":
            self._send(200, {"message": greet(query.get("name", ["world"])[0])})
        elif url.path.startswith("/api/jobs/"):
            job = Job.fetch(url.path.rsplit("/", 1)[1], connection=redis)
            self._send(200, {"status": job.get_status(), "result": job.return_value()})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/api/jobs":
            name = query.get("name", ["world"])[0]
            seconds = float(query.get("seconds", ["0"])[0])
            if seconds:
                job = queue.enqueue("app.tasks.slow_job", seconds, name)
            else:
                job = queue.enqueue("app.tasks.greet_job", name)
            self._send(202, {"id": job.id})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port = int(os.environ.get("BACKEND_PORT", "5080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"backend listening on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
