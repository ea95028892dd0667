"""Docker healthcheck of a worker container: Redis answers and at least one RQ worker is
registered (any worker: the check does not know which registration is this container's)."""

import os
import sys

from redis import Redis
from rq import Worker

try:
    conn = Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=5, socket_timeout=5)
    conn.ping()
    workers = Worker.all(connection=conn)
except Exception as exc:
    print(f"unhealthy: {exc}")
    sys.exit(1)
if not workers:
    print("unhealthy: no RQ worker registered")
    sys.exit(1)
print(f"healthy: {len(workers)} worker(s)")
