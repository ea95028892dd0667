"""Carry out a plan with Compose: build, converge, restart the containers Compose left alone."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from cslaunch import docker, procs
from cslaunch.config import Config
from cslaunch.containers import Container
from cslaunch.context import under
from cslaunch.errors import CslaunchError
from cslaunch.model import Service, Stack, image_name, is_proxy
from cslaunch.stop import FORWARD, GRACEFUL, HELD, KILL, StopMethod, decide


def build(project: docker.ComposeProject, services: Sequence[str], stack: Stack) -> None:
    """`docker compose build`, in turns where one image starts FROM another built here: Compose
    builds those it is given at once, and the later one would start from the old base."""
    left = list(services)
    while left:
        turn = [n for n in left if not _waits(stack, n, left)] or left
        docker.compose_step(project, "build", *turn, what="docker compose build")
        left = [n for n in left if n not in turn]


def _waits(stack: Stack, name: str, building: Sequence[str]) -> bool:
    """Whether its Dockerfile starts FROM an image another of `building` makes."""
    base = stack.base_builder(stack.services[name])
    return base is not None and any(
        other != name and stack.built_as(image_name(stack.services[other], stack.name)) is base
        for other in building
    )


# Waits until these services are ready, by cslaunch's own checks; raises when one fails.
Ready = Callable[[Sequence[str]], None]


def start_order(stack: Stack, names: Collection[str]) -> list[list[str]]:
    """`names` in levels, each after every dependency it has among them: Compose's order."""
    remaining, levels = set(names), []
    while remaining:
        level = sorted(n for n in remaining if not set(stack.services[n].depends_on) & remaining)
        levels.append(level or sorted(remaining))  # a cycle (Compose rejects those): at once
        remaining -= set(levels[-1])
    return levels


def awaited(stack: Stack, names: Collection[str]) -> list[str]:
    """Those of `names` another service waits for (healthy, or completed) before it starts."""
    return sorted(
        {
            dep
            for s in stack.services.values()
            for dep, condition in s.conditions
            if condition != "service_started" and dep in names
        }
    )


def converge(
    project: docker.ComposeProject,
    stack: Stack,
    ready: Ready,
    completed: Collection[str] = (),
    renew: Collection[str] = (),
) -> None:
    """`up -d`: create what is missing, recreate what Compose sees changed (config, image).

    Where a service waits for another to be healthy (`condition: service_healthy`), Compose
    would wait for Docker's first healthcheck, one whole interval (30-60 s in real files)
    after the start. Then cslaunch brings the stack up level by level (`up --no-deps`) and
    waits for those dependencies with its own checks, which pass as soon as the app does.
    `completed`: one-shot services left as they are (done, nothing they use changed); `up`
    starts any container not running, which would run them again (migrations), so they are
    neither named nor pulled in as a dependency. `renew`: services recreated with fresh
    anonymous volumes (`renewable`)."""
    names = [n for n in stack.names() if n not in completed]
    if not completed and not renew and not awaited(stack, names):
        docker.compose_step(project, "up", "--detach", "--no-build", what="docker compose up")
        return
    for level in start_order(stack, names):
        for group, flags in (
            ([n for n in level if n not in renew], ()),
            ([n for n in level if n in renew], ("--renew-anon-volumes",)),
        ):
            if group:
                docker.compose_step(
                    project,
                    "up",
                    "--detach",
                    "--no-build",
                    "--no-deps",
                    *flags,
                    *group,
                    what="docker compose up",
                )
        needed = awaited(stack, level)
        if needed:
            ready(needed)


# What an image installs that a mount of the project would hide: the only anonymous
# volumes renewed (never one that may hold data: uploads, media, a database)
DEPENDENCY_DIRS = frozenset(
    {"node_modules", ".venv", "venv", ".pnpm-store", "bower_components", "site-packages"}
)


def renewable(service: Service, image_volumes: Collection[str] = ()) -> bool:
    """Whether a service given a new image must get fresh anonymous volumes: each of them
    is a dependency directory inside one of its bind mounts (`.:/app` beside
    `/app/node_modules` or `/app/.venv`), there to keep what the image installed visible
    under the mount. Compose hands a recreated container the old container's anonymous
    volumes, so the new image's packages would stay hidden behind the old ones. Any other
    anonymous volume, the image's own `VOLUME`s (`image_volumes`) included, may hold data:
    then nothing is renewed (`--renew-anon-volumes` renews them all)."""
    targets = [b.target.rstrip("/") for b in service.binds]
    own = {v.rstrip("/") for v in service.anonymous_volumes}
    # An image VOLUME the service covers with a named volume or a mount is not anonymous.
    covered = {v.rstrip("/") for v in service.volume_targets} | set(targets)
    extra = {v.rstrip("/") for v in image_volumes} - covered
    return bool(own) and all(
        posixpath.basename(v) in DEPENDENCY_DIRS and any(v != t and under(v, t) for t in targets)
        for v in own | extra
    )


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
    workers: Collection[str] = (),
    held: Collection[str] = (),
) -> dict[str, list[Stop]]:
    """Each running container of `services` with its way of stopping, from the processes in
    it; `busy`: container id -> the RQ job its worker runs; `workers`: the services that run
    RQ workers; `held`: ids of containers the last launch held back stopped, which are only
    started."""
    busy = busy or {}
    policy = config.rq.policy
    running = [
        (name, c)
        for name in services
        for c in containers.get(name, [])
        if c.running or c.id in held
    ]

    def one(item: tuple[str, Container]) -> Stop:
        name, c = item
        if not c.running:
            return Stop(c, StopMethod(HELD, 0.0, "held back stopped by the last launch"))
        method = decide(
            stack.services[name],
            config.service(name),
            procs.processes(c),
            busy=busy.get(c.id, ""),
            policy=policy,
            worker=name in workers,
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


@dataclass(frozen=True)
class Restarted:
    killed: set[str]  # services a container of which was killed
    held: list[Container] = field(default_factory=list)  # stopped and left so (`hold`)


def restart(
    stack: Stack,
    stops: Mapping[str, Sequence[Stop]],
    ready: Ready,
    *,
    background: Collection[str] = (),
    head_start: Ready | None = None,
    hold: Callable[[], bool] | None = None,
) -> Restarted:
    """Stop every service its own way and start it again, all at once.

    Each container is cycled on its own, straight to the engine (`docker kill` or `docker
    stop -t GRACE`, then `docker start`): a killed web server is back while a worker still
    finishes its job, and no step loads the Compose model (about 0.3 s a call). When one
    restarted service depends on another, all stop first and start in Compose's order,
    each level once the dependencies it waits for (healthy, completed) are ready. Returns
    the services a container of which was killed, and the containers held back.

    With `head_start` (watch), `background` services (RQ workers) stop with the others but
    start once `head_start` returned for the rest. Measured on 2 cores: the workers'
    start-up (Python, RQ's imports) slowed the web server's, whose answer the developer
    waits on, by 0.2-0.4 s; started after it, the whole relaunch took 0.3 s longer, which
    is what a one-off launch waits on. They stop at once all the same, so that no old
    worker runs a job the new web server queues.

    When `hold` then says newer saves came in, they are held back: left stopped, for the
    next launch to start (or hold back again) after its own web servers answer. Saves 1 s
    apart otherwise restart the workers every second, and their start-up, killed before it
    is done, slows every web server start (median save to served 0.47 s without workers to
    restart, 0.66-0.74 s with). Their jobs wait in the queue meanwhile.
    """
    every = [s for group in stops.values() for s in group]
    chained = any(set(stack.services[name].depends_on) & set(stops) for name in stops)
    later = [s for s in every if s.container.service in background]
    first = [s for s in every if s.container.service not in background]
    if not chained and head_start is not None and later and first:
        held: list[Container] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            stopping = pool.submit(_each, stop, later)
            try:
                killed = _each(_cycle, first)
                head_start(sorted({s.container.service for s in first}))
                if hold is not None and hold():
                    held = [s.container for s in later]
            finally:  # interrupted or not, the workers stopped for this start again
                killed_later = stopping.result()
                if not held:
                    _each(_start, later)
        return Restarted(killed | killed_later, held)
    if not chained:
        return Restarted(_each(_cycle, every))
    killed = _each(stop, every)
    for level in start_order(stack, stops):
        _each(_start, [s for name in level for s in stops[name]])
        needed = awaited(stack, level)
        if needed:
            ready(needed)
    return Restarted(killed)


def _each(action: Callable[[Stop], object], stops: Sequence[Stop]) -> set[str]:
    """Run `action` on every stop at once: the services it answered true for."""
    if not stops:
        return set()
    with ThreadPoolExecutor(max_workers=min(16, len(stops))) as pool:
        futures = [(s, pool.submit(action, s)) for s in stops]
        return {s.container.service for s, f in futures if f.result()}


def _start(s: Stop) -> None:
    docker.start(s.container.id, name=s.container.name)


def stop_ahead(stops: Mapping[str, Sequence[Stop]]) -> set[str]:
    """Before `up` recreates containers: stop, their own way and all at once, those whose
    stop by Compose (`docker stop`, its grace) would stall on a PID 1 that ignores the stop
    signal. Compose stops the others itself. Returns the services killed."""
    return _each(
        stop,
        [
            s
            for group in stops.values()
            for s in group
            if s.method.kind != GRACEFUL or s.method.look_every is not None
        ],
    )


def put_back(stops: Mapping[str, Sequence[Stop]]) -> tuple[list[str], list[str]]:
    """After a failed `up`: start again the containers stopped for it that are still there
    and still stopped. Returns the services started again and those left down."""
    back: set[str] = set()
    down: set[str] = set()
    for name, group in stops.items():
        for s in group:
            found = docker.inspect([s.container.id])
            if not found or (found[0].get("State") or {}).get("Running"):
                continue  # replaced after all, or running: nothing to put back
            try:
                _start(s)
                back.add(name)
            except CslaunchError:
                down.add(name)
    return sorted(back), sorted(down - back)


SIGKILLED = 137  # the exit code of a process ended by SIGKILL


def stop(s: Stop) -> bool:
    """Stop one container its way; whether its process was killed (at once, or at the end
    of the grace) rather than ending on its own: a worker killed may leave a job behind."""
    method, c = s.method, s.container
    if method.kind == HELD:
        return False
    if method.kind == KILL:
        kill([c])
        return True
    if method.kind == FORWARD:
        # The stop signal to PID 1 first: the engine then counts the container as stopped
        # by hand, so its restart policy does not start it again when the process under
        # PID 1 exits (measured: `restart: unless-stopped` did). PID 1 ignores the signal.
        docker.signal(c.id, method.signal)
        procs.deliver(c, method.targets, method.signal)
    if method.look_every is None:
        docker.stop([c.id], method.grace)
    else:
        _stop_minding_a_hang(s, method.look_every)
    after = docker.inspect([c.id])
    return not after or (after[0].get("State") or {}).get("ExitCode") == SIGKILLED


def _stop_minding_a_hang(s: Stop, every: float) -> None:
    """`docker stop` of an RQ worker, killing it meanwhile once its last words say it is
    unsubscribing: it hangs in its teardown (stop.HANG_LOOK_EVERY), its job, if it had one,
    done and itself deregistered, nothing left to lose. Any other worker, one finishing a
    job among them, is left to `docker stop` as before: its grace, then SIGKILL, and its
    job requeued."""
    c = s.container
    with ThreadPoolExecutor(max_workers=1) as pool:
        stopping = pool.submit(docker.stop, [c.id], s.method.grace)
        while not wait([stopping], timeout=every)[0]:
            if _hung_in_teardown(c):
                kill([c])
                break
        stopping.result()


def _hung_in_teardown(c: Container) -> bool:
    """RQ logs "unsubscribing from channel" (INFO) once its work loop ended and it
    deregistered, then nothing until it exits. Lines of this start of the container only."""
    last = docker.last_log_lines(c.id, since=c.started_at)
    return any("unsubscribing from channel" in line.lower() for line in last)


def _cycle(s: Stop) -> bool:
    killed = stop(s)
    _start(s)
    return killed


def proxies_to_reload(stack: Stack, touched: Collection[str]) -> list[str]:
    """Proxies not restarted themselves, when this launch restarted or recreated any other
    service: left alone they may keep a dead upstream address (502s). Any, not only those
    whose `depends_on` names it: what a proxy proxies to is in its own config (CaseStrainer's
    nginx proxies `/` to a frontend it does not depend on); and a restart too, as Docker
    does not keep a container's address (containers restarted together can swap them). A
    reload drops no connection."""
    return sorted(
        name
        for name, service in stack.services.items()
        if is_proxy(service) and name not in touched and set(touched) - {name}
    )


def reload_proxy(
    project: docker.ComposeProject,
    stack: Stack,
    config: Config,
    service: Service,
    containers: Sequence[Container],
    may_restart: bool = True,
) -> str:
    """SIGHUP to each nginx master, which is what `nginx -s reload` sends: no connection is
    dropped and upstream names are resolved anew. Sent straight to the master, it needs no
    knowledge of the `-c` the master was started with (behind `sh -c "... && nginx -g ..."`
    the command line is the shell's). Where no master can be seen, the proxy is restarted,
    stopped its own way (never a grace-long stall), if `may_restart` (one of its
    `depends_on` was touched); else it is left as it is."""
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
    if not may_restart or not running:
        return "not reloaded (no nginx master process seen)"
    stops = stop_plan(stack, config, {service.name: running}, [service.name])
    restart(stack, stops, lambda names: None)
    return "restarted (no nginx master process found to reload)"
