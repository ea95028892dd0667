"""The real CLI in a subprocess: every failure is one `error:` line and a documented exit code,
never a traceback (unless --debug). None of these start, stop or change containers.

Each CLI start costs a few hundred milliseconds of imports, so every case below is prepared in
its own directory and all of them run at once in a module fixture; the tests then check the
results one by one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cslaunch import __version__
from cslaunch.cli import main
from cslaunch.errors import COMPOSE, CONFIG, DOCKER, FILES, INTERNAL, OK, USAGE

COMPOSE_OK = "services:\n  web:\n    image: busybox\n    command: ['sleep', '60']\n"
# Variables that would make Compose or the docker CLI look elsewhere than the case points it.
LEAKY = (
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_PROFILES",
    "DOCKER_CONTEXT",
    "DOCKER_HOST",
)
# A small source tree with bytecode both in __pycache__ and beside the sources (130 bytes).
PYC_TREE: dict[str, str | bytes] = {
    "src/app/__init__.py": "",
    "src/app/server.py": "print('hi')\n",
    "src/app/data.txt": "keep me",
    "src/app/__pycache__/server.cpython-311.pyc": b"\x00" * 100,
    "src/app/__pycache__/__init__.cpython-311.pyc": b"\x00" * 20,
    "src/app/legacy.pyc": b"\x00" * 10,
}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into the case's cwd
    env: dict[str, str] = field(default_factory=dict)
    no_docker: bool = False  # PATH without docker
    engine: bool = False  # needs a reachable daemon (only Compose can report the error)


def project(extra: dict[str, str | bytes] | None = None) -> dict[str, str | bytes]:
    return {"compose.yaml": COMPOSE_OK, **(extra or {})}


CASES: dict[str, Case] = {
    "docker_missing": Case(("up",), project(), no_docker=True),
    "daemon_unreachable": Case(
        ("status",), project(), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    ),
    "no_compose_file": Case(("status",), no_docker=True),
    "invalid_yaml": Case(("status",), {"compose.yaml": "services:\n  web: [\n"}, engine=True),
    "ports_not_a_list": Case(
        ("status",),
        {"compose.yaml": "services:\n  web:\n    image: x\n    ports: notalist\n"},
        engine=True,
    ),
    "invalid_tool_cslaunch": Case(
        ("status",), project({"pyproject.toml": "[tool.cslaunch]\ntimout = 30\n"}), no_docker=True
    ),
    "invalid_toml": Case(("up",), project({"cslaunch.toml": "timeout = = 3\n"}), no_docker=True),
    "clean_missing": Case(("clean", "/does/not/exist"), no_docker=True),
    "clean": Case(("clean", "src"), PYC_TREE, no_docker=True),
    "clean_dry_run": Case(("clean", "--dry-run", "src"), PYC_TREE, no_docker=True),
    "clean_json": Case(("clean", "--json", "src"), PYC_TREE, no_docker=True),
    "json_clean_missing": Case(("clean", "--json", "/does/not/exist"), no_docker=True),
    "json_docker_missing": Case(("--json", "status"), project(), no_docker=True),
    "debug": Case(("--debug", "clean", "/does/not/exist"), no_docker=True),
    "help": Case(("--help",), no_docker=True),
    "help_up": Case(("up", "--help"), no_docker=True),
    "help_clean": Case(("clean", "-h"), no_docker=True),
    "help_status": Case(("status", "--help"), no_docker=True),
    "version": Case(("--version",), no_docker=True),
    # Once-known bugs: user-facing tracebacks.
    "port_range": Case(
        ("status",),
        {"compose.yaml": "services:\n  web:\n    image: x\n    ports: ['9000-9001:80']\n"},
        engine=True,
    ),
    "tool_not_a_table": Case(
        ("status",), project({"pyproject.toml": "[tool]\ncslaunch = 1\n"}), no_docker=True
    ),
    "bad_timeout": Case(("up", "--timeout", "0"), project(), no_docker=True),
    "unknown_service_config": Case(
        ("plan",), project({"cslaunch.toml": "[services.nosuch]\npython = true\n"}), engine=True
    ),
    "profile_service_config": Case(
        ("status", "--json"),
        {
            "compose.yaml": COMPOSE_OK + "  tools:\n    image: busybox\n    profiles: [tools]\n",
            "pyproject.toml": "[tool.cslaunch.services.tools]\npython = false\n",
        },
        engine=True,
    ),
    "logs_unknown_service": Case(("logs", "--no-follow", "nosuch"), project(), engine=True),
    "json_usage": Case(("jobs", "recover", "--json", "--policy", "x"), project(), no_docker=True),
}


@dataclass(frozen=True)
class Ran:
    cwd: Path
    result: subprocess.CompletedProcess[str]

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    r = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return None if r.returncode == 0 else "Docker daemon not reachable"


def _run(case: Case, cwd: Path) -> Ran:
    for rel, content in case.files.items():
        path = cwd / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env["NO_COLOR"] = "1"
    if case.no_docker:
        empty = cwd.parent / (cwd.name + "-bin")
        empty.mkdir()
        env["PATH"] = str(empty)
    env.update(case.env)
    result = subprocess.run(
        [sys.executable, "-m", "cslaunch", *case.args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return Ran(cwd, result)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran | str]:
    """Every case's result; a string instead when the case cannot run here (why not)."""
    base = tmp_path_factory.mktemp("cli")
    engine_problem = _engine_problem()
    if engine_problem and os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
        pytest.fail(engine_problem)
    runnable = {}
    results: dict[str, Ran | str] = {}
    for name, case in CASES.items():
        if case.engine and engine_problem:
            results[name] = engine_problem
        elif not case.no_docker and shutil.which("docker") is None:
            results[name] = "no docker CLI"
        else:
            (base / name).mkdir()
            runnable[name] = case
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1))) as pool:
        futures = {name: pool.submit(_run, case, base / name) for name, case in runnable.items()}
        results.update({name: f.result() for name, f in futures.items()})
    return results


def get(ran: dict[str, Ran | str], name: str) -> Ran:
    outcome = ran[name]
    if isinstance(outcome, str):
        pytest.skip(outcome)
    return outcome


def assert_error(r: Ran, code: int, *words: str) -> str:
    """Exit code, one `error:` line first on stderr (a hint may follow), no traceback.
    Returns the error line."""
    assert "Traceback" not in r.output, r.output
    assert r.result.returncode == code, r.output
    lines = r.result.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, r.result.stderr
    assert lines[0] == errors[0], r.result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# --- Docker itself missing or unreachable: exit 4 -----------------------------------------------


def test_docker_cli_missing(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "docker_missing")
    assert_error(r, DOCKER, "'docker' was not found on PATH")
    assert "hint: install Docker" in r.result.stderr


def test_daemon_unreachable(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "daemon_unreachable")
    assert_error(r, DOCKER, "the Docker daemon is not reachable", "/nonexistent/docker.sock")
    assert "hint: start Docker" in r.result.stderr


# --- The Compose project: exit 5 -----------------------------------------------------------------


def test_no_compose_file(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "no_compose_file")
    markers = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
    if any((d / m).is_file() for d in r.cwd.parents for m in markers):
        pytest.skip("a parent of the temporary directory holds a compose file")
    assert_error(r, COMPOSE, "no Compose file in", str(r.cwd))
    assert "hint:" in r.result.stderr


def test_invalid_yaml(ran: dict[str, Ran | str]) -> None:
    assert_error(get(ran, "invalid_yaml"), COMPOSE, "docker compose:", "yaml")


def test_compose_schema_error(ran: dict[str, Ran | str]) -> None:
    assert_error(get(ran, "ports_not_a_list"), COMPOSE, "docker compose:", "ports")


# --- cslaunch's own config: exit 3 ------------------------------------------------------------


def test_invalid_tool_cslaunch(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "invalid_tool_cslaunch")
    assert_error(r, CONFIG, "pyproject.toml", "tool.cslaunch.timout", "unknown key")


def test_invalid_toml(ran: dict[str, Ran | str]) -> None:
    assert_error(get(ran, "invalid_toml"), CONFIG, "cslaunch.toml: invalid TOML")


# --- clean -------------------------------------------------------------------------------------


def test_clean_missing_path(ran: dict[str, Ran | str]) -> None:
    assert_error(get(ran, "clean_missing"), FILES, "/does/not/exist")


def test_clean_without_docker(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "clean")
    assert r.result.returncode == OK, r.output
    assert "Traceback" not in r.output
    assert "removed 3 bytecode files, 1 __pycache__ dir" in r.result.stdout
    left = sorted(str(p.relative_to(r.cwd)) for p in (r.cwd / "src").rglob("*"))
    assert left == ["src/app", "src/app/__init__.py", "src/app/data.txt", "src/app/server.py"]


def test_clean_dry_run_removes_nothing(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "clean_dry_run")
    assert r.result.returncode == OK, r.output
    assert "would remove 3 bytecode files" in r.result.stdout
    assert "src/app/legacy.pyc" in r.result.stdout
    assert all((r.cwd / rel).exists() for rel in PYC_TREE)


def test_clean_json_without_docker(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "clean_json")
    assert r.result.returncode == OK, r.output
    data = json.loads(r.result.stdout)
    assert (data["command"], data["ok"]) == ("clean", True)
    assert (data["files"], data["dirs"], data["bytes"]) == (3, 1, 130)


# --- --json / --debug -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "command"),
    [("json_clean_missing", FILES, "clean"), ("json_docker_missing", DOCKER, "status")],
)
def test_json_error_object(ran: dict[str, Ran | str], name: str, code: int, command: str) -> None:
    r = get(ran, name)
    line = assert_error(r, code)  # the human line still goes to stderr
    data = json.loads(r.result.stdout)
    assert data["ok"] is False
    assert data["exit_code"] == code
    assert data["schema"] == 1 and data["command"] == command
    assert line == "error: " + data["error"]
    assert "hint" in data


def test_json_usage_error_object(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "json_usage")
    assert r.result.returncode == USAGE, r.output
    data = json.loads(r.result.stdout)
    assert (data["command"], data["exit_code"], data["ok"]) == ("jobs recover", USAGE, False)
    assert "--policy" in data["error"]


def test_internal_error_prints_its_json_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE_OK)
    monkeypatch.chdir(tmp_path)

    def broken(project: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("cslaunch.commands.status.statuses", broken)
    monkeypatch.setattr("cslaunch.output._written", False)
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--json"])
    assert exit_info.value.code == INTERNAL
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data == {
        "schema": 1,
        "command": "status",
        "ok": False,
        "error": "internal error: RuntimeError: a bug",
        "hint": "run again with --debug for the traceback, and please report it",
        "exit_code": INTERNAL,
    }
    assert "error: internal error" in err


def test_json_error_carries_the_hint(ran: dict[str, Ran | str]) -> None:
    data = json.loads(get(ran, "json_docker_missing").result.stdout)
    assert "install Docker" in data["hint"]


def test_debug_shows_traceback(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "debug")
    assert r.result.returncode != OK
    assert "Traceback" in r.result.stderr
    assert "PathError" in r.result.stderr


# --- help, version, usage ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["help", "help_up", "help_clean", "help_status"])
def test_help(ran: dict[str, Ran | str], name: str) -> None:
    r = get(ran, name)
    assert r.result.returncode == OK, r.output
    assert "Usage:" in r.result.stdout
    assert r.result.stderr == ""


def test_help_lists_subcommands(ran: dict[str, Ran | str]) -> None:
    out = get(ran, "help").result.stdout
    for command in ("up", "clean", "status"):
        assert f"  {command} " in out


def test_version(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "version")
    assert r.result.returncode == OK
    assert r.result.stdout.strip() == f"cslaunch, version {__version__}"


def test_usage_error(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "bad_timeout")
    assert r.result.returncode == USAGE, r.output
    assert "Traceback" not in r.output
    assert "Error:" in r.result.stderr


def test_unknown_service_in_config_is_a_config_error(ran: dict[str, Ran | str]) -> None:
    assert_error(
        get(ran, "unknown_service_config"),
        CONFIG,
        "cslaunch.toml: services.nosuch: no such service",
        "(its services: web)",
    )


def test_a_service_of_a_profile_not_enabled_is_known(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "profile_service_config")
    assert r.result.returncode == OK, r.output


def test_logs_of_an_unknown_service_is_a_bad_argument(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "logs_unknown_service")
    assert r.result.returncode == USAGE, r.output
    assert "no such service: nosuch (services: web)" in r.result.stderr


# --- known bugs ----------------------------------------------------------------------------


def test_port_range_no_traceback(ran: dict[str, Ran | str]) -> None:
    r = get(ran, "port_range")
    assert "Traceback" not in r.output, r.output
    assert r.result.returncode in (OK, COMPOSE), r.output


def test_tool_cslaunch_not_a_table(ran: dict[str, Ran | str]) -> None:
    assert_error(get(ran, "tool_not_a_table"), CONFIG, "tool.cslaunch")


def _console(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`cslaunch.cli.run` as the console script runs it, in a process of its own, after
    `code` (which sets sys.argv)."""
    env = {**os.environ, "CSLAUNCH_STATE_HOME": str(tmp_path / "state")}
    return subprocess.run(
        [sys.executable, "-c", f"import sys\nfrom cslaunch.cli import run\n{code}\nrun()"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_console_script_keeps_each_exit_code(tmp_path: Path) -> None:
    assert _console("sys.argv = ['cslaunch', '--version']", tmp_path).returncode == OK
    assert _console("sys.argv = ['cslaunch', 'status']", tmp_path).returncode == COMPOSE
    # Started with standard error closed (`2>&-`, pythonw): the same codes
    closed = "import os\nos.close(2)\nsys.stderr = None\nsys.argv = ['cslaunch', 'status']"
    assert _console(closed, tmp_path).returncode == COMPOSE


def test_the_console_script_waits_for_a_thread_still_running(tmp_path: Path) -> None:
    """Work a thread still does when main returns gets the normal exit, which waits for it,
    not the fast one."""
    marker = tmp_path / "done"
    late = (
        "import threading, time\n"
        "def work():\n"
        "    time.sleep(0.5)\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "threading.Thread(target=work).start()\n"
        "sys.argv = ['cslaunch', '--version']"
    )
    assert _console(late, tmp_path).returncode == OK
    assert marker.exists()
