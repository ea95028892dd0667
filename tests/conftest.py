"""Fixtures for tests against a real Docker engine.

Engine tests copy the example stack into a temporary directory with their own project name
(prefix `cslt-`) and free loopback ports, and take it down (`down -v`) when they finish.
When CSLAUNCH_REQUIRE_ENGINE is set (scripts/test sets it, so CI does) a missing engine fails
them instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cslaunch.state import HOME_ENV
from tests.stackutil import PROJECT_PREFIX, ProdStack, TestStack, remove_leftovers

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# A suite started in the background by a non-interactive shell (`cmd &`, as some CI runners
# and nohup do) inherits SIGINT ignored, and so would every cslaunch it starts: Python keeps
# an ignored SIGINT ignored. The tests that interrupt cslaunch with it need it delivered.
if hasattr(signal, "SIGINT") and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if r.returncode != 0:
            return "no Compose v2 plugin"
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        if r.returncode != 0:
            return "Docker daemon not reachable"
    except subprocess.TimeoutExpired:
        return "Docker did not answer"
    image = os.environ.get("CSLAUNCH_BASE_IMAGE", "cslaunch-base:bookworm-3")
    r = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30)
    if r.returncode != 0:
        return f"base image {image} missing (scripts/testenv.sh builds it)"
    return None


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """cslaunch's per-project state (kept in the user's cache directory) goes to a directory
    of this session's, for cslaunch in-process and every cslaunch the tests start."""
    path = tmp_path_factory.mktemp("state-home")
    before = os.environ.get(HOME_ENV)
    os.environ[HOME_ENV] = str(path)
    yield path
    if before is None:
        os.environ.pop(HOME_ENV, None)
    else:
        os.environ[HOME_ENV] = before


@pytest.fixture
def cli_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Container calls through the docker CLI, as on Windows, not the Engine API socket:
    for tests that fake the CLI at the subprocess boundary."""
    monkeypatch.setenv("CSLAUNCH_DOCKER_API", "0")


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """The base image name, once a working engine is confirmed; leftovers of earlier runs go."""
    problem = _engine_problem()
    if problem:
        if os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
            pytest.fail(f"engine tests must run here, but: {problem}")
        pytest.skip(f"needs a Docker engine: {problem} (run scripts/test)")
    remove_leftovers(PROJECT_PREFIX)
    yield os.environ.get("CSLAUNCH_BASE_IMAGE", "cslaunch-base:bookworm-3")


@pytest.fixture
def stack(engine: str, tmp_path: Path) -> Iterator[TestStack]:
    """A private copy of the example stack, not started."""
    s = TestStack.create(EXAMPLES, tmp_path / "stack", base_image=engine)
    try:
        yield s
    finally:
        s.down()


@pytest.fixture
def prod_stack(engine: str, tmp_path: Path) -> Iterator[ProdStack]:
    """A private copy of tests/stacks/prodlike (production compose shape), not started."""
    s = ProdStack.create_prod(tmp_path / "stack", base_image=engine)
    try:
        yield s
    finally:
        s.down()
