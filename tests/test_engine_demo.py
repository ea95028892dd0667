"""The front door: a fresh clone, `./scripts/demo`, then plain `cslaunch` in examples/ with
no variables set by hand (only a private project name and ports, so the test cannot act on
another stack): nothing to do, up to date."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.stackutil import PROJECT_PREFIX, free_port

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def test_demo_then_plain_cslaunch_in_examples(engine: str, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    name = f"{PROJECT_PREFIX}{os.getpid()}-demo"
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "COMPOSE_PROJECT_NAME": name,
        "BACKEND_PORT": str(free_port()),
        "FRONTEND_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
    }
    for key in ("BASE_IMAGE", "REDIS_IMAGE", "VIRTUAL_ENV"):
        env.pop(key, None)
    examples = clone / "examples"
    try:
        demo = subprocess.run(
            ["./scripts/demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=600
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        cslaunch = str(clone / ".venv" / "bin" / "cslaunch")
        plan = subprocess.run(
            [cslaunch, "plan"], cwd=examples, env=env, capture_output=True, text=True
        )
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "Nothing to do" in plan.stdout + plan.stderr, plan.stdout + plan.stderr
        again = subprocess.run([cslaunch], cwd=examples, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Up to date" in again.stdout + again.stderr, again.stdout + again.stderr
        # The demo's second run does not reinstall the package.
        second = subprocess.run(
            ["bash", "-x", "./scripts/demo"], cwd=clone, env=env, capture_output=True, text=True
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "pip install" not in second.stderr
    finally:
        subprocess.run(
            ["docker", "compose", "-p", name, "down", "-v", "-t", "0"],
            cwd=examples,
            env=env,
            capture_output=True,
            check=False,
        )
        # The images the demo built, by Compose's label (never the shared base image).
        built = subprocess.run(
            [
                "docker",
                "image",
                "ls",
                "-aq",
                "--filter",
                f"label=com.docker.compose.project={name}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if built:
            subprocess.run(
                ["docker", "image", "rm", "-f", *built], capture_output=True, check=False
            )
