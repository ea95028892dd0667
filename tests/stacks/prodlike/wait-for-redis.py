"""Block until Redis answers PING, so a worker does not crash-loop while Redis loads."""

import os
import sys
import time

from redis import Redis

url = os.environ.get("REDIS_URL", "redis://redis:6379/0")
deadline = time.monotonic() + float(os.environ.get("WAIT_FOR_REDIS_SECONDS", "120"))
while True:
    try:
        Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        if time.monotonic() > deadline:
            print(f"Redis did not answer: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)
        time.sleep(1)
    else:
        print("Redis is up", flush=True)
        break
