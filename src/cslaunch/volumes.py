"""Anonymous volumes over code an image bakes in (Compose issue 9450).

`volumes: ["/app/src"]` beside `COPY src /app/src`, often left from a dev setup: Compose
re-attaches the previous container's anonymous volume when it recreates, so the volume's old
copy hides the new image's files after every rebuild. `up --renew-anon-volumes` gives the new
container fresh ones, but it renews every anonymous volume of the service, so cslaunch only
asks for it where each of them holds nothing but what the image's COPY/ADD put there (and
bytecode): never a database directory or uploads.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cslaunch import docker
from cslaunch.containers import Container
from cslaunch.context import image_path, under
from cslaunch.errors import CslaunchError
from cslaunch.index import Entry
from cslaunch.model import Service
from cslaunch.track import ServiceFiles


@dataclass(frozen=True)
class Hidden:
    """A service whose anonymous volume hides code its image bakes in."""

    service: str
    target: str  # the volume over the stale code
    renew: bool  # every anonymous volume of the service holds only what the image provides
    why: str = ""  # when not: the first file the image never wrote, and where

    def command(self) -> str:
        return f"docker compose up -d --renew-anon-volumes --no-deps {self.service}"


def hiding(service: Service, stale_paths: Iterable[str]) -> str | None:
    """The anonymous volume a stale container path lies in, if any."""
    for path in stale_paths:
        for target in service.anonymous_volumes:
            if under(path, target):
                return target
    return None


def provided(files: ServiceFiles, entries: Mapping[str, Entry]) -> set[str]:
    """Container paths the image's COPY/ADD fill from the build context (pure)."""
    if not files.context or files.copies is None:
        return set()
    prefix = files.context.rstrip("/\\") + os.sep
    rules = list(files.copies)
    found = set()
    for path in entries:
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :].replace(os.sep, "/")
        if not files.copied(rel) or files.ignore.ignored(rel):
            continue
        inside = image_path(rules, rel)
        if inside is not None:
            found.add(inside)
    return found


def foreign(listed: Iterable[str], image: set[str]) -> str | None:
    """The first listed file the image does not provide; bytecode does not count (Python
    writes it at run time, and it is stale code anyway)."""
    for path in sorted(listed):
        if path.endswith((".pyc", ".pyo")) or "/__pycache__/" in path:
            continue
        if path not in image:
            return path
    return None


def listing(container: Container, target: str) -> list[str] | None:
    """Every file under `target` in the container, or None when it cannot be listed."""
    try:
        result = docker.exec_in(container.id, ["find", target, "-type", "f"], timeout=60)
    except CslaunchError:
        return None
    if result.returncode != 0:
        return None
    return [posixpath.normpath(line) for line in result.stdout.splitlines() if line]


def judge(
    service: Service,
    container: Container | None,
    target: str,
    image: set[str],
) -> Hidden:
    """Whether the service's anonymous volumes may be renewed: each must hold nothing the
    image did not write. When in doubt (no container, no `find`), not."""
    if container is None:
        return Hidden(service.name, target, False, "no running container to look into")
    for volume in service.anonymous_volumes:
        files = listing(container, volume)
        if files is None:
            return Hidden(service.name, target, False, f"{volume} could not be listed")
        extra = foreign(files, image)
        if extra is not None:
            return Hidden(
                service.name,
                target,
                False,
                f"the anonymous volume at {volume} holds {extra}, which the image never wrote",
            )
    return Hidden(service.name, target, True)


def find_hidden(
    services: Mapping[str, Service],
    stale: Mapping[str, Sequence[str]],
    files: Mapping[str, ServiceFiles],
    entries: Mapping[str, Entry],
    containers: Mapping[str, Sequence[Container]],
) -> list[Hidden]:
    """For each stale service (its stale container paths), an anonymous volume over them."""
    found = []
    for name, paths in sorted(stale.items()):
        service = services[name]
        target = hiding(service, paths)
        if target is None or name not in files:
            continue
        running = [c for c in containers.get(name, []) if c.running]
        image = provided(files[name], entries)
        found.append(judge(service, running[0] if running else None, target, image))
    return found
