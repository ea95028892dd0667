"""cslaunch's own directory in a project, `.cslaunch/`: the lock now, the change index later."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_DIR = ".cslaunch"


def state_dir(root: Path) -> Path:
    """Create `.cslaunch/` on first use, git-ignoring itself so it never shows up as a change."""
    path = root / STATE_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by cslaunch\n*\n", encoding="utf-8")
    return path


def write_json(root: Path, name: str, data: Any) -> None:
    """Atomically, private to the user: a reader sees the old file or the new one."""
    directory = state_dir(root)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # dumps, not dump: only the one-shot encoder is the C one (a 100k-file index: 3 s)
            f.write(json.dumps(data, separators=(",", ":")))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(root: Path, name: str) -> Any:
    """The stored document, or None when it is missing or unreadable."""
    try:
        return json.loads((root / STATE_DIR / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
