"""cslaunch's own state for a project (the lock, the change index, the last proof, what the
last launch restarted, when Redis was last checked), kept in the user's cache directory,
one directory per project path, never inside the project.

Inside the project (`<project>/.cslaunch/`, where it used to live) it ended up in build
contexts, and so in images built with `COPY . /code`; only a `.dockerignore` could keep it
out, and that file is the user's. Everything here can be rebuilt by one full launch, which is
what a cache directory holds. A project's old `.cslaunch/` stays readable, and the first run
that writes state moves its files here and removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cslaunch import hostos

OLD_DIR = ".cslaunch"  # where a project's state used to live
HOME_ENV = "CSLAUNCH_STATE_HOME"  # another base directory (tests; an unwritable home)
# What an old `.cslaunch/` held besides the JSON documents: ours to remove.
OLD_LEFTOVERS = frozenset({".gitignore", "lock", "lock.pid"})
LAST_LAUNCH = "last-launch.json"  # what the last launch restarted, for `cslaunch logs`


def state_home() -> Path:
    """The base directory: $CSLAUNCH_STATE_HOME, else the platform's user cache directory."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override)
    return hostos.user_cache_dir()


def project_state(root: Path) -> Path:
    """A project's own directory under the base: its name, for people, and a hash of its
    path, so two checkouts of one project never share state."""
    key = str(root.resolve())
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", root.name)[:40] or "root"
    return state_home() / f"{name}-{digest}"


def state_dir(root: Path) -> Path:
    """The project's state directory, created on first use (private to the user), with the
    state of an old `<project>/.cslaunch/` moved into it."""
    path = project_state(root)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = path / "project"
    if not marker.exists():
        # Which project this is, for anyone cleaning up the cache directory.
        marker.write_text(str(root.resolve()) + "\n", encoding="utf-8")
    _migrate(root / OLD_DIR, path)
    return path


def _migrate(old: Path, new: Path) -> None:
    """Move an old `.cslaunch/`'s documents here and remove it; a file that is not ours
    stays, and with it the directory."""
    try:
        entries = list(os.scandir(old))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                if not (new / entry.name).exists():
                    # shutil.move: the cache directory may be on another file system.
                    shutil.move(entry.path, new / entry.name)
                else:
                    os.unlink(entry.path)
            elif entry.name in OLD_LEFTOVERS or entry.name.endswith(".tmp"):
                os.unlink(entry.path)
        except OSError:
            continue  # on another device, or in use: read where it is until a later run
    with contextlib.suppress(OSError):  # something of the user's is in it: it stays
        old.rmdir()


def write_json(root: Path, name: str, data: Any) -> None:
    """Atomically, private to the user: a reader sees the old file or the new one."""
    # dumps, not dump: only the one-shot encoder is the C one (a 100k-file index: 3 s)
    write_bytes(root, name, json.dumps(data, separators=(",", ":")).encode("utf-8"))


def write_bytes(root: Path, name: str, data: bytes) -> None:
    """Atomically, private to the user: a reader sees the old file or the new one."""
    directory = state_dir(root)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def state_file(root: Path, name: str) -> Path:
    """Where a document of the project's state is read from: its place in the state
    directory, or, until a run that writes has moved it, the old `.cslaunch/`."""
    path = project_state(root) / name
    if not path.exists():
        old = root / OLD_DIR / name
        if old.exists():
            return old
    return path


def read_json(root: Path, name: str) -> Any:
    """The stored document, or None when it is missing or unreadable. Reads only: a
    read-only command creates nothing and moves nothing."""
    try:
        return json.loads(state_file(root, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
