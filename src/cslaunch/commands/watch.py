"""`cslaunch watch`: launch, then relaunch whatever a batch of saves changed, until Ctrl-C.

File events only wake the loop; the change index decides what changed. So a save that did
not change content, or a file no service uses, costs one quiet check and restarts nothing,
and events that arrive during a launch are picked up by the next one (never two launches at
once). Where file events are unreliable (WSL2 /mnt/c, Docker Desktop shares, network file
systems) `--poll` polls, and a periodic re-check catches what events missed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from cslaunch.errors import CslaunchError
from cslaunch.launch import launch
from cslaunch.lock import project_lock
from cslaunch.options import Globals
from cslaunch.project import Project
from cslaunch.report import render
from cslaunch.stack import Detected, LaunchOptions, Prepared, detect, prepare
from cslaunch.ui import UI, plural

IGNORED_DIRS = {".cslaunch"}


@dataclass(frozen=True)
class WatchOptions:
    poll: bool = False  # poll instead of file events
    poll_interval: float = 0.5  # seconds between polls
    quiet_ms: int = 50  # a batch ends after this much quiet (an editor's save takes ms)
    recheck: float = 30.0  # seconds: re-check content even without events


def needs_polling(paths: list[Path]) -> bool:
    """Known setups where inotify does not see edits: Windows drives under WSL."""
    try:
        with open("/proc/version", encoding="utf-8") as f:
            wsl = "microsoft" in f.read().lower()
    except OSError:
        wsl = False
    return wsl and any(str(p).startswith("/mnt/") for p in paths)


def watched_paths(project: Project) -> list[Path]:
    """The project directory, and any tracked tree outside it (bind mounts elsewhere)."""
    found = detect(project, containers=False)
    paths = {project.root}
    for service in found.stack.services.values():
        for bind in service.binds:
            if bind.source.is_dir() and not _inside(bind.source, project.root):
                paths.add(bind.source)
        if service.build_context and not _inside(service.build_context, project.root):
            paths.add(service.build_context)
    return sorted(p for p in paths if p.exists())


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Filter(watchfiles.DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=[*self.ignore_dirs, *IGNORED_DIRS])


def run(project: Project, launch_options: LaunchOptions, options: WatchOptions, ui: UI) -> int:
    """Launch once, then on every batch of changes. Returns the number of launches."""
    launches = 0
    known: Detected | None = None  # the Compose model the last batch used

    def relaunch(trigger: str, changed: Sequence[str] = ()) -> None:
        nonlocal launches, known
        with project_lock(project.root, on_wait=ui.warn):
            try:
                ahead: Prepared | None = None
                if trigger != "start":
                    # Compose reads no Python file: after a batch of .py saves its model is
                    # the one it was, and `compose config` (0.2 s of each save) can be skipped.
                    same = bool(changed) and all(p.endswith(".py") for p in changed)
                    ahead = prepare(project, launch_options, known if same else None)
                    known = ahead.found
                    cs = ahead.changes
                    if ahead.plan.noop and not cs.changes and not cs.config_changed:
                        return  # nothing that matters changed: stay quiet
                launches += 1
                ui.echo(
                    ui.style(
                        f"[{time.strftime('%H:%M:%S')}] launch {launches}: {trigger}", bold=True
                    )
                )
                report = launch(project, launch_options, ui, ahead)
            except CslaunchError as e:
                ui.error(e.message)
                if e.detail:
                    ui.echo(e.detail, err=True)
                ui.echo("watching; fix it and save again", err=True)
                return
        render(ui, report)
        if not report.ok:
            ui.error(report.error or "launch failed")
            ui.echo("watching; fix it and save again", err=True)

    paths = watched_paths(project)
    poll = options.poll or needs_polling(paths)
    try:
        relaunch("start")
        ui.echo(
            f"watching {', '.join(str(p) for p in paths)}"
            + (f" (polling every {options.poll_interval:g} s)" if poll else "")
            + "; Ctrl-C stops watching and leaves the stack running"
        )
        for batch in watchfiles.watch(
            *paths,
            watch_filter=_Filter(),
            debounce=2000,
            step=options.quiet_ms,
            rust_timeout=int(options.recheck * 1000),
            yield_on_timeout=True,
            force_polling=poll,
            poll_delay_ms=int(options.poll_interval * 1000),
            raise_interrupt=True,
        ):
            names = sorted({os.path.basename(path) for _, path in batch})
            trigger = (
                f"{plural(len(batch), 'change')}: {', '.join(names[:3])}"
                + (" ..." if len(names) > 3 else "")
                if batch
                else "periodic re-check"
            )
            relaunch(trigger, [path for _, path in batch])
    except KeyboardInterrupt:
        ui.echo("stopped watching; the stack keeps running")
    return launches


def watch(g: Globals, *, poll: bool, poll_interval: float, recheck: float) -> None:
    run(
        g.project(),
        g.launch_options(),
        WatchOptions(poll=poll, poll_interval=poll_interval, recheck=recheck),
        g.ui(),
    )
