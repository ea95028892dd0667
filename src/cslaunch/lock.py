"""One cslaunch at a time per project: an OS-level file lock (released by the OS if the
holder dies, so a killed run never leaves a stale lock behind)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import Timeout

from cslaunch.errors import LockedError
from cslaunch.hostos import file_lock
from cslaunch.state import state_dir


@contextmanager
def project_lock(
    root: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    path = _lock_path(root)
    lock = file_lock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(path)
        if not wait:
            raise LockedError(
                f"another cslaunch is running on this project{holder}",
                hint="wait for it to finish, or run without --no-wait to queue behind it",
            ) from None
        if on_wait:
            on_wait(f"another cslaunch is running on this project{holder}; waiting for it...")
        lock.acquire()
    try:
        _info_path(path).write_text(str(os.getpid()), encoding="utf-8")
        yield
    finally:
        lock.release()


def _lock_path(root: Path) -> Path:
    try:
        return state_dir(root) / "lock"
    except OSError:
        # A read-only checkout still gets a lock, keyed by the project path.
        digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"cslaunch-{digest}.lock"


def _info_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".pid")


def _holder(path: Path) -> str:
    try:
        pid = _info_path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
