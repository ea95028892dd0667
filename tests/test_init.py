"""`cslaunch init`: the derived configuration, written commented out, never overwriting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cslaunch.commands import init
from cslaunch.config import Config, load_config
from cslaunch.docker import ComposeProject
from cslaunch.errors import PathError
from cslaunch.model import Roots, parse_stack
from cslaunch.project import Project
from cslaunch.stack import Detected


def detected(root: Path) -> Detected:
    (root / "src").mkdir()
    raw = {
        "name": "demo",
        "services": {
            "api": {
                "command": ["gunicorn", "app:app"],
                "volumes": [{"type": "bind", "source": str(root / "src"), "target": "/app"}],
            },
            "worker": {"command": ["rq", "worker"]},
            "redis": {"image": "redis:7", "command": ["redis-server", "--port", "6380"]},
        },
    }
    stack = parse_stack(raw)
    project = Project(ComposeProject(root, name="demo"), Config(), root)
    python = frozenset({"api", "worker"})
    return Detected(project, stack, raw, python, Roots((root / "src",), ()), {})


def test_written_config_is_valid_and_changes_nothing(tmp_path: Path) -> None:
    text = init.render(detected(tmp_path), tmp_path, "http://localhost:8000")
    assert 'python_roots = ["src"]' in text
    assert "redis (PING probe on port 6380)" in text and "RQ worker" in text
    path = init.write(tmp_path, text, pyproject=False)
    assert path.name == "cslaunch.toml"
    config = load_config(tmp_path)
    assert config.python_roots is None and config.services == {}  # all commented out
    assert config == Config(source=path)
    with pytest.raises(PathError):
        init.write(tmp_path, text, pyproject=False)  # never overwritten


def test_pyproject_section_is_appended_once(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    text = init.render(detected(tmp_path), tmp_path, None)
    init.write(tmp_path, text, pyproject=True)
    content = (tmp_path / "pyproject.toml").read_text()
    assert content.startswith('[project]\nname = "x"\n') and "[tool.cslaunch]" in content
    assert load_config(tmp_path).timeout == 120
    with pytest.raises(PathError):
        init.write(tmp_path, text, pyproject=True)


def test_no_url_derived_writes_none(tmp_path: Path) -> None:
    text = init.render(detected(tmp_path), tmp_path, None)
    assert "none derived" in text
    assert "localhost:8000" not in text  # a default it did not derive
    load_config_from(tmp_path, text)


def load_config_from(root: Path, text: str) -> Config:
    (root / "cslaunch.toml").write_text(text)
    return load_config(root)
