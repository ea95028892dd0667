"""What doctor reads and what it says: the facts gathered once (:class:`Facts`), and the
findings the checks make of them (:class:`Finding`, with its severity and its code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cslaunch.config import Config
from cslaunch.containers import Container
from cslaunch.model import Service

Severity = Literal["error", "warning", "info"]
ERROR: Severity = "error"
WARNING: Severity = "warning"
INFO: Severity = "info"

# Finding codes (stable: scripts match on them).
CODE_BAKED = "code-baked-in"
BIND_HIDDEN = "bind-hidden-by-volume"
PID1_SIGTERM = "pid1-ignores-sigterm"
PID1_SHELL = "pid1-shell"
STOP_GRACE = "stop-grace-short"
PYC_DONTWRITE = "pyc-dontwritebytecode"
PYC_PREFIX = "pyc-cache-prefix"
PYC_TIMESTAMP = "pyc-timestamp"
CLOCK_SKEW = "clock-skew"
WSL_DRIVE = "wsl-windows-drive"
DESKTOP_SHARING = "desktop-file-sharing"
REDIS_AOF_NO_REWRITE = "redis-aof-no-rewrite"
REDIS_AOF_LARGE = "redis-aof-large"
RQ_NO_HEALTHCHECK = "rq-no-healthcheck"
ANON_OVER_CODE = "anonymous-volume-over-code"
RQ_FIXED_NAME = "rq-fixed-worker-name"


@dataclass(frozen=True)
class Finding:
    """What one check found: about one service (None: the whole stack), with its fix."""

    code: str
    severity: Severity
    service: str | None
    message: str
    fix: str


@dataclass(frozen=True)
class Mount:
    """A volume or tmpfs a service's container has (or its Compose model declares)."""

    type: str  # "volume" or "tmpfs"
    target: str
    name: str = ""  # the volume's name; "" for an anonymous one (or unknown)
    declared: bool = True  # in the Compose model; False: only on the container (image VOLUME,
    # or an anonymous volume Compose carried over from an older container: compose#9450)


@dataclass(frozen=True)
class Pid1:
    """What runs as PID 1 in a service's container, from /proc/1/status."""

    name: str | None  # the Name: line (comm), e.g. python3, sh, docker-init
    catches_sigterm: bool | None  # its stop signal (SIGTERM unless stop_signal); None: unknown


@dataclass(frozen=True)
class ClockSample:
    """A container's clock read between two readings of the host's."""

    service: str
    host_before: float
    container: float
    host_after: float
    resolution: float = 0.0  # 1.0 when the container could only print whole seconds

    @property
    def skew(self) -> float:
        """Container minus host, seconds (positive: the container is ahead)."""
        return self.container - (self.host_before + self.host_after) / 2

    @property
    def uncertainty(self) -> float:
        return (self.host_after - self.host_before) / 2 + self.resolution


@dataclass(frozen=True)
class RedisFacts:
    port: int
    config: Mapping[str, str]  # CONFIG GET * (live), or the --flags of its command (static)
    aof_size: int | None = None  # bytes, from INFO persistence; None: unknown or AOF off
    live: bool = False  # read from the running server (else from the Compose model)


@dataclass(frozen=True)
class SourceInfo:
    """A COPY source as the build context holds it."""

    kind: str  # "file", "dir" or "missing"
    code: bool  # a code file, or a directory that holds code files
    code_dirs: tuple[str, ...] = ()  # of a directory: its subdirectories that hold code


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at, gathered once."""

    project: str
    root: Path
    services: Mapping[str, Service]
    python: frozenset[str] = frozenset()  # services that run Python
    config: Config = field(default_factory=Config)
    containers: Mapping[str, list[Container]] = field(default_factory=dict)
    dockerfiles: Mapping[str, str] = field(default_factory=dict)  # service -> Dockerfile text
    watch_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # develop.watch
    volumes: Mapping[str, tuple[Mount, ...]] = field(default_factory=dict)
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # model + container env
    pid1: Mapping[str, Pid1] = field(default_factory=dict)
    clock: ClockSample | None = None
    docker_os: str | None = None  # `docker info` OperatingSystem
    wsl: bool = False  # cslaunch runs under WSL
    redis: Mapping[str, RedisFacts] = field(default_factory=dict)
    # Host paths a volume lies over, and whether they hold anything (so it hides something).
    host_paths: Mapping[str, bool] = field(default_factory=dict)
    # service -> COPY source (as paths.norm writes it, "." for the context) -> what it is on disk
    sources: Mapping[str, Mapping[str, SourceInfo]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be checked, and why


def number(value: str | None) -> float | None:
    """A setting's text as a number; None when it is missing or not one."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
