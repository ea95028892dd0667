"""RQ workers found from what runs: the registrations Redis holds, the containers that run
them (by hostname), and a worker container's readiness (LiveWorkers)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cslaunch import docker
from cslaunch.containers import Container, by_hostname, project_containers
from cslaunch.jobs.helper import JobsError, run_helper
from cslaunch.jobs.setup import (
    RQSetup,
    RQWorkerService,
    find_redis_service,
    find_rq,
    generated_name,
    service_environment,
    with_fallback,
    worker_redis_url,
)
from cslaunch.rqconfig import RQConfig

if TYPE_CHECKING:  # for annotations only
    from cslaunch import model
    from cslaunch.stack import Detected


@dataclass(frozen=True)
class Registration:
    """One RQ worker as Redis knows it: where it runs (hostname, pid) and what it does."""

    name: str
    hostname: str
    pid: str
    state: str
    queues: tuple[str, ...]
    current_job: str
    alive: bool
    birth: float | None  # epoch seconds


def helper_services(
    stack: model.Stack,
    rq: RQConfig,
    raw: Mapping[str, Any] | None,
    python: Collection[str],
) -> list[RQWorkerService]:
    """Where the RQ helper can ask Redis: the workers the command lines show first, then
    every Python service whose environment names a Redis (the app that enqueues, workers
    started by a script)."""
    guess = find_rq(stack, rq, raw)
    found = list(guess.workers) if guess else []
    raw_services: Mapping[str, Any] = (raw or {}).get("services") or {}
    for name in stack.names():
        if name in {w.service for w in found} or name not in python:
            continue
        env = service_environment(raw_services.get(name) or {})
        if not rq.redis_url and not any("REDIS" in key.upper() for key in env):
            continue
        url, source = worker_redis_url(None, env, rq)
        found.append(RQWorkerService(name, url, source, (), "python3"))
    redis_service = guess.redis_service if guess else find_redis_service(stack, set(), found)
    return with_fallback(stack, found, redis_service)


class Registrations(list[Registration]):
    """Registrations read in Redis; `guessed`: some were read in the stack's Redis service
    by name, the workers' own settings naming none (RQWorkerService.fallback_url), which
    may not be theirs (another database, another Redis)."""

    guessed: bool = False


def registrations(
    project: docker.ComposeProject, helpers: Sequence[RQWorkerService], timeout: float = 60
) -> Registrations:
    """Every worker registration in the Redis the helpers use. Raises JobsError when no
    helper can run or Redis cannot be read."""
    found = Registrations()
    groups: dict[str | None, list[RQWorkerService]] = {}
    for w in helpers:
        groups.setdefault(w.redis_url, []).append(w)
    for group in groups.values():
        doc = run_helper(project, group, {"action": "workers"}, timeout=timeout)
        if not doc.get("ok"):
            raise JobsError(str(doc.get("message") or "cannot read RQ's workers"))
        found.guessed = found.guessed or bool(doc.get("guessed"))
        for w in doc.get("workers") or []:
            found.append(
                Registration(
                    name=str(w.get("name", "")),
                    hostname=str(w.get("hostname") or ""),
                    pid=str(w.get("pid") or ""),
                    state=str(w.get("state") or ""),
                    queues=tuple(w.get("queues") or ()),
                    current_job=str(w.get("current_job") or ""),
                    alive=bool(w.get("alive")),
                    birth=float(w["birth"]) if w.get("birth") is not None else None,
                )
            )
    return found


@dataclass(frozen=True)
class Discovered:
    setup: RQSetup | None
    busy: dict[str, str] = field(default_factory=dict)  # container id -> job its worker runs
    problem: str = ""  # why the registrations could not be read
    # Registrations of workers whose process is gone. Until they expire (RQ's worker TTL,
    # minutes) a new worker of the same name refuses to start.
    dead: tuple[Registration, ...] = ()
    named: dict[str, str] = field(default_factory=dict)  # container id -> its fixed worker name


def discover(
    project: docker.ComposeProject,
    stack: model.Stack,
    rq: RQConfig,
    raw: Mapping[str, Any] | None,
    python: Collection[str],
    containers: Mapping[str, Sequence[Container]],
) -> Discovered:
    """The stack's RQ workers from what runs: every service whose container hosts a live
    worker registration (its hostname is the container's), whatever starts the worker (a
    Worker subclass in a script, `sh -c` wrappers, a pool), plus those the command lines
    and the configuration name. Asked before anything is stopped, so a worker is stopped
    as a worker and its interrupted job recovered."""
    guess = find_rq(stack, rq, raw)
    if not rq.enabled:
        return Discovered(None)
    running = {name for name, cs in containers.items() if any(c.running for c in cs)}
    every = helper_services(stack, rq, raw, python)
    helpers = [w for w in every if w.service in running]
    owners = by_hostname(c for cs in containers.values() for c in cs)
    mappable = any(
        len(owners[c.hostname]) == 1
        for name in python
        for c in containers.get(name, [])
        if c.running and c.hostname
    )
    fixed = any(w.name for w in (guess.workers if guess else ()))
    if not helpers or not (mappable or fixed):
        # Containers on the host's network all have its hostname: a registration cannot say
        # which of them runs it, so asking Redis would tell nothing the command lines do not
        # (unless a worker's fixed name may be blocked by its dead registration).
        return Discovered(guess)
    try:
        found = registrations(project, helpers)
    except JobsError as e:
        return Discovered(guess, problem=e.message)
    queues, busy, named = _by_container(found, owners)
    workers = _workers(guess, helpers, queues, rq)
    dead = tuple(r for r in found if not r.alive)
    if not workers:
        return Discovered(None, dead=dead)
    names = {w.service for w in workers}
    others = tuple(h for h in every if h.service not in names)
    setup = RQSetup(tuple(workers), find_redis_service(stack, names, workers), rq, others)
    return Discovered(setup, busy, dead=dead, named=named)


def discover_stack(found: Detected) -> Discovered:
    """discover, for a stack as detect found it (with the project name Compose resolved)."""
    project = found.project
    return discover(
        project.compose, found.stack, project.config.rq, found.raw, found.python, found.containers
    )


def setup_of(found: Detected, discovered: Discovered | None) -> RQSetup | None:
    """The stack's RQ setup: as found in Redis when it was asked (`discovered`), else as
    the command lines and the configuration say."""
    if discovered:
        return discovered.setup
    return find_rq(found.stack, found.project.config.rq, found.raw)


def _by_container(
    found: Sequence[Registration], owners: Mapping[str, Sequence[Container]]
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """From the live registrations whose container can be told: the queues each service's
    workers take, the job each container's worker runs, each container's fixed worker name."""
    queues: dict[str, list[str]] = {}
    busy: dict[str, str] = {}
    named: dict[str, str] = {}
    for r in found:
        hosts = owners.get(r.hostname, [])
        # Containers on the host's network share its hostname: which one runs the worker
        # cannot be told, and the command lines have to say.
        if not r.alive or len(hosts) != 1:
            continue
        c = hosts[0]
        queues.setdefault(c.service, []).extend(r.queues)
        if r.state == "busy" and r.current_job:
            busy[c.id] = r.current_job
        if not generated_name(r.name):
            named[c.id] = r.name
    return queues, busy, named


def _workers(
    guess: RQSetup | None,
    helpers: Sequence[RQWorkerService],
    queues: Mapping[str, list[str]],
    rq: RQConfig,
) -> list[RQWorkerService]:
    """The workers the command lines show, then the services only Redis showed to run one."""
    known = {w.service: w for w in (guess.workers if guess else ())}
    by_helper = {w.service: w for w in helpers}
    workers = list(known.values())
    for name in sorted(set(queues) - set(known)):
        base = by_helper.get(name) or RQWorkerService(name, rq.redis_url, "config", (), "python3")
        workers.append(
            RQWorkerService(
                name, base.redis_url, base.url_source, tuple(dict.fromkeys(queues[name])), "python3"
            )
        )
    return workers


# How long a worker container may run unregistered in a Redis whose address was guessed
# before its registration counts as unknown rather than missing
GUESSED_GRACE_S = 15.0


class LiveWorkers:
    """Readiness of RQ worker containers: a container is ready once Redis holds a live
    registration of a worker running in it (its hostname), born after the container
    started. That is the worker's own signal, sooner and surer than a healthcheck on
    Docker's schedule or a fixed stable window. One read of Redis serves every container
    that asks within `every` seconds."""

    def __init__(
        self,
        project: docker.ComposeProject,
        helpers: Sequence[RQWorkerService],
        workers: Collection[str],
        every: float = 0.25,
    ):
        self.project, self.helpers, self.workers, self.every = project, helpers, workers, every
        self.lock = threading.Lock()
        self.read_at = -math.inf
        self.seen: Registrations | None = None  # None: Redis could not be read
        self.problem = ""
        # hostname -> start times of the running worker containers that have it
        self.sharing: dict[str, list[float]] = {}

    def probe(self, container: Container) -> str | None:
        seen = self._fresh()
        if seen is None:
            # Cannot look (no rq in the image, Redis refuses us): not a fault of this worker;
            # the recovery step says why.
            return None if self.problem else "reading RQ's workers"
        started = container.started_at.timestamp() if container.started_at else 0.0
        have = sum(
            1
            for r in seen
            if r.alive and r.hostname == container.hostname and (r.birth or 0.0) >= started - 1
        )
        # On the host's network worker containers share a hostname and nothing tells their
        # registrations apart: every one started since this one must have registered since.
        need = max(1, sum(1 for t in self.sharing.get(container.hostname, ()) if t >= started))
        if have >= need:
            return None
        up = time.time() - started
        if seen.guessed and up > GUESSED_GRACE_S:
            return None  # the Redis read was a guess, and may not be the workers': unknown
        if need > 1:
            return (
                f"{have} live RQ worker registration(s) for {need} worker containers "
                f"sharing the hostname {container.hostname}"
            )
        return "no live RQ worker registration yet"

    def _fresh(self) -> Registrations | None:
        with self.lock:
            if time.monotonic() - self.read_at < self.every:
                return self.seen
            current = [c for c in project_containers(self.project) if c.running]
            self.sharing = {
                host: [c.started_at.timestamp() if c.started_at else 0.0 for c in group]
                for host, group in by_hostname(
                    c for c in current if c.service in self.workers
                ).items()
            }
            running = {c.service for c in current}
            helpers = [w for w in self.helpers if w.service in running]
            self.seen, self.problem = None, ""
            try:
                if helpers:
                    self.seen = registrations(self.project, helpers, timeout=30)
            except JobsError as e:
                # Loading its dataset: Redis will answer soon. Anything else: cannot look.
                self.problem = "" if "loading" in e.message.lower() else e.message
            self.read_at = time.monotonic()
            return self.seen
