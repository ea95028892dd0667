"""`docker compose config`: the Compose model exactly as Compose resolves the project (never
hand-parsed YAML), and where the Compose plugin lives so it can be run directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cslaunch import docker, engine_api, hostos, redact
from cslaunch.docker import ComposeProject
from cslaunch.errors import ComposeError

CONFIG_ARGS = ("config", "--format", "json")


def config(project: ComposeProject, started: docker.Pending | None = None) -> dict[str, Any]:
    """The resolved Compose model, exactly as Compose itself understands the project
    (`started`: from config_later, begun earlier)."""
    try:
        data = docker.compose_json(project, *CONFIG_ARGS, started=started or config_later(project))
    except ComposeError as e:
        if not e.message.startswith(JSON_FAILED):
            raise
        data = _config_from_yaml(project, e.message)
    if not isinstance(data, dict):
        raise ComposeError("docker compose config returned no project")
    # Every command that reads the model masks its secrets alike, from here on.
    redact.register_model(data)
    return data


# Compose failing to print its model as JSON (Go's encoding/json), not rejecting the project:
# 2.40 cannot marshal a `build.ssh` entry with a key path, though its YAML output is fine.
JSON_FAILED = "docker compose: json: "


def _config_from_yaml(project: ComposeProject, json_error: str) -> dict[str, Any]:
    """The model from Compose's own normalised YAML output, where its JSON output fails."""
    result = docker.run(project.argv("config"), cwd=project.directory, timeout=60)
    if result.returncode != 0:
        raise ComposeError("docker compose: " + docker.first_error_line(result.stderr))
    import yaml  # 30 ms of start-up: only on this path

    from cslaunch.ui import UI

    UI().warn(
        f"{json_error.removeprefix('docker compose: ')}: `docker compose config --format json` "
        "fails on this project where its YAML form works (a Compose bug); read the YAML instead"
    )
    try:
        data = yaml.safe_load(result.stdout)
    except yaml.YAMLError as e:
        raise ComposeError(f"docker compose config printed YAML that does not parse: {e}") from None
    if not isinstance(data, dict):
        raise ComposeError("docker compose config returned no project")
    return data


def config_later(project: ComposeProject) -> docker.Pending:
    """Start `docker compose config`; config(project, started=...) takes its answer.

    It runs the Compose plugin itself where the docker CLI would find it: the same binary
    gives the same model (Compose runs standalone as well as under the CLI), and the CLI's
    own start-up is 50 ms of every call."""
    plugin = compose_plugin()
    program = [plugin] if plugin else ["docker", "compose"]
    return docker.Pending(project.argv(*CONFIG_ARGS, program=program), cwd=project.directory)


def compose_plugin() -> str | None:
    """The docker-compose plugin binary the docker CLI would run for `docker compose`: the
    first in its plugin directories (config's cliPluginsExtraDirs, the user's, the
    system's), or None."""
    name = hostos.executable("docker-compose")
    config_dir, settings = engine_api.cli_config()
    extra = settings.get("cliPluginsExtraDirs")
    dirs = [Path(d) for d in extra if isinstance(d, str)] if isinstance(extra, list) else []
    dirs.append(config_dir / "cli-plugins")
    dirs += hostos.system_plugin_dirs()
    for directory in dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
