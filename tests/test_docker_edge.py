"""The subprocess edge: a daemon that is not there (or went away) is one DockerError wherever
it shows, cut at subprocess.run; and `up --watch` is `watch`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cslaunch import compose_config, docker
from cslaunch.errors import DOCKER, DockerError, LaunchFailed

# These fake the docker CLI: container calls must take it, not the Engine API.
pytestmark = pytest.mark.usefixtures("cli_path")

LINUX = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?"
)
WINDOWS = (
    "error during connect: this error may indicate that the docker daemon is not running: "
    'Get "http://%2F%2F.%2Fpipe%2Fdocker_engine/v1.47/containers/json": '
    "open //./pipe/docker_engine: The system cannot find the file specified."
)


def fake_run(monkeypatch: pytest.MonkeyPatch, answers: dict[str, tuple[int, str]]) -> list[str]:
    """subprocess.run answering by the docker subcommand; returns the commands run."""
    seen: list[str] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        key = argv[2] if argv[1] == "compose" else argv[1]
        seen.append(key)
        code, stderr = answers.get(key, (0, ""))
        return subprocess.CompletedProcess(argv, code, "", stderr)

    monkeypatch.setattr(docker.subprocess, "run", run)
    monkeypatch.setattr(docker.shutil, "which", lambda name: "/usr/bin/" + name)
    return seen


@pytest.mark.parametrize("stderr", [LINUX, WINDOWS])
def test_unreachable_daemon_is_a_docker_error_wherever_it_shows(
    monkeypatch: pytest.MonkeyPatch, stderr: str
) -> None:
    fake_run(monkeypatch, {"inspect": (1, stderr)})
    with pytest.raises(DockerError) as e:
        docker.inspect(["abc"])
    assert e.value.exit_code == DOCKER
    assert e.value.message.startswith("the Docker daemon is not reachable")
    assert e.value.hint and "run cslaunch again" in e.value.hint


def test_a_failure_that_does_not_name_the_daemon_asks_whether_it_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = fake_run(monkeypatch, {"up": (1, "unexpected EOF"), "version": (1, "EOF")})
    project = docker.ComposeProject(Path("."))
    with pytest.raises(DockerError) as e:
        docker.compose_step(project, "up", "-d", what="docker compose up")
    assert "stopped answering during docker compose up: unexpected EOF" in e.value.message
    assert seen == ["up", "version"]


def test_a_real_compose_failure_with_a_live_daemon_stays_a_launch_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_run(monkeypatch, {"up": (1, "Error response from daemon: port is already allocated")})
    with pytest.raises(LaunchFailed) as e:
        docker.compose_step(docker.ComposeProject(Path(".")), "up", what="docker compose up")
    assert "port is already allocated" in e.value.message


def test_container_output_that_mentions_connect_errors_is_not_the_daemon() -> None:
    assert not docker.daemon_gone("redis.exceptions.ConnectionError: Error 111 connecting")
    assert docker.daemon_gone(LINUX) and docker.daemon_gone(WINDOWS)


def test_up_watch_runs_watch_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cslaunch import cli
    from cslaunch.commands import watch as watch_mod

    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: x\n")
    calls: list[Any] = []
    monkeypatch.setattr(watch_mod, "run", lambda *args: calls.append(args) or 0)
    monkeypatch.chdir(tmp_path)
    for argv in (["up", "--watch"], ["--watch", "--no-verify"]):
        calls.clear()
        result = CliRunner().invoke(cli.cli, argv)
        assert result.exit_code == 0, result.output
        (project, launch_options, watch_options, _ui) = calls[0]
        assert project.root == tmp_path
        assert launch_options.verify is (argv[0] == "up") and not watch_options.poll


# --- Compose's plugin, run directly; a command started early ---------------------------------


def _plugin(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    plugin = directory / "docker-compose"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    return plugin


def test_the_compose_plugin_is_found_where_the_cli_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    user = _plugin(tmp_path / "cfg" / "cli-plugins")
    assert compose_config.compose_plugin() == str(user)  # the user's before the system's
    extra = _plugin(tmp_path / "extra")
    (tmp_path / "cfg" / "config.json").write_text(
        '{"cliPluginsExtraDirs": ["%s"]}' % (tmp_path / "extra")
    )
    assert compose_config.compose_plugin() == str(extra)  # the config's own dirs come first


def test_a_command_started_early_answers_like_run(tmp_path: Path) -> None:
    script = tmp_path / "fake-docker"
    script.write_text(f"#!/bin/sh\necho out; echo '{LINUX}' >&2; exit 1\n")
    script.chmod(0o755)
    with pytest.raises(DockerError, match="daemon is not reachable"):
        docker.Pending([str(script)]).result()
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(DockerError, match="did not answer within 1 s"):
        docker.Pending([str(slow)], timeout=1).result()
    with pytest.raises(DockerError, match="was not found on PATH"):
        docker.Pending(["cslaunch-no-such-docker"])


def test_config_falls_back_to_composes_yaml_where_its_json_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Compose 2.40 cannot print a `build.ssh` key path as JSON, though it prints the same
    model as YAML: the model is read from the YAML, and cslaunch says why."""
    yaml_model = (
        "name: p\nservices:\n  app:\n    build:\n      context: /p\n      ssh:\n"
        "        - 'mykey: /tmp/key'\n    environment:\n      DEBUG: 'true'\n"
    )

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if "--format" in argv:
            error = "json: error calling MarshalJSON for type types.SSHKey: invalid character"
            return subprocess.CompletedProcess(argv, 1, "", error)
        return subprocess.CompletedProcess(argv, 0, yaml_model, "")

    class Started:
        def result(self) -> subprocess.CompletedProcess[str]:
            return run(["docker", "compose", "config", "--format", "json"])

    monkeypatch.setattr(docker.subprocess, "run", run)
    monkeypatch.setattr(docker, "raise_if_daemon_gone", lambda what, stderr: None)
    data = compose_config.config(docker.ComposeProject(tmp_path), started=Started())  # type: ignore[arg-type]
    assert data["services"]["app"]["build"]["ssh"] == ["mykey: /tmp/key"]
    assert data["services"]["app"]["environment"] == {"DEBUG": "true"}
    assert "YAML form works (a Compose bug)" in capsys.readouterr().err


def test_config_does_not_hide_a_project_compose_rejects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_run(monkeypatch, {"config": (1, "services.web.ports must be a array")})
    monkeypatch.setattr(docker, "raise_if_daemon_gone", lambda what, stderr: None)

    class Started:
        def result(self) -> subprocess.CompletedProcess[str]:
            return docker.run(["docker", "compose", "config", "--format", "json"])

    with pytest.raises(docker.ComposeError, match="ports must be a array"):
        compose_config.config(docker.ComposeProject(tmp_path), started=Started())  # type: ignore[arg-type]
