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

The rooms: ``facts`` (the data: facts in, findings out), ``checks_code`` and
``checks_restarts`` (the pure checks, by what goes wrong), ``dockerfile`` and ``paths``
(what the checks read a Dockerfile and a path with), ``diagnosis`` (all checks in one order,
the exit code, JSON and text), ``gathering`` (the edge).
"""

from cslaunch.doctor.diagnosis import (
    EXIT_ERRORS,
    counts,
    diagnose,
    exit_code,
    render,
    to_json,
)
from cslaunch.doctor.facts import (
    ANON_OVER_CODE,
    BIND_HIDDEN,
    CLOCK_SKEW,
    CODE_BAKED,
    DESKTOP_SHARING,
    ERROR,
    INFO,
    PID1_SHELL,
    PID1_SIGTERM,
    PYC_DONTWRITE,
    PYC_PREFIX,
    PYC_TIMESTAMP,
    REDIS_AOF_LARGE,
    REDIS_AOF_NO_REWRITE,
    RQ_FIXED_NAME,
    RQ_NO_HEALTHCHECK,
    STOP_GRACE,
    WARNING,
    WSL_DRIVE,
    ClockSample,
    Facts,
    Finding,
    Mount,
    Pid1,
    RedisFacts,
    Severity,
    SourceInfo,
)
from cslaunch.doctor.gathering import gather

__all__ = [
    "ANON_OVER_CODE",
    "BIND_HIDDEN",
    "CLOCK_SKEW",
    "CODE_BAKED",
    "DESKTOP_SHARING",
    "ERROR",
    "EXIT_ERRORS",
    "INFO",
    "PID1_SHELL",
    "PID1_SIGTERM",
    "PYC_DONTWRITE",
    "PYC_PREFIX",
    "PYC_TIMESTAMP",
    "REDIS_AOF_LARGE",
    "REDIS_AOF_NO_REWRITE",
    "RQ_FIXED_NAME",
    "RQ_NO_HEALTHCHECK",
    "STOP_GRACE",
    "WARNING",
    "WSL_DRIVE",
    "ClockSample",
    "Facts",
    "Finding",
    "Mount",
    "Pid1",
    "RedisFacts",
    "Severity",
    "SourceInfo",
    "counts",
    "diagnose",
    "exit_code",
    "gather",
    "render",
    "to_json",
]
