"""cslaunch's own directory in a project, `.cslaunch/`: the lock now, the change index later."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".cslaunch"


def state_dir(root: Path) -> Path:
    """Create `.cslaunch/` on first use, git-ignoring itself so it never shows up as a change."""
    path = root / STATE_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by cslaunch\n*\n", encoding="utf-8")
    return path
