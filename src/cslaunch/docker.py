"""The Docker edge: every call to the engine, the `docker` CLI and `docker compose` goes
through here (reading the Compose model itself is cslaunch.compose_config's, on top of it).

Compose commands always run the CLI. Container calls (list, inspect, exec, kill, stop, start)
go straight to the Engine API when the engine is a local socket (cslaunch.engine_api), else
through the CLI; callers get the same answers either way. Arguments are always lists (never
a shell string), so names and paths from the Compose model cannot inject commands. Failures
become one-line CslaunchErrors with the engine's or Compose's own words.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cslaunch import engine_api
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

    def argv(self, *args: str, program: Sequence[str] = ("docker", "compose")) -> list[str]:
        argv = list(program)
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
    _require(argv[0])
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
        raise _no_answer(argv, timeout) from None
    return _checked(result) if capture else result


class Pending:
    """A docker command started now, its answer taken later: `up` starts `docker compose
    config` (0.15 s) before it imports the launch machinery, so the two run at once."""

    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 60):
        _require(argv[0])
        self.argv, self.timeout = list(argv), timeout
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )

    def result(self) -> subprocess.CompletedProcess[str]:
        """The same answer `run` would have given."""
        try:
            out, err = self.process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise _no_answer(self.argv, self.timeout) from None
        return _checked(subprocess.CompletedProcess(self.argv, self.process.returncode, out, err))

    def cancel(self) -> None:
        """Its answer is not wanted any more."""
        self.process.kill()
        self.process.communicate()


def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise DockerError(
            f"'{program}' was not found on PATH",
            hint="install Docker (Docker Desktop, or the docker engine and CLI) and try again",
        )


def _no_answer(argv: Sequence[str], timeout: float | None) -> DockerError:
    return DockerError(
        f"'{' '.join(argv[:3])}' did not answer within {timeout or 0:.0f} s",
        hint="is the Docker daemon overloaded or stuck? check `docker info`",
    )


def _checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0 and daemon_gone(result.stderr):
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
    api = engine_api.local()
    try:
        if api is not None:
            gone = not api.ping()
        else:
            answers = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=10)
            gone = answers.returncode != 0
    except DockerError:
        gone = True
    if gone:
        raise DockerError(
            f"the Docker daemon stopped answering during {what}: " + first_error_line(stderr),
            hint=DAEMON_HINT,
        )


def compose_json(
    project: ComposeProject, *args: str, timeout: float = 60, started: Pending | None = None
) -> Any:
    """A Compose command's JSON answer (`started`: that command, begun earlier)."""
    if started is not None:
        result = started.result()
    else:
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


def ps(project: ComposeProject) -> list[dict[str, Any]]:
    """Every container of the project, running or not."""
    data = compose_json(project, "ps", "--all", "--format", "json")
    return [data] if isinstance(data, dict) else list(data)


def inspect(container_ids: Sequence[str]) -> list[dict[str, Any]]:
    """`docker inspect` of these containers; one removed meanwhile is left out, not an error
    (the caller asked about what is there)."""
    if not container_ids:
        return []
    api = engine_api.local()
    if api is not None:
        found = []
        with _engine_errors("docker inspect"):
            for cid in container_ids:
                try:
                    found.append(api.get(f"/containers/{_quote(cid)}/json"))
                except engine_api.EngineError as e:
                    if e.status != 404:
                        raise
        return found
    result = run(["docker", "inspect", *container_ids], timeout=60)
    if result.returncode != 0:
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
    tags: list[str] = []
    api = engine_api.local()
    if api is not None:
        with _engine_errors("docker image inspect"):
            for name in names:
                try:
                    tags += api.get(f"/images/{_quote(name)}/json").get("RepoTags") or []
                except engine_api.EngineError as e:
                    if e.status != 404:
                        raise
    else:
        result = run(
            ["docker", "image", "inspect", "--format", "{{json .RepoTags}}", *names], timeout=30
        )
        for line in result.stdout.splitlines():
            tags += json.loads(line or "[]") or []
    present = set(tags) | {tag.removesuffix(":latest") for tag in tags}
    return {n for n in names if n in present}


def pull(project: ComposeProject, services: Sequence[str]) -> None:
    """`docker compose pull` of these services; a failure names the service and why."""
    if services:
        compose_step(project, "pull", "--quiet", *services, what="docker compose pull")


def image_configs(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The `Config` (Cmd, Entrypoint, Env, ...) of each of these local images that exists."""
    found: dict[str, dict[str, Any]] = {}
    if not names:
        return found
    api = engine_api.local()
    if api is not None:
        with _engine_errors("docker image inspect"):
            for name in names:
                try:
                    found[name] = api.get(f"/images/{_quote(name)}/json").get("Config") or {}
                except engine_api.EngineError as e:
                    if e.status != 404:
                        raise
        return found
    for name in names:
        result = run(
            ["docker", "image", "inspect", "--format", "{{json .Config}}", name], timeout=30
        )
        if result.returncode == 0:
            found[name] = json.loads(result.stdout or "{}") or {}
    return found


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
        reason = first_error_line(result.stderr)
        raise LaunchFailed(
            f"{what} failed: {reason}",
            detail=_tail(_without(reason, result.stdout + result.stderr), 40) or None,
        )
    return result


def _without(reason: str, text: str) -> str:
    """Compose's output less the lines that only say `reason` again: it prints one error
    once per service and once more for the whole command."""
    core = reason.removeprefix("Error response from daemon: ")
    return "\n".join(ln for ln in text.splitlines() if core not in ln and ln.strip())


def exec_in(
    container_id: str,
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker exec [-i] [-u USER] CONTAINER ARGV...`: the command's output and exit code. A
    container that is gone or stopped gives the CLI's own "Error response from daemon" and
    exit 1."""
    api = engine_api.local()
    if api is None:
        flags = ["-i"] if input is not None else []
        flags += ["-u", user] if user is not None else []
        result = run(["docker", "exec", *flags, container_id, *argv], input=input, timeout=timeout)
        if result.returncode in (126, 127) and "exec failed" in result.stdout:
            # The engine writes why the command never started into its output stream, and
            # the CLI prints that on stdout: it is an error message, so stderr.
            result.stderr, result.stdout = result.stdout + result.stderr, ""
        return result
    with _engine_errors(f"docker exec {argv[0] if argv else ''}", timeout):
        try:
            return api.exec(container_id, argv, input=input, timeout=timeout, user=user)
        except engine_api.EngineError as e:
            return subprocess.CompletedProcess(
                list(argv), 1, "", f"Error response from daemon: {e.message}\n"
            )


def exec_service(
    project: ComposeProject,
    service: str,
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in a service's running container: straight in its container once the
    project is named (no Compose model loaded), else `docker compose exec -T`. A service
    with no running container gets Compose's answer, whose error then says so."""
    if project.name:
        ids = sorted(container_ids(project.name, service=service, running=True))
        if ids:
            return exec_in(ids[0], argv, input=input, timeout=timeout)
    return run(
        project.argv("exec", "-T", service, *argv),
        cwd=project.directory,
        input=input,
        timeout=timeout,
    )


def container_ids(
    project_name: str, *, service: str | None = None, running: bool = False
) -> list[str]:
    """The service containers of a Compose project (not one-off `run` ones), from the engine
    by the labels Compose puts on them: a fifth of the time of `docker compose ps`, which
    loads the whole model first."""
    labels = [f"com.docker.compose.project={project_name}", "com.docker.compose.oneoff=False"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    api = engine_api.local()
    if api is not None:
        filters: dict[str, list[str]] = {"label": labels}
        if running:
            filters["status"] = ["running"]
        with _engine_errors("docker ps"):
            listed = api.get(
                "/containers/json",
                {"all": "0" if running else "1", "filters": json.dumps(filters)},
            )
        return [str(c["Id"]) for c in listed]
    argv = ["docker", "ps", "--quiet", "--no-trunc", *([] if running else ["--all"])]
    for label in labels:
        argv += ["--filter", f"label={label}"]
    if running:
        argv += ["--filter", "status=running"]
    result = run(argv, timeout=60)
    if result.returncode != 0:
        raise DockerError("docker ps: " + first_error_line(result.stderr), hint=DAEMON_HINT)
    return result.stdout.split()


def kill(container_ids: Sequence[str]) -> None:
    """SIGKILL. One that exited on its own meanwhile is what was wanted anyway."""
    _containers_step("kill", container_ids, tolerate="is not running")


def signal(container_id: str, signum: int) -> None:
    """Send a signal to a container's PID 1 (`docker kill -s`)."""
    _containers_step(
        "kill", [container_id], signal=signum, what="docker kill -s", tolerate="is not running"
    )


def last_log_lines(
    container_id: str, *, since: datetime | None = None, lines: int = 2
) -> list[str]:
    """The last lines a container wrote on stdout and on stderr (since `since`): [] when
    they cannot be read (a logging driver that keeps none, the container gone)."""
    query = {"stdout": "1", "stderr": "1", "tail": str(lines)}
    if since is not None:
        query["since"] = str(int(since.timestamp()))
    api = engine_api.local()
    if api is not None:
        try:
            data = api.get_bytes(f"/containers/{_quote(container_id)}/logs", query, timeout=10)
        except (engine_api.EngineError, OSError):
            return []
        text = b"".join(engine_api.frames(data)).decode("utf-8", errors="replace")
        return text.splitlines()
    flags = ["--tail", str(lines)] + (["--since", query["since"]] if "since" in query else [])
    result = run(["docker", "logs", *flags, container_id], timeout=10)
    if result.returncode != 0:
        return []
    return result.stdout.splitlines() + result.stderr.splitlines()


def stop(container_ids: Sequence[str], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, as `docker stop -t` does."""
    _containers_step("stop", container_ids, grace=math.ceil(grace))


def start(container_id: str, *, name: str = "") -> None:
    _containers_step("start", [container_id], what=f"docker start {name or container_id}")


def logs(project: ComposeProject, service: str, *, tail: int = 30) -> str:
    result = run(
        project.argv("logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service),
        cwd=project.directory,
        timeout=30,
    )
    return (result.stdout + result.stderr).rstrip()


def _containers_step(
    action: str,
    container_ids: Sequence[str],
    *,
    what: str = "",
    tolerate: str | None = None,
    grace: int | None = None,
    signal: int | None = None,
) -> None:
    """kill, stop or start containers, all at once, as a step that changes the stack."""
    if not container_ids:
        return
    what = what or f"docker {action}"
    api = engine_api.local()
    if api is None:
        flags = ["-t", str(grace)] if grace is not None else []
        flags += ["-s", str(signal)] if signal is not None else []
        step(["docker", action, *flags, *container_ids], what=what, tolerate=tolerate)
        return
    query = {"t": str(grace)} if grace is not None else None
    if signal is not None:
        query = {"signal": str(signal)}
    # A stop waits out its grace period: the engine's answer comes after that.
    wait = 30.0 + (grace or 0)

    def one(cid: str) -> str | None:
        try:
            api.post(f"/containers/{_quote(cid)}/{action}", query, timeout=wait)
        except engine_api.EngineError as e:
            return f"Error response from daemon: {e.message}"
        return None

    with _engine_errors(what, wait):
        if len(container_ids) == 1:
            errors = [one(container_ids[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(16, len(container_ids))) as pool:
                errors = list(pool.map(one, container_ids))
    problems = [e for e in errors if e]
    if not problems or (tolerate and all(tolerate in p for p in problems)):
        return
    raise_if_daemon_gone(what, problems[0])
    raise LaunchFailed(f"{what} failed: {problems[0]}", detail="\n".join(problems))


@contextmanager
def _engine_errors(what: str, timeout: float | None = None) -> Iterator[None]:
    """The socket's failures in the CLI's words: the daemon is gone, or did not answer."""
    try:
        yield
    except TimeoutError:
        raise DockerError(
            f"'{what}' did not answer within {timeout or 30:.0f} s",
            hint="is the Docker daemon overloaded or stuck? check `docker info`",
        ) from None
    except engine_api.EngineError as e:
        raise DockerError(f"{what}: {e.message}", hint=DAEMON_HINT) from None
    except OSError as e:
        raise DockerError(
            f"the Docker daemon is not reachable: {e.strerror or e}", hint=DAEMON_HINT
        ) from None


def _quote(name: str) -> str:
    return quote(name, safe="")


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
