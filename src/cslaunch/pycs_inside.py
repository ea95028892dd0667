"""Bytecode the host's user may not delete, removed from inside a container that mounts it.

On a Linux host a container running as root (the default) writes root-owned `__pycache__`
directories into a bind-mounted tree, and the user running cslaunch may not unlink the
pycs in them. A stale one there would survive every launch and repair (exit 8 each time).
A running container of a service that bind-mounts the directory can: the pycs are removed
there, as root, by path, after the same checks the host side makes (a regular file named
like bytecode, never a link followed).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path

from cslaunch import docker
from cslaunch.bytecode import Skipped
from cslaunch.containers import Container
from cslaunch.context import under
from cslaunch.errors import CslaunchError
from cslaunch.model import Service, Stack

PERMISSION_DENIED = "permission denied"

# Runs in the container with its own Python. What it removed is told by the host
# afterwards, not by what it prints.
_SCRIPT = """
import json, os, stat, sys
removed = []
for path in json.load(sys.stdin):
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and path.endswith((".pyc", ".pyo")):
            os.unlink(path)
            removed.append(path)
    except FileNotFoundError:
        removed.append(path)
    except OSError:
        pass
for d in sorted({os.path.dirname(p) for p in removed}, reverse=True):
    if os.path.basename(d) == "__pycache__":
        try:
            os.rmdir(d)
        except OSError:
            pass
json.dump({"removed": removed}, sys.stdout)
"""


def remove(
    skipped: Sequence[Skipped],
    stack: Stack,
    containers: Mapping[str, Sequence[Container]],
) -> list[str]:
    """Remove, through running containers, the skipped pycs the host was denied; returns
    the host paths now gone (as the host sees it afterwards: a container that mounts the
    directory otherwise than the model says removes nothing and reports nothing). One exec
    per container; the next container mounting a path is asked for what the first could
    not remove (no Python, a read-only mount)."""
    left: dict[str, list[tuple[str, str]]] = {}  # host path -> (container id, its path)
    for s in skipped:
        host = str(s.path)
        if s.reason != PERMISSION_DENIED or not host.endswith((".pyc", ".pyo")):
            continue
        left[host] = [
            (running[0].id, inside)
            for service in stack.services.values()
            for inside in [container_path(service, host)]
            for running in [[c for c in containers.get(service.name, ()) if c.running]]
            if inside is not None and running
        ]
    gone: list[str] = []
    while any(left.values()):
        asked: dict[str, dict[str, str]] = {}  # container id -> its path -> host path
        for host, candidates in left.items():
            if candidates:
                container_id, inside = candidates.pop(0)
                asked.setdefault(container_id, {})[inside] = host
        for container_id, paths in asked.items():
            _ask(container_id, sorted(paths))
            for host in paths.values():
                if not os.path.lexists(host):
                    gone.append(host)
                    del left[host]
    return gone


def argv(python: str) -> list[str]:
    """-I: the working directory off sys.path, so that a project's `os.py` or `json.py` is
    not run as root in the standard library's place."""
    return [python, "-I", "-S", "-c", _SCRIPT]


def _ask(container_id: str, paths: list[str]) -> None:
    """The script, as root, with the container's own Python; a failure removes nothing."""
    for python in ("python3", "python"):
        try:
            result = docker.exec_in(
                container_id,
                argv(python),
                input=json.dumps(paths),
                timeout=60,
                user="0",
            )
        except CslaunchError:
            return  # gone, stopped, timed out: the host still has the pycs, and says so
        if result.returncode == 0 or "executable file not found" not in result.stderr:
            return


def container_path(service: Service, host: str) -> str | None:
    """Where a service's containers see a host file through a bind-mounted directory; None
    where a mount deeper in the container covers that path (`.:/app` beside a volume at
    `/app/.venv`, or `./other:/app/src/shared`): the file there is another."""
    path = Path(host)
    for bind in sorted(service.binds, key=lambda b: -len(str(b.source))):
        if path == bind.source or bind.source in path.parents:
            rel = path.relative_to(bind.source).as_posix()
            inside = posixpath.join(bind.target, rel) if rel != "." else bind.target
            mounts = [*(b.target for b in service.binds), *service.volume_targets]
            deepest = max((t for t in map(posixpath.normpath, mounts) if under(inside, t)), key=len)
            return inside if deepest == posixpath.normpath(bind.target) else None
    return None
