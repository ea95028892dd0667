"""Gathering, the edge: everything the checks look at, read once (docker calls, /proc,
files) into a plain :class:`Facts`. Reads only."""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cslaunch import docker, engine_api, procs, readiness, stack
from cslaunch.containers import Container
from cslaunch.doctor.dockerfile import DEPENDENCY_DIRS, Copy, dockerfile_copies, is_code_file
from cslaunch.doctor.facts import ClockSample, Facts, Mount, Pid1, RedisFacts, SourceInfo, number
from cslaunch.doctor.paths import is_under, norm
from cslaunch.errors import CslaunchError
from cslaunch.model import Service, is_redis, redis_flags
from cslaunch.project import Project


def gather(project: Project) -> Facts:
    """Read everything the checks need: the model and containers, then per container PID 1,
    env and mounts, a clock sample, `docker info` and Redis' settings. Reads only."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        info = pool.submit(_docker_os)
        found = stack.detect(project)
        docker_os = info.result()
    services = found.stack.services
    raw_services: Mapping[str, Any] = found.raw.get("services") or {}
    running = _running(found)
    inspected = {d.get("Id", ""): d for d in docker.inspect([c.id for c in running.values()])}
    env: dict[str, dict[str, str]] = {}
    volumes: dict[str, tuple[Mount, ...]] = {}
    for name in services:
        raw = raw_services.get(name) or {}
        data = inspected.get(running[name].id, {}) if name in running else {}
        env[name] = _environment(raw, data)
        volumes[name] = _mounts(raw, data)
    dockerfiles, sources = _builds(services)
    pid1, redis, clock = _from_containers(found, running)
    return Facts(
        project=found.stack.name,
        root=project.root,
        services=services,
        python=found.python,
        config=project.config,
        containers=found.containers,
        dockerfiles=dockerfiles,
        watch_targets={name: _watch_targets(raw_services.get(name) or {}) for name in services},
        volumes=volumes,
        env=env,
        pid1=pid1,
        clock=clock,
        docker_os=docker_os,
        wsl=_under_wsl(),
        redis=redis,
        host_paths=_host_paths(services, volumes),
        sources=sources,
        notes=_notes(running, pid1, clock, docker_os),
    )


def _running(found: stack.Detected) -> dict[str, Container]:
    """A running container of each service (the first, when it has several)."""
    return {
        name: next(c for c in cs if c.running)
        for name, cs in found.containers.items()
        if any(c.running for c in cs) and name in found.stack.services
    }


def _builds(
    services: Mapping[str, Service],
) -> tuple[dict[str, str], dict[str, dict[str, SourceInfo]]]:
    """Each service's Dockerfile, and what its COPY sources are in its build context."""
    dockerfiles: dict[str, str] = {}
    sources: dict[str, dict[str, SourceInfo]] = {}
    for name, service in services.items():
        text = stack.dockerfile_text(service)
        if text is None:
            continue
        dockerfiles[name] = text
        if service.build_context is not None:
            copies = dockerfile_copies(text, service.target)
            sources[name] = _context_sources(service.build_context, copies)
    return dockerfiles, sources


def _from_containers(
    found: stack.Detected, running: Mapping[str, Container]
) -> tuple[dict[str, Pid1], dict[str, RedisFacts], ClockSample | None]:
    """PID 1 of each running container, Redis' settings and a clock sample, all at once:
    each is a `docker exec` or two, and they do not wait on each other."""
    services = found.stack.services
    with ThreadPoolExecutor(max_workers=4) as pool:
        pid1_jobs = {
            name: pool.submit(_pid1, c, services[name].stop_signal)
            for name, c in running.items()
            if name in services
        }
        redis_jobs = {
            name: pool.submit(_redis, service, running.get(name))
            for name, service in services.items()
            if is_redis(service)
        }
        clock_job = pool.submit(_clock_sample, running, found.python)
        pid1 = {name: job.result() for name, job in pid1_jobs.items()}
        redis = {name: job.result() for name, job in redis_jobs.items()}
        return pid1, redis, clock_job.result()


def _notes(
    running: Mapping[str, Container],
    pid1: Mapping[str, Pid1],
    clock: ClockSample | None,
    docker_os: str | None,
) -> tuple[str, ...]:
    """What could not be checked, and why."""
    notes: list[str] = []
    if not running:
        notes.append("the stack is not running: PID 1, clock and live Redis settings")
    if running and clock is None:
        notes.append("clock: no running container could print its time")
    unknown = sorted(n for n, p in pid1.items() if p.catches_sigterm is None)
    if unknown:
        notes.append(f"PID 1 signal handling of {', '.join(unknown)}: /proc/1/status unreadable")
    if docker_os is None:
        notes.append("Docker Desktop file sharing: `docker info` did not answer")
    return tuple(notes)


def _watch_targets(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """Where `develop.watch` syncs files into the container: live code, like a bind mount."""
    return tuple(
        str(rule.get("target"))
        for rule in (raw.get("develop") or {}).get("watch") or []
        if "sync" in str(rule.get("action", "")) and rule.get("target")
    )


def _environment(raw: Mapping[str, Any], inspected: Mapping[str, Any]) -> dict[str, str]:
    """The Compose model's environment, overlaid by the container's (which adds the image's
    ENV lines)."""
    env = {k: str(v) for k, v in (raw.get("environment") or {}).items() if v is not None}
    for item in (inspected.get("Config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")


def _mounts(raw: Mapping[str, Any], inspected: Mapping[str, Any]) -> tuple[Mount, ...]:
    declared: dict[str, Mount] = {}
    for vol in raw.get("volumes") or []:
        if vol.get("type") in ("volume", "tmpfs") and vol.get("target"):
            target = posixpath.normpath(str(vol["target"]))
            declared[target] = Mount(str(vol["type"]), target, str(vol.get("source") or ""))
    for target in raw.get("tmpfs") or []:
        path = posixpath.normpath(str(target).split(":", 1)[0])
        declared[path] = Mount("tmpfs", path)
    found = dict(declared)
    for m in inspected.get("Mounts") or []:
        kind = str(m.get("Type", ""))
        target = posixpath.normpath(str(m.get("Destination", "")))
        if kind not in ("volume", "tmpfs") or target in found:
            continue
        name = str(m.get("Name") or "")
        found[target] = Mount(kind, target, "" if _ANONYMOUS.match(name) else name, False)
    for target in (inspected.get("HostConfig") or {}).get("Tmpfs") or {}:
        path = posixpath.normpath(str(target))
        found.setdefault(path, Mount("tmpfs", path, "", False))
    return tuple(found[t] for t in sorted(found))


def _host_paths(
    services: Mapping[str, Service], volumes: Mapping[str, tuple[Mount, ...]]
) -> dict[str, bool]:
    """For each host path a volume lies over: does it hold anything?"""
    result: dict[str, bool] = {}
    for name, service in services.items():
        targets = {m.target for m in volumes.get(name, ())} | set(service.volume_targets)
        for bind in service.binds:
            for target in targets:
                t, b = posixpath.normpath(target), posixpath.normpath(bind.target)
                if t != b and not is_under(t, b):
                    continue
                rel = posixpath.relpath(t, b)
                path = bind.source if rel == "." else bind.source / rel
                result[str(path)] = _holds_anything(path)
    return result


# Not looked into for code: dependencies, caches, version control.
_NOT_CODE_DIRS = DEPENDENCY_DIRS | {".git", ".hg", ".svn", "dist", "build"}
_MAX_LOOKED_AT = 5000  # files per COPY source: enough to tell, bounded on a huge context


def _context_sources(context_dir: Path, copies: list[Copy]) -> dict[str, SourceInfo]:
    """What each COPY source is in the build context: a file, a directory (holding code or
    not, and which of its subdirectories do), or missing (a glob, a variable, not there)."""
    found: dict[str, SourceInfo] = {}
    for copy in copies:
        for source in copy.sources:
            key = norm(source) or "."
            if key in found or any(c in source for c in "*?[$"):
                continue
            path = context_dir / key
            try:
                if path.is_file():
                    found[key] = SourceInfo("file", is_code_file(path.name))
                elif path.is_dir():
                    found[key] = _dir_info(path)
                else:
                    found[key] = SourceInfo("missing", False)
            except OSError:
                found[key] = SourceInfo("missing", False)
    return found


def _dir_info(path: Path) -> SourceInfo:
    code_dirs: set[str] = set()
    code = False
    seen = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in _NOT_CODE_DIRS and not d.startswith(".")]
        rel = Path(dirpath).relative_to(path).parts
        for filename in filenames:
            seen += 1
            if is_code_file(filename):
                code = True
                if rel:
                    code_dirs.add(rel[0])
        if seen > _MAX_LOOKED_AT:
            break
    return SourceInfo("dir", code, tuple(sorted(code_dirs)))


def _holds_anything(path: Path) -> bool:
    try:
        if path.is_dir():
            return any(True for _ in os.scandir(path))
        return path.exists()
    except OSError:
        return True  # unreadable: assume it holds what it should


def _pid1(container: Container, stop_signal: str | None) -> Pid1:
    """PID 1's name and whether it handles the signal the service is stopped with."""
    first = procs.pid1(procs.processes(container) or ())
    if first is None:
        return Pid1(None, None)
    return Pid1(first.name, first.catches(procs.signal_number(stop_signal)))


_CLOCK_COMMANDS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("python3", "-c", "import time; print(repr(time.time()))"), 0.0),
    (("date", "+%s.%N"), 0.0),
    (("date", "+%s"), 1.0),
)


def _clock_sample(running: Mapping[str, Container], python: frozenset[str]) -> ClockSample | None:
    """One container's clock between two host readings: containers share their engine's clock,
    so one sample speaks for all of them. Python services first (they have python3)."""
    order = sorted(running, key=lambda n: (n not in python, n))
    for name in order[:3]:
        for argv, resolution in _CLOCK_COMMANDS:
            before = time.time()
            try:
                result = docker.exec_in(running[name].id, argv, timeout=10)
            except CslaunchError:
                return None
            after = time.time()
            value = number(result.stdout.strip()) if result.returncode == 0 else None
            if value is not None:
                return ClockSample(name, before, value, after, resolution)
    return None


def _docker_os() -> str | None:
    api = engine_api.local()
    if api is not None:  # a request, not a CLI that asks the same of the engine
        try:
            return str(api.get("/info", timeout=30).get("OperatingSystem") or "") or None
        except (OSError, engine_api.EngineError):
            return None
    try:
        result = docker.run(["docker", "info", "--format", "{{.OperatingSystem}}"], timeout=30)
    except CslaunchError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _under_wsl(version: Path = Path("/proc/version")) -> bool:
    try:
        return "microsoft" in version.read_text().lower()
    except OSError:
        return False


def _redis(service: Service, container: Container | None) -> RedisFacts:
    port = readiness.redis_port(service)
    static = RedisFacts(port, redis_flags(service.words))
    if container is None:
        return static
    try:
        cli = ["redis-cli", "-p", str(port)]
        config = docker.exec_in(container.id, [*cli, "CONFIG", "GET", "*"], timeout=10)
        info = docker.exec_in(container.id, [*cli, "INFO", "persistence"], timeout=10)
    except CslaunchError:
        return static
    settings = parse_config_get(config.stdout) if config.returncode == 0 else {}
    if not settings:
        return static  # no redis-cli, CONFIG renamed away, or a password
    fields = parse_info(info.stdout) if info.returncode == 0 else {}
    size = number(fields.get("aof_current_size"))
    return RedisFacts(port, settings, int(size) if size is not None else None, live=True)


def parse_config_get(text: str) -> dict[str, str]:
    """redis-cli's raw CONFIG GET output: name and value on alternate lines."""
    lines = text.splitlines()
    if len(lines) % 2 or any(ln.startswith(("ERR", "NOAUTH", "(error)")) for ln in lines[:1]):
        return {}
    return {lines[i]: lines[i + 1] for i in range(0, len(lines), 2)}


def parse_info(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    return fields
