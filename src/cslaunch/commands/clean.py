"""`cslaunch clean`: remove Python bytecode, and nothing else."""

from __future__ import annotations

from pathlib import Path

from cslaunch import bytecode, output
from cslaunch.options import Globals
from cslaunch.report import clean_json, clean_summary, relative, show_skipped
from cslaunch.stack import change_set, detect, invalidate_bytecode


def clean(g: Globals, paths: tuple[Path, ...], *, dry_run: bool, stale_only: bool) -> None:
    """PATHs, or the host directories Python services bind-mount. `stale_only`: only what
    can be stale (with a launch history), else everything."""
    ui = g.ui()
    if paths:
        roots = [p.absolute() for p in paths]
        base = Path.cwd()
        if stale_only:
            # No launch history for arbitrary paths: orphans and legacy files only.
            result = bytecode.remove(bytecode.stale_in(roots), roots=roots, dry_run=dry_run)
        else:
            result = bytecode.clean(roots, dry_run=dry_run, sizes=g.json or dry_run, paths=dry_run)
    else:
        project = g.project()
        found = detect(project, containers=False)
        roots = list(found.roots.roots)
        base = project.root
        if not roots:
            ui.line("No bind-mounted Python code found in the Compose model; nothing to clean.")
        if stale_only:
            cs = change_set(project, found)
            if cs.old is None:
                ui.warn("no change index yet (no launch so far): removing all bytecode")
            result = invalidate_bytecode(found.roots.roots, cs, dry_run=dry_run)
        else:
            result = bytecode.clean(roots, dry_run=dry_run, sizes=g.json or dry_run, paths=dry_run)
    if g.json:
        output.emit(output.envelope("clean", True, **clean_json(result, listing=dry_run)))
    elif dry_run:
        for path in result.removed:
            ui.line(relative(path, base))
    show_skipped(ui, result)
    ui.line(
        clean_summary(result)
        + (f" in {', '.join(relative(r, base) for r in roots)}" if roots else "")
    )
