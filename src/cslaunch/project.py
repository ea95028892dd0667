"""Find the Compose project the user means, the way Compose does, and its cslaunch config."""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cslaunch import docker
from cslaunch.config import CONFIG_FILE, Config, load_config
from cslaunch.docker import ComposeProject
from cslaunch.errors import ComposeError, ConfigError

# Compose's own lookup order for a default file.
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


@dataclass(frozen=True)
class Project:
    compose: ComposeProject
    config: Config
    root: Path  # the project directory: config and relative paths live here; state is keyed by it


def resolve(
    *,
    files: Sequence[str] = (),
    name: str | None = None,
    project_directory: Path | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
) -> Project:
    cwd = (cwd or Path.cwd()).resolve()
    if STDIN in files:
        # Every Compose command of the run needs the file: a private copy stands in for it.
        # Compose's project directory for `-f -` is the working directory; given explicitly,
        # the copy's directory does not take its place.
        if files[0] == STDIN and project_directory is None:
            project_directory = cwd
        copy = stdin_copy()
        files = [copy if f == STDIN else f for f in files]
    # Compose takes its COMPOSE_* variables from the environment, else from the `.env` of the
    # working directory (of --project-directory when given); so does cslaunch.
    env = compose_env((cwd / project_directory) if project_directory is not None else cwd)
    env_files = _compose_file_env(env)
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
    # cslaunch's config is a default, like the Compose file's own `name:`: the environment
    # (and `.env`) wins, as it does for Compose, so cslaunch and `docker compose` agree.
    if "COMPOSE_PROJECT_NAME" not in env:
        name = name or config.project_name
    if not profiles and "COMPOSE_PROFILES" not in env:
        profiles = config.profiles
    compose = ComposeProject(
        directory=cwd if (files or env_files) and project_directory is None else root,
        files=tuple(files),
        name=name,
        project_directory=root if project_directory is not None else None,
        profiles=tuple(profiles),
    )
    return Project(compose=compose, config=config, root=root)


STDIN = "-"  # `-f -`: the Compose file comes on standard input


def stdin_copy() -> str:
    """Standard input, read once into a private file removed when cslaunch exits."""
    text = sys.stdin.read()
    if not text.strip():
        raise ComposeError(
            "-f -: nothing on standard input",
            hint="pipe the Compose file in: cat x.yml | cslaunch -f -",
        )
    fd, path = tempfile.mkstemp(prefix="cslaunch-stdin-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    atexit.register(Path(path).unlink, missing_ok=True)
    return path


COMPOSE_VARIABLES = (
    "COMPOSE_FILE",
    "COMPOSE_PATH_SEPARATOR",
    "COMPOSE_PROFILES",
    "COMPOSE_PROJECT_NAME",
)


def compose_env(directory: Path) -> dict[str, str]:
    """The COMPOSE_* variables Compose sees: the environment's, else those of `.env`."""
    dotenv = read_dotenv(directory / ".env")
    found = {}
    for key in COMPOSE_VARIABLES:
        value = os.environ.get(key, dotenv.get(key))
        if value is not None:
            found[key] = value
    return found


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines of a `.env` file as Compose reads them: `export` and comments
    allowed, values optionally quoted. An unreadable file is an empty one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value[0] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def _compose_file_env(env: dict[str, str]) -> list[str]:
    value = env.get("COMPOSE_FILE", "")
    separator = env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
    return [f for f in value.split(separator) if f]


def check_services(project: Project, services: Collection[str]) -> None:
    """A [services.NAME] table of the config must name a service of the Compose model (of
    any profile, enabled or not): a typo is an error that names it, not a setting ignored."""
    unknown = sorted(set(project.config.services) - set(services))
    if not unknown:
        return
    every = replace(project.compose, profiles=("*",))
    listed = docker.run(every.argv("config", "--services"), cwd=every.directory, timeout=60)
    if listed.returncode != 0:
        return  # this Compose cannot list them all: the config gets the benefit of the doubt
    known = set(listed.stdout.split())
    unknown = [name for name in unknown if name not in known]
    if unknown:
        source = project.config.source
        where = source.name if source else "config"
        prefix = "" if source is None or source.name == CONFIG_FILE else "tool.cslaunch."
        raise ConfigError(
            f"{where}: {prefix}services.{unknown[0]}: no such service in the Compose project "
            f"(its services: {', '.join(sorted(known)) or 'none'})"
        )


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
