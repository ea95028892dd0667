"""`cslaunch logs`: follow the logs of what the last launch restarted (or of SERVICES)."""

from __future__ import annotations

import click

from cslaunch import compose_config, docker, errors
from cslaunch.options import Globals
from cslaunch.state import LAST_LAUNCH, read_json


def logs(g: Globals, services: tuple[str, ...], *, tail: int, follow: bool) -> None:
    project = g.project()
    chosen = list(services)
    if chosen:
        known = compose_config.config(project.compose).get("services") or {}
        unknown = [s for s in chosen if s not in known]
        if unknown:
            raise click.BadParameter(
                f"no such service: {', '.join(unknown)} (services: {', '.join(sorted(known))})",
                param_hint="'SERVICES...'",
            )
    else:
        last = read_json(project.root, LAST_LAUNCH) or {}
        chosen = [s for s in last.get("services", []) if isinstance(s, str)]
        if chosen:
            g.ui().line(f"logs of what the last launch restarted: {', '.join(chosen)}")
    args = ["logs", "--tail", str(tail), *(["--follow"] if follow else []), *chosen]
    # The user's terminal gets Compose's own output, colours and all; Ctrl-C ends it.
    try:
        code = docker.run(
            project.compose.argv(*args), cwd=project.compose.directory, capture=False
        ).returncode
    except KeyboardInterrupt:
        code = 0
    if code:
        # Compose said why on the terminal; the services were checked, so it is the project.
        raise errors.ComposeError("docker compose logs failed", reported=True)
