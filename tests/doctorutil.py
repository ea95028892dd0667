"""What the doctor tests build their facts from: services as Compose's JSON model describes
them, bind mounts and volumes, containers, and a multi-stage Dockerfile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cslaunch.containers import Container
from cslaunch.doctor import Facts, Finding
from cslaunch.model import Service, parse_service

ROOT = Path("/proj")
RQ = ["rq", "worker", "--url", "redis://127.0.0.1:6379/0", "default"]


def svc(name: str, **compose: Any) -> Service:
    """A service as Compose's JSON model describes it."""
    return parse_service(name, compose)


def bind(source: str, target: str) -> dict[str, Any]:
    return {"type": "bind", "source": str(ROOT / source), "target": target}


def anon(target: str) -> dict[str, Any]:
    return {"type": "volume", "target": target}


def facts(*services: Service, **kwargs: Any) -> Facts:
    return Facts(project="p", root=ROOT, services={s.name: s for s in services}, **kwargs)


def container(service: str, *, health: str | None = None) -> Container:
    return Container(
        id="c-" + service,
        name="p-" + service + "-1",
        service=service,
        status="running",
        health=health,
        health_output="",
        exit_code=0,
        restart_count=0,
        started_at=None,
        created=None,
        image_id="sha256:0",
        pid=0,
    )


def run(check: Any, f: Facts) -> list[Finding]:
    return list(check(f))


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


MULTISTAGE = """\
FROM python:3.12 AS base
WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt

FROM base AS dev
COPY src/ ./src/
CMD ["uvicorn", "src.main:app", "--reload"]

FROM node:20 AS assets
WORKDIR /build
COPY web/ ./web/
RUN npm run build --prefix web

FROM base AS prod
COPY --from=assets /build/web/dist /srv/static
COPY --from=dev /srv/src /srv/src
COPY --from=nginx:1.27 /etc/nginx/mime.types /etc/
"""
