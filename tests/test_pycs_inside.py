"""pycs_inside: pycs the host was denied are asked of a running container that mounts them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch import docker, pycs_inside
from cslaunch.bytecode import Skipped
from cslaunch.containers import Container
from cslaunch.model import parse_stack

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def _container(service: str, status: str = "running") -> Container:
    return Container(
        id=f"{service}-id", name=f"p-{service}-1", service=service, status=status, health=None,
        health_output="", exit_code=0, restart_count=0, started_at=T0, created=T0,
        image_id="sha256:x", pid=1,
    )  # fmt: skip


STACK = parse_stack(
    {
        "name": "p",
        "services": {
            "api": {
                "image": "app",
                "volumes": [
                    {"type": "bind", "source": "/p/src", "target": "/app"},
                    {"type": "bind", "source": "/p/src/static", "target": "/www"},
                ],
            },
            "worker": {
                "image": "app",
                "volumes": [{"type": "bind", "source": "/p/jobs", "target": "/jobs"}],
            },
        },
    }
)  # fmt: skip


def test_where_a_container_sees_a_host_file() -> None:
    api = STACK.services["api"]
    assert (
        pycs_inside.container_path(api, "/p/src/m/__pycache__/x.pyc") == "/app/m/__pycache__/x.pyc"
    )
    assert pycs_inside.container_path(api, "/p/src/static/a.pyc") == "/www/a.pyc"  # the deeper
    assert pycs_inside.container_path(api, "/p/srcs/a.pyc") is None
    assert pycs_inside.container_path(api, "/p/src") == "/app"


def test_only_denied_pycs_go_one_exec_per_container(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], str, Any]] = []

    def exec_in(cid: str, argv: Sequence[str], *, input: str, timeout: float, user: str) -> Any:
        paths = json.loads(input)
        calls.append((cid, paths, user, argv[0]))
        if argv[0] == "python3" and cid == "worker-id":
            return subprocess.CompletedProcess(argv, 127, "", "executable file not found")
        return subprocess.CompletedProcess(argv, 0, json.dumps({"removed": paths[:1]}), "")

    monkeypatch.setattr(docker, "exec_in", exec_in)
    skipped = [
        Skipped(Path("/p/src/m/__pycache__/a.cpython-311.pyc"), "permission denied"),
        Skipped(Path("/p/src/m/__pycache__/b.cpython-311.pyc"), "permission denied"),
        Skipped(Path("/p/src/m/__pycache__/c.cpython-311.pyc"), "locked by another process"),
        Skipped(Path("/p/jobs/__pycache__/j.cpython-311.pyc"), "permission denied"),
        Skipped(Path("/elsewhere/__pycache__/e.cpython-311.pyc"), "permission denied"),
    ]
    containers = {"api": [_container("api")], "worker": [_container("worker")]}
    gone = pycs_inside.remove(skipped, STACK, containers)
    assert gone == [
        "/p/src/m/__pycache__/a.cpython-311.pyc",
        "/p/jobs/__pycache__/j.cpython-311.pyc",
    ]
    assert [(c[0], c[2], c[3]) for c in calls] == [
        ("api-id", "0", "python3"), ("worker-id", "0", "python3"), ("worker-id", "0", "python")
    ]  # fmt: skip
    assert calls[0][1] == [
        "/app/m/__pycache__/a.cpython-311.pyc", "/app/m/__pycache__/b.cpython-311.pyc"
    ]  # fmt: skip


def test_no_running_container_no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "exec_in", lambda *a, **k: pytest.fail("no exec expected"))
    skipped = [Skipped(Path("/p/src/a.pyc"), "permission denied")]
    assert pycs_inside.remove(skipped, STACK, {"api": [_container("api", "exited")]}) == []
    assert pycs_inside.remove([], STACK, {"api": [_container("api")]}) == []


def test_the_script_removes_only_regular_bytecode_files(tmp_path: Path) -> None:
    """The script itself, run here: a link named like a pyc is not followed nor removed by
    it, and a __pycache__ left empty goes."""
    import sys

    cache = tmp_path / "m" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "a.cpython-311.pyc").write_bytes(b"x")
    target = tmp_path / "keep.pyc"
    target.write_bytes(b"k")
    (tmp_path / "link.pyc").symlink_to(target)
    (tmp_path / "notes.txt").write_text("n")
    asked = [str(cache / "a.cpython-311.pyc"), str(tmp_path / "link.pyc"),
             str(tmp_path / "notes.txt"), str(tmp_path / "gone.pyc")]  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-S", "-c", pycs_inside._SCRIPT],
        input=json.dumps(asked), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["removed"] == [asked[0], asked[3]]
    assert not cache.exists() and target.exists() and (tmp_path / "link.pyc").is_symlink()
    assert (tmp_path / "notes.txt").exists()
