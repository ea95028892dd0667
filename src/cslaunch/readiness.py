"""Readiness beyond "the container runs": the service's own healthcheck passes when cslaunch
runs it, an HTTP endpoint answers, a port accepts, Redis answers PING and is not still
loading its dataset.

A probe returns None when the service is ready, else the reason it is not (shown while
waiting and in the failure message).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from cslaunch import docker
from cslaunch.containers import Container
from cslaunch.errors import CslaunchError
from cslaunch.model import Service, is_redis, redis_flags

Probe = Callable[[Container], "str | None"]
TIMEOUT = 2.0
REDIS_LOADING = "Redis is loading its dataset into memory (a large AOF or RDB takes a while)"


def http(url: str, expect: int | None = None) -> Probe:
    # Imported here: urllib.request (and http.client) cost 30 ms of every start-up, and only
    # services with an HTTP probe need them.
    import urllib.error
    import urllib.request

    def probe(container: Container) -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                status = int(response.status)
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return f"{url}: {reason}"
        if expect is not None and status != expect:
            return f"{url} answered {status}, expected {expect}"
        if expect is None and status >= 400:
            return f"{url} answered {status}"
        return None

    return probe


def healthcheck(service: Service) -> Probe | None:
    """The service's own healthcheck test, run by cslaunch inside the container as Docker
    would run it (same user, working directory and environment, its timeout), but now
    rather than one whole `interval` after the start."""
    return _test_probe(service.healthcheck or (), service.health_timeout)


def image_healthcheck(container: Container) -> str | None:
    """The healthcheck Docker runs in this container (an image's HEALTHCHECK, which the
    Compose model does not show), run now."""
    probe = _test_probe(container.health_test, container.health_timeout)
    return probe(container) if probe else None


def _test_probe(test_words: Sequence[str], timeout: float) -> Probe | None:
    test = list(test_words)
    if test[:1] == ["CMD-SHELL"]:
        argv = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[:1] == ["CMD"]:
        argv = test[1:]
    else:
        argv = test
    if not argv or test[:1] == ["NONE"]:
        return None

    def probe(container: Container) -> str | None:
        try:
            result = docker.exec_in(container.id, argv, timeout=timeout)
        except CslaunchError as e:
            return f"healthcheck: {e.message}"
        if result.returncode == 0:
            return None
        said = (result.stdout + result.stderr).strip().splitlines()
        return f"healthcheck: exit {result.returncode}" + (f": {said[-1][:120]}" if said else "")

    return probe


def tcp(address: str) -> Probe:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 0

    def probe(container: Container) -> str | None:
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT):
                return None
        except OSError as e:
            return f"{host}:{port}: {e.strerror or e}"

    return probe


def redis(port: int, conf: str | None = None, socket_path: str | None = None) -> Probe:
    """PING from inside the Redis container: its port is often not published to the host.
    `conf`: the configuration file its command names, read in the container where the
    command line does not say the port (`port 6380`, or `port 0` and a `unixsocket`)."""
    where: dict[str, list[str]] = {}

    def probe(container: Container) -> str | None:
        if container.id not in where:
            where[container.id] = (
                ["-s", socket_path] if socket_path else _redis_address(container, port, conf)
            )
        for cli in ("redis-cli", "valkey-cli", "keydb-cli"):
            argv = [cli, *where[container.id], "ping"]
            result = docker.exec_in(container.id, argv, timeout=10)
            answer = (result.stdout + result.stderr).strip()
            if result.returncode == 0 or "executable file not found" not in answer:
                break
        else:
            return None  # no client in the image: the container state has to do
        if "PONG" in answer or "NOAUTH" in answer:
            return None  # NOAUTH: it answers, which is all readiness asks
        if "LOADING" in answer:
            return REDIS_LOADING
        return f"PING: {answer.splitlines()[-1] if answer else 'no answer'}"

    return probe


def _redis_address(container: Container, port: int, conf: str | None) -> list[str]:
    """redis-cli's `-p PORT` or `-s SOCKET` for where this Redis listens."""
    if conf is None:
        return ["-p", str(port)]
    result = docker.exec_in(container.id, ["cat", conf], timeout=10)
    settings = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else ():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            settings[parts[0].lower()] = parts[1].strip("\"'")
    listens = settings.get("port", "6379")
    if listens == "0" and settings.get("unixsocket"):
        return ["-s", settings["unixsocket"]]
    return ["-p", listens if listens.isdigit() else "6379"]


def both(first: Probe | None, second: Probe | None) -> Probe | None:
    """A probe that passes when both pass (either may be absent)."""
    if first is None or second is None:
        return first or second

    def probe(container: Container) -> str | None:
        return first(container) or second(container)

    return probe


def redis_conf(service: Service) -> str | None:
    """The configuration file a Redis server's command names, unless its command line
    already says where it listens."""
    flags = redis_flags(service.words)
    if "port" in flags or "unixsocket" in flags:
        return None
    return next((w for w in service.words if w.endswith(".conf")), None)


def redis_port(service: Service) -> int:
    port = redis_flags(service.words).get("port", "")
    return int(port) if port.isdigit() else 6379


def for_service(
    service: Service, health: str | None, expect: int | None, *, settled: bool = False
) -> Probe | None:
    """The configured probe, or the built-in one for Redis, unless `settled`: its container
    is the one the last launch saw ready, and Redis loads its dataset only as it starts
    (its state and health check still count)."""
    if health:
        return tcp(health) if health.startswith("tcp://") else http(health, expect)
    if is_redis(service) and not settled:
        flags = redis_flags(service.words)
        only_socket = flags.get("unixsocket") if flags.get("port") == "0" else None
        return redis(redis_port(service), redis_conf(service), only_socket)
    return None
