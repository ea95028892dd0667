"""Unit tests for the bytecode clean (cslaunch.bytecode.clean), on real files."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cslaunch import bytecode
from cslaunch.bytecode import PRUNE, CleanResult, clean
from cslaunch.errors import PathError
from cslaunch.report import clean_summary

PYC = "mod.cpython-311.pyc"


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def symlink(target: Path | str, link: Path, *, is_dir: bool = False) -> None:
    try:
        os.symlink(target, link, target_is_directory=is_dir)
    except (OSError, NotImplementedError) as exc:  # Windows without the privilege
        pytest.skip(f"cannot create symlinks here: {exc}")


Snapshot = dict[str, tuple[str, str | bytes]]


def snapshot(root: Path) -> Snapshot:
    """Every path under root (relative, '/'-joined) -> (kind, link target or file content)."""
    out: Snapshot = {}

    def visit(directory: str, rel: str) -> None:
        with os.scandir(directory) as it:
            for entry in it:
                key = f"{rel}{entry.name}"
                if entry.is_symlink():
                    out[key] = ("link", os.readlink(entry.path))
                elif entry.is_dir():
                    out[key] = ("dir", "")
                    visit(entry.path, key + "/")
                else:
                    with open(entry.path, "rb") as f:
                        out[key] = ("file", f.read())

    visit(str(root), "")
    return out


def rel_removed(result: CleanResult, root: Path) -> set[str]:
    base = root.resolve()
    return {p.relative_to(base).as_posix() for p in result.removed}


def permissions_ignored() -> bool:
    """True for root (unless its capabilities were dropped): it can write in a 0o555 dir."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o555)
        try:
            Path(tmp, "probe").touch()
        except PermissionError:
            return False
        finally:
            os.chmod(tmp, 0o755)
    return True


# --- what goes, what stays ------------------------------------------------------------------


def test_removes_bytecode_and_empty_pycache(tmp_path: Path) -> None:
    touch(tmp_path / "pkg/__init__.py")
    touch(tmp_path / "pkg/__pycache__/__init__.cpython-311.pyc", b"12345")
    touch(tmp_path / "pkg/__pycache__/mod.cpython-311.opt-1.pyc", b"123")
    touch(tmp_path / "pkg/sub/deep/__pycache__/x.cpython-39.opt-2.pyc", b"1")
    touch(tmp_path / "legacy.pyc", b"12")  # Python 2 style, next to its source
    touch(tmp_path / "legacy.pyo", b"1")
    touch(tmp_path / "pkg/mod.py")

    result = clean([tmp_path])

    assert result.files == 5
    assert result.dirs == 2
    assert result.bytes == 12
    assert rel_removed(result, tmp_path) == {
        "pkg/__pycache__/__init__.cpython-311.pyc",
        "pkg/__pycache__/mod.cpython-311.opt-1.pyc",
        "pkg/sub/deep/__pycache__/x.cpython-39.opt-2.pyc",
        "legacy.pyc",
        "legacy.pyo",
        "pkg/__pycache__",
        "pkg/sub/deep/__pycache__",
    }
    assert result.skipped == []
    assert result.dry_run is False
    assert result.roots == [tmp_path.resolve()]
    assert set(snapshot(tmp_path)) == {
        "pkg",
        "pkg/__init__.py",
        "pkg/mod.py",
        "pkg/sub",
        "pkg/sub/deep",
    }


def test_keeps_look_alikes(tmp_path: Path) -> None:
    for name in [
        "data.pyc.bak",
        "foo.pycx",
        "foo.pyc~",
        "foo.pyo.orig",
        "pyc",
        "foo_pyc",
        "foo.PYC",
        "foo.py",
        "foo.pyi",
        "foo.pyd",
        "foo.pyz",
        "__pycache__.txt",
        "pycache/a.txt",
    ]:
        touch(tmp_path / name)
    (tmp_path / "x.pyc").mkdir()  # a directory with a bytecode name
    touch(tmp_path / "x.pyc/inner.py")
    (tmp_path / "empty.pyo").mkdir()
    before = snapshot(tmp_path)

    result = clean([tmp_path])

    assert (result.files, result.dirs, result.bytes, result.removed) == (0, 0, 0, [])
    assert snapshot(tmp_path) == before


def test_bytecode_inside_look_alike_dir_is_removed(tmp_path: Path) -> None:
    touch(tmp_path / "x.pyc/__pycache__/m.cpython-311.pyc")
    result = clean([tmp_path])
    assert result.files == 1
    assert result.dirs == 1
    assert set(snapshot(tmp_path)) == {"x.pyc"}


def test_keeps_non_empty_pycache_and_its_other_content(tmp_path: Path) -> None:
    touch(tmp_path / "pkg/__pycache__/a.cpython-311.pyc")
    touch(tmp_path / "pkg/__pycache__/notes.txt", b"keep me")
    touch(tmp_path / "pkg/__pycache__/sub/b.cpython-311.pyc")  # a plain dir inside: stays
    touch(tmp_path / "other/__pycache__/c.cpython-311.pyc")

    result = clean([tmp_path])

    assert result.files == 3
    assert result.dirs == 1  # only other/__pycache__
    assert snapshot(tmp_path) == {
        "pkg": ("dir", ""),
        "pkg/__pycache__": ("dir", ""),
        "pkg/__pycache__/notes.txt": ("file", b"keep me"),
        "pkg/__pycache__/sub": ("dir", ""),
        "other": ("dir", ""),
    }


@pytest.mark.parametrize("dry_run", [False, True])
def test_nested_pycache_emptied_from_the_inside(tmp_path: Path, dry_run: bool) -> None:
    touch(tmp_path / "__pycache__/__pycache__/a.pyc")
    touch(tmp_path / "__pycache__/b.pyc")
    result = clean([tmp_path], dry_run=dry_run)
    assert (result.files, result.dirs) == (2, 2)
    assert (tmp_path / "__pycache__").exists() is dry_run


def test_empty_pycache_is_removed(tmp_path: Path) -> None:
    (tmp_path / "pkg/__pycache__").mkdir(parents=True)
    result = clean([tmp_path])
    assert (result.files, result.dirs) == (0, 1)
    assert not (tmp_path / "pkg/__pycache__").exists()


def test_a_root_is_never_removed_even_an_empty_pycache(tmp_path: Path) -> None:
    touch(tmp_path / "__pycache__/a.pyc")
    result = clean([tmp_path / "__pycache__"])
    assert (result.files, result.dirs) == (1, 0)
    assert (tmp_path / "__pycache__").is_dir()
    # Also when it is reached from another root.
    touch(tmp_path / "__pycache__/b.pyc")
    result = clean([tmp_path, tmp_path / "__pycache__"])
    assert (result.files, result.dirs) == (1, 0)
    assert (tmp_path / "__pycache__").is_dir()


def test_pruned_directories_are_not_entered_but_venvs_are(tmp_path: Path) -> None:
    for name in sorted(PRUNE):
        touch(tmp_path / name / "__pycache__/a.cpython-311.pyc")
        touch(tmp_path / "pkg" / name / "b.pyc")
    touch(tmp_path / ".venv/lib/python3.11/site-packages/m/__pycache__/m.cpython-311.pyc")
    touch(tmp_path / "venv/lib/python3.11/site-packages/n.pyc")

    result = clean([tmp_path])

    assert result.files == 2
    assert all(".venv" in p.parts or "venv" in p.parts for p in result.removed)
    for name in PRUNE:
        assert (tmp_path / name / "__pycache__/a.cpython-311.pyc").exists()
        assert (tmp_path / "pkg" / name / "b.pyc").exists()


def test_a_root_inside_a_pruned_directory_is_cleaned(tmp_path: Path) -> None:
    touch(tmp_path / "node_modules/pyish/__pycache__/a.pyc")
    touch(tmp_path / "node_modules/other/b.pyc")
    touch(tmp_path / "src/c.pyc")
    result = clean([tmp_path, tmp_path / "node_modules/pyish"])
    assert result.files == 2
    assert (tmp_path / "node_modules/other/b.pyc").exists()


def test_unicode_and_odd_names(tmp_path: Path) -> None:
    names = [
        "paquête/__pycache__/módulo.cpython-311.pyc",
        "日本語/__pycache__/モジュール.cpython-311.opt-1.pyc",
        "🐍/🐍.pyc",
        "with space/__pycache__/a b.cpython-311.pyc",
        "-dash/-x.pyo",
        "quote'\"/q.pyc",
        "e\u0301/nfd.pyc",  # decomposed form: must not be normalised away
    ]
    if sys.platform != "win32":
        names += ["new\nline/x.pyc", "back\\slash.pyc", "star*?/a.pyc"]
    for name in names:
        touch(tmp_path / name)
    touch(tmp_path / "日本語/keep.py")

    result = clean([tmp_path])

    assert result.files == len(names)
    assert result.dirs == 3
    assert not any(k.endswith((".pyc", ".pyo")) for k in snapshot(tmp_path))
    assert (tmp_path / "日本語/keep.py").exists()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a bytes-named file system")
def test_undecodable_names(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/\xff\xfe"
    try:
        os.makedirs(raw + b"/__pycache__")
    except OSError as exc:
        pytest.skip(f"file system refuses undecodable names: {exc}")
    with open(raw + b"/__pycache__/\x80.pyc", "wb") as f:
        f.write(b"xx")
    result = clean([tmp_path])
    assert (result.files, result.dirs, result.bytes) == (1, 1, 2)
    assert os.listdir(raw) == []


# --- symlinks -------------------------------------------------------------------------------


def test_symlink_to_outside_dir_is_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(outside / "__pycache__/a.cpython-311.pyc")
    touch(outside / "b.pyc")
    touch(root / "pkg/__pycache__/c.cpython-311.pyc")
    symlink(outside, root / "pkg/linked", is_dir=True)
    symlink(outside / "__pycache__", root / "__pycache__", is_dir=True)  # a link named so
    before = snapshot(outside)

    result = clean([root])

    assert result.files == 1
    assert snapshot(outside) == before
    assert (root / "pkg/linked").is_symlink()
    assert (root / "__pycache__").is_symlink()


def test_symlink_loops(tmp_path: Path) -> None:
    touch(tmp_path / "a/b/__pycache__/x.pyc")
    symlink(tmp_path, tmp_path / "a/b/up", is_dir=True)
    symlink(tmp_path / "a", tmp_path / "a/b/__pycache__/loop", is_dir=True)
    symlink(tmp_path / "self.pyc", tmp_path / "self.pyc")  # points at itself
    symlink("ping.pyc", tmp_path / "pong.pyc")
    symlink("pong.pyc", tmp_path / "ping.pyc")

    result = clean([tmp_path])

    assert result.files == 1
    assert result.dirs == 0  # __pycache__ still holds the 'loop' link
    for link in ["a/b/up", "a/b/__pycache__/loop", "self.pyc", "pong.pyc", "ping.pyc"]:
        assert (tmp_path / link).is_symlink()


def test_symlinked_pyc_and_its_target_stay(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    target = touch(outside / "t.pyc", b"target")
    touch(root / "pkg/__pycache__/real.cpython-311.pyc")
    symlink(target, root / "pkg/__pycache__/l.cpython-311.pyc")
    symlink(outside / "missing.pyc", root / "dangling.pyo")

    result = clean([root])

    assert result.files == 1
    assert result.dirs == 0  # the link keeps its __pycache__
    assert target.read_bytes() == b"target"
    assert (root / "pkg/__pycache__/l.cpython-311.pyc").is_symlink()
    assert (root / "dangling.pyo").is_symlink()


def test_root_given_through_a_symlink_is_resolved(tmp_path: Path) -> None:
    touch(tmp_path / "real/__pycache__/a.pyc")
    symlink(tmp_path / "real", tmp_path / "alias", is_dir=True)
    result = clean([tmp_path / "alias", tmp_path / "real"])
    assert result.roots == [(tmp_path / "real").resolve()]
    assert (result.files, result.dirs) == (1, 1)
    assert (tmp_path / "alias").is_symlink()


# --- failures -------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="directory modes do not protect on Windows")
@pytest.mark.skipif(permissions_ignored(), reason="root ignores permissions")
def test_read_only_directory_is_reported_and_the_rest_removed(tmp_path: Path) -> None:
    locked = tmp_path / "a/__pycache__"
    touch(locked / "x.cpython-311.pyc")
    touch(tmp_path / "b/__pycache__/y.cpython-311.pyc")
    locked.chmod(0o555)
    try:
        result = clean([tmp_path])
    finally:
        locked.chmod(0o755)
    assert result.files == 1
    assert result.dirs == 1
    assert result.skipped == [
        bytecode.Skipped(locked.resolve() / "x.cpython-311.pyc", "permission denied")
    ]
    assert (locked / "x.cpython-311.pyc").exists()
    assert not (tmp_path / "b/__pycache__").exists()


def _failing_unlink(failures: dict[str, OSError]) -> object:
    real_unlink = os.unlink

    def unlink(path: str, *args: object, **kwargs: object) -> None:
        exc = failures.get(os.path.basename(path))
        if exc is not None:
            raise exc
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    return unlink


def test_undeletable_files_are_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates what the read-only test shows for real when not root, plus Windows locks.
    locked = PermissionError(errno.EACCES, "Access is denied")
    locked.winerror = 32  # type: ignore[attr-defined]  # ERROR_SHARING_VIOLATION
    denied = PermissionError(errno.EACCES, "Permission denied")
    readonly_fs = OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(
        os,
        "unlink",
        _failing_unlink({"locked.pyc": locked, "denied.pyc": denied, "rofs.pyc": readonly_fs}),
    )
    touch(tmp_path / "a/__pycache__/locked.pyc")
    touch(tmp_path / "b/__pycache__/denied.pyc")
    touch(tmp_path / "c/rofs.pyc")
    touch(tmp_path / "d/__pycache__/fine.pyc")

    result = clean([tmp_path])

    assert (result.files, result.dirs) == (1, 1)
    assert sorted((s.path.name, s.reason) for s in result.skipped) == [
        ("denied.pyc", "permission denied"),
        ("locked.pyc", "locked by another process"),
        ("rofs.pyc", "read-only file system"),
    ]
    assert (tmp_path / "a/__pycache__/locked.pyc").exists()
    assert not (tmp_path / "d/__pycache__").exists()


def test_file_vanishing_concurrently_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_unlink = os.unlink

    # A bare name and dir_fd where the platform has directory descriptors, else a path.
    def racing_unlink(path: str, *, dir_fd: int | None = None) -> None:
        if path.endswith("gone.pyc"):
            real_unlink(path, dir_fd=dir_fd)  # someone else got there first
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    touch(tmp_path / "__pycache__/gone.pyc")
    touch(tmp_path / "__pycache__/mine.pyc", b"12")

    result = clean([tmp_path])

    assert (result.files, result.bytes, result.dirs, result.skipped) == (1, 2, 1, [])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_an_interrupted_clean_stops_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a level: each thread's share ends after its current directory, not
    after the rest of the level."""
    for i in range(20):
        touch(tmp_path / f"d{i:02d}/__pycache__/m.cpython-311.pyc")
    real_scan = bytecode._scan
    scanned: list[str] = []

    def slow_scan(path: str, *args: object) -> list[str]:
        scanned.append(path)
        if path.endswith("d00"):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the main thread
        time.sleep(0.05)
        return real_scan(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bytecode, "_scan", slow_scan)
    with pytest.raises(KeyboardInterrupt):
        clean([tmp_path])
    assert len([p for p in scanned if os.path.basename(p).startswith("d")]) < 8  # of 20


def test_missing_root_raises_and_deletes_nothing(tmp_path: Path) -> None:
    good = touch(tmp_path / "good/__pycache__/a.pyc")
    missing = tmp_path / "missing"
    with pytest.raises(PathError, match="does not exist") as info:
        clean([tmp_path / "good", missing])
    assert str(missing) in info.value.message
    assert "\n" not in info.value.message
    assert good.exists()


def test_root_that_is_a_file_raises(tmp_path: Path) -> None:
    target = touch(tmp_path / "a.pyc")
    with pytest.raises(PathError, match="not a directory"):
        clean([tmp_path, target])
    assert target.exists()


def test_broken_symlink_root_raises(tmp_path: Path) -> None:
    symlink(tmp_path / "nowhere", tmp_path / "broken", is_dir=True)
    with pytest.raises(PathError):
        clean([tmp_path / "broken"])


def test_no_roots_is_a_no_op() -> None:
    assert clean([]) == CleanResult(roots=[])


# --- dry run and overlapping roots ----------------------------------------------------------


def _sample_tree(root: Path) -> None:
    touch(root / "pkg/__pycache__/a.cpython-311.pyc", b"aaaa")
    touch(root / "pkg/__pycache__/__pycache__/b.pyc", b"b")
    touch(root / "pkg/sub/__pycache__/c.cpython-311.pyc", b"cc")
    touch(root / "pkg/sub/__pycache__/keep.txt")
    touch(root / "pkg/old.pyo", b"ooo")
    touch(root / "pkg/m.py")


def test_dry_run_deletes_nothing_and_reports_the_same(tmp_path: Path) -> None:
    dry_root, real_root = tmp_path / "dry", tmp_path / "real"
    _sample_tree(dry_root)
    _sample_tree(real_root)
    before = snapshot(dry_root)

    dry = clean([dry_root], dry_run=True)
    real = clean([real_root])

    assert snapshot(dry_root) == before
    assert dry.dry_run is True
    assert (dry.files, dry.dirs, dry.bytes) == (real.files, real.dirs, real.bytes) == (4, 2, 10)
    assert rel_removed(dry, dry_root) == rel_removed(real, real_root)


def test_counts_only_when_sizes_and_paths_are_not_wanted(tmp_path: Path) -> None:
    full_root, bare_root = tmp_path / "full", tmp_path / "bare"
    _sample_tree(full_root)
    _sample_tree(bare_root)
    full = clean([full_root])
    bare = clean([bare_root], sizes=False, paths=False)
    assert (bare.files, bare.dirs) == (full.files, full.dirs) == (4, 2)
    assert (bare.bytes, bare.removed, bare.sized) == (0, [], False)
    assert snapshot(bare_root) == snapshot(full_root)
    assert "(" not in clean_summary(bare) and "(10 B)" in clean_summary(full)


@pytest.mark.skipif(not bytecode._BY_FD, reason="no directory descriptors here")
def test_a_directory_swapped_for_a_symlink_is_not_entered(tmp_path: Path) -> None:
    """The walk lists a directory, then opens each subdirectory it found: one replaced by a
    symlink in between (here: a symlink given where a directory was listed) is refused."""
    outside = touch(tmp_path / "outside/__pycache__/o.cpython-311.pyc").parent
    symlink(outside, tmp_path / "link", is_dir=True)
    tally = bytecode._Tally()
    assert bytecode._scan(str(tmp_path / "link"), bytecode.is_bytecode, False, tally) == []
    assert (tally.files, tally.skipped) == (0, [])
    assert (outside / "o.cpython-311.pyc").exists()


def test_overlapping_roots_are_counted_once(tmp_path: Path) -> None:
    _sample_tree(tmp_path)
    sub = tmp_path / "pkg/sub"
    result = clean([sub, tmp_path, tmp_path / "pkg", tmp_path, sub / "."], dry_run=True)
    assert result.roots == [tmp_path.resolve()]
    assert (result.files, result.dirs, result.bytes) == (4, 2, 10)
    assert len(result.removed) == len(set(result.removed)) == 6

    result = clean([sub, tmp_path / "pkg"])
    assert (result.files, result.dirs, result.bytes) == (4, 2, 10)


# --- property: exactly the expected bytecode goes ----------------------------------------------

DIR_NAMES = ["__pycache__", "pkg", "sub", "x.pyc", "ünï", "日本", ".git", "node_modules", ".venv"]


def usable_name(name: str) -> bool:
    # Windows silently strips trailing dots and spaces, which would merge names.
    return name not in (".", "..") and not (sys.platform == "win32" and name[-1] in ". ")


STEMS = ["mod", "__init__", "é", "🐍", "a b", "-x", "data"]
SUFFIXES = [".py", ".pyc", ".pyo", ".cpython-311.pyc", ".cpython-311.opt-2.pyc"]
LOOK_ALIKE_SUFFIXES = [".pyc.bak", ".pycx", ".pyi", ".txt", ".PYC", ".pyo~", ""]
FILE_NAMES = st.builds(
    lambda stem, suffix: stem + suffix,
    st.sampled_from(STEMS) | st.text(alphabet="aZé日🐍 -_.", min_size=1, max_size=6),
    st.sampled_from(SUFFIXES + LOOK_ALIKE_SUFFIXES),
).filter(usable_name)
LINK_NAMES = st.sampled_from(["l.pyc", "l.pyo", "__pycache__", "lnk", "up"])
LINK_TARGETS = st.sampled_from(
    ["in_file", "in_dir", "out_file", "out_dir", "out_pycache", "dangling", "self"]
)


@st.composite
def trees(
    draw: st.DrawFn,
) -> tuple[list[str], list[tuple[int, str]], list[tuple[int, str, str, int]]]:
    dirs = [""]
    for _ in range(draw(st.integers(0, 8))):
        parent = draw(st.integers(0, len(dirs) - 1))
        path = f"{dirs[parent]}/{draw(st.sampled_from(DIR_NAMES))}".lstrip("/")
        if path not in dirs:
            dirs.append(path)
    files = draw(st.lists(st.tuples(st.integers(0, len(dirs) - 1), FILE_NAMES), max_size=20))
    links = draw(
        st.lists(
            st.tuples(st.integers(0, len(dirs) - 1), LINK_NAMES, LINK_TARGETS, st.integers(0, 50)),
            max_size=5,
        )
    )
    return dirs, files, links


def build(
    base: Path,
    spec: tuple[list[str], list[tuple[int, str]], list[tuple[int, str, str, int]]],
) -> tuple[Path, Path]:
    """Make root/ from spec, and outside/ next to it for links to point at."""
    dirs, files, links = spec
    root, outside = base / "root", base / "outside"
    touch(outside / "o.pyc", b"outside")
    touch(outside / "__pycache__/o.cpython-311.pyc", b"outside")
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    made_files: list[Path] = []
    for index, name in files:
        path = root / dirs[index] / name
        if not path.exists():
            touch(path, name.encode())
            made_files.append(path)
    for index, name, kind, pick in links:
        link = root / dirs[index] / name
        if os.path.lexists(link):
            continue
        target: Path = {
            "in_file": made_files[pick % len(made_files)] if made_files else root / "none",
            "in_dir": root / dirs[pick % len(dirs)],  # often an ancestor: a loop
            "out_file": outside / "o.pyc",
            "out_dir": outside,
            "out_pycache": outside / "__pycache__",
            "dangling": base / "nowhere.pyc",
            "self": link,
        }[kind]
        with contextlib.suppress(OSError, NotImplementedError):  # Windows without the privilege
            os.symlink(target, link, target_is_directory=target.is_dir())
    return root, outside


def expected_removals(snap: Snapshot, roots: list[str]) -> set[str]:
    """Independent model of the clean, from a snapshot of the tree before it."""

    def reached(path: str) -> bool:
        for r in roots:
            prefix = f"{r}/" if r else ""
            if path.startswith(prefix) and path != r:
                between = path[len(prefix) :].split("/")[:-1]
                if not any(name in PRUNE for name in between):
                    return True
        return False

    gone = {
        p
        for p, (kind, _) in snap.items()
        if kind == "file" and p.rsplit("/", 1)[-1].endswith((".pyc", ".pyo")) and reached(p)
    }
    # __pycache__ dirs whose every child goes, deepest first.
    for p in sorted(snap, key=lambda p: p.count("/"), reverse=True):
        if snap[p][0] == "dir" and p.rsplit("/", 1)[-1] == "__pycache__" and reached(p):
            children = [c for c in snap if c.startswith(p + "/") and "/" not in c[len(p) + 1 :]]
            if p not in roots and all(c in gone for c in children):
                gone.add(p)
    return gone


@settings(
    max_examples=50,
    deadline=None,
    database=None,  # leaves no .hypothesis directory in the working tree
    suppress_health_check=[HealthCheck.too_slow],
)
@given(spec=trees(), extra_root=st.none() | st.integers(0, 50))
def test_property_exactly_the_bytecode_goes(
    spec: tuple[list[str], list[tuple[int, str]], list[tuple[int, str, str, int]]],
    extra_root: int | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp).resolve()
        root, outside = build(base, spec)
        dirs = spec[0]
        roots = [root]
        rel_roots = [""]
        if extra_root is not None:
            rel = dirs[extra_root % len(dirs)]
            roots.append(root / rel)
            rel_roots.append(rel)
        before, outside_before = snapshot(root), snapshot(outside)
        expected = expected_removals(before, rel_roots)

        dry = clean(roots, dry_run=True)
        assert snapshot(root) == before
        real = clean(roots)

        removed = rel_removed(real, root)
        assert removed == expected
        assert rel_removed(dry, root) == expected
        assert len(real.removed) == len(expected)  # nothing counted twice
        assert (dry.files, dry.dirs, dry.bytes) == (real.files, real.dirs, real.bytes)
        assert real.files + real.dirs == len(expected)
        assert real.bytes == sum(len(before[p][1]) for p in expected if before[p][0] == "file")
        assert real.skipped == []
        after = snapshot(root)
        assert after == {p: v for p, v in before.items() if p not in expected}
        assert snapshot(outside) == outside_before


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith("cslaunch-bytecode")]


def test_the_walk_of_every_tree_finds_the_bytecode_under_the_roots_as_present_does(
    tmp_path: Path,
) -> None:
    """A no-op's proof takes the bytecode the launch's walk found (prove._listed) instead of
    listing it again: the same files, or the digest would differ and the proof never stand."""
    from cslaunch import scan

    app = tmp_path / "app"
    for rel in (
        "app/pkg/__pycache__/mod.cpython-312.pyc",
        "app/pkg/mod.py",
        "app/stray.pyc",
        "app/node_modules/dep/__pycache__/dep.cpython-312.pyc",
        "web/__pycache__/other.cpython-312.pyc",
        "top.pyc",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    trees = [
        scan.Tree(str(tmp_path), lambda rel: True),  # a build context around the root
        scan.Tree(str(app), lambda rel: rel.endswith(".py"), by_name=True),
    ]
    walked = scan.scan(trees).bytecode
    under = [p for p in walked if p.startswith(str(app) + os.sep)]
    assert sorted(under) == sorted(bytecode.present([app]))
    assert len(under) == 2


def test_a_root_the_walk_does_not_enter_as_spelled_is_listed_again(tmp_path: Path) -> None:
    """Where the walk of every tree does not enter a Python root as it is spelled, its list
    would show that root empty while bytecode.present lists its pycs: prove._listed must
    list again (scan.enters says no)."""
    from cslaunch import scan

    elsewhere = tmp_path / "elsewhere" / "app"
    (elsewhere / "__pycache__").mkdir(parents=True)
    (elsewhere / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"x")
    project = tmp_path / "project"
    (project / "src" / "__pycache__").mkdir(parents=True)
    (project / "node_modules" / "tool").mkdir(parents=True)
    (project / "link").symlink_to(elsewhere.parent, target_is_directory=True)
    walked = scan.scan([scan.Tree(str(project), lambda rel: True)])
    assert scan.enters(walked.tops, str(project))
    assert scan.enters(walked.tops, str(project / "src"))
    assert not scan.enters(walked.tops, str(project / "link" / "app"))  # behind a link
    assert not scan.enters(walked.tops, str(project / "node_modules" / "tool"))  # pruned
    assert not scan.enters(walked.tops, str(project / "src" / ".." / "src"))  # another spelling
    assert not scan.enters(walked.tops, str(project / "missing"))
    assert not scan.enters(walked.tops, str(elsewhere))  # under no top
    # What each would cost: present sees the linked root's pyc, the walk's list does not.
    assert bytecode.present([project / "link" / "app"])
    assert not [p for p in walked.bytecode if p.startswith(str(project / "link" / "app"))]
