"""The checks of restarts: does each stop and start go fast and clean? PID 1 and its stop
signal, stop graces shorter than the work to finish, RQ workers' names and healthchecks,
Redis' AOF. Pure functions of :class:`Facts`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from cslaunch import procs, shell
from cslaunch.doctor.facts import (
    INFO,
    PID1_SHELL,
    PID1_SIGTERM,
    REDIS_AOF_LARGE,
    REDIS_AOF_NO_REWRITE,
    RQ_FIXED_NAME,
    RQ_NO_HEALTHCHECK,
    STOP_GRACE,
    WARNING,
    Facts,
    Finding,
    Pid1,
    number,
)
from cslaunch.jobs import parse_worker_command
from cslaunch.model import Service
from cslaunch.stop import DEFAULT_GRACE

RQ_WORKER_TTL = 420.0  # RQ's default worker TTL: how long a dead worker's key outlives it
RQ_JOB_TIMEOUT = 180.0  # RQ's default job timeout, seconds
GUNICORN_GRACEFUL_TIMEOUT = 30.0  # gunicorn's default --graceful-timeout
AOF_LARGE = 256 * 1024 * 1024  # an AOF this big takes seconds to replay on every start

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})
# PID 1 programs that forward signals to their child (and so catch none themselves).
INITS = frozenset({"docker-init", "tini", "dumb-init", "catatonit", "s6-svscan"})


def check_pid1(facts: Facts) -> Iterable[Finding]:
    """PID 1 that never reacts to SIGTERM: every stop waits the whole stop grace, then kills.

    A shell as PID 1 (`sh -c "a; b"`) passes no signal to the program it started. `init: true`
    ends the stall but not that: the init signals the shell, the shell dies, and the program
    is killed with the container without ever seeing SIGTERM (measured on this engine), which
    costs a worker its job. Only `exec` (or an exec-form command) makes the program get it.
    """
    for name, service in sorted(facts.services.items()):
        finding = _pid1_finding(name, service, facts.pid1.get(name))
        if finding is not None:
            yield finding


def _pid1_finding(name: str, service: Service, pid1: Pid1 | None) -> Finding | None:
    """At most one finding per service: under an init only a shell that will not pass the
    signal on matters; without one, a shell as PID 1 says more than its signal mask."""
    wrapper = _shell_wrapper(service)
    last = shell.last_command(wrapper.script) if wrapper else None
    execs = last is not None and last.execs
    program = _program(last.words[0]) if last and last.words else "the program"
    if last is not None and last.exec_at is None and not execs:
        program = "the program it starts"  # a builtin or keyword is no program
    kind = _worker_kind(service)
    fix_exec = _exec_fix(name, wrapper, last, program)
    if service.init or (pid1 is not None and pid1.name in INITS):
        if wrapper is not None and not execs and kind is not None:
            return _shell_under_init(name, kind[0], program, fix_exec)
        return None
    static = wrapper is not None and not execs  # the stack is down: as the model says
    is_shell = pid1.name in SHELLS if pid1 is not None and pid1.name else static
    if is_shell:
        worker = kind[0] if kind is not None else None
        return _shell_as_pid1(name, worker, program, _grace(service), fix_exec)
    if pid1 is not None and pid1.catches_sigterm is False:
        return _deaf_pid1(name, service, pid1)
    return None


def _shell_under_init(name: str, worker: str, program: str, fix_exec: str) -> Finding:
    return Finding(
        PID1_SHELL,
        WARNING,
        name,
        f"service {name}: its {worker} ({program}) runs under `sh -c`: with "
        "`init: true` the init signals the shell, which exits without passing "
        f"SIGTERM on, so {program} is killed with the container and never shuts down "
        "cleanly (a running job is lost)",
        fix_exec,
    )


def _shell_as_pid1(
    name: str, worker: str | None, program: str, grace: float, fix_exec: str
) -> Finding:
    message = (
        f"service {name}: a shell is PID 1 (`sh -c ...`): it does not pass SIGTERM on to "
        f"{program}, so every stop waits the full {grace:.0f} s stop grace, then "
        f"SIGKILLs {program} without a clean shutdown"
    )
    if worker is not None:
        message += f" (the {worker} cannot finish its job)"
    return Finding(
        PID1_SHELL,
        WARNING,
        name,
        message,
        fix_exec + "; `init: true` alone only ends the stall, the program behind the "
        "shell still gets no SIGTERM",
    )


def _deaf_pid1(name: str, service: Service, pid1: Pid1) -> Finding:
    """PID 1 neither a shell nor an init, and its stop signal not handled."""
    sig = procs.signal_name(procs.signal_number(service.stop_signal))
    return Finding(
        PID1_SIGTERM,
        WARNING,
        name,
        f"service {name}: PID 1 ({pid1.name or 'unknown'}) does not handle {sig}, "
        f"which the kernel then drops: every `docker compose stop/restart` waits the full "
        f"{_grace(service):.0f} s stop grace, then SIGKILLs",
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


def check_redis(facts: Facts) -> Iterable[Finding]:
    """Redis persistence without limits: an AOF that only grows, or one already huge."""
    for name, redis in sorted(facts.redis.items()):
        cfg = redis.config
        if cfg.get("appendonly") == "yes" and number(cfg.get("auto-aof-rewrite-percentage")) == 0:
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
                seconds = number(value)
                if seconds is not None:
                    timeout = seconds
            return ("gunicorn server", timeout, "gunicorn's graceful timeout")
    return None


def _compose_duration(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes and secs:
        return f"{minutes}m{secs}s"
    return f"{minutes}m" if minutes else f"{secs}s"
