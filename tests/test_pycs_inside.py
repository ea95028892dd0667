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


def _stack(root: Path) -> Any:
    """api mounts the project (and a static dir elsewhere); frontend mounts it too, read-only
    and without Python; worker mounts the jobs."""

    def bind(source: Path, target: str) -> dict[str, str]:
        return {"type": "bind", "source": str(source), "target": target}

    return parse_stack(
        {
            "name": "p",
            "services": {
                "api": {"image": "app", "volumes": [bind(root / "src", "/app"),
                                                     bind(root / "src/static", "/www")]},
                "frontend": {"image": "node", "volumes": [bind(root / "src", "/code")]},
                "worker": {"image": "app", "volumes": [bind(root / "jobs", "/jobs")]},
            },
        }
    )  # fmt: skip


def test_where_a_container_sees_a_host_file(tmp_path: Path) -> None:
    api = _stack(tmp_path).services["api"]
    src = tmp_path / "src"
    assert (
        pycs_inside.container_path(api, f"{src}/m/__pycache__/x.pyc") == "/app/m/__pycache__/x.pyc"
    )
    assert pycs_inside.container_path(api, f"{src}/static/a.pyc") == "/www/a.pyc"  # the deeper
    assert pycs_inside.container_path(api, f"{tmp_path}/srcs/a.pyc") is None
    assert pycs_inside.container_path(api, str(src)) == "/app"


def test_denied_pycs_go_through_a_container_the_next_one_if_need_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One exec per container; what a container could not remove (no Python there, or a
    read-only mount) is asked of the next that mounts it; what is gone is what the host no
    longer sees, whatever the container said."""
    stack = _stack(tmp_path)
    mounts = {"api-id": (tmp_path / "src", "/app"), "frontend-id": (tmp_path / "src", "/code"),
              "worker-id": (tmp_path / "jobs", "/jobs")}  # fmt: skip
    calls: list[tuple[str, str, str, list[str]]] = []

    def exec_in(cid: str, argv: Sequence[str], *, input: str, timeout: float, user: str) -> Any:
        paths = json.loads(input)
        calls.append((cid, user, argv[0], paths))
        if cid == "api-id":  # a read-only mount: nothing removed, nothing said
            return subprocess.CompletedProcess(argv, 0, json.dumps({"removed": paths}), "")
        if cid == "frontend-id" and argv[0] == "python3":
            return subprocess.CompletedProcess(argv, 127, "", "executable file not found")
        source, target = mounts[cid]
        for inside in paths:
            (source / inside[len(target) + 1 :]).unlink()
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(docker, "exec_in", exec_in)
    names = [
        "src/m/__pycache__/a.cpython-311.pyc",
        "src/m/__pycache__/b.cpython-311.pyc",
        "jobs/__pycache__/j.cpython-311.pyc",
        "elsewhere/__pycache__/e.cpython-311.pyc",
    ]
    pycs = {name: tmp_path / name for name in names}
    for path in pycs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    skipped = [Skipped(p, "permission denied") for p in pycs.values()]
    skipped.append(Skipped(tmp_path / "src/m/__pycache__/c.cpython-311.pyc", "busy"))
    containers = {n: [_container(n)] for n in ["api", "frontend", "worker"]}
    gone = pycs_inside.remove(skipped, stack, containers)
    assert sorted(gone) == sorted(str(pycs[n]) for n in list(pycs)[:3])
    assert pycs["elsewhere/__pycache__/e.cpython-311.pyc"].exists()
    assert [(c[0], c[1], c[2]) for c in calls] == [
        ("api-id", "0", "python3"), ("worker-id", "0", "python3"),
        ("frontend-id", "0", "python3"), ("frontend-id", "0", "python"),
    ]  # fmt: skip
    assert calls[0][3] == ["/app/m/__pycache__/a.cpython-311.pyc",
                           "/app/m/__pycache__/b.cpython-311.pyc"]  # fmt: skip


def test_no_running_container_no_exec_and_a_failed_exec_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cslaunch.errors import DockerError

    stack = _stack(tmp_path)
    pyc = tmp_path / "src" / "a.pyc"
    pyc.parent.mkdir(parents=True)
    pyc.write_bytes(b"x")
    skipped = [Skipped(pyc, "permission denied")]
    monkeypatch.setattr(docker, "exec_in", lambda *a, **k: pytest.fail("no exec expected"))
    assert pycs_inside.remove(skipped, stack, {"api": [_container("api", "exited")]}) == []
    assert pycs_inside.remove([], stack, {"api": [_container("api")]}) == []

    def times_out(*a: Any, **k: Any) -> Any:
        raise DockerError("docker exec timed out after 60 s")

    monkeypatch.setattr(docker, "exec_in", times_out)
    assert pycs_inside.remove(skipped, stack, {"api": [_container("api")]}) == []


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
    (tmp_path / "json.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    out = subprocess.run(
        pycs_inside.argv(sys.executable),
        input=json.dumps(asked), capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert not (tmp_path / "ran").exists()  # the project's json.py is not run as root
    assert json.loads(out.stdout)["removed"] == [asked[0], asked[3]]
    assert not cache.exists() and target.exists() and (tmp_path / "link.pyc").is_symlink()
    assert (tmp_path / "notes.txt").exists()


def test_a_path_a_deeper_mount_covers_is_not_asked_of_that_container(tmp_path: Path) -> None:
    """`.:/app` beside a volume at /app/.venv and `./other:/app/src/shared`: the container's
    file at those paths is another than the host's, and removing it would remove another
    pyc."""
    stack = parse_stack(
        {
            "name": "p",
            "services": {
                "api": {
                    "volumes": [
                        {"type": "bind", "source": str(tmp_path), "target": "/app"},
                        {"type": "volume", "target": "/app/.venv"},
                        {"type": "bind", "source": str(tmp_path / "other"),
                         "target": "/app/src/shared"},
                    ]
                }
            },
        }
    )  # fmt: skip
    api = stack.services["api"]
    pyc = "__pycache__/m.cpython-311.pyc"
    assert pycs_inside.container_path(api, str(tmp_path / "app" / pyc)) == f"/app/app/{pyc}"
    assert pycs_inside.container_path(api, str(tmp_path / ".venv" / "lib" / pyc)) is None
    assert pycs_inside.container_path(api, str(tmp_path / "src/shared" / pyc)) is None
    assert (
        pycs_inside.container_path(api, str(tmp_path / "other" / pyc)) == f"/app/src/shared/{pyc}"
    )
