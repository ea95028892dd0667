"""Carry out a plan with Compose: build, converge, restart the containers Compose left alone."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
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


def kill(containers: Iterable[Container]) -> None:
    """SIGKILL, straight to the engine (no Compose model to load for it)."""
    docker.kill([c.id for c in containers if c.running])


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


def restart(
    project: docker.ComposeProject,
    stack: Stack,
    containers: Mapping[str, Sequence[Container]],
    methods: Mapping[str, StopMethod],
) -> None:
    """Stop every service its own way and start it again, all at once.

    Each container is cycled on its own, straight to the engine (`docker kill` or `docker
    stop -t GRACE`, then `docker start`): a killed web server is back while a worker still
    finishes its job, and no step loads the Compose model (about 0.3 s a call). When one
    restarted service depends on another, Compose starts them instead: it knows the order
    and the conditions (service_healthy) to wait for.
    """
    if not methods:
        return
    chained = any(set(stack.services[name].depends_on) & set(methods) for name in methods)
    if chained:
        with ThreadPoolExecutor(max_workers=len(methods)) as pool:
            for f in [
                pool.submit(_stop, containers.get(name, []), m) for name, m in methods.items()
            ]:
                f.result()
        docker.compose_step(project, "start", *methods, what="docker compose start")
        return
    cycles = [(c, m) for name, m in methods.items() for c in containers.get(name, [])]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(cycles)))) as pool:
        for f in [pool.submit(_cycle, c, m) for c, m in cycles]:
            f.result()


def _stop(containers: Sequence[Container], method: StopMethod) -> None:
    if method.kind == "kill":
        kill(containers)
        return
    docker.stop([c.id for c in containers if c.running], method.grace)


def _cycle(container: Container, method: StopMethod) -> None:
    _stop([container], method)
    docker.start(container.id, name=container.name)


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
