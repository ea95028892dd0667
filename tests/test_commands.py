"""The command rooms: every subcommand has its module, and the read-only ones load nothing
of the launch pipeline (start-up time, and a plan or a proof cannot start a launch)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from cslaunch import cli

READ_ONLY = ("plan", "verify", "status", "doctor", "jobs", "logs", "init", "clean", "redis")


def _subcommands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(prefix + name)
        if isinstance(command, click.Group):
            names += _subcommands(command, prefix + name + " ")
    return names


def test_every_subcommand_has_a_room_of_its_name() -> None:
    import importlib

    for name in _subcommands(cli.cli):
        verb = name.split()[0]
        module = importlib.import_module(f"cslaunch.commands.{verb}")
        assert module.__doc__ and f"cslaunch {verb}" in module.__doc__


@pytest.mark.parametrize("verb", READ_ONLY)
def test_read_only_commands_import_nothing_of_the_pipeline(verb: str) -> None:
    code = (
        f"import sys, cslaunch.cli, cslaunch.commands.{verb}\n"
        "print(sorted(m for m in sys.modules if m.startswith('cslaunch.launch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
