"""`cslaunch doctor`: find the setups that make a stack run stale code or restart slowly, and
say how to fix each.

Everything is gathered once, at the edge (:func:`gather`: the Compose model, the containers,
PID 1 of each, the environment, a clock sample, `docker info`, Redis' settings), into a plain
:class:`Facts`. The checks are pure functions of those facts, one per concern, so every one of
them is tested with hand-made facts. :func:`diagnose` runs them all.

A finding's severity says what it costs:

* ``error``: the stack runs code that is not on disk (a volume hides bind-mounted code);
  `cslaunch doctor` then exits with :data:`EXIT_ERRORS`.
* ``warning``: slow restarts, lost jobs, missed edits, misleading mtimes.
* ``info``: a trade-off worth knowing (bytecode settings, code baked into an image).
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

from cslaunch import context, docker, engine_api, errors, procs, readiness, shell, stack
from cslaunch.config import Config
from cslaunch.containers import Container
from cslaunch.errors import CslaunchError
from cslaunch.jobs import parse_worker_command
from cslaunch.model import Bind, Service
from cslaunch.project import Project
from cslaunch.stop import DEFAULT_GRACE
from cslaunch.ui import UI

SCHEMA_VERSION = 1
EXIT_ERRORS = errors.DOCTOR  # `cslaunch doctor` found at least one error-level finding

Severity = Literal["error", "warning", "info"]
ERROR: Severity = "error"
WARNING: Severity = "warning"
INFO: Severity = "info"
_RANK = {ERROR: 0, WARNING: 1, INFO: 2}

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
RQ_WORKER_TTL = 420.0  # RQ's default worker TTL: how long a dead worker's key outlives it

RQ_JOB_TIMEOUT = 180.0  # RQ's default job timeout, seconds
GUNICORN_GRACEFUL_TIMEOUT = 30.0  # gunicorn's default --graceful-timeout
CLOCK_TOLERANCE = 1.0  # seconds between host and container clocks before it matters
AOF_LARGE = 256 * 1024 * 1024  # an AOF this big takes seconds to replay on every start

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})
# PID 1 programs that forward signals to their child (and so catch none themselves).
INITS = frozenset({"docker-init", "tini", "dumb-init", "catatonit", "s6-svscan"})
# Volumes over these directories of bind-mounted code are the usual, deliberate pattern
# (dependencies and caches built inside the container), not code hidden by mistake.
DEPENDENCY_DIRS = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".cache",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".next",
        ".nuxt",
    }
)


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    service: str | None
    message: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "service": self.service,
            "message": self.message,
            "fix": self.fix,
        }


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
    # service -> COPY source (as _norm writes it, "." for the context) -> what it is on disk
    sources: Mapping[str, Mapping[str, SourceInfo]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be checked, and why


# --- the checks (pure) ----------------------------------------------------------------------


def check_anonymous_over_code(facts: Facts) -> Iterable[Finding]:
    """An anonymous volume over code the image copies in: Compose re-attaches the previous
    container's anonymous volumes when it recreates one (compose#9450), so after a rebuild
    the volume's old copy hides the new image's code."""
    for name, service in sorted(facts.services.items()):
        text = facts.dockerfiles.get(name)
        if text is None or not service.anonymous_volumes:
            continue
        for target in service.anonymous_volumes:
            over = [
                c
                for c in dockerfile_copies(text)
                if c.dest and any(_is_code(s) for s in c.sources) and _overlaps(c.dest, target)
            ]
            if not over:
                continue
            what = ", ".join(f"{' '.join(c.sources)} -> {c.dest}" for c in over)
            yield Finding(
                ANON_OVER_CODE,
                WARNING,
                name,
                f"service {name}: the anonymous volume at {target} lies over code its image "
                f"copies there ({what}); Compose gives each new container the old one's "
                "anonymous volumes, so after a rebuild the old copy in the volume hides the new "
                "code. cslaunch renews the volume (`up --renew-anon-volumes`) when it holds "
                "only what the image put there, and otherwise fails with exit 8",
                f"remove `{target}` from the volumes of service {name}; to run the code on "
                f'disk instead, bind-mount it there (`volumes: ["./src:{target}"]`)',
            )


def check_baked_code(facts: Facts) -> Iterable[Finding]:
    """Code COPYed into an image with no bind mount (or watch sync) over it: every edit needs
    a rebuild and a recreate to be seen. The mount suggested is one that is safe: never over
    `/` or a system directory, never over what the image builds there (a virtualenv,
    node_modules, an editable install's metadata); a narrower one where that is possible,
    and none where it is not."""
    for name, service in sorted(facts.services.items()):
        text = facts.dockerfiles.get(name)
        if service.build_context is None or text is None:
            continue
        sources = facts.sources.get(name, {})
        live = [b.target for b in service.binds] + list(facts.watch_targets.get(name, ()))
        baked = [
            c
            for c in dockerfile_copies(text, service.target)
            if c.dest
            and any(_is_code(s, sources) for s in c.sources)
            and not any(_overlaps(c.dest, t) for t in live)
        ]
        if not baked:
            continue
        what = ", ".join(f"{' '.join(c.sources)} -> {c.dest}" for c in baked)
        built = image_builds(text, service.target)
        mounts, unsafe = _safe_mounts(service.build_context, baked, sources, built)
        shown = ", ".join(f'"{_show(host, facts.root)}:{target}"' for host, target in mounts)
        mount = f"`volumes: [{shown}]`"
        consumed = all(c.consumed for c in baked)
        severity = WARNING if name in facts.python and not consumed else INFO
        message = (
            f"service {name}: its image bakes in code with no bind mount over it ({what}): "
            "every change needs an image rebuild and a new container to be seen"
        )
        if not mounts:
            fix = (
                f"no bind mount is safe here: {unsafe}; keep rebuilding (cslaunch rebuilds "
                "when these files change), or copy the code to its own directory in the image "
                "and mount that"
            )
        elif consumed:
            message += "; a later RUN step builds from it, so a rebuild is expected there"
            fix = (
                "nothing to do if the image must be built from this code: cslaunch rebuilds "
                f"when these files change; to skip rebuilds, do that build step at start-up and "
                f"add {mount} to service {name}"
            )
        else:
            fix = (
                f"bind-mount the code over it: add {mount} to service {name} (edits then need "
                "only a restart, which cslaunch does, not a rebuild)"
            )
            if unsafe:
                fix += f"; not the whole copy: {unsafe}"
        yield Finding(CODE_BAKED, severity, name, message, fix)


# Directories of the system: a bind mount over one hides what the image needs to run.
SYSTEM_DIRS = frozenset(
    {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root"}
    | {"/run", "/sbin", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local"}
    | {"/usr/local/bin", "/usr/local/lib", "/usr/sbin", "/usr/share", "/var", "/var/lib"}
)


def _safe_mounts(
    context: Path, baked: list[Copy], sources: Mapping[str, SourceInfo], built: list[str]
) -> tuple[list[tuple[Path, str]], str]:
    """The bind mounts that would show the baked code, none over a system directory or over
    what the image built there; and why the obvious one is not among them ("" if it is)."""
    candidates = sorted(
        ((s, c) for c in baked for s in c.sources if _is_code(s, sources)),
        key=lambda sc: not _is_dir_source(sc[0], sources),  # a directory of code first
    )
    source, copy = candidates[0]
    target = copy.dest
    if not _is_dir_source(source, sources) and copy.dest_is_dir:
        target = posixpath.join(copy.dest, PurePath(_norm(source)).name)
    problem = _mount_problem(target, built)
    if not problem:
        return [(context / _norm(source), target)], ""
    # The copy holds more than code: its subdirectories of code may be mounted one by one.
    info = sources.get(_norm(source) or ".")
    narrower = [
        (context / _norm(source) / sub, posixpath.join(target, sub))
        for sub in (info.code_dirs if info and _is_dir_source(source, sources) else ())
    ]
    safe = [(host, t) for host, t in narrower if not _mount_problem(t, built)]
    return safe, f"a mount at {target} {problem}"


def _mount_problem(target: str, built: list[str]) -> str:
    """Why a bind mount at `target` would break the container ("" when it would not)."""
    target = posixpath.normpath(target)
    if target in SYSTEM_DIRS:
        return "would lie over a system directory of the image"
    hidden = [b for b in built if b == target or _is_under(b, target)]
    if hidden:
        return f"would hide {', '.join(sorted(hidden))}, which the image builds there"
    return ""


def check_hidden_binds(facts: Facts) -> Iterable[Finding]:
    """A volume on the path of bind-mounted code, or inside it, shows the volume's (old)
    copy instead of the host's files. A volume on a *parent* path hides nothing: Docker mounts
    the deeper path last, so the bind lies on top of it."""
    for name, service in sorted(facts.services.items()):
        for vol in _volumes(facts, name, service):
            target = posixpath.normpath(vol.target)
            covering = [
                b
                for b in service.binds
                if target == posixpath.normpath(b.target)
                or _is_under(target, posixpath.normpath(b.target))
            ]
            if not covering:
                continue
            # The deepest bind over the volume is the one whose files it hides.
            bind = max(covering, key=lambda b: len(posixpath.normpath(b.target)))
            rel = posixpath.relpath(target, posixpath.normpath(bind.target))
            hidden = bind.source if rel == "." else bind.source / rel
            if rel != "." and PurePath(target).name in DEPENDENCY_DIRS:
                continue
            if not facts.host_paths.get(str(hidden), True):
                continue  # nothing there on the host: the volume holds the container's own
            yield _hidden_finding(facts, name, bind, vol, hidden)


def _hidden_finding(facts: Facts, name: str, bind: Bind, vol: Mount, hidden: Path) -> Finding:
    kind = "tmpfs" if vol.type == "tmpfs" else ("volume " + vol.name if vol.name else "")
    kind = kind or "anonymous volume"
    spec = f"{_show(bind.source, facts.root)}:{bind.target}"
    message = (
        f"service {name}: the {kind} at {vol.target} hides {_show(hidden, facts.root)} of the "
        f"bind mount {spec}: the container sees the volume's copy, not your edits"
    )
    if vol.declared:
        message += (
            " (Compose keeps anonymous volumes when it recreates a container, so that copy "
            "stays old across rebuilds: compose#9450)"
        )
        fix = f"remove the volume `{vol.target}` from service {name} (or mount it elsewhere)"
    else:
        message += (
            " (not in the Compose file: the image declares it with VOLUME, or Compose carried "
            "it over from an older container: compose#9450)"
        )
        fix = f"remove `VOLUME {vol.target}` from the image's Dockerfile, if it is there"
    fix += f", then `docker compose up -d --renew-anon-volumes {name}` to drop the old copy"
    return Finding(BIND_HIDDEN, ERROR, name, message, fix)


def _volumes(facts: Facts, name: str, service: Service) -> list[Mount]:
    found = {posixpath.normpath(m.target): m for m in facts.volumes.get(name, ())}
    for target in service.volume_targets:
        found.setdefault(posixpath.normpath(target), Mount("volume", target))
    return [found[t] for t in sorted(found)]


def check_pid1(facts: Facts) -> Iterable[Finding]:
    """PID 1 that never reacts to SIGTERM: every stop waits the whole stop grace, then kills.

    A shell as PID 1 (`sh -c "a; b"`) passes no signal to the program it started. `init: true`
    ends the stall but not that: the init signals the shell, the shell dies, and the program
    is killed with the container without ever seeing SIGTERM (measured on this engine), which
    costs a worker its job. Only `exec` (or an exec-form command) makes the program get it.
    """
    for name, service in sorted(facts.services.items()):
        pid1 = facts.pid1.get(name)
        wrapper = _shell_wrapper(service)
        last = shell.last_command(wrapper.script) if wrapper else None
        execs = last is not None and last.execs
        program = _program(last.words[0]) if last and last.words else "the program"
        if last is not None and last.exec_at is None and not execs:
            program = "the program it starts"  # a builtin or keyword is no program
        kind = _worker_kind(service)
        grace = _grace(service)
        fix_exec = _exec_fix(name, wrapper, last, program)
        if service.init or (pid1 is not None and pid1.name in INITS):
            if wrapper is not None and not execs and kind is not None:
                yield Finding(
                    PID1_SHELL,
                    WARNING,
                    name,
                    f"service {name}: its {kind[0]} ({program}) runs under `sh -c`: with "
                    "`init: true` the init signals the shell, which exits without passing "
                    f"SIGTERM on, so {program} is killed with the container and never shuts down "
                    "cleanly (a running job is lost)",
                    fix_exec,
                )
            continue
        static = wrapper is not None and not execs  # the stack is down: as the model says
        is_shell = pid1.name in SHELLS if pid1 is not None and pid1.name else static
        if is_shell:
            message = (
                f"service {name}: a shell is PID 1 (`sh -c ...`): it does not pass SIGTERM on to "
                f"{program}, so every stop waits the full {grace:.0f} s stop grace, then "
                f"SIGKILLs {program} without a clean shutdown"
            )
            if kind is not None:
                message += f" (the {kind[0]} cannot finish its job)"
            yield Finding(
                PID1_SHELL,
                WARNING,
                name,
                message,
                fix_exec + "; `init: true` alone only ends the stall, the program behind the "
                "shell still gets no SIGTERM",
            )
        elif pid1 is not None and pid1.catches_sigterm is False:
            sig = procs.signal_name(procs.signal_number(service.stop_signal))
            yield Finding(
                PID1_SIGTERM,
                WARNING,
                name,
                f"service {name}: PID 1 ({pid1.name or 'unknown'}) does not handle {sig}, "
                f"which the kernel then drops: every `docker compose stop/restart` waits the full "
                f"{grace:.0f} s stop grace, then SIGKILLs",
                f"add `init: true` to service {name} (its init forwards SIGTERM and the program "
                "exits at once), or handle SIGTERM in the program",
            )


def check_fixed_worker_names(facts: Facts) -> Iterable[Finding]:
    """A worker with a fixed name (`rq worker --name w1`) that dies without its warm shutdown
    leaves a registration that stops its successor from starting, until RQ's TTL runs out."""
    for name, service in sorted(facts.services.items()):
        parsed = parse_worker_command(service.words)
        fixed = parsed[1].get("name") if parsed else None
        if not fixed:
            continue
        grace = _grace(service)
        short = grace < RQ_JOB_TIMEOUT
        yield Finding(
            RQ_FIXED_NAME,
            WARNING if short else INFO,
            name,
            f"service {name}: its RQ worker has the fixed name {fixed!r}. When it dies without "
            "its warm shutdown (the OOM killer, `docker compose kill`, a Docker Desktop restart"
            + (f", a stop past its {grace:.0f} s grace while a job runs" if short else "")
            + f"), its registration stays in Redis for RQ's worker TTL ({RQ_WORKER_TTL:.0f} s), "
            'and a new worker of that name refuses to start ("There exists an active worker '
            'named ..."); `docker compose up` leaves it exited. cslaunch removes such dead '
            "registrations before it starts workers",
            "drop `--name` (RQ names each worker uniquely)"
            + (
                f", or give service {name} a stop grace as long as its longest job "
                f"(`stop_grace_period: {_compose_duration(RQ_JOB_TIMEOUT)}`)"
                if short
                else ""
            ),
        )


def check_stop_grace(facts: Facts) -> Iterable[Finding]:
    """Workers and servers whose stop grace is shorter than the work they finish on SIGTERM."""
    for name, service in sorted(facts.services.items()):
        kind = _worker_kind(service)
        if kind is None:
            continue
        what, needed, why = kind
        compose_grace = _grace(service)
        configured = facts.config.service(name).grace
        short = [
            (grace, where)
            for grace, where in (
                (compose_grace, "stop grace"),
                (configured, "cslaunch `grace`"),
            )
            if grace is not None and grace < needed
        ]
        if not short:
            continue
        grace, where = min(short)
        default = (
            " (Docker's default)" if service.stop_grace is None and where == "stop grace" else ""
        )
        consequence = (
            "a stop or restart SIGKILLs a running job; RQ leaves it in the started registry "
            "until cleanup marks it abandoned, minutes later"
            if what == "RQ worker"
            else "a stop or restart SIGKILLs requests still being served"
        )
        fixes = []
        if compose_grace < needed:
            fixes.append(f"add `stop_grace_period: {_compose_duration(needed)}` to service {name}")
        if configured is not None and configured < needed:
            fixes.append(f"raise `grace` in [tool.cslaunch.services.{name}] to {needed:.0f}")
        yield Finding(
            STOP_GRACE,
            WARNING,
            name,
            f"service {name}: {what} with a {grace:.0f} s {where}{default}, but {why} is "
            f"{needed:.0f} s: {consequence}",
            " and ".join(fixes) + " (at least your longest job or request)",
        )


def check_bytecode(facts: Facts) -> Iterable[Finding]:
    """How each Python service with bind-mounted code handles bytecode, and the trade-off."""
    for name, service in sorted(facts.services.items()):
        if name not in facts.python or not service.binds:
            continue
        env = facts.env.get(name, {})
        prefix = env.get("PYTHONPYCACHEPREFIX")
        epoch = env.get("SOURCE_DATE_EPOCH")
        if env.get("PYTHONDONTWRITEBYTECODE"):
            yield Finding(
                PYC_DONTWRITE,
                INFO,
                name,
                f"service {name} sets PYTHONDONTWRITEBYTECODE: it writes no bytecode into the "
                "bind-mounted tree (no root-owned __pycache__ on the host), but compiles its "
                "modules afresh on every start, and still reads pycs already there, stale ones "
                "included",
                "keep it if start-up time is fine (cslaunch removes stale host pycs before each "
                f"launch); for faster starts unset it on service {name}, or set "
                "PYTHONPYCACHEPREFIX=/tmp/pycache with `tmpfs: [/tmp/pycache]`",
            )
        elif prefix:
            yield Finding(
                PYC_PREFIX,
                INFO,
                name,
                f"service {name} sets PYTHONPYCACHEPREFIX={prefix}: bytecode stays out of the "
                "bind-mounted tree and a new container starts clean, but a restarted one keeps "
                "its timestamp pycs, which an edit that keeps mtime and size does not invalidate, "
                "and which cslaunch cannot clean from the host",
                f"mount the prefix as tmpfs (`tmpfs: [{prefix}]` on service {name}) so every "
                "start compiles afresh, or precompile with "
                "`python -m compileall --invalidation-mode checked-hash`",
            )
        else:
            note = (
                " (SOURCE_DATE_EPOCH is set: compileall and py_compile default to checked-hash "
                "pycs, but modules the import system compiles itself still get timestamp pycs)"
                if epoch
                else ""
            )
            yield Finding(
                PYC_TIMESTAMP,
                INFO,
                name,
                f"service {name} writes timestamp pycs into the bind-mounted tree: they are "
                "trusted while the source's mtime and size match, so an edit that keeps both "
                "(cp -p, rsync -a, unzip, a same-size edit in the same second) runs old code "
                f"until the pyc goes; cslaunch removes such pycs before each launch{note}",
                "for bytecode that checks content, precompile the tree with "
                "`python -m compileall --invalidation-mode checked-hash DIR` (imports then verify "
                "a source hash and keep writing checked-hash pycs); or set PYTHONPYCACHEPREFIX "
                f"on service {name} to keep bytecode out of the tree",
            )


def check_clock(facts: Facts) -> Iterable[Finding]:
    """Host and container clocks apart: mtimes written on one side look wrong on the other."""
    sample = facts.clock
    if sample is None or abs(sample.skew) - sample.uncertainty <= CLOCK_TOLERANCE:
        return
    direction = "ahead of" if sample.skew > 0 else "behind"
    yield Finding(
        CLOCK_SKEW,
        WARNING,
        sample.service,
        f"the clock in service {sample.service}'s container is {abs(sample.skew):.1f} s "
        f"{direction} the host's: files edited on one side carry mtimes that look "
        "future or past on the other, which breaks 'newer than' checks (Compose watch's "
        "initial sync, make-style rebuilds); pycs compare mtimes for equality, so they are not "
        "affected",
        "sync the engine's clock with the host's: restart Docker Desktop (on Windows "
        "`wsl --shutdown`) after the machine slept (docker/for-win#4526), or run NTP "
        "(chrony, systemd-timesyncd) on the engine's host",
    )


_WINDOWS_DRIVE = re.compile(r"^(/mnt/[a-zA-Z]/|[a-zA-Z]:[\\/]|/run/desktop/mnt/host/[a-z]/)")


def check_file_sharing(facts: Facts) -> Iterable[Finding]:
    """File sharing that loses events or mtimes: WSL2 over a Windows drive, Docker Desktop."""
    on_windows_drive = facts.wsl or _is_desktop(facts)
    for name, service in sorted(facts.services.items()):
        for bind in service.binds:
            source = bind.source.as_posix()
            if on_windows_drive and _WINDOWS_DRIVE.match(source):
                yield Finding(
                    WSL_DRIVE,
                    WARNING,
                    name,
                    f"service {name}: the bind mount {source}:{bind.target} is on a Windows drive "
                    "shared into Linux: no file events reach Linux watchers and reloaders "
                    "(microsoft/WSL#4739) and mtimes are unreliable, so edits can go unseen",
                    "move the project into the WSL filesystem (e.g. ~/src/<project>, reachable "
                    "from Windows editors as \\\\wsl$\\...) and run cslaunch from there",
                )
                break
    if _is_desktop(facts) and any(s.binds for s in facts.services.values()):
        yield Finding(
            DESKTOP_SHARING,
            WARNING,
            None,
            "Docker Desktop shares bind-mounted files through its VM: file events can be lost "
            "and mtimes can be wrong or stale (docker/for-mac#7616, docker/for-win#2411, "
            "docker/desktop-feedback#341), so watchers and mtime checks miss edits",
            "let cslaunch decide what changed (it compares content hashes, not mtimes) rather "
            "than a file watcher; on macOS use VirtioFS file sharing; on Windows keep the code "
            "inside the WSL2 filesystem",
        )


def check_redis(facts: Facts) -> Iterable[Finding]:
    """Redis persistence without limits: an AOF that only grows, or one already huge."""
    for name, redis in sorted(facts.redis.items()):
        cfg = redis.config
        if cfg.get("appendonly") == "yes" and _number(cfg.get("auto-aof-rewrite-percentage")) == 0:
            yield Finding(
                REDIS_AOF_NO_REWRITE,
                WARNING,
                name,
                f"service {name}: Redis appends every write to its AOF (appendonly yes) but "
                "never rewrites it (auto-aof-rewrite-percentage 0): the file only grows, and "
                "every start replays all of it while Redis answers LOADING",
                f"in service {name}'s command set `--auto-aof-rewrite-percentage 100 "
                "--auto-aof-rewrite-min-size 64mb` (Redis' defaults), or `--appendonly no` if "
                "the queue need not survive a restart",
            )
        if redis.aof_size is not None and redis.aof_size > AOF_LARGE:
            yield Finding(
                REDIS_AOF_LARGE,
                WARNING,
                name,
                f"service {name}: Redis' AOF is {redis.aof_size / 1024**2:.0f} MB: every restart "
                "replays it before Redis answers (LOADING), delaying the whole stack",
                f"compact it: `docker compose exec {name} redis-cli -p {redis.port} "
                "BGREWRITEAOF`; keep it small with `--auto-aof-rewrite-min-size`, or empty "
                "old RQ registries",
            )


def check_rq_health(facts: Facts) -> Iterable[Finding]:
    """RQ workers nobody can tell are working: no healthcheck, only 'the container runs'."""
    for name, service in sorted(facts.services.items()):
        kind = _worker_kind(service)
        if kind is None or kind[0] != "RQ worker" or service.healthcheck is not None:
            continue
        if any(c.health is not None for c in facts.containers.get(name, ())):
            continue  # the image's HEALTHCHECK
        yield Finding(
            RQ_NO_HEALTHCHECK,
            INFO,
            name,
            f"service {name}: RQ worker without a healthcheck: `up --wait` and cslaunch only see "
            "that its container runs, not that the worker reached Redis and registered",
            f'add a healthcheck to service {name}, e.g. `test: ["CMD-SHELL", "rq info --url '
            '$$REDIS_URL --only-workers | grep -q \\"($$(hostname) \\""]`',
        )


CHECKS: tuple[Callable[[Facts], Iterable[Finding]], ...] = (
    check_hidden_binds,
    check_pid1,
    check_stop_grace,
    check_clock,
    check_file_sharing,
    check_redis,
    check_baked_code,
    check_anonymous_over_code,
    check_fixed_worker_names,
    check_rq_health,
    check_bytecode,
)


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, errors first, then by service and code."""
    findings = [f for check in CHECKS for f in check(facts)]
    return sorted(findings, key=lambda f: (_RANK[f.severity], f.service or "", f.code))


def exit_code(findings: Iterable[Finding]) -> int:
    """Non-zero (EXIT_ERRORS) when any finding is an error; warnings and info pass."""
    return EXIT_ERRORS if any(f.severity == ERROR for f in findings) else 0


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    found: dict[str, int] = {ERROR: 0, WARNING: 0, INFO: 0}
    for f in findings:
        found[f.severity] += 1
    return found


def to_json(
    findings: list[Finding], *, project: str | None = None, notes: Iterable[str] = ()
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "command": "doctor",
        "ok": exit_code(findings) == 0,
        "project": project,
        "counts": counts(findings),
        "findings": [f.to_json() for f in findings],
        "not_checked": list(notes),
    }


def render(
    ui: UI, findings: list[Finding], *, project: str | None = None, notes: Iterable[str] = ()
) -> None:
    colours = {ERROR: "red", WARNING: "yellow", INFO: "cyan"}
    marks = {ERROR: ui.fail_mark, WARNING: "!", INFO: "i"}
    if project:
        ui.line(ui.style(project, bold=True))
    for f in findings:
        if f.severity == INFO and ui.quiet:
            continue
        head = f"{marks[f.severity]} {f.severity}: {f.message}"
        ui.echo(ui.style(head, fg=colours[f.severity]) + ui.style(f"  [{f.code}]", dim=True))
        ui.echo(ui.style("    fix: ", fg="cyan") + f.fix)
    for note in notes:
        ui.line(ui.style(f"  not checked: {note}", dim=True))
    n = counts(findings)
    if not findings:
        ui.echo(ui.style(f"{ui.ok_mark} no problems found", fg="green", bold=True))
        return
    summary = f"{n[ERROR]} error(s), {n[WARNING]} warning(s), {n[INFO]} info"
    colour = "red" if n[ERROR] else ("yellow" if n[WARNING] else "green")
    ui.echo(ui.style(summary, fg=colour, bold=True))


# --- helpers of the checks (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """Files of the build context in the image: a COPY/ADD of the stage Compose builds (or
    of a stage it starts from), or one it takes `--from` an earlier stage that copied them."""

    sources: tuple[str, ...]  # context-relative, as the Dockerfile writes them
    dest: str  # absolute path in the image; "" when it holds a variable
    dest_is_dir: bool  # the destination is a directory (ends in /, or several sources)
    consumed: bool  # a later RUN names one of the sources: the build makes something of it


def dockerfile_copies(text: str, target: str | None = None) -> list[Copy]:
    """The files of the build context the image Compose builds holds (the `target` stage,
    else the last), with destinations resolved against WORKDIR: what that stage and the
    stages it starts FROM copy from the context, and what it copies `--from` an earlier
    stage that took them from the context."""
    all_stages = context.stages(text)
    stage = context.built_stage(all_stages, target)
    return _stage_copies(all_stages, stage, frozenset()) if stage else []


def _stage_copies(
    all_stages: list[context.Stage], stage: context.Stage, seen: frozenset[int]
) -> list[Copy]:
    # A stage inherits the files (and the WORKDIR) of the stages it starts from.
    body = [step for s in context.lineage(all_stages, stage) for step in s.body]
    workdir = "/"
    found: list[tuple[int, Copy]] = []
    for i, (keyword, rest) in enumerate(body):
        if keyword == "WORKDIR":
            value = rest.strip().strip("\"'")
            if "$" not in value:
                workdir = posixpath.normpath(posixpath.join(workdir, value))
        elif keyword in ("COPY", "ADD"):
            args = context.arguments(rest) or rest.split()
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            if len(paths) < 2:
                continue
            sources, dest = tuple(paths[:-1]), paths[-1]
            resolved = "" if "$" in dest else posixpath.normpath(posixpath.join(workdir, dest))
            is_dir = dest.endswith("/") or dest in (".", "..") or len(sources) > 1
            source_stage = next(
                (f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None
            )
            if source_stage is not None:
                earlier = _stage_named(all_stages, source_stage, before=stage.index)
                if earlier is not None and earlier.index not in seen and resolved:
                    copied = _stage_copies(all_stages, earlier, seen | {stage.index})
                    ran = any(k == "RUN" for k, _ in earlier.body)
                    for path in sources:
                        found += [(i, c) for c in _taken(copied, path, resolved, is_dir, ran)]
                continue
            if keyword == "ADD" and any("://" in src for src in sources):
                continue
            found.append((i, Copy(sources, resolved, is_dir, False)))
    copies = []
    for i, c in found:
        later = " ".join(rest for k, rest in body[i + 1 :] if k == "RUN")
        tokens = {_norm(t) for t in re.split(r"[\s;&|=()'\"]+", later) if t}
        names = {_norm(src) for src in c.sources} - {""}
        copies.append(Copy(c.sources, c.dest, c.dest_is_dir, c.consumed or bool(names & tokens)))
    return copies


def _stage_named(all_stages: list[context.Stage], name: str, before: int) -> context.Stage | None:
    """An earlier build stage by name or number; None for an image (`--from=nginx:1`)."""
    name = name.lower()
    return next((s for s in all_stages[:before] if s.name == name or str(s.index) == name), None)


def _taken(copied: list[Copy], path: str, dest: str, dest_is_dir: bool, ran: bool) -> list[Copy]:
    """What `COPY --from=STAGE path dest` takes of the context files that stage holds: what
    lies under `path` lands under `dest`, and a part of a copied directory lands at `dest`
    itself. A stage that ran a build step made something of them: a rebuild is expected."""
    path = posixpath.normpath(posixpath.join("/", path))
    taken = []
    for c in copied:
        if not c.dest:
            continue
        for source in c.sources:
            # Where this source is in that stage: a file copied into a directory keeps its name.
            at = c.dest
            if c.dest_is_dir and not _is_dir_source(source):
                at = posixpath.join(c.dest, PurePath(_norm(source)).name)
            consumed = c.consumed or ran
            if at == path or _is_under(at, path):
                rel = posixpath.relpath(at, path)
                landed = dest if rel == "." else posixpath.join(dest, rel)
                taken.append(Copy((source,), landed, _is_dir_source(source), consumed))
            elif _is_under(path, at) and _is_dir_source(source):
                part = posixpath.join(_norm(source) or ".", posixpath.relpath(path, at))
                taken.append(Copy((posixpath.normpath(part),), dest, dest_is_dir, consumed))
    return taken


_VENV = re.compile(
    r"(?:\bpython[\d.]*\s+-m\s+venv|\bvirtualenv|\buv\s+venv)((?:\s+-\S+)*)(?:\s+([^\s;&|-]\S*))?"
)
# Tools that build into the working directory: (pattern, what they make there).
_IN_WORKDIR = (
    (re.compile(r"\buv\s+sync\b|\bpoetry\s+install\b|\bpipenv\s+(?:install|sync)\b"), ".venv"),
    (
        re.compile(r"\b(?:npm\s+(?:ci|install|i)|pnpm\s+(?:install|i)|yarn(?:\s+install)?)\b"),
        "node_modules",
    ),
    (re.compile(r"\bpip\d*(?:\.\d+)?\s+install\s+(?:\S+\s+)*(?:-e|--editable)\b"), "*.egg-info"),
)


def image_builds(text: str, target: str | None = None) -> list[str]:
    """Paths the image's RUN steps make that the program needs at run time: virtualenvs,
    node_modules, an editable install's metadata (`DIR/*.egg-info`); and VIRTUAL_ENV."""
    all_stages = context.stages(text)
    stage = context.built_stage(all_stages, target)
    found: list[str] = []
    workdir = "/"
    for s in context.lineage(all_stages, stage) if stage else []:
        for keyword, rest in s.body:
            if keyword == "WORKDIR" and "$" not in rest:
                workdir = posixpath.normpath(posixpath.join(workdir, rest.strip().strip("\"'")))
            elif keyword == "ENV":
                venv = re.search(r"\bVIRTUAL_ENV[= ]\s*[\"']?([^\s\"']+)", rest)
                if venv and "$" not in venv.group(1):
                    found.append(posixpath.normpath(posixpath.join(workdir, venv.group(1))))
            elif keyword == "RUN":
                for m in _VENV.finditer(rest):
                    path = m.group(2) or ".venv"
                    if "$" not in path:
                        found.append(posixpath.normpath(posixpath.join(workdir, path)))
                for pattern, made in _IN_WORKDIR:
                    if pattern.search(rest):
                        found.append(posixpath.join(workdir, made))
    return sorted(set(found))


def _norm(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return "" if path in (".", "") else path.rstrip("/")


_MANIFESTS = (
    "requirements*.txt",
    "constraints*.txt",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "uv.lock",
    "*.lock",
    "package.json",
    "package-lock.json",
    "pnpm-lock.yaml",
    "Makefile",
    "Dockerfile",
    "README*",
    "LICENSE*",
    ".dockerignore",
)
_CODE_SUFFIXES = frozenset(
    {".py", ".pyx", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".vue", ".svelte", ".html"}
    | {".css", ".scss", ".jinja", ".j2"}
)


def _is_dir_source(source: str, sources: Mapping[str, SourceInfo] | None = None) -> bool:
    info = (sources or {}).get(_norm(source) or ".")
    if info is not None and info.kind != "missing":
        return info.kind == "dir"
    return source in (".", "./") or source.endswith("/") or PurePath(source).suffix == ""


def _is_code(source: str, sources: Mapping[str, SourceInfo] | None = None) -> bool:
    """Whether a COPY source is (or likely holds) code: a code file or a directory holding
    code, as the build context has it; where it cannot be looked at, a directory or a file
    with a code suffix, not a dependency manifest or a config file."""
    info = (sources or {}).get(_norm(source) or ".")
    if info is not None and info.kind != "missing":
        return info.code
    if source in (".", "./") or source.endswith("/"):
        return True
    name = PurePath(source).name
    if any(fnmatch.fnmatch(name, pattern) for pattern in _MANIFESTS):
        return False
    suffix = PurePath(name).suffix
    return suffix in _CODE_SUFFIXES or suffix == ""  # no suffix: most likely a directory


def _is_under(path: str, parent: str) -> bool:
    return parent == "/" or path.startswith(parent.rstrip("/") + "/")


def _overlaps(a: str, b: str) -> bool:
    a, b = posixpath.normpath(a), posixpath.normpath(b)
    return a == b or _is_under(a, b) or _is_under(b, a)


def _show(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.as_posix()
    return "./" + rel.as_posix() if rel.parts else "."


def _program(word: str) -> str:
    return PurePath(word).name.lower()


def _grace(service: Service) -> float:
    return service.stop_grace if service.stop_grace is not None else DEFAULT_GRACE


@dataclass(frozen=True)
class ShellWrapper:
    """A shell string a service hands to `sh -c`, and where it stands in the model."""

    script: str
    key: str  # "command" or "entrypoint": the Compose key that holds it
    words: tuple[str, ...]  # that key's list
    index: int  # the script's place in it


def _shell_wrapper(service: Service) -> ShellWrapper | None:
    """The string a service hands to `sh -c` (entrypoint or command), or None."""
    parts = [*service.entrypoint, *service.command]
    if not parts or _program(parts[0]) not in SHELLS:
        return None
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("-") and not part.startswith("--") and "c" in part:
            if i + 1 >= len(parts):
                return None
            # `sh -c SCRIPT NAME ARGS...`: the script is the one word after -c.
            at = i + 1
            if at < len(service.entrypoint):
                return ShellWrapper(parts[at], "entrypoint", service.entrypoint, at)
            return ShellWrapper(parts[at], "command", service.command, at - len(service.entrypoint))
    return None


def _exec_fix(
    name: str, wrapper: ShellWrapper | None, last: shell.Last | None, program: str
) -> str:
    """How to make the program behind a shell wrapper get SIGTERM: the wrapper with `exec`
    put where the shell would run it, or why no such fix is safe."""
    if wrapper is None or last is None:
        return (
            f"in service {name} start the long-running program as the shell string's last "
            "command, with `exec` before it, or use an exec-form command"
        )
    if last.exec_at is None:
        return (
            f"no `exec` fix is safe in service {name}: {last.why_not}, so an `exec` there would "
            "not run or would not replace the shell; run the long-running program as the "
            "shell string's last command with `exec`, or without a shell (an exec-form "
            "command)"
        )
    words = list(wrapper.words)
    words[wrapper.index] = shell.with_exec(wrapper.script, last.exec_at)
    # Compose interpolates $: a literal one is $$ in the file (the model has it resolved).
    listed = ", ".join(json.dumps(w).replace("$", "$$") for w in words)
    return (
        f"in service {name} let the shell replace itself with {program}: "
        f"`{wrapper.key}: [{listed}]`, or use an exec-form command "
        f"({_exec_form_example(list(last.words))})"
    )


def _exec_form_example(words: list[str]) -> str:
    shown = words[:3] + (["..."] if len(words) > 3 else [])
    return "`command: [" + ", ".join(json.dumps(w).replace("$", "$$") for w in shown) + "]`"


def _worker_kind(service: Service) -> tuple[str, float, str] | None:
    """What a service runs that finishes work on SIGTERM: (kind, seconds it may need, why)."""
    words = service.words
    programs = [_program(w) for w in words]
    for i, program in enumerate(programs):
        after = programs[i + 1] if i + 1 < len(programs) else ""
        if program == "rqworker" or (program in ("rq", "rq.cli") and after == "worker"):
            return ("RQ worker", RQ_JOB_TIMEOUT, "RQ's default job timeout")
        if program == "gunicorn":
            timeout = GUNICORN_GRACEFUL_TIMEOUT
            for j, word in enumerate(words):
                value = None
                if word == "--graceful-timeout" and j + 1 < len(words):
                    value = words[j + 1]
                elif word.startswith("--graceful-timeout="):
                    value = word.split("=", 1)[1]
                number = _number(value)
                if number is not None:
                    timeout = number
            return ("gunicorn server", timeout, "gunicorn's graceful timeout")
    return None


def _compose_duration(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes and secs:
        return f"{minutes}m{secs}s"
    return f"{minutes}m" if minutes else f"{secs}s"


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _is_desktop(facts: Facts) -> bool:
    return "docker desktop" in (facts.docker_os or "").lower()


# --- gathering (the edge: docker calls, /proc, files) -------------------------------------


def gather(project: Project) -> Facts:
    """Read everything the checks need: the model and containers, then per container PID 1,
    env and mounts, a clock sample, `docker info` and Redis' settings. Reads only."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        info = pool.submit(_docker_os)
        found = stack.detect(project)
        docker_os = info.result()
    notes: list[str] = []
    raw_services: Mapping[str, Any] = found.raw.get("services") or {}
    containers = found.containers
    running = {
        name: next(c for c in cs if c.running)
        for name, cs in containers.items()
        if any(c.running for c in cs) and name in found.stack.services
    }
    if not running:
        notes.append("the stack is not running: PID 1, clock and live Redis settings")
    inspected = {d.get("Id", ""): d for d in docker.inspect([c.id for c in running.values()])}

    env: dict[str, dict[str, str]] = {}
    volumes: dict[str, tuple[Mount, ...]] = {}
    watch: dict[str, tuple[str, ...]] = {}
    dockerfiles: dict[str, str] = {}
    sources: dict[str, dict[str, SourceInfo]] = {}
    for name, service in found.stack.services.items():
        raw = raw_services.get(name) or {}
        data = inspected.get(running[name].id, {}) if name in running else {}
        env[name] = _environment(raw, data)
        volumes[name] = _mounts(raw, data)
        watch[name] = tuple(
            str(rule.get("target"))
            for rule in (raw.get("develop") or {}).get("watch") or []
            if "sync" in str(rule.get("action", "")) and rule.get("target")
        )
        text = stack.dockerfile_text(service)
        if text is not None:
            dockerfiles[name] = text
            if service.build_context is not None:
                copies = dockerfile_copies(text, service.target)
                sources[name] = _context_sources(service.build_context, copies)

    with ThreadPoolExecutor(max_workers=4) as pool:
        pid1_jobs = {
            name: pool.submit(_pid1, c, found.stack.services[name].stop_signal)
            for name, c in running.items()
            if name in found.stack.services
        }
        redis_jobs = {
            name: pool.submit(_redis, service, running.get(name))
            for name, service in found.stack.services.items()
            if readiness.is_redis(service)
        }
        clock_job = pool.submit(_clock_sample, running, found.python)
        pid1 = {name: job.result() for name, job in pid1_jobs.items()}
        redis = {name: job.result() for name, job in redis_jobs.items()}
        clock = clock_job.result()
    if running and clock is None:
        notes.append("clock: no running container could print its time")
    unknown = sorted(n for n, p in pid1.items() if p.catches_sigterm is None)
    if unknown:
        notes.append(f"PID 1 signal handling of {', '.join(unknown)}: /proc/1/status unreadable")
    if docker_os is None:
        notes.append("Docker Desktop file sharing: `docker info` did not answer")

    return Facts(
        project=found.stack.name,
        root=project.root,
        services=found.stack.services,
        python=found.python,
        config=project.config,
        containers=containers,
        dockerfiles=dockerfiles,
        watch_targets=watch,
        volumes=volumes,
        env=env,
        pid1=pid1,
        clock=clock,
        docker_os=docker_os,
        wsl=_under_wsl(),
        redis=redis,
        host_paths=_host_paths(found.stack.services, volumes),
        sources=sources,
        notes=tuple(notes),
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
                if t != b and not _is_under(t, b):
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
            key = _norm(source) or "."
            if key in found or any(c in source for c in "*?[$"):
                continue
            path = context_dir / key
            try:
                if path.is_file():
                    found[key] = SourceInfo("file", _is_code_file(path.name))
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
            if _is_code_file(filename):
                code = True
                if rel:
                    code_dirs.add(rel[0])
        if seen > _MAX_LOOKED_AT:
            break
    return SourceInfo("dir", code, tuple(sorted(code_dirs)))


def _is_code_file(name: str) -> bool:
    if any(fnmatch.fnmatch(name, pattern) for pattern in _MANIFESTS):
        return False
    return PurePath(name).suffix in _CODE_SUFFIXES


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
            value = _number(result.stdout.strip()) if result.returncode == 0 else None
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
    size = _number(fields.get("aof_current_size"))
    return RedisFacts(port, settings, int(size) if size is not None else None, live=True)


def redis_flags(words: Iterable[str]) -> dict[str, str]:
    """`redis-server --appendonly yes --port 6390` -> {"appendonly": "yes", "port": "6390"}."""
    items = list(words)
    flags: dict[str, str] = {}
    for i, word in enumerate(items):
        if word.startswith("--") and i + 1 < len(items) and not items[i + 1].startswith("--"):
            flags[word[2:]] = items[i + 1]
    return flags


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
