"""Small pure pieces: container JSON, docker argv and JSON streams, project lookup, and the
formatting helpers of the reports."""

from __future__ import annotations

import copy
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch.commands import status
from cslaunch.commands.status import duration
from cslaunch.containers import Container, by_service, parse_container, parse_time
from cslaunch.docker import ComposeProject, first_error_line, parse_json_stream
from cslaunch.errors import COMPOSE, ComposeError
from cslaunch.project import COMPOSE_FILE_NAMES, COMPOSE_VARIABLES, read_dotenv, resolve
from cslaunch.ui import UI, human_bytes, plural

UTC = timezone.utc

# --- containers.parse_time -----------------------------------------------------------------


def test_parse_time_nanoseconds() -> None:
    parsed = parse_time("2024-05-01T12:34:56.123456789Z")
    assert parsed == datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=UTC)


def test_parse_time_short_fraction_and_no_fraction() -> None:
    assert parse_time("2024-05-01T12:34:56.5Z") == datetime(
        2024, 5, 1, 12, 34, 56, 500000, tzinfo=UTC
    )
    assert parse_time("2024-05-01T12:34:56Z") == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)


def test_parse_time_offset_without_fraction() -> None:
    parsed = parse_time("2024-05-01T14:34:56+02:00")
    assert parsed == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)


def test_parse_time_naive_is_utc() -> None:
    parsed = parse_time("2024-05-01T12:34:56")
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", [None, "", "0001-01-01T00:00:00Z"])
def test_parse_time_zero_or_missing(text: str | None) -> None:
    assert parse_time(text) is None


def test_parse_time_nanoseconds_with_offset() -> None:
    parsed = parse_time("2024-05-01T14:34:56.123456789+02:00")
    assert parsed == datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=UTC)


# --- containers.parse_container ---------------------------------------------------------------

INSPECT: dict[str, Any] = {
    "Id": "c73a8dd626ef38c3a27a62a723376fefe2ceccb49b073773a12d6a2b90d73485",
    "Created": "2024-05-01T07:35:21.010617293Z",
    "Path": "python3",
    "Args": ["-m", "http.server"],
    "State": {
        "Status": "running",
        "Running": True,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 5623,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": "2024-05-01T07:42:30.555622717Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {
            "Status": "unhealthy",
            "FailingStreak": 3,
            "Log": [
                {
                    "Start": "2024-05-01T07:45:30.476669409Z",
                    "End": "2024-05-01T07:45:30.713119746Z",
                    "ExitCode": 0,
                    "Output": "",
                },
                {
                    "Start": "2024-05-01T07:45:31.719838028Z",
                    "End": "2024-05-01T07:45:31.837428261Z",
                    "ExitCode": 1,
                    "Output": "Traceback...\nConnectionRefusedError: [Errno 111]\n",
                },
            ],
        },
    },
    "Image": "sha256:5d9f12ba6e6778708b7c31b45088d559c2e8ac7ed96416d56e0562d790168465",
    "Name": "/shop-frontend-1",
    "RestartCount": 2,
    "Config": {
        "Image": "shop-frontend",
        "Labels": {
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "frontend",
        },
    },
}


def test_parse_container_with_health() -> None:
    c = parse_container(INSPECT)
    assert c.id == INSPECT["Id"]
    assert c.name == "shop-frontend-1"
    assert c.service == "frontend"
    assert c.status == "running"
    assert c.running
    assert c.health == "unhealthy"
    assert c.health_output == "Traceback...\nConnectionRefusedError: [Errno 111]"
    assert c.exit_code == 0
    assert c.restart_count == 2
    assert c.started_at == datetime(2024, 5, 1, 7, 42, 30, 555622, tzinfo=UTC)
    assert c.created == datetime(2024, 5, 1, 7, 35, 21, 10617, tzinfo=UTC)
    assert c.image_id == INSPECT["Image"]
    assert c.pid == 5623


def test_parse_container_without_health() -> None:
    data = copy.deepcopy(INSPECT)
    del data["State"]["Health"]
    data["State"].update(Status="exited", Running=False, Pid=0, ExitCode=137)
    c = parse_container(data)
    assert c.health is None
    assert c.health_output == ""
    assert c.status == "exited"
    assert not c.running
    assert c.exit_code == 137
    assert c.pid == 0


def test_parse_container_health_with_empty_log() -> None:
    data = copy.deepcopy(INSPECT)
    data["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    c = parse_container(data)
    assert (c.health, c.health_output) == ("starting", "")


def test_parse_container_mounts_include_compose_tmpfs() -> None:
    """Compose's `tmpfs:` key lands in HostConfig.Tmpfs, not in Mounts: both are mounts."""
    data = copy.deepcopy(INSPECT)
    data["Mounts"] = [{"Type": "bind", "Source": "/src", "Destination": "/app"}]
    data["HostConfig"] = {"Tmpfs": {"/app/cache": "size=64m"}}
    assert parse_container(data).mounts == (
        ("bind", "/src", "/app"),
        ("tmpfs", "", "/app/cache"),
    )


def test_parse_container_minimal_and_not_compose() -> None:
    c = parse_container({"Id": "abc"})
    assert c == Container(
        id="abc",
        name="",
        service="",
        status="unknown",
        health=None,
        health_output="",
        exit_code=0,
        restart_count=0,
        started_at=None,
        created=None,
        image_id="",
        pid=0,
    )


def test_by_service_groups_in_order() -> None:
    a1 = parse_container({**INSPECT, "Id": "a1"})
    b1 = parse_container({"Id": "b1", "Config": {"Labels": {"com.docker.compose.service": "b"}}})
    a2 = parse_container({**INSPECT, "Id": "a2"})
    assert by_service([a1, b1, a2]) == {"frontend": [a1, a2], "b": [b1]}


# --- docker.parse_json_stream / argv / first_error_line -------------------------------------


def test_json_stream_one_array() -> None:
    text = '[{"ID": "a", "Service": "web"}, {"ID": "b", "Service": "db"}]\n'
    assert parse_json_stream(text) == [{"ID": "a", "Service": "web"}, {"ID": "b", "Service": "db"}]


def test_json_stream_ndjson() -> None:
    text = '{"ID": "a", "Service": "web"}\n\n{"ID": "b", "Service": "db"}\n'
    assert parse_json_stream(text) == [{"ID": "a", "Service": "web"}, {"ID": "b", "Service": "db"}]


def test_json_stream_single_object_line() -> None:
    assert parse_json_stream('{"ID": "a"}\n') == {"ID": "a"}


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"])
def test_json_stream_empty(text: str) -> None:
    assert parse_json_stream(text) == []


def test_argv_plain() -> None:
    assert ComposeProject(Path("/p")).argv("ps", "--all") == ["docker", "compose", "ps", "--all"]


def test_argv_full_in_order() -> None:
    project = ComposeProject(
        directory=Path("/work"),
        files=("compose.yml", "compose.dev.yml"),
        name="shop",
        project_directory=Path("/work/shop"),
        profiles=("dev", "workers"),
    )
    assert project.argv("up", "--detach") == [
        "docker",
        "compose",
        "-f",
        "compose.yml",
        "-f",
        "compose.dev.yml",
        "-p",
        "shop",
        "--project-directory",
        "/work/shop",
        "--profile",
        "dev",
        "--profile",
        "workers",
        "up",
        "--detach",
    ]


def test_first_error_line_skips_warnings() -> None:
    stderr = (
        "services.web.ports must be a list\n"
        'time="2024-05-01T12:00:00Z" level=warning msg="version is obsolete"\n'
        "WARN[0000] something\n"
    )
    assert first_error_line(stderr) == "services.web.ports must be a list"
    assert first_error_line("WARN only\n") == "WARN only"
    assert first_error_line("") == "(no message)"


# --- project.resolve ---------------------------------------------------------------------------


@pytest.fixture
def no_compose_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in COMPOSE_VARIABLES:
        monkeypatch.delenv(key, raising=False)


def touch(path: Path, text: str = "services: {}\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_finds_compose_file_in_a_parent(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")
    cwd = tmp_path / "backend" / "src"
    cwd.mkdir(parents=True)
    project = resolve(cwd=cwd)
    assert project.root == tmp_path
    assert project.compose.directory == tmp_path
    assert project.compose.files == ()
    assert project.compose.project_directory is None


@pytest.mark.usefixtures("no_compose_env")
@pytest.mark.parametrize("name", COMPOSE_FILE_NAMES)
def test_resolve_knows_every_default_name(tmp_path: Path, name: str) -> None:
    touch(tmp_path / name)
    assert resolve(cwd=tmp_path).root == tmp_path


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_cslaunch_toml_marks_the_root(tmp_path: Path) -> None:
    touch(tmp_path / "cslaunch.toml", 'compose_files = ["deploy/dev.yml"]\n')
    cwd = tmp_path / "pkg"
    cwd.mkdir()
    project = resolve(cwd=cwd)
    assert project.root == tmp_path
    assert project.compose.files == (str(tmp_path / "deploy" / "dev.yml"),)


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_file_option_sets_root_to_its_dir(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")  # ignored: -f names another project
    touch(tmp_path / "deploy" / "stack.yml")
    project = resolve(files=["deploy/stack.yml", "deploy/override.yml"], cwd=tmp_path)
    assert project.root == tmp_path / "deploy"
    assert project.compose.files == ("deploy/stack.yml", "deploy/override.yml")
    assert project.compose.directory == tmp_path  # Compose resolves -f from the cwd


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_file_option_ignores_config_compose_files(tmp_path: Path) -> None:
    touch(tmp_path / "cslaunch.toml", 'compose_files = ["other.yml"]\n')
    project = resolve(files=["mine.yml"], cwd=tmp_path)
    assert project.compose.files == ("mine.yml",)


def test_resolve_compose_file_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "compose.yaml")
    touch(tmp_path / "ops" / "a.yml")
    monkeypatch.setenv("COMPOSE_FILE", "ops/a.yml:ops/b.yml")
    monkeypatch.delenv("COMPOSE_PATH_SEPARATOR", raising=False)
    project = resolve(cwd=tmp_path)
    assert project.root == tmp_path / "ops"
    assert project.compose.files == ()  # Compose reads COMPOSE_FILE itself
    assert project.compose.directory == tmp_path


def test_resolve_compose_file_env_custom_separator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPOSE_FILE", "x/a.yml,y/b.yml")
    monkeypatch.setenv("COMPOSE_PATH_SEPARATOR", ",")
    assert resolve(cwd=tmp_path).root == tmp_path / "x"


def test_resolve_compose_file_env_beats_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "ops" / "cslaunch.toml", 'compose_files = ["ignored.yml"]\ntimeout = 7\n')
    monkeypatch.setenv("COMPOSE_FILE", "ops/a.yml")
    project = resolve(cwd=tmp_path)
    assert project.compose.files == ()
    assert project.config.timeout == 7.0  # the config of the root is still read


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_compose_file_from_dotenv_not_a_parent_project(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")  # a parent's project: not the one .env names
    project_dir = tmp_path / "proj"
    touch(project_dir / "deploy" / "base.yml")
    touch(
        project_dir / ".env",
        "# Compose reads these\nexport COMPOSE_FILE='deploy/base.yml;deploy/dev.yml'\n"
        "COMPOSE_PATH_SEPARATOR=;\nCOMPOSE_PROJECT_NAME=fromenv  # a comment\n"
        "COMPOSE_PROFILES=dev\n",
    )
    touch(project_dir / "deploy" / "cslaunch.toml", 'project_name = "x"\nprofiles = ["y"]\n')
    project = resolve(cwd=project_dir)
    assert project.root == project_dir / "deploy"
    assert project.compose.directory == project_dir  # Compose reads .env and COMPOSE_FILE there
    # The environment's (and .env's) name and profiles win over cslaunch's config, as over
    # the Compose file's own `name:`: cslaunch and `docker compose` see one project.
    assert project.compose.name is None and project.compose.profiles == ()


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_config_name_and_profiles_without_env(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")
    touch(tmp_path / "cslaunch.toml", 'project_name = "x"\nprofiles = ["y"]\n')
    project = resolve(cwd=tmp_path)
    assert project.compose.name == "x" and project.compose.profiles == ("y",)


def test_read_dotenv(tmp_path: Path) -> None:
    touch(
        tmp_path / ".env",
        "A=1\n# B=2\nexport C = \"x # y\"\nD=\nE=v # note\nnot a line\nF='q'\n",
    )
    assert read_dotenv(tmp_path / ".env") == {"A": "1", "C": "x # y", "D": "", "E": "v", "F": "q"}
    assert read_dotenv(tmp_path / "missing") == {}


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_nothing_anywhere(tmp_path: Path) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    markers = (*COMPOSE_FILE_NAMES, "cslaunch.toml")
    if any((d / n).is_file() for d in cwd.parents for n in markers):
        pytest.skip("a parent of the temporary directory holds a compose file")
    with pytest.raises(ComposeError, match="no Compose file in") as info:
        resolve(cwd=cwd)
    assert info.value.exit_code == COMPOSE
    assert info.value.hint and "-f" in info.value.hint


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_config_compose_files_and_settings(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")
    touch(
        tmp_path / "pyproject.toml",
        '[tool.cslaunch]\ncompose_files = ["compose.yaml", "compose.dev.yaml"]\n'
        'project_name = "shop"\nprofiles = ["dev"]\n',
    )
    project = resolve(cwd=tmp_path)
    assert project.compose.files == (
        str(tmp_path / "compose.yaml"),
        str(tmp_path / "compose.dev.yaml"),
    )
    assert project.compose.name == "shop"
    assert project.compose.profiles == ("dev",)
    assert project.config.project_name == "shop"


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_command_line_beats_config(tmp_path: Path) -> None:
    touch(tmp_path / "compose.yaml")
    touch(tmp_path / "cslaunch.toml", 'project_name = "cfg"\nprofiles = ["cfg"]\n')
    project = resolve(name="cli", profiles=["a", "b"], cwd=tmp_path)
    assert project.compose.name == "cli"
    assert project.compose.profiles == ("a", "b")


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_project_directory(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    project = resolve(project_directory=Path("proj"), cwd=tmp_path)
    assert project.root == tmp_path / "proj"
    assert project.compose.directory == tmp_path / "proj"
    assert project.compose.project_directory == tmp_path / "proj"
    with pytest.raises(ComposeError, match="project directory not found"):
        resolve(project_directory=Path("missing"), cwd=tmp_path)


# --- ui.human_bytes / status.duration ----------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (1024**2, "1.0 MB"),
        (5 * 1024**2 + 512 * 1024, "5.5 MB"),
        (1024**3, "1.0 GB"),
        (3 * 1024**4, "3072.0 GB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-5.0, "0s"),
        (0.0, "0s"),
        (42.4, "42s"),
        (60.0, "1m"),
        (150.0, "2m"),
        (3600.0, "1h"),
        (5 * 3600.0, "5h"),
        (86400.0, "1d"),
        (timedelta(days=3).total_seconds(), "3d"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.usefixtures("no_compose_env")
def test_resolve_stdin_compose_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("services:\n  web:\n    image: x\n"))
    project = resolve(files=["-"], cwd=tmp_path)
    assert project.root == tmp_path
    # Compose's project directory for `-f -` is the working directory, not the copy's.
    assert project.compose.project_directory == tmp_path
    (copy,) = project.compose.files
    assert Path(copy).read_text() == "services:\n  web:\n    image: x\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ComposeError, match="nothing on standard input"):
        resolve(files=["-"], cwd=tmp_path)


def test_status_columns_line_up_with_short_names(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        status.ServiceStatus("db", "running", "healthy", 70.0, 3600.0, 1),
        status.ServiceStatus("a", "not created", None, None, None, 0),
    ]
    status.render(UI(), "proj", rows)
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [ln.index("STATE") for ln in lines[:1]] == [ln.index("running") for ln in lines[1:2]]
    assert lines[0].index("STATE") == lines[2].index("not created")


@pytest.mark.parametrize(("n", "text"), [(0, "0 files"), (1, "1 file"), (2, "2 files")])
def test_plural(n: int, text: str) -> None:
    assert plural(n, "file") == text


def test_a_pyc_problem_about_a_source_edited_since_the_scan_is_set_aside(tmp_path: Path) -> None:
    """Edited between the scan and the look (the next launch takes it): its problems are
    not this launch's verdict, the pyc's included, wherever the pyc lives."""
    from cslaunch import verify
    from cslaunch.scan import file_stat

    host = tmp_path / "m.py"
    host.write_text("x = 1\n")
    target = verify.Target(str(host), "/app/m.py", "d", 0, file_stat(str(host)))
    host.write_text("x = 22\n")
    looked: Any = {
        "python": "3.11.2",
        "checked": 1,
        "pycs": 2,
        "hashed": 1,
        "problems": [
            ["/app/m.py", "differs from the host's file"],
            ["/app/__pycache__/m.cpython-311.pyc", "stale pyc"],
            ["/root/.cache/pycache/app/m.cpython-311.pyc", "stale pyc", "/app/m.py"],
            ["/app/other.py", "missing in the container"],
        ],
    }
    kept, edited = verify.set_aside_edits(looked, [target])
    assert edited == {str(host)} and not isinstance(kept, str)
    assert kept["problems"] == [["/app/other.py", "missing in the container"]]


def test_the_redis_ping_uses_the_client_the_image_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Valkey image may ship valkey-cli alone; an image with no client at all is judged by
    its container state."""
    import subprocess

    from cslaunch import docker, readiness
    from cslaunch.containers import parse_container

    asked: list[str] = []

    def exec_in(cid: str, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        asked.append(argv[0])
        if argv[0] in have:
            return subprocess.CompletedProcess(argv, 0, answer, "")
        return subprocess.CompletedProcess(argv, 127, "", "exec: executable file not found")

    monkeypatch.setattr(docker, "exec_in", exec_in)
    box = parse_container(
        {"Id": "c", "Name": "/p-r-1", "Config": {"Labels": {}}, "State": {"Status": "running"}}
    )
    have, answer = {"valkey-cli"}, "LOADING Valkey is loading the dataset in memory\n"
    assert readiness.redis(6379)(box) == readiness.REDIS_LOADING
    assert asked == ["redis-cli", "valkey-cli"]
    have, answer = {"valkey-cli"}, "PONG\n"
    assert readiness.redis(6379)(box) is None
    have, asked[:] = set(), []
    assert readiness.redis(6379)(box) is None
    assert asked == ["redis-cli", "valkey-cli", "keydb-cli"]
