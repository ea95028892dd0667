"""The RQ worker process, started as `python src/rq_worker.py` (no `rq worker` command line):
a Worker subclass that logs each job, and a SIGTERM handler installed before it starts."""

import logging
import os
import signal
import sys
from types import FrameType

from redis import Redis
from rq import Queue, Worker

logging.basicConfig(
    level=os.environ.get("LOG_LEVEL", "INFO"),
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
log = logging.getLogger("rq_worker")


class RobustWorker(Worker):
    """Logs the start and the end of every job (production adds memory checks here)."""

    def perform_job(self, job, queue):  # type: ignore[no-untyped-def]
        log.info("job %s (%s) starting", job.id, job.func_name)
        try:
            return super().perform_job(job, queue)
        finally:
            log.info("job %s done", job.id)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    log.info("SIGTERM received, exiting")
    sys.exit(0)


def main() -> None:
    conn = Redis.from_url(os.environ["REDIS_URL"])
    queue = Queue(os.environ.get("RQ_QUEUE_NAME", "casestrainer"), connection=conn)
    signal.signal(signal.SIGTERM, _on_sigterm)
    worker = RobustWorker([queue], connection=conn)
    log.info("worker %s listening on %s", worker.name, queue.name)
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
