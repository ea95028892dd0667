"""Carry out a plan with Compose: build, converge, restart the containers Compose left alone."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cslaunch import docker, procs
from cslaunch.config import Config
from cslaunch.containers import Container
from cslaunch.model import Service, Stack, is_proxy
from cslaunch.stop import FORWARD, GRACEFUL, KILL, StopMethod, decide


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


@dataclass(frozen=True)
class Stop:
    """How one container is stopped for a restart."""

    container: Container
    method: StopMethod


def stop_plan(
    stack: Stack,
    config: Config,
    containers: Mapping[str, Sequence[Container]],
    services: Sequence[str],
    busy: Mapping[str, str] | None = None,
) -> dict[str, list[Stop]]:
    """Each running container of `services` with its way of stopping, from the processes in
    it; `busy`: container id -> the RQ job its worker runs."""
    busy = busy or {}
    policy = config.rq.policy
    running = [(name, c) for name in services for c in containers.get(name, []) if c.running]

    def one(item: tuple[str, Container]) -> Stop:
        name, c = item
        method = decide(
            stack.services[name],
            config.service(name),
            procs.processes(c),
            busy=busy.get(c.id, ""),
            policy=policy,
        )
        return Stop(c, method)

    plan: dict[str, list[Stop]] = {name: [] for name in services}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for (name, _), stop in zip(running, pool.map(one, running), strict=True):
            plan[name].append(stop)
    return plan


def describe(stops: Sequence[Stop]) -> str:
    """One service's stops in a few words, for the report."""
    return "; ".join(dict.fromkeys(f"{s.method.kind}: {s.method.reason}" for s in stops))


def restart(
    project: docker.ComposeProject,
    stack: Stack,
    stops: Mapping[str, Sequence[Stop]],
) -> None:
    """Stop every service its own way and start it again, all at once.

    Each container is cycled on its own, straight to the engine (`docker kill` or `docker
    stop -t GRACE`, then `docker start`): a killed web server is back while a worker still
    finishes its job, and no step loads the Compose model (about 0.3 s a call). When one
    restarted service depends on another, Compose starts them instead: it knows the order
    and the conditions (service_healthy) to wait for.
    """
    if not stops:
        return
    chained = any(set(stack.services[name].depends_on) & set(stops) for name in stops)
    every = [s for group in stops.values() for s in group]
    if chained:
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(every)))) as pool:
            for f in [pool.submit(stop, s) for s in every]:
                f.result()
        docker.compose_step(project, "start", *stops, what="docker compose start")
        return
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(every)))) as pool:
        for f in [pool.submit(_cycle, s) for s in every]:
            f.result()


def stop_ahead(stops: Mapping[str, Sequence[Stop]]) -> None:
    """Before `up` recreates containers: stop, their own way and all at once, those whose
    stop by Compose (`docker stop`, its grace) would stall on a PID 1 that ignores the stop
    signal. Compose stops the others itself."""
    ahead = [s for group in stops.values() for s in group if s.method.kind != GRACEFUL]
    if ahead:
        with ThreadPoolExecutor(max_workers=min(16, len(ahead))) as pool:
            for f in [pool.submit(stop, s) for s in ahead]:
                f.result()


def stop(s: Stop) -> None:
    method, c = s.method, s.container
    if method.kind == KILL:
        kill([c])
        return
    if method.kind == FORWARD:
        # The stop signal to PID 1 first: the engine then counts the container as stopped
        # by hand, so its restart policy does not start it again when the process under
        # PID 1 exits (measured: `restart: unless-stopped` did). PID 1 ignores the signal.
        docker.signal(c.id, method.signal)
        procs.deliver(c, method.targets, method.signal)
    docker.stop([c.id], method.grace)


def _cycle(s: Stop) -> None:
    stop(s)
    docker.start(s.container.id, name=s.container.name)


def proxies_to_reload(stack: Stack, touched: Collection[str]) -> list[str]:
    """Proxies that depend on a service this launch restarted or recreated, and were not
    restarted themselves: left alone they keep a dead upstream address (502s)."""
    return sorted(
        name
        for name, service in stack.services.items()
        if is_proxy(service) and name not in touched and set(service.depends_on) & set(touched)
    )


def reload_proxy(
    project: docker.ComposeProject,
    stack: Stack,
    config: Config,
    service: Service,
    containers: Sequence[Container],
) -> str:
    """SIGHUP to each nginx master, which is what `nginx -s reload` sends: no connection is
    dropped and upstream names are resolved anew. Sent straight to the master, it needs no
    knowledge of the `-c` the master was started with (behind `sh -c "... && nginx -g ..."`
    the command line is the shell's). Where no master can be seen, the proxy is restarted,
    stopped its own way (never a grace-long stall)."""
    running = [c for c in containers if c.running]
    masters = [(c, procs.named(procs.processes(c) or (), "nginx")) for c in running]
    if running and all(found for _, found in masters):
        for c, found in masters:
            for master in found:
                if master.pid == 1:
                    docker.signal(c.id, procs.SIGHUP)
                else:
                    procs.deliver(c, [master], procs.SIGHUP)
        return "reloaded (SIGHUP to the nginx master)"
    restart(project, stack, stop_plan(stack, config, {service.name: running}, [service.name]))
    return "restarted (no nginx master process found to reload)"
