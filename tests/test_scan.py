"""scan.rescan: what watch's file events name stands for a walk of the whole tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cslaunch import bytecode, forked, scan
from cslaunch.context import parse_dockerignore

# Paths an edit may touch, relative to the tree: tracked sources, names no tree includes,
# pruned and .dockerignored directories, bytecode, a nested tree's root, through a link.
CANDIDATES = [
    "app/a.py",
    "app/b.py",
    "app/new.py",
    "app/notes.txt",
    "app/pkg/c.py",
    "app/pkg/new.py",
    "app/pkg/data.json",
    "app/pkg/__pycache__/c.cpython-311.pyc",
    "app/legacy.pyc",
    "app/node_modules/x.py",
    "app/.git/hooks.py",
    "app/flink.py",
    "app/link/d.py",
    "ctx/Dockerfile",
    "ctx/src/d.py",
    "ctx/src/new.py",
    "ctx/logs/e.py",
    "ctx/keep.log",
    "ctx/other.log",
    "single.cfg",
]


def _layout(root: Path) -> tuple[list[scan.Tree], list[str]]:
    for rel in ["app/a.py", "app/b.py", "app/pkg/c.py", "app/notes.txt", "ctx/Dockerfile",
                "ctx/src/d.py", "ctx/logs/e.py", "ctx/keep.log", "single.cfg",
                "app/pkg/__pycache__/c.cpython-311.pyc", "app/node_modules/x.py"]:  # fmt: skip
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {rel}\n")
    (root / "app/link").symlink_to(root / "ctx/src", target_is_directory=True)
    (root / "app/flink.py").symlink_to(root / "app/a.py")
    ignore = parse_dockerignore("logs\n*.log\n!keep.log\n")
    trees = [
        scan.Tree(str(root / "app"), lambda rel: rel.endswith(".py"), by_name=True),
        scan.Tree(str(root / "app/pkg"), lambda rel: True),
        scan.Tree(str(root / "ctx"), lambda rel: True, ignore=ignore),
        scan.Tree(str(root / "ctx"), lambda rel: rel.endswith(".py"), by_name=True),
    ]
    return trees, [str(root / "single.cfg")]


def _apply(root: Path, op: str, rel: str) -> None:
    path = root / rel
    if op == "delete":
        if path.is_symlink() or path.is_file():
            path.unlink()
        return
    if op == "edit-keeping-mtime-and-size" and path.is_file() and not path.is_symlink():
        st = path.stat()
        data = path.read_bytes()
        path.write_bytes(data[:-1] + (b"X" if data[-1:] != b"X" else b"Y"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    if path.parent.is_symlink() or path.is_symlink():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("x = 1\n")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["write", "delete", "edit-keeping-mtime-and-size"]),
            st.sampled_from(CANDIDATES),
        ),
        max_size=6,
    )
)
def test_a_rescan_of_the_saved_paths_is_the_walk(
    tmp_path: Path, edits: list[tuple[str, str]]
) -> None:
    root = tmp_path / "t"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    trees, singles = _layout(root)
    before = scan.scan(trees, singles)
    for op, rel in edits:
        _apply(root, op, rel)
    after = scan.scan(trees, singles)
    again = scan.rescan(
        trees, singles, before.files, [str(root / rel) for _, rel in edits], links=before.links
    )
    if again is None:
        # A path through a linked directory: its file's events may name either path.
        assert any(rel.startswith("app/link/") for _, rel in edits)
        return
    assert again.files == after.files
    for _, rel in edits:
        pycache = (root / rel).parent / "__pycache__"
        if pycache.is_dir() and not (root / rel).parent.is_symlink():
            assert {str(p) for p in pycache.iterdir()} <= set(again.bytecode)
    if any(rel == "app/legacy.pyc" for _, rel in edits) and (root / "app/legacy.pyc").exists():
        assert str(root / "app/legacy.pyc") in again.bytecode


def test_paths_that_cannot_stand_for_a_walk_ask_for_one(tmp_path: Path) -> None:
    trees, singles = _layout(tmp_path)
    before = scan.scan(trees, singles)
    # A directory moved in: its files raise no event of their own.
    (tmp_path / "app/moved").mkdir()
    (tmp_path / "app/moved/m.py").write_text("")
    assert scan.rescan(trees, singles, before.files, [str(tmp_path / "app/moved")]) is None
    # A directory moved out: the files below it went with it.
    shutil.move(tmp_path / "app/pkg", tmp_path / "elsewhere")
    assert scan.rescan(trees, singles, before.files, [str(tmp_path / "app/pkg")]) is None
    # A path outside every tree (the project reached through a link, say).
    assert scan.rescan(trees, singles, before.files, [str(tmp_path / "x.py")]) is None
    # A path through a linked directory: the file's events may name the link's path only.
    linked = str(tmp_path / "app/link/d.py")
    assert scan.rescan(trees, singles, before.files, [linked]) is None


def test_a_rescan_of_nothing_keeps_the_walk_and_asks_the_single_files_again(
    tmp_path: Path,
) -> None:
    trees, singles = _layout(tmp_path)
    before = scan.scan(trees, singles)
    (tmp_path / "single.cfg").write_text("changed, longer than before\n")
    again = scan.rescan(trees, singles, before.files, [])
    assert again is not None
    assert again.files == scan.scan(trees, singles).files
    assert again.bytecode == []


@pytest.mark.parametrize("name", ["A.py", "a.PY"])
def test_a_name_spelled_in_another_case_is_not_a_new_file(tmp_path: Path, name: str) -> None:
    # On a file system that ignores case the event's spelling would open the same file; the
    # entry is kept under the name the directory lists, as the walk keeps it.
    trees, singles = _layout(tmp_path)
    before = scan.scan(trees, singles)
    again = scan.rescan(trees, singles, before.files, [str(tmp_path / "app" / name)])
    assert again is not None
    assert again.files == before.files


def test_linked_bytecode_is_not_followed_and_said_so(tmp_path: Path) -> None:
    """A linked __pycache__ or pyc is not listed: the proof must know it has no digest."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.cpython-311.pyc").write_bytes(b"x")
    app, lib = tmp_path / "src" / "app", tmp_path / "src" / "lib"
    app.mkdir(parents=True)
    (app / "__pycache__").symlink_to(elsewhere)
    (lib / "__pycache__").mkdir(parents=True)
    (lib / "__pycache__" / "o.cpython-311.pyc").symlink_to(elsewhere / "m.cpython-311.pyc")
    (lib / "legacy.pyc").symlink_to(elsewhere / "m.cpython-311.pyc")
    found = bytecode.listing([tmp_path / "src"])
    assert found.bytecode == []
    assert sorted(found.unreadable) == sorted(
        [str(app / "__pycache__"), str(lib / "__pycache__" / "o.cpython-311.pyc"),
         str(lib / "legacy.pyc")]
    )  # fmt: skip


def _wide_layout(root: Path) -> tuple[list[scan.Tree], list[str]]:
    """_layout with directories enough that the walk is dealt out to helpers: sources,
    bytecode, a pruned and an ignored directory, an unreadable one, a skipped one, links."""
    trees, singles = _layout(root)
    for i in range(70):
        pkg = root / "app" / f"m{i}" / "sub"
        (pkg / "__pycache__").mkdir(parents=True)
        (pkg / f"s{i}.py").write_text("x = 1\n")
        (pkg / "__pycache__" / f"s{i}.cpython-311.pyc").write_bytes(b"\0")
        (root / "app" / f"m{i}" / "data.bin").write_bytes(b"\0")
        (root / "ctx" / "logs" / f"l{i}").mkdir(parents=True)
        (root / "ctx" / "logs" / f"l{i}" / "x.py").write_text("")
    (root / "app" / "m3" / "node_modules").mkdir()
    (root / "app" / "m3" / "node_modules" / "n.py").write_text("")
    (root / "app" / "m5" / "sub" / "legacy.pyc").write_bytes(b"\0")
    (root / "app" / "m6" / "sub" / "gone").symlink_to(root / "ctx", target_is_directory=True)
    (root / "app" / "m7" / "shut").mkdir()
    (root / "app" / "m7" / "shut" / "hidden.py").write_text("")
    (root / "app" / "m7" / "shut").chmod(0)
    skipping = scan.Tree(str(root / "app"), lambda rel: True, skip=frozenset({"m8", "m9/sub"}))
    return [*trees, skipping], singles


def _same(a: scan.Scan, b: scan.Scan) -> None:
    assert a.files == b.files
    assert sorted(a.bytecode) == sorted(b.bytecode)
    assert sorted(a.unreadable) == sorted(b.unreadable)
    assert a.tops == b.tops


@pytest.mark.parametrize("helpers", [1, 3])
def test_a_walk_shared_with_helpers_finds_what_one_walk_finds(
    tmp_path: Path, helpers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    trees, singles = _wide_layout(tmp_path)
    dealt: list[int] = []
    run = forked.run

    def counted(
        work: Callable[[Sequence[Any]], Any],
        shares: Sequence[Sequence[Any]],
        meanwhile: Callable[[], None],
    ) -> Any:
        dealt.append(len(shares))
        return run(work, shares, meanwhile)

    monkeypatch.setattr(forked, "run", counted)
    try:
        alone = scan.scan(trees, singles)
        shared = scan.scan(trees, singles, helpers=helpers)
    finally:
        (tmp_path / "app" / "m7" / "shut").chmod(0o755)
    assert len(alone.files) > 200 and len(alone.bytecode) > 70
    if os.geteuid() != 0:  # root lists anything
        assert str(tmp_path / "app" / "m7" / "shut") in alone.unreadable
    _same(alone, shared)
    assert dealt == [helpers]
    # FileStat again, not the plain tuples the helpers sent
    assert all(type(st) is scan.FileStat for st in shared.files.values())


def test_a_helper_that_fails_has_its_share_walked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trees, singles = _wide_layout(tmp_path)
    (tmp_path / "app" / "m7" / "shut").chmod(0o755)
    alone = scan.scan(trees, singles)
    parent = os.getpid()
    visit = scan._Walk.visit

    def dies_in_a_helper(self: scan._Walk, *args: object) -> object:
        if os.getpid() != parent:
            os._exit(3)
        return visit(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scan._Walk, "visit", dies_in_a_helper)
    _same(alone, scan.scan(trees, singles, helpers=2))


def test_a_linked_file_is_tracked_by_what_it_points_to(tmp_path: Path) -> None:
    """Python imports what the link points to: its stat data and its content are the
    module's; a dangling link is tracked by its own and by its target's name."""
    from cslaunch.index import hash_file

    app = tmp_path / "app"
    app.mkdir()
    (app / "settings.py.dev").write_text("MODE = 1\n")
    (app / "settings.py").symlink_to("settings.py.dev")
    (app / "gone.py").symlink_to("nowhere.py")
    found = scan.scan([scan.Tree(str(app), lambda rel: rel.endswith(".py"))], [])
    target = os.stat(app / "settings.py.dev")
    assert found.files[str(app / "settings.py")].ino == target.st_ino
    assert sorted(found.links) == [str(app / "gone.py"), str(app / "settings.py")]
    assert hash_file(str(app / "settings.py")) == hash_file(str(app / "settings.py.dev"))
    assert hash_file(str(app / "gone.py")) != hash_file(str(app / "settings.py"))
