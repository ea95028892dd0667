"""The one JSON object a command prints with `--json`: its envelope and its printing."""

from __future__ import annotations

import json
from typing import Any

import click

from cslaunch.redact import mask

# Bumped only when a field changes meaning or goes away; new fields do not bump it.
SCHEMA = 1

_written = False  # the one JSON object of this run is out


def envelope(command: str, ok: bool, **fields: Any) -> dict[str, Any]:
    """What every command's JSON starts with: the schema, the command, whether it worked."""
    return {"schema": SCHEMA, "command": command, "ok": ok, **fields}


def emit(data: dict[str, Any]) -> None:
    global _written
    # Masked value by value before serialising: masking the text would mask keys, `true`,
    # numbers and names that happen to equal a secret, and could break the JSON itself.
    click.echo(json.dumps(mask(data), indent=2))
    _written = True


def emit_failure(command: str, message: str, hint: str | None, code: int) -> None:
    """The JSON object of a run that failed before its command printed one."""
    if not _written:
        emit(envelope(command, False, error=message, hint=hint, exit_code=code))
