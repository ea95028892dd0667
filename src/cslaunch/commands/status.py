"""`cslaunch status`: what runs, how healthy, how old its image is. Changes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cslaunch import compose_config, docker, model, output
from cslaunch.containers import Container, by_service, parse_time, project_containers
from cslaunch.errors import CslaunchError
from cslaunch.options import Globals
from cslaunch.project import Project, check_services
from cslaunch.ui import UI


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str  # running, exited (code), restarting, not created, ...
    health: str | None
    uptime: float | None  # seconds since the container started, if running
    image_age: float | None  # seconds since its image was built
    containers: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.service,
            "state": self.state,
            "health": self.health,
            "uptime_seconds": _round(self.uptime),
            "image_age_seconds": _round(self.image_age),
            "containers": self.containers,
        }


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def summarize(
    stack: model.Stack,
    containers: dict[str, list[Container]],
    image_created: dict[str, datetime],
    now: datetime,
) -> list[ServiceStatus]:
    rows = []
    for name in stack.names():
        cs = containers.get(name, [])
        if not cs:
            rows.append(ServiceStatus(name, "not created", None, None, None, 0))
            continue
        c = cs[0]
        state = c.status if c.status != "exited" else f"exited ({c.exit_code})"
        uptime = (now - c.started_at).total_seconds() if c.running and c.started_at else None
        built = image_created.get(c.image_id)
        age = (now - built).total_seconds() if built else None
        rows.append(ServiceStatus(name, state, c.health, uptime, age, len(cs)))
    return rows


def image_times(image_ids: set[str]) -> dict[str, datetime]:
    if not image_ids:
        return {}
    result = docker.run(["docker", "image", "inspect", *sorted(image_ids)], timeout=30)
    if result.returncode != 0:
        return {}
    times = {}
    for image in json.loads(result.stdout):
        created = parse_time(image.get("Created"))
        if created:
            times[image["Id"]] = created
    return times


def statuses(project: Project) -> tuple[str, list[ServiceStatus]]:
    try:
        raw = compose_config.config(project.compose)
    except CslaunchError:
        # Say why precisely: no CLI, no Compose v2, daemon down, or the project itself. Only
        # then: asking first costs every status three more processes.
        docker.check_engine(project.compose)
        raise
    stack = model.parse_stack(raw)
    check_services(project, stack.services)
    containers = by_service(project_containers(project.compose))
    images = image_times({c.image_id for cs in containers.values() for c in cs})
    return stack.name, summarize(stack, containers, images, datetime.now(timezone.utc))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def render(ui: UI, name: str, rows: list[ServiceStatus]) -> None:
    ui.echo(ui.style(name, bold=True))
    width = max([len("SERVICE"), *(len(r.service) for r in rows)])
    ui.echo(f"  {'SERVICE':<{width}}  {'STATE':<14} {'HEALTH':<10} {'UPTIME':>7} {'IMAGE AGE':>10}")
    for r in rows:
        colour = "green" if r.state == "running" and r.health in (None, "healthy") else "red"
        if r.state == "not created":
            colour = "yellow"
        state = ui.style(f"{r.state:<14}", fg=colour)
        ui.echo(
            f"  {r.service:<{width}}  {state} {r.health or '-':<10} "
            f"{duration(r.uptime):>7} {duration(r.image_age):>10}"
        )


def status(g: Globals) -> None:
    name, rows = statuses(g.project())
    if g.json:
        output.emit(
            output.envelope("status", True, project=name, services=[r.to_json() for r in rows])
        )
    else:
        render(g.ui(), name, rows)
