"""The subprocess edge: every call to the `docker` CLI and `docker compose` goes through here.

Arguments are always lists (never a shell string), so names and paths from the Compose model
cannot inject commands. Failures become one-line CslaunchErrors with Compose's own words.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cslaunch.errors import ComposeError, DockerError, LaunchFailed

# How the docker CLI and Compose say the daemon is not there (Linux, macOS, Windows pipes),
# at the start of a run or because it went away in the middle of one.
DAEMON_GONE = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "docker daemon is not running",
    "pipe/docker_engine",
)
DAEMON_HINT = (
    "start Docker (Docker Desktop, or `dockerd`) and run cslaunch again: the change index "
    "only moves on after a launch that worked, so the next run redoes what is needed"
)


@dataclass(frozen=True)
class ComposeProject:
    """How to address one Compose project: the same flags `docker compose` takes."""

    directory: Path  # where cslaunch runs; Compose resolves files and .env from here
    files: tuple[str, ...] = ()
    name: str | None = None
    project_directory: Path | None = None
    profiles: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        argv = ["docker", "compose"]
        for f in self.files:
            argv += ["-f", f]
        if self.name:
            argv += ["-p", self.name]
        if self.project_directory:
            argv += ["--project-directory", str(self.project_directory)]
        for p in self.profiles:
            argv += ["--profile", p]
        return [*argv, *args]


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float | None = None,
    capture: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a docker command; the exit code is the caller's, except that a missing CLI or an
    unreachable daemon is a DockerError wherever it happens (nothing else can go on then)."""
    if shutil.which(argv[0]) is None:
        raise DockerError(
            f"'{argv[0]}' was not found on PATH",
            hint="install Docker (Docker Desktop, or the docker engine and CLI) and try again",
        )
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=capture,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
        )
    except subprocess.TimeoutExpired:
        raise DockerError(
            f"'{' '.join(argv[:3])}' did not answer within {timeout:.0f} s",
            hint="is the Docker daemon overloaded or stuck? check `docker info`",
        ) from None
    if result.returncode != 0 and capture and daemon_gone(result.stderr):
        raise DockerError(
            "the Docker daemon is not reachable: " + first_error_line(result.stderr),
            hint=DAEMON_HINT,
        )
    return result


def daemon_gone(stderr: str) -> bool:
    text = stderr.lower()
    return any(marker in text for marker in DAEMON_GONE)


def first_error_line(stderr: str) -> str:
    """Compose prefixes its real complaint with noise; keep the line that says what is wrong."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line.startswith(("WARN", "level=warning", "time=")):
            return line
    return lines[-1] if lines else "(no message)"


def check_engine(project: ComposeProject) -> str:
    """Fail early, with a fix, when Docker, Compose v2 or the daemon is missing. Returns the
    Compose version."""
    version = run(["docker", "compose", "version", "--short"], cwd=project.directory, timeout=30)
    if version.returncode != 0:
        raise DockerError(
            "Docker Compose v2 is not available ('docker compose' failed)",
            hint="install the Compose v2 plugin (Docker Desktop has it); "
            "the old Python docker-compose v1 is not supported",
        )
    info = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=30)
    if info.returncode != 0:
        raise DockerError(
            "the Docker daemon is not reachable: " + first_error_line(info.stderr),
            hint=DAEMON_HINT,
        )
    return version.stdout.strip()


def raise_if_daemon_gone(what: str, stderr: str) -> None:
    """After a command failed for a reason that did not name the daemon: is it still there?
    A daemon dying mid-request leaves an EOF or a reset, not "cannot connect"."""
    try:
        answers = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)
        gone = answers.returncode != 0
    except DockerError:
        gone = True
    if gone:
        raise DockerError(
            f"the Docker daemon stopped answering during {what}: " + first_error_line(stderr),
            hint=DAEMON_HINT,
        )


def compose_json(project: ComposeProject, *args: str, timeout: float = 60) -> Any:
    result = run(project.argv(*args), cwd=project.directory, timeout=timeout)
    if result.returncode != 0:
        raise_if_daemon_gone(f"docker compose {args[0]}", result.stderr)
        raise ComposeError("docker compose: " + first_error_line(result.stderr))
    return parse_json_stream(result.stdout)


def parse_json_stream(text: str) -> Any:
    """Compose prints either one JSON document or one object per line, depending on version."""
    text = text.strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def config(project: ComposeProject) -> dict[str, Any]:
    """The resolved Compose model, exactly as Compose itself understands the project."""
    data = compose_json(project, "config", "--format", "json")
    if not isinstance(data, dict):
        raise ComposeError("docker compose config returned no project")
    return data


def ps(project: ComposeProject) -> list[dict[str, Any]]:
    """Every container of the project, running or not."""
    data = compose_json(project, "ps", "--all", "--format", "json")
    return [data] if isinstance(data, dict) else list(data)


def inspect(container_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not container_ids:
        return []
    result = run(["docker", "inspect", *container_ids], timeout=60)
    if result.returncode != 0:
        # A container removed between ps and inspect is not an error for the caller:
        # inspect what is still there.
        found = []
        for cid in container_ids:
            one = run(["docker", "inspect", cid], timeout=30)
            if one.returncode == 0:
                found.extend(json.loads(one.stdout))
        return found
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def existing_images(names: Sequence[str]) -> set[str]:
    """Which of these image references exist locally (one call for all of them)."""
    if not names:
        return set()
    result = run(
        ["docker", "image", "inspect", "--format", "{{json .RepoTags}}", *names], timeout=30
    )
    present: set[str] = set()
    for line in result.stdout.splitlines():
        for tag in json.loads(line or "[]") or []:
            present.add(tag)
            present.add(tag.removesuffix(":latest"))
    return {n for n in names if n in present}


def compose_step(
    project: ComposeProject, *args: str, what: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Compose command that changes the stack; its output is kept for the failure report."""
    return step(project.argv(*args), what=what, cwd=project.directory, timeout=timeout)


def step(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    timeout: float | None = None,
    tolerate: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a docker command that changes the stack. A failure is a LaunchFailed with the
    command's own words, unless every error line contains `tolerate` (a container that
    exited on its own before `docker kill` reached it is not a failure)."""
    result = run(argv, cwd=cwd, timeout=timeout)
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
        if tolerate and errors and all(tolerate in ln for ln in errors):
            return result
        raise_if_daemon_gone(what, result.stderr)
        raise LaunchFailed(
            f"{what} failed: " + first_error_line(result.stderr),
            detail=_tail(result.stdout + result.stderr, 40),
        )
    return result


def exec_argv(project: ComposeProject, service: str, *command: str) -> list[str]:
    """Run a command in a service's running container, stdin attached: `docker exec` on it
    once the project is named (a fifth of the time: no Compose model loaded), else
    `docker compose exec -T`. A service with no running container gets Compose's argv,
    whose error then says so."""
    if project.name:
        filters = [f"label=com.docker.compose.service={service}", "status=running"]
        result = run(_ps_argv(project.name, *filters), timeout=30)
        ids = sorted(result.stdout.split()) if result.returncode == 0 else []
        if ids:
            return ["docker", "exec", "-i", ids[0], *command]
    return project.argv("exec", "-T", service, *command)


def container_ids(project_name: str) -> list[str]:
    """Every service container of a Compose project, from the engine by Compose's labels:
    a fifth of the time of `docker compose ps`, which loads the whole model first."""
    result = run([*_ps_argv(project_name), "--all"], timeout=60)
    if result.returncode != 0:
        raise DockerError("docker ps: " + first_error_line(result.stderr), hint=DAEMON_HINT)
    return result.stdout.split()


def logs(project: ComposeProject, service: str, *, tail: int = 30) -> str:
    result = run(
        project.argv("logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service),
        cwd=project.directory,
        timeout=30,
    )
    return (result.stdout + result.stderr).rstrip()


def _ps_argv(project_name: str, *filters: str) -> list[str]:
    """`docker ps` of a Compose project's service containers (not one-off `run` ones), by
    the labels Compose puts on them."""
    argv = ["docker", "ps", "--quiet", "--no-trunc"]
    for f in (
        f"label=com.docker.compose.project={project_name}",
        "label=com.docker.compose.oneoff=False",
        *filters,
    ):
        argv += ["--filter", f]
    return argv


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
