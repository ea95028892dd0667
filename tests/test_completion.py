"""Shell completion through click's own mechanism (PowerShell since click 8.5), driven the way
each shell's script drives it: the environment variables it sets, then `cslaunch`. No real
PowerShell runs here (none is packaged for these machines)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cslaunch.cli import cli

SUBCOMMANDS = {
    "up", "watch", "plan", "clean", "verify", "doctor", "init", "logs", "jobs", "redis", "status",
}  # fmt: skip


def complete(shell: str, line: str) -> list[str]:
    """The values cslaunch offers for `line` (cursor at its end), as that shell asks."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {
        "_CSLAUNCH_COMPLETE": f"{shell}_complete",
        # PowerShell passes the command text as typed; bash its words. Both split the same.
        "COMP_WORDS": line if shell == "powershell" else " ".join(words),
        "COMP_CWORD": str(cword),
    }
    result = CliRunner().invoke(cli, env=env, prog_name="cslaunch")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if shell == "powershell":  # three lines per item: type, value, help
        return [lines[i + 1] for i in range(0, len(lines) - 2, 3)]
    return [row.split(",", 1)[1] for row in lines]  # bash: "type,value"


@pytest.mark.parametrize("shell", ["powershell", "bash"])
def test_subcommands_options_and_nested_groups_complete(shell: str) -> None:
    assert set(complete(shell, "cslaunch ")) >= SUBCOMMANDS
    assert complete(shell, "cslaunch cl") == ["clean"]
    assert {"--no-build", "--no-verify", "--no-wait"} <= set(complete(shell, "cslaunch up --no-"))
    assert "recover" in complete(shell, "cslaunch jobs ")
    assert complete(shell, "cslaunch jobs recover --policy ") == ["requeue", "fail"]


def test_powershell_help_text_goes_with_each_option() -> None:
    env = {
        "_CSLAUNCH_COMPLETE": "powershell_complete",
        "COMP_WORDS": "cslaunch up --no-bu",
        "COMP_CWORD": "2",
    }
    result = CliRunner().invoke(cli, env=env, prog_name="cslaunch")
    assert result.output.splitlines() == ["plain", "--no-build", "Never build images."]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_every_documented_shell_gets_its_script(shell: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMP_", "_CSLAUNCH"))}
    result = subprocess.run(
        [sys.executable, "-m", "cslaunch"],
        env={**env, "_CSLAUNCH_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "_CSLAUNCH_COMPLETE" in result.stdout
    if shell == "powershell":
        assert "Register-ArgumentCompleter -Native -CommandName cslaunch" in result.stdout
        # The script puts back the variables it set, so a later `cslaunch` runs normally.
        assert "$env:_CSLAUNCH_COMPLETE = $prev_complete" in result.stdout
