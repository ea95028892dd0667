"""`cslaunch watch`: launch, then relaunch whatever a batch of saves changed, until Ctrl-C.

File events only wake the loop; the change index decides what changed. So a save that did
not change content, or a file no service uses, costs one quiet check and restarts nothing,
and events that arrive during a launch are picked up by the next one (never two launches at
once). Where file events are unreliable (WSL2 /mnt/c, Docker Desktop shares, network file
systems) `--poll` polls, and a periodic re-check catches what events missed.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import watchfiles

from cslaunch import docker, index, jobs
from cslaunch.changes import ChangeSet, Focus
from cslaunch.errors import CslaunchError
from cslaunch.launch import launch
from cslaunch.lock import project_lock
from cslaunch.options import Globals
from cslaunch.project import Project
from cslaunch.report import render
from cslaunch.scan import PRUNE, PYCACHE, FileStat
from cslaunch.stack import Detected, LaunchOptions, Prepared, detect, prepare, refreshed
from cslaunch.ui import UI, plural

# Names editors write beside a file they save (swap, backup, lock files): watchfiles' own list,
# less Python's bytecode. Saving them moves no Compose model.
EDITOR_FILES = re.compile(r"\.___jb_...___$|\.sw.$|~$|^\.#|^\.DS_Store$")
WORKERS_FRESH_S = 60.0  # how long what Redis said of the workers stands in for asking again
# Saves closer than this to the last batch's are typing (LaunchOptions.typing). Not longer:
# the workers, held back until a 1 s pause, would then start just before the next save.
TYPING_GAP_S = 1.5


@dataclass(frozen=True)
class WatchOptions:
    poll: bool = False  # poll instead of file events
    poll_interval: float = 0.5  # seconds between polls
    quiet_ms: int = 20  # a batch ends after this much quiet (an editor's save takes ms)
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
    """Every file the scan can track raises its event: a batch then asks only the files its
    events name (Focus). Left out: the directories the scan never enters, and bytecode,
    which it lists but does not track. (watchfiles' default also drops .venv, .idea and
    .hypothesis, editors' swap and backup files and `.pyd`, all of which a bind mount or a
    build context can hold.)"""

    def __init__(self) -> None:
        super().__init__(
            ignore_dirs=sorted(PRUNE | {PYCACHE}), ignore_entity_patterns=[r"\.py[co]$"]
        )


def _moves_no_model(path: str) -> bool:
    """Compose reads no Python file and no editor's swap file."""
    return path.endswith(".py") or EDITOR_FILES.search(os.path.basename(path)) is not None


class Saves:
    """File events gathered by a thread of their own, so saves made during a launch are seen
    at once (they end its waiting) and none is lost (they make the next batch)."""

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._ready = threading.Condition()
        self.last_at = 0.0  # when the last paths came (time.monotonic)

    def add(self, paths: Sequence[str]) -> None:
        with self._ready:
            self._paths.extend(paths)
            self.last_at = time.monotonic()
            self._ready.notify()

    def newer_than(self, cs: ChangeSet) -> bool:
        """Whether a file saved since was edited after the launch read it: its content is
        not what the launch's change set holds. What the launch itself writes (a frontend
        bundle it built, an mtime it refreshed) matches, and so does not count."""
        with self._ready:
            paths = list(dict.fromkeys(self._paths))
        return any(_moved(path, cs) for path in paths)

    def take(self, timeout: float) -> list[str]:
        """The paths saved since the last take, waiting up to `timeout` seconds for one
        ([] when none came: time for the periodic re-check)."""
        end = time.monotonic() + timeout
        with self._ready:
            # Short waits: a blocked wait would hold off Ctrl-C on some platforms.
            while not self._paths and time.monotonic() < end:
                self._ready.wait(min(0.2, max(0.0, end - time.monotonic())))
            taken, self._paths = self._paths, []
            return taken


def _moved(path: str, cs: ChangeSet) -> bool:
    entry = cs.entries.get(path)
    try:
        if entry is None:
            # A new file: a source only if the scan would track it.
            return path.endswith(".py") and os.path.lexists(path)
        return index.hash_file(path) != entry.digest
    except OSError:
        return True  # gone or unreadable since: changed


def _moved_at_all(cs: ChangeSet) -> bool:
    return bool(cs.changes or cs.config_changed)


def _collect(
    paths: list[Path], options: WatchOptions, poll: bool, saves: Saves, stop: threading.Event
) -> None:
    for batch in watchfiles.watch(
        *paths,
        watch_filter=_Filter(),
        debounce=2000,
        step=options.quiet_ms,
        stop_event=stop,
        force_polling=poll,
        poll_delay_ms=int(options.poll_interval * 1000),
        raise_interrupt=False,
    ):
        saves.add([path for _, path in batch])


def run(project: Project, launch_options: LaunchOptions, options: WatchOptions, ui: UI) -> int:
    """Launch once, then on every batch of saves. Returns the number of launches."""
    watcher = _Watcher(project, launch_options, ui, full_every=options.recheck)
    paths = watched_paths(project)
    poll = options.poll or needs_polling(paths)
    saves, stop = Saves(), threading.Event()
    collector = threading.Thread(
        target=_collect, args=(paths, options, poll, saves, stop), daemon=True
    )
    try:
        collector.start()
        watcher.relaunch("start", (), saves.newer_than)
        ui.echo(
            f"watching {', '.join(str(p) for p in paths)}"
            + (f" (polling every {options.poll_interval:g} s)" if poll else "")
            + "; Ctrl-C stops watching and leaves the stack running"
        )
        while True:
            changed = saves.take(options.recheck)
            typing, batch_at = False, saves.last_at
            while watcher.relaunch(_trigger(changed), changed, saves.newer_than, typing):
                changed += saves.take(0)  # ended early: at once, with the newer saves too
                # A launch longer than the gap between saves is cut short by each of them
                # without their being typed: only a short gap counts.
                typing, batch_at = saves.last_at - batch_at < TYPING_GAP_S, saves.last_at
    except KeyboardInterrupt:
        ui.echo("stopped watching; the stack keeps running")
    finally:
        stop.set()
        # However watching ends (Ctrl-C, SIGTERM, a bug): nothing is left held back.
        try:
            watcher.release()
        except Exception as e:  # already ending: say it, and let the first error stand
            ui.warn(f"could not start what was held back: {e}")
    return watcher.launches


def _trigger(changed: Sequence[str]) -> str:
    if not changed:
        return "periodic re-check"
    names = sorted({os.path.basename(path) for path in changed})
    return f"{plural(len(set(changed)), 'change')}: {', '.join(names[:3])}" + (
        " ..." if len(names) > 3 else ""
    )


class _Watcher:
    """One launch per batch of saves, never two at once; the Compose model is kept between
    batches that only touch Python files (Compose reads none), and so are the trees: such a
    batch asks only the files saved since the last batch's scan (Focus), with a walk of
    every tree at least every `full_every` seconds for what events missed."""

    def __init__(
        self, project: Project, launch_options: LaunchOptions, ui: UI, full_every: float = 30.0
    ) -> None:
        self.project, self.options, self.ui = project, launch_options, ui
        self.launches = 0
        self.known: Detected | None = None  # the Compose model the last batch used
        # What the last batch's scan found, and the paths saved since it began. Not the
        # first launch's: its walk may begin before the file events do.
        self.scanned: Mapping[str, FileStat] | None = None
        self.links: list[str] = []  # of the scanned files, the links
        self.saved_since: set[str] = set()
        self.full_every = full_every
        self.walked_at = -full_every  # when the last walk of every tree began
        # The RQ workers as Redis tells them once a launch is done, asked while waiting for
        # saves (the exec into a worker container is 0.3-0.5 s the next launch need not
        # spend before it restarts anything), with when it was asked.
        self.background = ThreadPoolExecutor(max_workers=1)
        self.workers: tuple[float, Future[jobs.Discovered]] | None = None
        # The last launch ended early before it recovered the RQ jobs its restarts may
        # have cut short: the next launch does, whatever it restarts.
        self.owe_recovery = False
        self.held: frozenset[str] = frozenset()  # containers the last launch held back

    def relaunch(
        self,
        trigger: str,
        changed: Sequence[str],
        newer: Callable[[ChangeSet], bool],
        typing: bool = False,
    ) -> bool:
        """Launch for a batch of saves; True when newer saves ended it early. For saves, the
        page reloaded waits on the web server: the workers start after it, or, saves still
        coming in (`typing`), are held back until they stop (LaunchOptions, act.restart)."""
        ui = self.ui
        self.saved_since.update(changed)
        start = trigger == "start"
        options = replace(
            self.options,
            web_first=not start,
            recover_jobs=self.owe_recovery,
            held=self.held,
            typing=typing,
        )
        with project_lock(self.project.root, on_wait=ui.warn):
            try:
                ahead = self._prepare(changed, options, start)
                quiet = ahead.plan.noop and not _moved_at_all(ahead.changes) and not start
                if quiet and not self.owe_recovery:
                    return False  # nothing that matters changed: stay quiet
                self.launches += 1
                stamp = time.strftime("%H:%M:%S")
                ui.echo(ui.style(f"[{stamp}] launch {self.launches}: {trigger}", bold=True))
                report = launch(
                    self.project, options, ui, ahead, newer_saves=newer, on_held=self._hold
                )
            except CslaunchError as e:
                ui.error(e.message)
                if e.detail:
                    ui.echo(e.detail, err=True)
                # The stack as it was, while the user fixes it: nothing held back stopped.
                self.release()
                ui.echo("watching; fix it and save again", err=True)
                return False
        render(ui, report)
        self.owe_recovery = report.recovery_owed
        self.held = frozenset(report.held)
        self.workers = None
        known = self.known
        if report.ok and known is not None:
            asked = self.background.submit(lambda: jobs.discover_stack(refreshed(known)))
            self.workers = (time.monotonic(), asked)
        elif report.held and report.workers is not None:
            # Held back, the workers have no registration to be found by: the next launch
            # takes them for workers as this one found them.
            found: Future[jobs.Discovered] = Future()
            found.set_result(report.workers)
            self.workers = (time.monotonic(), found)
        if not report.ok and not report.ended_early:
            ui.error(report.error or "launch failed")
            ui.echo("watching; fix it and save again", err=True)
        return report.ended_early

    def _focus(self, same: bool) -> Focus | None:
        if not same or self.scanned is None:
            return None
        if time.monotonic() - self.walked_at >= self.full_every:
            return None
        return Focus(self.scanned, frozenset(self.saved_since), tuple(self.links))

    def _hold(self, container_ids: list[str]) -> None:
        self.held = frozenset(container_ids)

    def release(self) -> None:
        """Start what the last launch held back, and recover the jobs it left to the next
        launch: watching ends, or a launch failed, and no launch may come for a while."""
        if self.held:
            self.ui.echo("starting the containers held back while saves came in")
            for container_id in sorted(self.held):
                try:
                    docker.start(container_id)
                except CslaunchError as e:
                    self.ui.warn(e.message)
            self.held = frozenset()
        known = self.known
        if not self.owe_recovery or known is None:
            return
        workers = self.workers[1] if self.workers else None
        asked = workers if workers and workers.done() and not workers.exception() else None
        setup = jobs.setup_of(known, asked.result() if asked else None)
        if setup is None:
            return
        try:
            recovered = jobs.recover(known.project.compose, setup)
        except jobs.JobsError as e:
            self.ui.warn(f"jobs the last launch cut short not recovered: {e.message}")
            return
        self.ui.echo(f"recover jobs: {jobs.recovery_summary(recovered)}")
        self.owe_recovery = not recovered.ok

    def _prepare(
        self, changed: Sequence[str], options: LaunchOptions, start: bool = False
    ) -> Prepared:
        # Compose reads no Python file: after a batch of .py saves (and an editor's swap
        # files) its model is the one it was, and `compose config` (0.2 s of each save) can
        # be skipped. Counted over every
        # save since the last batch that got this far (one that failed sooner, say on a
        # broken compose file, leaves its saves in).
        same = bool(changed) and all(map(_moves_no_model, self.saved_since))
        focus = self._focus(same)
        began = time.monotonic()
        ahead = prepare(self.project, options, self.known if same else None, focus)
        self.known = ahead.found
        if start:
            # The first batch takes the start's Compose model (saves of a compose file
            # since are in it), but walks: the start's walk may predate the file events.
            return ahead
        # Saves made during the scan are not taken yet: the next batch asks them.
        self.scanned, self.saved_since = ahead.changes.scan.files, set()
        self.links = ahead.changes.scan.links
        if ahead.changes.walked:
            self.walked_at = began
        if same and self.workers:
            asked_at, workers = self.workers
            # Fresh and done, or the launch asks itself: a worker busy since is still
            # stopped as a worker (its job requeued), only without its head start.
            fresh = time.monotonic() - asked_at < WORKERS_FRESH_S
            if fresh and workers.done() and workers.exception() is None:
                ahead = replace(ahead, workers=workers)
        return ahead


def watch(g: Globals, *, poll: bool, poll_interval: float, recheck: float) -> None:
    run(
        g.project(),
        g.launch_options(),
        WatchOptions(poll=poll, poll_interval=poll_interval, recheck=recheck),
        g.ui(),
    )
