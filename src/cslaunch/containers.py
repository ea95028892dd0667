"""Container state, parsed from `docker inspect` JSON (pure), and its lookup (via docker.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cslaunch import docker

SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    status: str  # created, running, restarting, paused, exited, dead
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    health_output: str  # the last healthcheck's output, for failure messages
    exit_code: int
    restart_count: int
    started_at: datetime | None
    created: datetime | None
    image_id: str
    pid: int
    # (type, source, destination) of every mount, sorted: what the container sees where
    mounts: tuple[tuple[str, str, str], ...] = ()
    hostname: str = ""  # what processes inside see as their host name (RQ records it)
    finished_at: datetime | None = None  # when it last exited
    # The healthcheck Docker runs in it (Compose's, else the image's HEALTHCHECK) and its
    # timeout in seconds
    health_test: tuple[str, ...] = ()
    health_timeout: float = 30.0

    @property
    def running(self) -> bool:
        return self.status == "running"


def parse_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, which fromisoformat (3.10) does not take."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = re.match(r"\d*", rest).group(0)  # type: ignore[union-attr]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_container(data: dict[str, Any]) -> Container:
    state = data.get("State") or {}
    health = state.get("Health") or None
    log = (health or {}).get("Log") or []
    labels = (data.get("Config") or {}).get("Labels") or {}
    check = (data.get("Config") or {}).get("Healthcheck") or {}
    return Container(
        id=data["Id"],
        name=str(data.get("Name", "")).lstrip("/"),
        service=labels.get(SERVICE_LABEL, ""),
        status=state.get("Status", "unknown"),
        health=health.get("Status") if health else None,
        health_output=str(log[-1].get("Output", "")).strip() if log else "",
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(data.get("RestartCount") or 0),
        started_at=parse_time(state.get("StartedAt")),
        created=parse_time(data.get("Created")),
        image_id=str(data.get("Image", "")),
        pid=int(state.get("Pid") or 0),
        mounts=_mounts(data),
        hostname=str((data.get("Config") or {}).get("Hostname") or ""),
        finished_at=parse_time(state.get("FinishedAt")),
        health_test=tuple(str(w) for w in check.get("Test") or ()),
        health_timeout=(check.get("Timeout") or 30_000_000_000) / 1e9,
    )


def _mounts(data: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """Every mount, with the tmpfs mounts of Compose's `tmpfs:` key, which the engine keeps
    in HostConfig.Tmpfs and leaves out of Mounts."""
    mounts = [
        (str(m.get("Type", "")), str(m.get("Source", "")), str(m.get("Destination", "")))
        for m in data.get("Mounts") or []
    ]
    tmpfs = (data.get("HostConfig") or {}).get("Tmpfs") or {}
    mounts += [("tmpfs", "", str(dest)) for dest in tmpfs]
    return tuple(sorted(mounts))


def project_containers(project: docker.ComposeProject) -> list[Container]:
    """Every service container of the project (one-off `run` containers left out). Once the
    project's name is known the engine is asked directly; before, only Compose can say."""
    if project.name:
        ids = docker.container_ids(project.name)
    else:
        ids = [c["ID"] for c in docker.ps(project) if c.get("ID")]
    containers = [parse_container(d) for d in docker.inspect(ids)]
    return [c for c in containers if c.service]


def by_service(containers: Iterable[Container]) -> dict[str, list[Container]]:
    grouped: dict[str, list[Container]] = {}
    for c in containers:
        grouped.setdefault(c.service, []).append(c)
    return grouped


def by_hostname(containers: Iterable[Container]) -> dict[str, list[Container]]:
    """Running containers by the hostname their processes see (what RQ records of a
    worker); on the host's network they all share the host's."""
    grouped: dict[str, list[Container]] = {}
    for c in containers:
        if c.running and c.hostname:
            grouped.setdefault(c.hostname, []).append(c)
    return grouped
