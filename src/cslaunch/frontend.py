"""A frontend bundle built on the host (`npm run build`, configured in [tool.cslaunch.frontend]),
run when its sources changed; a failed build fails the launch with the build's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cslaunch.changes import ChangeSet
from cslaunch.config import FrontendConfig
from cslaunch.errors import LaunchFailed


def build_reason(frontend: FrontendConfig, cs: ChangeSet) -> str | None:
    """Why the host build must run now, or None when its sources did not change."""
    if cs.old is None:
        return "no index yet"
    if frontend.output is not None and not frontend.output.exists():
        return f"no output in {frontend.output.name}/"
    prefixes = tuple(str(s) for s in frontend.sources)
    hits = sorted(
        p
        for p in cs.changes.all
        if p in prefixes or p.startswith(tuple(x + os.sep for x in prefixes))
    )
    if not hits:
        return None
    return f"changed: {os.path.basename(hits[0])}" + (
        f" and {len(hits) - 1} more" if hits[1:] else ""
    )


def build(frontend: FrontendConfig) -> None:
    """Run the host build (no shell: the command is a list of arguments)."""
    # On Windows `npm` is npm.cmd: which() finds it where a bare name would not run.
    program = shutil.which(frontend.build[0]) or frontend.build[0]
    try:
        result = subprocess.run(
            [program, *frontend.build[1:]],
            cwd=frontend.cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=1800,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LaunchFailed(
            f"frontend build could not run: {' '.join(frontend.build)}: {e}"
        ) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).rstrip().splitlines()
        raise LaunchFailed(
            f"frontend build failed (exit {result.returncode}): {' '.join(frontend.build)}",
            detail="\n".join(output[-40:]),
            hint="fix the build; the stack was left as it was",
        )
