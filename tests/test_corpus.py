"""Every read-only command, with --json, on every project of tests/corpus/: small Compose
projects using the features real projects use (build args and targets, inline Dockerfiles,
ssh and secrets, several files, extends, include, profiles, .env and env_file, stop_signal,
init, healthchecks, volumes, network_mode, replicas, container_name, develop.watch), and
projects Compose rejects.

Each must give exactly one JSON object with `schema` and `command`, no internal error and no
traceback, exit 5 exactly where Compose rejects the project, leave every project file as it
was (and create none, nor any state), and mask no name. None of this starts a container:
the commands only need `docker compose config` and the engine's answer that nothing runs.
All runs go at once, a few at a time, in a module fixture; the tests check their results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cslaunch.errors import COMPOSE, CONFIG, DOCTOR, INTERNAL, OK
from cslaunch.state import project_state

pytestmark = pytest.mark.engine

CORPUS = Path(__file__).parent / "corpus"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("plan",),
    ("doctor",),
    ("verify",),
    ("init", "--print"),
    ("status",),
    ("clean", "--dry-run"),
)
# Not Compose's to reject, but a mistake of the project all the same.
EXPECTED = {"config-unknown-service": CONFIG}
# Variables that would point Compose or the docker CLI elsewhere than the project.
LEAKY = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR")
NAME_KEYS = ("project", "name", "service")
MASK = "***"


@dataclass(frozen=True)
class Ran:
    command: str  # as its JSON object names it
    args: tuple[str, ...]
    result: subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class Corpus:
    base: Path
    runs: dict[str, list[Ran]]
    before: dict[str, dict[str, str]]
    after: dict[str, dict[str, str]]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under root, with a hash of each file's content."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink():
            found[rel + "/"] = ""
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _run(project: Path, command: tuple[str, ...], pycache: Path) -> Ran:
    extra = _lines(project / "corpus-args")
    stdin = _lines(project / "corpus-stdin")
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env["NO_COLOR"] = "1"
    # cslaunch's own bytecode, compiled once for all 348 runs, outside the source tree (these
    # machines set PYTHONDONTWRITEBYTECODE, and compiling every time is a fifth of a run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    args = (*extra, *command, "--json")
    result = subprocess.run(
        [sys.executable, "-m", "cslaunch", *args],
        cwd=project,
        env=env,
        input=(project / stdin[0]).read_text() if stdin else "",
        capture_output=True,
        text=True,
        timeout=180,
    )
    return Ran(command[0], args, result)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def corpus(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    base = tmp_path_factory.mktemp("corpus")
    _run(base, ("--version",), base / "pycache")  # compiles cslaunch's bytecode once, first
    dirs = {}
    for name in PROJECTS:
        # Named so: a project name Compose derives from the directory is a test's (cslt-).
        dirs[name] = base / f"cslt-corpus-{name}"
        shutil.copytree(CORPUS / name, dirs[name])
    before = {name: _snapshot(d) for name, d in dirs.items()}
    jobs = [(name, command) for name in PROJECTS for command in COMMANDS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda job: _run(dirs[job[0]], job[1], base / "pycache"), jobs))
    runs: dict[str, list[Ran]] = {name: [] for name in PROJECTS}
    for (name, _), ran in zip(jobs, done, strict=True):
        runs[name].append(ran)
    yield Corpus(base, runs, before, {name: _snapshot(d) for name, d in dirs.items()})


def _strings_at_names(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in NAME_KEYS and isinstance(value, str):
                yield value
            yield from _strings_at_names(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings_at_names(item)


@pytest.mark.parametrize("name", PROJECTS)
def test_read_only_commands_on_the_corpus(corpus: Corpus, name: str) -> None:
    rejected = name.startswith("rejected-")
    for ran in corpus.runs[name]:
        r = ran.result
        said = f"cslaunch {' '.join(ran.args)} in {name}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        assert r.returncode != INTERNAL, said
        assert "Traceback" not in r.stderr + r.stdout, said
        data = json.loads(r.stdout)  # exactly one JSON document, and nothing else on stdout
        assert isinstance(data, dict), said
        assert data["schema"] == 1, said
        assert data["command"] == ran.command, said
        command = ran.command
        if rejected:
            assert r.returncode == COMPOSE, said
        elif name in EXPECTED:
            assert r.returncode == EXPECTED[name], said
        else:
            allowed = {OK, DOCTOR} if command == "doctor" else {OK}
            assert r.returncode in allowed, said
        names = list(_strings_at_names(data))
        assert not any(MASK in n for n in names), said
    assert corpus.after[name] == corpus.before[name], "a read-only command changed the project"
    assert not project_state(corpus.base / f"cslt-corpus-{name}").exists()
