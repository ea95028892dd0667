"""Fixtures for tests against a real Docker engine, and for the RQ helper's tests against a
throwaway redis-server (tests/redisutil.py).

Engine tests copy the example stack into a temporary directory with their own project name
(prefix `cslt-`) and free loopback ports, and take it down (`down -v`) when they finish.
When CSLAUNCH_REQUIRE_ENGINE is set (scripts/test sets it, so CI does) a missing engine fails
them instead of skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cslaunch import docker, rqscript
from cslaunch.state import HOME_ENV
from tests.redisutil import RedisServer, Worker, require
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


@pytest.fixture(scope="module")
def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        require("redis-server is not installed (apt-get install redis-server)")
    try:
        import redis  # noqa: F401
        import rq  # noqa: F401
    except ImportError:
        require("rq is not installed in the venv (pip install -e '.[test]')")
    assert found
    return found


@pytest.fixture(scope="module")
def server(redis_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(redis_bin, tmp_path_factory.mktemp("redis"), "--appendonly", "no")
    yield s
    s.stop()


@pytest.fixture
def r(server: RedisServer) -> Any:
    client = server.client()
    client.flushall()  # the test's own throwaway server
    return client


@pytest.fixture
def spawn(server: RedisServer) -> Iterator[Any]:
    started: list[Worker] = []

    def make(*queues: str) -> Worker:
        w = Worker(server, *queues)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker compose exec replaced by running the helper right here."""

    def fake_run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        request = json.loads(kw["input"])  # on stdin: the URL may hold a password
        result = rqscript.run(request)
        return subprocess.CompletedProcess(argv, 0, rqscript.MARKER + json.dumps(result), "")

    monkeypatch.setattr(docker, "run", fake_run)
