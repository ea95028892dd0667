"""The processes inside a container: which of them handle a signal, and delivering it there.

Real Compose files wrap their processes (`sh -c "python wait.py && python worker.py"`): PID 1
is then a shell that ignores SIGTERM while the worker under it handles it. Docker signals
PID 1 only, so a plain `docker stop` waits out the grace and kills the worker mid-job. Seeing
the tree lets cslaunch deliver the stop signal to the process that handles it, as an init
(tini, `init: true`) would.

The tree comes from the host's /proc when the engine runs on this machine (no exec, a few
ms), else from the container's own /proc through one exec of its shell.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cslaunch import docker
from cslaunch.containers import Container
from cslaunch.errors import CslaunchError

# Linux signal numbers: the container's kernel is Linux whatever the host is, and Windows'
# `signal` module knows only a handful of names.
SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ABRT": 6,
    "KILL": 9,
    "USR1": 10,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
    "CHLD": 17,
    "CONT": 18,
    "STOP": 19,
    "TSTP": 20,
    "WINCH": 28,
    "PWR": 30,
}
SIGTERM = SIGNALS["TERM"]
SIGHUP = SIGNALS["HUP"]

# One exec that prints every process's status, each after a line "@PID". Only POSIX sh: the
# images that wrap their process in a shell have one.
_LIST = (
    'for d in /proc/[0-9]*; do [ -r "$d/status" ] || continue; '
    'echo "@${d#/proc/}"; cat "$d/status" 2>/dev/null; done'
)


def signal_number(name: str | int | None) -> int:
    """Compose's stop_signal ("SIGINT", "INT", "2") as a number; SIGTERM when unset or
    unknown (what Docker falls back to)."""
    if name is None or name == "":
        return SIGTERM
    text = str(name).strip().upper()
    if text.isdigit():
        return int(text)
    return SIGNALS.get(text.removeprefix("SIG"), SIGTERM)


def signal_name(number: int) -> str:
    for name, value in SIGNALS.items():
        if value == number:
            return f"SIG{name}"
    return str(number)


@dataclass(frozen=True)
class Process:
    pid: int  # in the container's pid namespace
    ppid: int  # likewise; 0 for PID 1
    name: str
    caught: int  # the SigCgt mask: signals with a handler
    host_pid: int | None = None  # the same process seen from the host, when it can be

    def catches(self, signum: int) -> bool:
        return bool(self.caught & (1 << (signum - 1)))


def parse_status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def caught_mask(fields: dict[str, str]) -> int | None:
    try:
        return int(fields["SigCgt"], 16)
    except (KeyError, ValueError):
        return None


def _process(fields: dict[str, str], *, pid: int, ppid: int, host_pid: int | None) -> Process:
    return Process(pid, ppid, fields.get("Name", ""), caught_mask(fields) or 0, host_pid)


def processes(container: Container) -> list[Process] | None:
    """Every process of the container, PID 1 first; None when neither the host's /proc nor
    an exec can show them (an image without a shell whose PID 1 the host cannot see)."""
    return _from_host(container) or _from_exec(container)


def _from_host(container: Container) -> list[Process] | None:
    if container.pid <= 0:
        return None
    proc = Path("/proc")
    try:
        # With a VM-backed engine (Docker Desktop) the pid is the VM's, and a host process of
        # that pid is someone else: trust it only if its cgroup names this container.
        if container.id not in (proc / str(container.pid) / "cgroup").read_text():
            return None
    except OSError:
        return None
    if not (proc / str(container.pid) / "task" / str(container.pid) / "children").exists():
        return None  # a kernel without CONFIG_PROC_CHILDREN: the container's /proc can tell
    found: list[Process] = []
    todo = [(container.pid, 0)]
    while todo:
        host_pid, parent = todo.pop()
        try:
            fields = parse_status((proc / str(host_pid) / "status").read_text())
            # Each thread lists the children it forked.
            children = [
                int(c)
                for task in (proc / str(host_pid) / "task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except (OSError, ValueError):
            continue  # exited meanwhile
        # NSpid lists the pid in each namespace, the container's last.
        pid = int((fields.get("NSpid") or str(host_pid)).split()[-1])
        found.append(_process(fields, pid=pid, ppid=parent, host_pid=host_pid))
        todo += [(child, pid) for child in children]
    return sorted(found, key=lambda p: p.pid) or None


def _from_exec(container: Container) -> list[Process] | None:
    try:
        result = docker.exec_in(container.id, ["sh", "-c", _LIST], timeout=10)
        if result.returncode != 0 or "@1" not in result.stdout:
            # No shell in the image: PID 1 alone, which is all there is to decide on.
            result = docker.exec_in(container.id, ["cat", "/proc/1/status"], timeout=10)
            if result.returncode != 0:
                return None
            result.stdout = "@1\n" + result.stdout
    except CslaunchError:
        return None
    return parse_listing(result.stdout) or None


def parse_listing(text: str) -> list[Process]:
    """The output of _LIST: blocks of /proc/PID/status, each after "@PID"."""
    blocks: list[tuple[int, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("@") and line[1:].isdigit():
            blocks.append((int(line[1:]), []))
        elif blocks:
            blocks[-1][1].append(line)
    found = []
    for pid, lines in blocks:
        fields = parse_status("\n".join(lines))
        if "Name" not in fields:
            continue  # exited between the listing and its read
        ppid = 0 if pid == 1 else int(fields.get("PPid") or 0)
        found.append(_process(fields, pid=pid, ppid=ppid, host_pid=None))
    return sorted(found, key=lambda p: p.pid)


def pid1(found: Sequence[Process]) -> Process | None:
    """The container's first process: PID 1 in its namespace (else, read from a host
    without one, the root of the tree)."""
    return next((p for p in found if p.pid == 1), None) or next(
        (p for p in found if p.ppid == 0), None
    )


def handlers(found: Sequence[Process], signum: int) -> list[Process]:
    """The outermost processes below PID 1 that handle `signum`: what an init forwarding the
    signal would reach. Below a handler nothing is taken: it tells its own children (a
    worker its work horse, a master its workers)."""
    root = pid1(found)
    if root is None:
        return []
    children: dict[int, list[Process]] = {}
    for p in found:
        if p is not root:
            children.setdefault(p.ppid, []).append(p)
    taken = []
    todo = list(children.get(root.pid, []))
    while todo:
        p = todo.pop(0)
        if p.catches(signum):
            taken.append(p)
        else:
            todo += children.get(p.pid, [])
    return taken


def named(found: Iterable[Process], name: str) -> list[Process]:
    """Processes of this program whose parent is not the same program: the master of a
    master/worker server (nginx)."""
    found = list(found)
    by_pid = {p.pid: p for p in found}
    return [
        p for p in found if p.name == name and (p.ppid not in by_pid or by_pid[p.ppid].name != name)
    ]


def deliver(container: Container, targets: Sequence[Process], signum: int) -> None:
    """Send `signum` to these processes: from the host when it sees them and may signal
    them, else with `kill` run by the container's shell. A process gone meanwhile is fine:
    it stopped, which is what a stop signal asks."""
    rest = []
    for p in targets:
        if p.host_pid is not None and hasattr(os, "kill"):
            try:
                os.kill(p.host_pid, signum)
                continue
            except ProcessLookupError:
                continue
            except OSError:
                pass  # not ours to signal (a rootless client): the container can
        rest.append(p)
    if not rest:
        return
    pids = [str(p.pid) for p in rest]
    # A failure means the container is going away: the stop that follows settles it.
    with contextlib.suppress(CslaunchError):
        docker.exec_in(container.id, ["sh", "-c", f'kill -{signum} "$@"', "sh", *pids], timeout=10)
