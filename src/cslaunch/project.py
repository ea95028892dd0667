"""Find the Compose project the user means, the way Compose does, and its cslaunch config."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cslaunch.config import CONFIG_FILE, Config, load_config
from cslaunch.docker import ComposeProject
from cslaunch.errors import ComposeError

# Compose's own lookup order for a default file.
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


@dataclass(frozen=True)
class Project:
    compose: ComposeProject
    config: Config
    root: Path  # the project directory: config, .cslaunch/ and relative paths live here


def resolve(
    *,
    files: Sequence[str] = (),
    name: str | None = None,
    project_directory: Path | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
) -> Project:
    cwd = (cwd or Path.cwd()).resolve()
    env_files = _compose_file_env()
    if project_directory is not None:
        root = (cwd / project_directory).resolve()
        if not root.is_dir():
            raise ComposeError(f"project directory not found: {root}")
    elif files:
        root = (cwd / files[0]).resolve().parent
    elif env_files:
        root = (cwd / env_files[0]).resolve().parent
    else:
        root = _find_root(cwd)

    config = load_config(root)
    if not files and not env_files and config.compose_files:
        files = [str(root / f) for f in config.compose_files]
    compose = ComposeProject(
        directory=cwd if (files or env_files) and project_directory is None else root,
        files=tuple(files),
        name=name or config.project_name,
        project_directory=root if project_directory is not None else None,
        profiles=tuple(profiles) or config.profiles,
    )
    return Project(compose=compose, config=config, root=root)


def _compose_file_env() -> list[str]:
    value = os.environ.get("COMPOSE_FILE", "")
    separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
    return [f for f in value.split(separator) if f]


def _find_root(cwd: Path) -> Path:
    """The nearest directory, from cwd upwards, with a Compose file (as Compose searches) or a
    cslaunch.toml naming its own files."""
    for directory in (cwd, *cwd.parents):
        if any((directory / n).is_file() for n in (*COMPOSE_FILE_NAMES, CONFIG_FILE)):
            return directory
    raise ComposeError(
        f"no Compose file in {cwd} or any parent ({', '.join(COMPOSE_FILE_NAMES)})",
        hint="run cslaunch inside your Compose project, or pass -f FILE",
    )
