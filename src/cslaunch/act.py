"""Carry out a plan with Compose: build, converge, restart the containers Compose left alone."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from cslaunch import docker
from cslaunch.config import Config
from cslaunch.containers import Container
from cslaunch.model import Service, Stack
from cslaunch.stop import StopMethod, decide, probe_sigterm


def build(project: docker.ComposeProject, services: Sequence[str]) -> None:
    if services:
        docker.compose_step(project, "build", *services, what="docker compose build")


def converge(project: docker.ComposeProject) -> None:
    """`up -d`: create what is missing, recreate what Compose sees changed (config, image)."""
    docker.compose_step(project, "up", "--detach", "--no-build", what="docker compose up")


def kill(project: docker.ComposeProject, services: Sequence[str]) -> None:
    if services:
        docker.compose_step(project, "kill", *services, what="docker compose kill")


def untouched(
    before: Mapping[str, Sequence[Container]],
    after: Mapping[str, Sequence[Container]],
    services: Sequence[str],
) -> list[str]:
    """Services whose running containers `up` neither recreated nor restarted: their processes
    still hold the old code."""
    left = []
    for name in services:
        old = {c.id: c.started_at for c in before.get(name, [])}
        now = after.get(name, [])
        if now and all(c.id in old and c.started_at == old[c.id] for c in now):
            left.append(name)
    return left


def stop_methods(
    stack: Stack,
    config: Config,
    containers: Mapping[str, Sequence[Container]],
    services: Sequence[str],
) -> dict[str, StopMethod]:
    def method(name: str) -> StopMethod:
        running = [c for c in containers.get(name, []) if c.running]
        catches = probe_sigterm(running[0]) if running else None
        return decide(stack.services[name], config.service(name), catches)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(services, pool.map(method, services), strict=True))


def restart(project: docker.ComposeProject, methods: Mapping[str, StopMethod]) -> None:
    """Stop every service its own way, all at once, then start them in dependency order."""
    if not methods:
        return
    groups: dict[tuple[str, int], list[str]] = {}
    for name, m in methods.items():
        groups.setdefault((m.kind, math.ceil(m.grace)), []).append(name)
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        futures = [
            pool.submit(_stop, project, kind, grace, names)
            for (kind, grace), names in groups.items()
        ]
        for f in futures:
            f.result()
    docker.compose_step(project, "start", *methods, what="docker compose start")


def _stop(project: docker.ComposeProject, kind: str, grace: int, names: list[str]) -> None:
    if kind == "kill":
        kill(project, names)
    else:
        docker.compose_step(
            project, "stop", "--timeout", str(grace), *names, what="docker compose stop"
        )


def is_proxy(service: Service) -> bool:
    """nginx in front of other services: it resolves upstream addresses when it (re)loads."""
    image = (service.image or "").rsplit("/", 1)[-1]
    return image.startswith("nginx") or any(w.rsplit("/", 1)[-1] == "nginx" for w in service.words)


def proxies_to_reload(stack: Stack, touched: Collection[str]) -> list[str]:
    """Proxies that depend on a service this launch restarted or recreated, and were not
    restarted themselves: left alone they keep a dead upstream address (502s)."""
    return sorted(
        name
        for name, service in stack.services.items()
        if is_proxy(service) and name not in touched and set(service.depends_on) & set(touched)
    )


def reload_proxy(project: docker.ComposeProject, service: Service) -> str:
    """`nginx -s reload` in place (no dropped connections); a restart if that fails."""
    words = list(service.words)
    # The signal goes to the pid file of the config nginx runs with: pass its -c along.
    config = [w for i, w in enumerate(words[1:]) if words[i] == "-c"][:1]
    result = docker.run(
        project.argv(
            "exec",
            "-T",
            service.name,
            "nginx",
            *(["-c", *config] if config else []),
            "-s",
            "reload",
        ),
        cwd=project.directory,
        timeout=30,
    )
    if result.returncode == 0:
        return "reloaded (nginx -s reload)"
    docker.compose_step(project, "restart", service.name, what=f"restart of {service.name}")
    return "restarted (nginx -s reload failed)"
