"""Errors that end a command with a one-line message and a documented exit code."""

from __future__ import annotations

# Exit codes (documented in the README; scripts and CI depend on them).
OK = 0
LAUNCH_FAILED = 1  # a service failed to build, start or become ready
USAGE = 2  # bad command line (click's own code)
CONFIG = 3  # invalid [tool.cslaunch] / cslaunch.toml
DOCKER = 4  # no Docker CLI, daemon unreachable, no Compose v2
COMPOSE = 5  # no compose file, or Compose rejects it
LOCKED = 6  # another cslaunch holds the project lock (with --no-wait)
FILES = 7  # a path given on the command line is missing or unusable
STALE = 8  # verification found a container running code that is not on disk
DOCTOR = 9  # `cslaunch doctor` found an error-level problem
INTERNAL = 70  # a bug in cslaunch (EX_SOFTWARE): the message asks for --debug and a report
INTERRUPTED = 130  # Ctrl-C / SIGTERM


class CslaunchError(Exception):
    """A failure the user can act on: shown as one line, never as a traceback."""

    exit_code = LAUNCH_FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        detail: str | None = None,
        reported: bool = False,  # the command already printed its own (JSON) report
    ):
        super().__init__(message)
        self.message = message
        self.exit_code = type(self).exit_code
        self.reported = reported
        self.hint = hint
        self.detail = detail

    def with_code(self, code: int) -> CslaunchError:
        self.exit_code = code
        return self


class ConfigError(CslaunchError):
    exit_code = CONFIG


class DockerError(CslaunchError):
    exit_code = DOCKER


class ComposeError(CslaunchError):
    exit_code = COMPOSE


class LockedError(CslaunchError):
    exit_code = LOCKED


class PathError(CslaunchError):
    exit_code = FILES


class LaunchFailed(CslaunchError):
    exit_code = LAUNCH_FAILED


class StaleCode(CslaunchError):
    exit_code = STALE
