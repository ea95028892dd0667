"""`cslaunch watch` without an engine: saves gathered while a launch runs, and which of them
end its waiting (only an edit the launch did not read)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cslaunch.commands.watch import Saves, _trigger
from cslaunch.index import Entry, hash_file
from cslaunch.scan import file_stat


class _Changes:
    """The part of a change set the check reads: what the launch saw of each file."""

    def __init__(self, files: list[Path]) -> None:
        self.entries: dict[str, Any] = {
            str(p): Entry(file_stat(str(p)), hash_file(str(p)))
            for p in files  # type: ignore[arg-type]
        }


def test_take_returns_every_save_once_and_waits_for_one(tmp_path: Path) -> None:
    saves = Saves()
    saves.add(["a.py", "b.py"])
    saves.add(["a.py"])
    assert saves.take(0) == ["a.py", "b.py", "a.py"]
    assert saves.take(0) == []
    threading.Timer(0.1, lambda: saves.add(["c.py"])).start()
    start = time.monotonic()
    assert saves.take(5) == ["c.py"]
    assert time.monotonic() - start < 2
    assert saves.take(0.05) == []  # the periodic re-check's empty batch


def test_only_an_edit_the_launch_did_not_read_is_newer(tmp_path: Path) -> None:
    src = tmp_path / "app.py"
    src.write_text("A = 1\n")
    cs = _Changes([src])
    saves = Saves()
    saves.add([str(src)])
    assert not saves.newer_than(cs)  # saved, but the launch read this content
    src.write_text("A = 2\n")
    assert saves.newer_than(cs)


def test_what_the_launch_itself_writes_is_not_newer(tmp_path: Path) -> None:
    bundle = tmp_path / "dist" / "app.js"
    bundle.parent.mkdir()
    bundle.write_text("built\n")
    cs = _Changes([bundle])  # the launch built it, then read it
    saves = Saves()
    saves.add([str(bundle), str(tmp_path / "notes.txt")])
    import os

    os.utime(bundle, (1, 1))  # an mtime refreshed for Docker's build
    assert not saves.newer_than(cs)


def test_a_new_source_or_a_deleted_one_is_newer(tmp_path: Path) -> None:
    old = tmp_path / "old.py"
    old.write_text("x\n")
    cs = _Changes([old])
    saves = Saves()
    new = tmp_path / "new.py"
    new.write_text("y\n")
    saves.add([str(new)])
    assert saves.newer_than(cs)
    saves.take(0)
    old.unlink()
    saves.add([str(old)])
    assert saves.newer_than(cs)


def test_trigger_names_the_files() -> None:
    assert _trigger([]) == "periodic re-check"
    assert _trigger(["/p/a.py", "/p/a.py", "/p/b.py"]) == "2 changes: a.py, b.py"


@pytest.mark.parametrize("gap", [1.5, -1.0])
def test_the_web_server_goes_first_and_while_typing_the_workers_wait_for_a_pause(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gap: float
) -> None:
    """Every launch for saves starts the web server first; while saves keep ending launches
    early, within TYPING_GAP_S of the last batch, the workers also wait for a pause in them
    (LaunchOptions.typing). Saves further apart that cut a long launch short are not typing."""
    from cslaunch.commands import watch
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    calls: list[bool] = []

    class Watcher:
        launches = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def relaunch(
            self,
            trigger: str,
            changed: list[str],
            newer: object,
            typing: bool = False,
        ) -> bool:
            calls.append(typing)
            if len(calls) == 6:
                raise KeyboardInterrupt
            return 2 <= len(calls) <= 3  # the start, then a batch typed on for two launches

        def release(self) -> None:
            pass

    def collect(paths: object, options: object, poll: object, saves: Saves, stop: object) -> None:
        for _ in range(3):
            saves.add([str(tmp_path / "a.py")])
            time.sleep(0.3)

    monkeypatch.setattr(watch, "_Watcher", Watcher)
    monkeypatch.setattr(watch, "watched_paths", lambda project: [tmp_path])
    monkeypatch.setattr(watch, "_collect", collect)
    monkeypatch.setattr(watch, "TYPING_GAP_S", gap)
    watch.run(None, LaunchOptions(), watch.WatchOptions(recheck=0.5), UI(quiet=True))  # type: ignore[arg-type]
    typed = [False, False, True, True, False, False] if gap > 0 else [False] * 6
    assert calls == typed


def test_a_batch_of_sources_asks_only_what_was_saved_since_the_last_scan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Focus: the last batch's scan and the paths saved since it began, whether or not that
    batch's launch held; a walk for the first batch (on the start's Compose model), after
    other files moved (the model is read again too), and every `full_every` seconds."""
    import contextlib
    import itertools
    from concurrent.futures import Future
    from types import SimpleNamespace

    from cslaunch.commands import watch
    from cslaunch.errors import CslaunchError
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    calls: list[Any] = []
    outcome = {"ok": True, "compose": "fine"}
    scans = (f"scan-{n}" for n in itertools.count(1))

    def prepare(project: object, options: object, known: object, focus: Any) -> Any:
        if outcome["compose"] == "broken" and known is None:
            raise CslaunchError("docker compose config failed")
        calls.append(
            (known is not None, None if focus is None else (focus.known, sorted(focus.paths)))
        )
        found_scan = SimpleNamespace(files=next(scans), links=[])
        return SimpleNamespace(
            found="model",
            plan=SimpleNamespace(noop=False),
            changes=SimpleNamespace(walked=not focus, scan=found_scan),
        )

    def launch(*args: object, **kwargs: object) -> Any:
        return SimpleNamespace(
            ok=outcome["ok"],
            ended_early=False,
            error="failed",
            recovery_owed=False,
            held=[],
            workers=None,
        )

    monkeypatch.setattr(watch, "prepare", prepare)
    monkeypatch.setattr(watch, "launch", launch)
    monkeypatch.setattr(watch, "render", lambda ui, report: None)
    monkeypatch.setattr(watch, "project_lock", lambda *a, **k: contextlib.nullcontext())
    project = SimpleNamespace(root=tmp_path)
    watcher = watch._Watcher(project, LaunchOptions(), UI(quiet=True), full_every=60)  # type: ignore[arg-type]
    watcher.background = SimpleNamespace(submit=lambda fn: Future())  # type: ignore[assignment]

    def save(*paths: str) -> None:
        watcher.relaunch("saves", [str(tmp_path / p) for p in paths], lambda cs: False)

    watcher.relaunch("start", [], lambda cs: False)
    save("a.py")  # the first batch walks: the start's walk may predate the file events
    save("b.py")
    outcome["ok"] = False
    save("c.py")  # its launch fails, but what its scan found stands
    outcome["ok"] = True
    save("d.py")
    save("e.py", "notes.txt")  # not only sources: walked, the model read again
    save("f.py")
    watcher.walked_at -= 60  # the last walk is a minute old: walked, for missed events
    save("g.py")
    outcome["compose"] = "broken"
    save("compose.yaml")  # fails before its scan: its save stays in
    outcome["compose"] = "fine"
    save("h.py")  # so the model is read again and the trees walked
    save("i.py")
    p = str(tmp_path)
    assert calls == [
        (False, None),  # the start
        (True, None),
        (True, ("scan-2", [f"{p}/b.py"])),
        (True, ("scan-3", [f"{p}/c.py"])),
        (True, ("scan-4", [f"{p}/d.py"])),
        (False, None),
        (True, ("scan-6", [f"{p}/f.py"])),
        (True, None),
        (False, None),
        (True, ("scan-9", [f"{p}/i.py"])),
    ]


def test_held_back_workers_and_owed_job_recovery_go_to_the_next_launch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A launch newer saves ended may leave workers stopped (held back) and its job recovery
    undone: the next launch is told both, even a batch that changed nothing, and so is the
    end of watching, which starts what is held back."""
    import contextlib
    from concurrent.futures import Future
    from types import SimpleNamespace

    from cslaunch import docker
    from cslaunch.commands import watch
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    given: list[LaunchOptions] = []
    noop = {"plan": True}
    reports = [
        SimpleNamespace(
            ok=False, ended_early=True, recovery_owed=True, held=["id-w1", "id-w2"], workers=None
        ),
        SimpleNamespace(ok=True, ended_early=False, recovery_owed=False, held=[], workers=None),
        SimpleNamespace(
            ok=False, ended_early=True, recovery_owed=False, held=["id-w1"], workers=None
        ),
    ]

    def prepare(project: object, options: LaunchOptions, known: object, focus: Any) -> Any:
        return SimpleNamespace(
            found="model",
            plan=SimpleNamespace(noop=noop["plan"]),
            changes=SimpleNamespace(
                walked=True, changes=[], config_changed={}, scan=SimpleNamespace(files={}, links=[])
            ),
        )

    def launch(project: object, options: LaunchOptions, *args: object, **kwargs: object) -> Any:
        given.append(options)
        return reports[len(given) - 1]

    started: list[str] = []
    monkeypatch.setattr(watch, "prepare", prepare)
    monkeypatch.setattr(watch, "launch", launch)
    monkeypatch.setattr(watch, "render", lambda ui, report: None)
    monkeypatch.setattr(watch, "project_lock", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(docker, "start", lambda cid, name="": started.append(cid))
    watcher = watch._Watcher(SimpleNamespace(root=tmp_path), LaunchOptions(), UI(quiet=True))  # type: ignore[arg-type]
    watcher.background = SimpleNamespace(submit=lambda fn: Future())  # type: ignore[assignment]

    watcher.relaunch("start", [], lambda cs: False)
    assert (given[0].held, given[0].recover_jobs) == (frozenset(), False)
    assert not given[0].web_first  # the start: everything at once
    # The plan says noop, but what is owed makes it launch (the real plan restarts the held).
    watcher.relaunch("saves", [str(tmp_path / "a.py")], lambda cs: False)
    assert given[1].held == {"id-w1", "id-w2"} and given[1].recover_jobs
    assert given[1].web_first  # saves: the web server first
    noop["plan"] = False
    watcher.relaunch("saves", [str(tmp_path / "b.py")], lambda cs: False)
    assert (given[2].held, given[2].recover_jobs) == (frozenset(), False)
    assert watcher.held == {"id-w1"}
    watcher.release()
    assert started == ["id-w1"] and watcher.held == frozenset()
    # Nothing owed and nothing changed: quiet.
    noop["plan"] = True
    watcher.relaunch("saves", [str(tmp_path / "c.py")], lambda cs: False)
    assert len(given) == 3


def _fake_watcher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, launch: Callable[..., Any]
) -> tuple[Any, list[str], list[Any]]:
    """A _Watcher whose prepare finds a Python-only batch to launch for, whose launches are
    `launch`, and whose docker.start and jobs.recover are recorded."""
    import contextlib
    from types import SimpleNamespace

    from cslaunch import docker, jobs
    from cslaunch.commands import watch
    from cslaunch.stack import LaunchOptions, Prepared
    from cslaunch.ui import UI

    def prepare(project: object, options: LaunchOptions, known: object, focus: Any) -> Any:
        return Prepared(
            found=SimpleNamespace(project=SimpleNamespace(compose="compose")),  # type: ignore[arg-type]
            plan=SimpleNamespace(noop=False),  # type: ignore[arg-type]
            changes=SimpleNamespace(walked=True, scan=SimpleNamespace(files={}, links=[])),  # type: ignore[arg-type]
        )

    started: list[str] = []
    recovered: list[Any] = []

    def recover(compose: object, setup: object) -> Any:
        recovered.append((compose, setup))
        return SimpleNamespace(ok=True, jobs=[], workers_cleaned=[], dry_run=False)

    monkeypatch.setattr(watch, "prepare", prepare)
    monkeypatch.setattr(watch, "launch", launch)
    monkeypatch.setattr(watch, "render", lambda ui, report: None)
    monkeypatch.setattr(watch, "project_lock", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(docker, "start", lambda cid, name="": started.append(cid))
    monkeypatch.setattr(jobs, "recover", recover)
    monkeypatch.setattr(jobs, "recovery_summary", lambda report: "no interrupted jobs")
    watcher = watch._Watcher(SimpleNamespace(root=tmp_path), LaunchOptions(), UI(quiet=True))  # type: ignore[arg-type]
    return watcher, started, recovered


def test_held_back_workers_are_taken_for_workers_by_the_next_launch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Held back stopped, workers found through their registrations have none: the next
    launch gets them as the holding launch found them."""
    from types import SimpleNamespace

    found_workers = SimpleNamespace(setup="rq-setup", busy={}, dead=(), named={})
    given: list[Any] = []

    def launch(project: object, options: Any, ui: object, ahead: Any, **kw: Any) -> Any:
        given.append(ahead)
        return SimpleNamespace(
            ok=False,
            ended_early=True,
            recovery_owed=True,
            held=["id-w"],
            workers=found_workers,
        )

    watcher, _, _ = _fake_watcher(monkeypatch, tmp_path, launch)
    watcher.relaunch("saves", [str(tmp_path / "a.py")], lambda cs: False)
    watcher.relaunch("saves", [str(tmp_path / "b.py")], lambda cs: False)
    assert given[1].workers.result() is found_workers


def test_a_ctrl_c_late_in_a_launch_that_held_starts_what_it_held(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def launch(project: object, options: Any, ui: object, ahead: Any, **kw: Any) -> Any:
        kw["on_held"](["id-a", "id-b"])  # the restart step held them back...
        raise KeyboardInterrupt  # ...and the launch was stopped before its report

    watcher, started, _ = _fake_watcher(monkeypatch, tmp_path, launch)
    with pytest.raises(KeyboardInterrupt):
        watcher.relaunch("saves", [str(tmp_path / "a.py")], lambda cs: False)
    watcher.release()
    assert started == ["id-a", "id-b"]


def test_a_failed_launch_starts_what_was_held_and_recovers_what_was_owed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """While the user fixes what failed, nothing stays stopped and no job stuck."""
    from types import SimpleNamespace

    from cslaunch.errors import CslaunchError

    reports = iter(
        [
            SimpleNamespace(
                ok=False,
                ended_early=True,
                recovery_owed=True,
                held=["id-w"],
                workers=SimpleNamespace(setup="rq-setup"),
            )
        ]
    )

    def launch(project: object, options: Any, ui: object, ahead: Any, **kw: Any) -> Any:
        report = next(reports, None)
        if report is None:
            raise CslaunchError("build failed")
        return report

    watcher, started, recovered = _fake_watcher(monkeypatch, tmp_path, launch)
    watcher.relaunch("saves", [str(tmp_path / "a.py")], lambda cs: False)
    assert watcher.held and watcher.owe_recovery
    watcher.relaunch("saves", [str(tmp_path / "b.py")], lambda cs: False)
    assert started == ["id-w"]
    assert recovered == [("compose", "rq-setup")]
    assert not watcher.held and not watcher.owe_recovery


@pytest.mark.parametrize("ending", [KeyboardInterrupt, "Interrupted", RuntimeError])
def test_however_watching_ends_what_is_held_back_is_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ending: Any
) -> None:
    from cslaunch.cli import Interrupted
    from cslaunch.commands import watch
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    released: list[bool] = []
    error = Interrupted if ending == "Interrupted" else ending

    class Watcher:
        launches = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def relaunch(self, *args: object) -> bool:
            raise error()

        def release(self) -> None:
            released.append(True)

    monkeypatch.setattr(watch, "_Watcher", Watcher)
    monkeypatch.setattr(watch, "watched_paths", lambda project: [tmp_path])
    monkeypatch.setattr(watch, "_collect", lambda *a: None)
    if error is KeyboardInterrupt:
        watch.run(None, LaunchOptions(), watch.WatchOptions(), UI(quiet=True))  # type: ignore[arg-type]
    else:
        with pytest.raises(error):
            watch.run(None, LaunchOptions(), watch.WatchOptions(), UI(quiet=True))  # type: ignore[arg-type]
    assert released == [True]


def test_every_file_the_scan_can_track_raises_its_event() -> None:
    """A batch asks only the files its events name, so no file the scan tracks may be
    filtered out: not a mounted .venv, not an editor's backup in a build context."""
    from watchfiles import Change

    from cslaunch.commands.watch import _Filter, _moves_no_model

    keep = _Filter()
    for path in ["/p/src/.venv/lib/m.py", "/p/.idea/x.xml", "/p/ctx/ext.pyd", "/p/src/a.py~",
                 "/p/src/.a.py.swp", "/p/.hypothesis/x", "/p/src/flycheck_a.py"]:  # fmt: skip
        assert keep(Change.modified, path), path
    for path in ["/p/src/__pycache__/a.cpython-311.pyc", "/p/src/a.pyc", "/p/node_modules/x.js",
                 "/p/.git/index", "/p/.cslaunch/lock", "/p/.mypy_cache/x.json"]:  # fmt: skip
        assert not keep(Change.modified, path), path
    assert all(map(_moves_no_model, ["/p/a.py", "/p/.a.py.swp", "/p/a.py~", "/p/.#a.py"]))
    assert not any(map(_moves_no_model, ["/p/compose.yaml", "/p/.env", "/p/Dockerfile"]))
