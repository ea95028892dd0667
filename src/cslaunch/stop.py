"""How to stop a service for a restart without the 10 s stall.

A PID 1 that does not catch SIGTERM never reacts to it (the kernel drops default-action
signals for PID 1 in a namespace), so Docker waits the whole stop grace and then kills it.
For such a service waiting can only time out: kill it at once. A process that catches
SIGTERM (an RQ worker finishing its job, a server draining) gets it and its grace period.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cslaunch import docker
from cslaunch.config import ServiceConfig
from cslaunch.containers import Container
from cslaunch.errors import CslaunchError
from cslaunch.model import Service

SIGTERM = 15
DEFAULT_GRACE = 10.0  # Docker's own default stop timeout


@dataclass(frozen=True)
class StopMethod:
    kind: str  # "graceful" or "kill"
    grace: float  # seconds between SIGTERM and SIGKILL (0 for kill)
    reason: str


def decide(service: Service, config: ServiceConfig, catches_sigterm: bool | None) -> StopMethod:
    grace = config.grace if config.grace is not None else service.stop_grace
    if grace is None:
        grace = DEFAULT_GRACE
    if config.stop == "kill":
        return StopMethod("kill", 0.0, "configured: stop = kill")
    if config.stop == "graceful":
        return StopMethod("graceful", grace, "configured: stop = graceful")
    if service.init:
        return StopMethod("graceful", grace, "init: true forwards SIGTERM")
    if catches_sigterm is None:
        return StopMethod("graceful", grace, "PID 1 signal handling unknown")
    if catches_sigterm:
        return StopMethod("graceful", grace, "PID 1 handles SIGTERM")
    return StopMethod("kill", 0.0, "PID 1 ignores SIGTERM (would stall the full grace)")


def sigterm_caught(status_text: str) -> bool | None:
    """Whether a /proc/PID/status text shows a SIGTERM handler (the SigCgt mask)."""
    for line in status_text.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split(":", 1)[1].strip(), 16)
            return bool(mask & (1 << (SIGTERM - 1)))
    return None


def probe_sigterm(container: Container) -> bool | None:
    """Whether PID 1 catches SIGTERM; None when its status cannot be read."""
    text = pid1_status(container)
    return sigterm_caught(text) if text else None


def pid1_status(container: Container) -> str | None:
    """PID 1's /proc status: from the host's /proc when the engine is local (cheap), else
    from inside the container. None when neither works (no cat in the image, say)."""
    text = _host_proc_status(container)
    if text is None:
        try:
            result = docker.exec_in(container.id, ["cat", "/proc/1/status"], timeout=10)
        except CslaunchError:
            return None
        text = result.stdout if result.returncode == 0 else None
    return text


def _host_proc_status(container: Container) -> str | None:
    if container.pid <= 0:
        return None
    proc = Path("/proc") / str(container.pid)
    try:
        # With a VM-backed engine (Docker Desktop) the pid is the VM's, and a host process of
        # that pid is someone else: trust it only if its cgroup names this container.
        if container.id not in (proc / "cgroup").read_text():
            return None
        return (proc / "status").read_text()
    except OSError:
        return None
