"""The Engine API path (cslaunch.engine_api) against the real daemon: every container call gives
what the docker CLI gives, and the socket's failures read like the CLI's."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cslaunch import compose_config, docker
from cslaunch.engine_api import _body, demux, docker_host, frames, local
from cslaunch.errors import DockerError, LaunchFailed
from tests.stackutil import TestStack

PROJECT = "cslt-api"
T = TypeVar("T")


@pytest.fixture
def box(engine: str) -> Iterator[str]:
    """A running container labelled as a Compose service of project cslt-api-<n>."""
    name = f"{PROJECT}-{uuid.uuid4().hex[:6]}"
    labels = {
        "com.docker.compose.project": name,
        "com.docker.compose.service": "box",
        "com.docker.compose.oneoff": "False",
    }
    argv = ["docker", "run", "-d", "--name", name, "--network", "none"]
    for k, v in labels.items():
        argv += ["--label", f"{k}={v}"]
    cid = subprocess.run(
        [*argv, engine, "sleep", "600"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield cid
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def both(monkeypatch: pytest.MonkeyPatch, call: Callable[[], T]) -> tuple[T, T]:
    """The same call through the Engine API and through the CLI."""
    assert local() is not None, "these tests need the local socket"
    api = call()
    monkeypatch.setenv("CSLAUNCH_DOCKER_API", "0")
    cli = call()
    monkeypatch.delenv("CSLAUNCH_DOCKER_API")
    return api, cli


def test_exec_answers_like_the_cli(box: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    api, cli = both(monkeypatch, lambda: docker.exec_in(box, script, timeout=30))
    assert (api.returncode, api.stdout, api.stderr) == (3, "out\n", "err\n")
    assert (cli.returncode, cli.stdout, cli.stderr) == (3, "out\n", "err\n")


def test_exec_as_another_user_like_the_cli(box: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["id", "-u"]
    api, cli = both(monkeypatch, lambda: docker.exec_in(box, argv, timeout=30, user="65534"))
    assert (api.returncode, api.stdout, cli.returncode, cli.stdout) == (0, "65534\n", 0, "65534\n")


def test_exec_with_input_large_both_ways(box: str) -> None:
    # 3 MB in, 3 MB out, the command writing while it still reads: no deadlock.
    data = "x" * 3_000_000
    result = docker.exec_in(box, ["cat"], input=data, timeout=60)
    assert result.returncode == 0 and result.stdout == data


def test_exec_input_is_never_lost(box: str) -> None:
    # Input sent before the engine takes the connection over was dropped at random.
    docker.kill([box])
    docker.start(box)
    for i in range(15):
        result = docker.exec_in(box, ["cat"], input=f'{{"n": {i}}}', timeout=30)
        assert result.stdout == f'{{"n": {i}}}'


def test_exec_of_a_missing_program_says_so_on_stderr(
    box: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, cli = both(monkeypatch, lambda: docker.exec_in(box, ["no-such-program"], timeout=30))
    for r in (api, cli):
        assert r.returncode in (126, 127)
        assert "executable file not found" in r.stderr and r.stdout == ""


def test_exec_in_a_gone_or_stopped_container(box: str, monkeypatch: pytest.MonkeyPatch) -> None:
    api, cli = both(monkeypatch, lambda: docker.exec_in("no-such-container", ["true"]))
    for r in (api, cli):
        assert r.returncode == 1 and "No such container" in r.stderr
    docker.kill([box])
    api, cli = both(monkeypatch, lambda: docker.exec_in(box, ["true"]))
    for r in (api, cli):
        assert r.returncode == 1 and "is not running" in r.stderr


def test_container_lookup_inspect_and_images(
    box: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = docker.inspect([box])[0]["Config"]["Labels"]["com.docker.compose.project"]
    api, cli = both(monkeypatch, lambda: docker.container_ids(project))
    assert api == cli == [box]
    api, cli = both(monkeypatch, lambda: docker.container_ids(project, service="box", running=True))
    assert api == cli == [box]
    assert docker.container_ids(project, service="other") == []
    # A container removed meanwhile is left out, not an error.
    api, cli = both(monkeypatch, lambda: docker.inspect([box, "f" * 64]))
    assert [d["Id"] for d in api] == [d["Id"] for d in cli] == [box]
    assert api[0]["State"] == cli[0]["State"]
    names = [engine, "cslaunch-no-such-image:1"]
    api, cli = both(monkeypatch, lambda: docker.existing_images(names))
    assert api == cli == {engine}


def test_kill_stop_start(box: str) -> None:
    docker.stop([box], 1)
    assert docker.inspect([box])[0]["State"]["Running"] is False
    docker.kill([box])  # not running: what was wanted anyway
    docker.start(box)
    docker.start(box)  # already running: nothing to do, as with the CLI
    assert docker.inspect([box])[0]["State"]["Running"] is True
    with pytest.raises(LaunchFailed, match=r"docker start gone failed: .*No such container"):
        docker.start("cslaunch-no-such-container", name="gone")


def test_a_socket_nobody_listens_on_is_a_daemon_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()  # the file stays, nobody listens: a daemon that died
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    with pytest.raises(DockerError, match="daemon is not reachable") as info:
        docker.container_ids("x")
    assert info.value.exit_code == 4
    with pytest.raises(DockerError, match="daemon is not reachable"):
        docker.exec_in("x", ["true"])


# --- unit: address resolution and the wire format ---------------------------------------------


def test_docker_host_follows_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_host() == "unix:///var/run/docker.sock"
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"colima").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "colima", "Endpoints": {"docker": {"Host": "unix:///x/c.sock"}}})
    )
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    assert docker_host() == "unix:///x/c.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert docker_host() == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "unreadable")
    assert docker_host() is None  # the CLI knows: let it answer
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2376")
    assert local() is None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing.sock")
    assert local() is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    monkeypatch.setenv("CSLAUNCH_DOCKER_API", "off")
    assert local() is None


def test_demux_and_chunked_bodies() -> None:
    frame = bytes([1, 0, 0, 0, 0, 0, 0, 3]) + b"out" + bytes([2, 0, 0, 0, 0, 0, 0, 2]) + b"er"
    assert demux(frame + bytes([1, 0, 0, 0, 0, 0, 0, 1]) + b"!") == (b"out!", b"er")
    assert demux(b"") == (b"", b"")
    # Cut short (the connection closed mid-frame): what came whole, and what came of the rest.
    assert demux(frame + bytes([1, 0, 0, 0, 0, 0, 0, 9]) + b"par") == (b"outpar", b"er")
    raw = b"a TTY's output is not multiplexed\n"
    assert demux(raw) == (raw, b"")
    chunked = b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
    assert _body({"transfer-encoding": "chunked"}, chunked) == b'{"a": 1}'
    assert _body({"content-length": "2"}, b"{}garbage") == b"{}"


def test_the_plugin_run_directly_gives_compose_s_own_model(stack: TestStack) -> None:
    assert compose_config.compose_plugin() is not None, "scripts/testenv.sh installs the plugin"
    project = docker.ComposeProject(stack.dir)
    direct = compose_config.config(project)
    assert direct == json.loads(stack.compose("config", "--format", "json").stdout)
    assert direct["name"] == stack.name


def test_frames_keep_the_order_stdout_and_stderr_were_written_in() -> None:
    def frame(kind: int, data: bytes) -> bytes:
        return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data

    stream = frame(1, b"started\n") + frame(2, b"unsubscribing\n") + frame(1, b"bye\n")
    assert frames(stream) == [b"started\n", b"unsubscribing\n", b"bye\n"]
    # A TTY container's logs are not multiplexed: taken as they are.
    raw = b"Worker w: unsubscribing from channel rq:pubsub:w\r\n"
    assert frames(raw) == [raw]
    assert frames(b"") == []
