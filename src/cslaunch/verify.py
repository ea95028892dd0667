"""Prove it: the code each Python container runs is the code on disk.

For every running Python service, one `docker exec` runs verify_probe.py with the container's
own Python. It hashes the source files the service runs (bind-mounted or baked in by COPY),
compares them with the host's, and checks every pyc beside them: a pyc whose header says
"valid" must hold the code of the source, and no sourceless legacy pyc may stand in for a
deleted module. On the host, the container's start time must be after the newest content
change of those files: otherwise the process may hold old modules in memory.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cslaunch import docker
from cslaunch.containers import Container
from cslaunch.context import image_path
from cslaunch.index import Entry
from cslaunch.model import Service
from cslaunch.scan import FileStat, stat_of
from cslaunch.track import ServiceFiles

FRESH, STALE, SKIPPED = "fresh", "stale", "skipped"
PROBE = Path(__file__).with_name("verify_probe.py")
# Docker's start time and the host's clock: allowed to disagree this much.
CLOCK_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class Target:
    host: str
    container: str
    digest: str
    changed_ns: int
    stat: FileStat  # as the launch saw it


def changed_since_scan(target: Target) -> bool:
    """Edited after the launch looked: not what this launch applied, so not its verdict
    (the next launch, or watch, picks it up)."""
    try:
        return stat_of(os.lstat(target.host)) != target.stat
    except OSError:
        return True


@dataclass(frozen=True)
class Verdict:
    service: str
    state: str  # fresh / stale / skipped
    problems: tuple[tuple[str, str], ...] = ()  # (path, reason)
    checked: int = 0
    pycs: int = 0
    seconds: float = 0.0
    detail: str = ""
    pending: tuple[str, ...] = ()  # host files edited during the launch: not checked

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.service,
            "state": self.state,
            "problems": [{"path": p, "reason": r} for p, r in self.problems],
            "checked": self.checked,
            "pycs": self.pycs,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "pending": list(self.pending),
        }


def targets(service: Service, files: ServiceFiles, entries: Mapping[str, Entry]) -> list[Target]:
    """The Python sources a service runs, with their path in the container (pure)."""
    found: dict[str, Target] = {}
    binds = [b for b in service.binds if str(b.source) in files.bind_dirs]
    for bind in binds:
        prefix = str(bind.source).rstrip("/\\") + os.sep
        for path, entry in entries.items():
            if path.startswith(prefix) and path.endswith(".py"):
                rel = path[len(prefix) :].replace(os.sep, "/")
                inside = posixpath.join(bind.target, rel)
                found[inside] = Target(path, inside, entry.digest, entry.changed_ns, entry.stat)
    if files.context and files.copies is not None:
        prefix = files.context.rstrip("/\\") + os.sep
        targets_hidden = [b.target.rstrip("/") + "/" for b in service.binds]
        for path, entry in entries.items():
            if not path.startswith(prefix) or not path.endswith(".py"):
                continue
            if any(path.startswith(str(b.source).rstrip("/\\") + os.sep) for b in binds):
                continue  # the bind mount shows the host file: checked above
            rel = path[len(prefix) :].replace(os.sep, "/")
            if not files.copied(rel) or files.ignore.ignored(rel):
                continue
            baked_at = image_path(list(files.copies), rel)
            if baked_at is None or any(baked_at.startswith(t) for t in targets_hidden):
                continue  # not followed, or hidden under a bind mount
            found.setdefault(
                baked_at, Target(path, baked_at, entry.digest, entry.changed_ns, entry.stat)
            )
    return sorted(found.values(), key=lambda t: t.container)


def host_path(service: Service, inside: str) -> str | None:
    """The host file a container path shows through a bind mount, if any."""
    for bind in sorted(service.binds, key=lambda b: -len(b.target)):
        target = bind.target.rstrip("/")
        if inside == target or inside.startswith(target + "/"):
            rel = inside[len(target) :].lstrip("/")
            return str(bind.source / rel) if rel else str(bind.source)
    return None


def started_too_early(container: Container, wanted: Sequence[Target]) -> tuple[str, str] | None:
    """A process older than the newest content it should run may hold the old modules."""
    if not wanted or container.started_at is None:
        return None
    newest = max(wanted, key=lambda t: t.changed_ns)
    started_ns = int(container.started_at.timestamp() * 1e9)
    if started_ns + CLOCK_SLACK_NS < newest.changed_ns:
        when = datetime.fromtimestamp(newest.changed_ns / 1e9, tz=timezone.utc)
        return (
            newest.host,
            f"changed at {when:%H:%M:%S} after the container started "
            f"({container.started_at:%H:%M:%S}): the process may run the old module",
        )
    return None


def verify_service(service: str, container: Container, targets: Sequence[Target]) -> Verdict:
    start = time.monotonic()
    pending = tuple(t.host for t in targets if changed_since_scan(t))
    wanted = [t for t in targets if t.host not in pending]
    request = json.dumps({"files": [[t.container, t.digest] for t in wanted]})
    script = PROBE.read_text(encoding="utf-8")
    result = None
    for python in ("python3", "python"):
        result = docker.run(
            ["docker", "exec", "-i", container.id, python, "-c", script],
            input=request,
            timeout=60,
        )
        if result.returncode == 0 or "executable file not found" not in result.stderr:
            break
    assert result is not None
    took = time.monotonic() - start
    if result.returncode != 0:
        why = docker.first_error_line(result.stderr)
        return Verdict(
            service,
            SKIPPED,
            seconds=took,
            detail=f"cannot run Python in it: {why}",
            pending=pending,
        )
    data = json.loads(result.stdout)
    problems = [(p, r) for p, r in data["problems"]]
    late = started_too_early(container, wanted)
    if late:
        problems.append(late)
    state = STALE if problems else FRESH
    return Verdict(
        service,
        state,
        tuple(problems),
        int(data["checked"]),
        int(data["pycs"]),
        took,
        f"Python {data['python']}",
        pending,
    )


@dataclass
class Verification:
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def stale(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.state == STALE]


def verify(
    services: Mapping[str, Service],
    python: Sequence[str],
    files: Mapping[str, ServiceFiles],
    entries: Mapping[str, Entry],
    containers: Mapping[str, Sequence[Container]],
) -> Verification:
    """Every running Python service, in parallel: one exec each."""
    jobs: list[tuple[str, Container, list[Target]]] = []
    skipped: list[Verdict] = []
    for name in sorted(python):
        running = [c for c in containers.get(name, []) if c.running]
        wanted = targets(services[name], files[name], entries)
        if not running:
            skipped.append(Verdict(name, SKIPPED, detail="not running"))
        elif not wanted:
            skipped.append(Verdict(name, SKIPPED, detail="no project source found in it"))
        else:
            jobs.extend((name, c, wanted) for c in running)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(jobs)))) as pool:
        verdicts = list(pool.map(lambda j: verify_service(*j), jobs))
    return Verification(sorted(verdicts + skipped, key=lambda v: v.service))
