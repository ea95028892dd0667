"""The host's venv under a bind mount that the service's own volume hides (`.:/app` beside
`/app/.venv`): none of the service's code, not walked, restarts nothing."""

from __future__ import annotations

from pathlib import Path

from cslaunch import changes, scan, track
from cslaunch.model import Service, parse_stack


def project(tmp_path: Path, volumes: list[str]) -> tuple[Service, Path]:
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / ".venv" / "lib" / "dep.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("X = 1\n")
    binds = [{"type": "bind", "source": str(tmp_path), "target": "/app/"}]
    anonymous = [{"type": "volume", "target": t} for t in volumes]
    stack = parse_stack({"name": "t", "services": {"api": {"volumes": binds + anonymous}}})
    return stack.services["api"], tmp_path


def test_only_a_venv_the_services_own_volume_hides(tmp_path: Path) -> None:
    service, root = project(tmp_path, ["/app/.venv/", "/app/pkg", "/x/.venv"])
    # A project package under a volume stays the service's code: the proof finds it hidden.
    assert changes.hidden_venvs(service, [str(root)]) == (str(root / ".venv"),)
    assert changes.hidden_venvs(service, []) == ()  # not a tracked bind-mounted directory
    bare, _ = project(tmp_path / "bare", [])
    assert changes.hidden_venvs(bare, [str(tmp_path / "bare")]) == ()


def test_a_hidden_venv_is_not_walked_and_restarts_nothing(tmp_path: Path) -> None:
    service, root = project(tmp_path, ["/app/.venv"])
    files = changes.service_files(service, runs_code=True, source_patterns=())
    assert files.hidden == (str(root / ".venv"),)
    trees, _ = track.trees([files])
    found = scan.scan(trees)
    assert sorted(found.files) == [str(root / "pkg" / "m.py")]
    dep = str(root / ".venv" / "lib" / "dep.py")
    assert files.restart_files([dep, str(root / "pkg" / "m.py")]) == [str(root / "pkg" / "m.py")]
    # watch's saved files: one in the hidden venv is outside every tree, as for the walk.
    again = scan.rescan(trees, [], found.files, [dep])
    assert again is None or dep not in again.files


def test_a_named_volume_that_is_a_host_directory_hides_nothing(tmp_path: Path) -> None:
    """`venv: {driver_opts: {type: none, o: bind, device: ./.venv}}` at /app/.venv: the
    container runs the host's venv itself, so it stays the service's to watch."""
    _, root = project(tmp_path, [])
    binds = [{"type": "bind", "source": str(root), "target": "/app"}]
    named = [{"type": "volume", "source": "venv", "target": "/app/.venv"}]
    data = {
        "name": "t",
        "services": {"api": {"volumes": binds + named}},
        "volumes": {"venv": {"driver_opts": {"type": "none", "o": "bind", "device": "x"}}},
    }
    api = parse_stack(data).services["api"]
    assert api.host_volumes == ("/app/.venv",)
    assert changes.hidden_venvs(api, [str(root)]) == ()
    data["volumes"] = {"venv": {}}
    assert changes.hidden_venvs(parse_stack(data).services["api"], [str(root)]) == (
        str(root / ".venv"),
    )


def test_the_python_roots_walk_leaves_out_a_venv_only_every_service_hides(
    tmp_path: Path,
) -> None:
    _, root = project(tmp_path, [])
    bind = {"type": "bind", "source": str(root), "target": "/app"}
    venv = {"type": "volume", "target": "/app/.venv"}
    dep = str(root / ".venv" / "lib" / "dep.py")
    for worker, walked in (([bind, venv], False), ([bind], True)):
        services = {"api": {"volumes": [bind, venv]}, "worker": {"volumes": worker}}
        stack = parse_stack({"name": "t", "services": services})
        cs = changes.detect(root, stack, {}, {"api", "worker"}, [root], use_index=False)
        assert (dep in cs.scan.files) is walked
        assert str(root / "pkg" / "m.py") in cs.scan.files
