"""One look inside a container: proofscript.py run by the container's own Python, now or
ahead of time.

Ahead of time: on a no-op launch the one cost left is looking again inside the containers
whose code is baked into their image (a bind mount's proof can stand; an image layer's
cannot, see proof.py). The last launch recorded what it asked each of them. `up` starts the
same questions as soon as it holds the project lock, while the rest of cslaunch loads and
Compose resolves the model; verify takes an answer only when it would ask the very same
container the very same question. Nothing acts on the stack before a no-op's verify, so an
answer from earlier in the same launch is as good as one from its end.

Kept light on imports: `up` starts the questions before the launch machinery loads.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cslaunch import docker
from cslaunch.errors import CslaunchError
from cslaunch.proof import recorded_looks

SCRIPT = Path(__file__).with_name("proofscript.py")
# Runs the script given after it with the working directory (the project, often) off
# sys.path: a project's own `json.py` must not be imported in the standard library's place.
# (-I would do it but also drop PYTHONPYCACHEPREFIX, which says where the pycs are; -P is
# Python 3.11+.)
STDLIB_ONLY = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "exec(compile(sys.argv[1], '<cslaunch>', 'exec'))"
)
MAX_AT_ONCE = 8  # looks running at the same time

# What the probe found ({"python", "problems", "checked", "pycs", "hashed"}), or why it
# could not run.
Looked = dict[str, Any] | str


def question(files: Iterable[tuple[str, str, Sequence[int]]], dirs: Sequence[str] = ()) -> str:
    """What the probe is asked: these container paths should hold these contents, and may be
    the host's very files (its stat data: mtime_ns, ctime_ns, size, inode); and these
    directories should hold no sourceless pyc."""
    asked: dict[str, Any] = {"files": [[path, digest, list(st)] for path, digest, st in files]}
    if dirs:
        asked["dirs"] = sorted(dirs)
    return json.dumps(asked)


def look(container_id: str, asked: str) -> Looked:
    """Run the probe in the container with its own Python (one exec)."""
    script = SCRIPT.read_text(encoding="utf-8")
    result = None
    for python in ("python3", "python"):
        # -S: no site-packages to set up (a fifth of the exec); the probe needs only the
        # standard library.
        result = docker.exec_in(
            container_id, [python, "-S", "-c", STDLIB_ONLY, script], input=asked, timeout=120
        )
        if result.returncode == 0 or "executable file not found" not in result.stderr:
            break
    assert result is not None
    if result.returncode != 0:
        return f"cannot run Python in it: {docker.first_error_line(result.stderr)}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


class Ahead:
    """Looks started now, each in its own thread; `answer` waits for the one asked for."""

    def __init__(self, questions: Mapping[str, str]) -> None:
        self.questions = dict(questions)
        self.answers: dict[str, Looked] = {}
        self.slots = threading.BoundedSemaphore(MAX_AT_ONCE)  # as many as verify runs at once
        # Daemon threads: a launch that fails or is interrupted does not wait for them.
        self.threads = {
            cid: threading.Thread(target=self._look, args=(cid, asked), daemon=True)
            for cid, asked in self.questions.items()
        }
        for thread in self.threads.values():
            thread.start()

    def _look(self, container_id: str, asked: str) -> None:
        # No answer: verify looks itself, and reports then whatever goes wrong.
        with self.slots, contextlib.suppress(CslaunchError, ValueError):
            self.answers[container_id] = look(container_id, asked)

    def answer(self, container_id: str, asked: str) -> Looked | None:
        """The answer to exactly this question of exactly this container, if one was asked."""
        if self.questions.get(container_id) != asked:
            return None
        self.threads[container_id].join()
        return self.answers.get(container_id)


def ahead(root: Path) -> Ahead:
    """Ask again what the last launch asked (its proof, whatever launch it belongs to: the
    match in `answer` is what makes an answer usable)."""
    return Ahead(recorded_looks(root))
