"""The change index: stat decides what to hash, content decides what changed."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cslaunch import index, state
from cslaunch.scan import FileStat, Scan, Tree, scan


def everything(rel: str) -> bool:
    return True


def snapshot(root: Path) -> tuple[Scan, index.Index | None]:
    return scan([Tree(str(root), everything)]), None


def launch_once(root: Path, old: index.Index | None) -> tuple[index.Changes, index.Index]:
    s = scan([Tree(str(root), everything)])
    changes, entries = index.compare(old, s)
    return changes, index.Index(s.started_ns, entries, {})


def age(path: Path, seconds: int = 100) -> None:
    """Backdate mtime so the entry is not 'racily clean' (too close to the index time)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


def test_first_scan_reports_everything_added(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    changes, idx = launch_once(tmp_path, None)
    assert changes.added == {str(tmp_path / "a.py")}
    assert set(idx.files) == {str(tmp_path / "a.py")}


def test_unchanged_files_are_not_hashed(tmp_path: Path) -> None:
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    age(f)
    _, idx = launch_once(tmp_path, None)
    hashed: list[str] = []

    def spy(path: str) -> str:
        hashed.append(path)
        return index.hash_file(path)

    changes, _ = index.compare(idx, scan([Tree(str(tmp_path), everything)]), spy)
    assert not changes
    assert hashed == []


def test_edit_keeping_mtime_and_size_is_detected(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("MESSAGE = 'v1'\n")
    age(f)
    _, idx = launch_once(tmp_path, None)
    st = f.stat()
    f.write_text("MESSAGE = 'v2'\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -a do
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    changes, _ = launch_once(tmp_path, idx)
    assert changes.modified == {str(f)}


def test_touch_without_content_change_is_no_change(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    age(f)
    _, idx = launch_once(tmp_path, None)
    os.utime(f)  # touch
    changes, idx2 = launch_once(tmp_path, idx)
    assert not changes
    assert idx2.files[str(f)].stat.mtime_ns == f.stat().st_mtime_ns  # stat refreshed


def test_racily_clean_entry_is_rehashed(tmp_path: Path) -> None:
    """An edit in the same clock tick as the index leaves every stat field equal; only a
    re-hash of recently modified entries can see it."""
    f = tmp_path / "m.py"
    f.write_text("a = 1\n")
    s = scan([Tree(str(tmp_path), everything)])
    _, entries = index.compare(None, s)
    idx = index.Index(s.started_ns, entries, {})
    # Simulate a same-tick edit: content differs, stat identical to what was indexed.
    f.write_text("a = 2\n")
    same = Scan(started_ns=s.started_ns + 1, files=dict(s.files))
    changes, _ = index.compare(idx, same)
    assert changes.modified == {str(f)}


def test_renames_and_deletions(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("x = 1\n")
    (tmp_path / "gone.py").write_text("y = 1\n")
    _, idx = launch_once(tmp_path, None)
    (tmp_path / "old.py").rename(tmp_path / "new.py")
    (tmp_path / "gone.py").unlink()
    changes, _ = launch_once(tmp_path, idx)
    assert changes.added == {str(tmp_path / "new.py")}
    assert changes.deleted == {str(tmp_path / "old.py"), str(tmp_path / "gone.py")}


def test_save_and_load_roundtrip_and_corrupt_index(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    _, idx = launch_once(tmp_path, None)
    idx.services = {"backend": "abc"}
    index.save(tmp_path, idx)
    loaded = index.load(tmp_path)
    assert loaded == idx
    path = index.index_path(tmp_path)
    if os.name == "posix":
        assert path.stat().st_mode & 0o077 == 0  # private to the user
    assert not list(path.parent.glob(".index-*"))  # no temp file left behind
    path.write_text("{not json")
    assert index.load(tmp_path) is None
    path.write_text('{"version": 999, "files": {}}')
    assert index.load(tmp_path) is None


def test_changed_keys_name_what_moved_build_per_sub_key() -> None:
    old_json = {"image": "a", "build": {"context": "/p", "args": {"V": "1"}}, "command": ["x"]}
    new_json = {"image": "a", "build": {"context": "/p", "args": {"V": "2"}, "target": "dev"}}
    old = index.config_hashes(old_json)
    new = index.config_hashes(new_json)
    assert index.changed_keys(old, new, new_json) == {"build.args", "build.target", "command"}
    assert index.changed_keys(new, new, new_json) == frozenset()
    assert index.changed_keys(None, new, new_json) == frozenset()


def test_an_index_with_one_hash_per_service_still_loads_and_compares(tmp_path: Path) -> None:
    raw = {"image": "a", "command": ["x"]}
    idx = index.Index(1, {}, {"web": index.config_hash(raw), "db": "0" * 32})
    index.save(tmp_path, idx)
    loaded = index.load(tmp_path)
    assert loaded is not None
    new = index.config_hashes(raw)
    assert index.changed_keys(loaded.services["web"], new, raw) == frozenset()
    assert index.changed_keys(loaded.services["db"], new, raw) == {index.UNKNOWN_KEY}


def test_config_hash_is_order_independent() -> None:
    assert index.config_hash({"a": 1, "b": [1, 2]}) == index.config_hash({"b": [1, 2], "a": 1})
    assert index.config_hash({"a": 1}) != index.config_hash({"a": 2})


# --- property: never miss a content change, never report an equal one ---------------------

names = st.sampled_from(["a.py", "b.py", "pkg/c.py", "pkg/d.txt", "e.py"])
contents = st.sampled_from([b"x = 1\n", b"x = 2\n", b"y = 1\n", b"", b"longer = 12345\n"])
edits = st.lists(
    st.tuples(st.sampled_from(["write", "write_keep_stat", "delete", "touch"]), names, contents),
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(initial=st.dictionaries(names, contents, min_size=1), ops=edits)
def test_index_matches_content(
    tmp_path_factory: pytest.TempPathFactory,
    initial: dict[str, bytes],
    ops: list[tuple[str, str, bytes]],
) -> None:
    root = tmp_path_factory.mktemp("tree")
    for name, data in initial.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        age(p)
    before = {n: (root / n).read_bytes() for n in initial}
    _, idx = launch_once(root, None)
    for op, name, data in ops:
        p = root / name
        if op == "delete":
            p.unlink(missing_ok=True)
        elif op == "touch" and p.exists():
            os.utime(p)
        elif op in ("write", "write_keep_stat"):
            p.parent.mkdir(parents=True, exist_ok=True)
            old = p.stat() if p.exists() else None
            p.write_bytes(data)
            if op == "write_keep_stat" and old is not None:
                os.utime(p, ns=(old.st_atime_ns, old.st_mtime_ns))
    after = {
        str(p.relative_to(root)).replace(os.sep, "/"): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
    }
    s = scan([Tree(str(root), everything)])
    changes, entries = index.compare(idx, s)
    expected = {str(root / n) for n in set(before) | set(after) if before.get(n) != after.get(n)}
    assert changes.all == expected
    # The column-wise no-op test, the set-wise comparison and a per-file loop agree.
    assert (changes, entries) == index._compare(idx, s, index.hash_file, False)
    assert (changes, entries) == _per_file(idx, s)


def _per_file(old: index.Index | None, s: Scan) -> tuple[index.Changes, dict[str, index.Entry]]:
    """The comparison one file at a time, as written before it was made with sets: the
    reference the faster forms are held to."""
    old_files = old.files if old else {}
    racy_after = (old.scanned_ns - index.RACY_NS) if old else 0
    entries: dict[str, index.Entry] = {}
    added, modified = set(), set()
    for path, stat in s.files.items():
        prev = old_files.get(path)
        if prev is not None and prev.stat == stat and prev.stat.mtime_ns < racy_after:
            entries[path] = prev
            continue
        try:
            digest = index.hash_file(path)
        except OSError:
            continue
        if prev is None:
            added.add(path)
        elif prev.digest != digest:
            modified.add(path)
        kept = prev is not None and prev.digest == digest
        changed_ns = prev.changed_ns if prev is not None and kept else s.started_ns
        entries[path] = index.Entry(stat, digest, changed_ns)
    deleted = {p for p in old_files if p not in entries}
    changes = index.Changes(frozenset(added), frozenset(modified), frozenset(deleted))
    return changes, entries


def test_an_index_nothing_moved_in_is_kept_as_it_is(tmp_path: Path) -> None:
    """A no-op does not write the index again; its proof then names the kept index."""
    from cslaunch import changes
    from cslaunch.model import parse_stack

    src = tmp_path / "src"
    src.mkdir()
    module = src / "m.py"
    module.write_text("x = 1\n")
    age(module)
    volume = {"type": "bind", "source": str(src), "target": "/app"}
    raw = {"name": "t", "services": {"web": {"volumes": [volume]}}}
    stack = parse_stack(raw)

    def detect() -> changes.ChangeSet:
        return changes.detect(tmp_path, stack, raw["services"], {"web"}, [])

    first = detect()
    assert not first.index_kept and first.index_ns == first.scan.started_ns
    index.save(tmp_path, first.new_index())
    again = detect()
    assert again.index_kept and again.index_ns == first.scan.started_ns
    os.utime(module)  # a touch: no change, but new stat data to keep
    touched = detect()
    assert not touched.changes and not touched.index_kept
    assert touched.index_ns == touched.scan.started_ns


def test_an_index_whose_racily_clean_entries_a_later_scan_clears_is_written_again(
    tmp_path: Path,
) -> None:
    """A file indexed racily clean is hashed by every launch until the index's scan time
    moves on: a no-op that found it unchanged writes the index again (as git's status
    does), once, and the next launch keeps it without hashing anything."""
    from cslaunch import changes
    from cslaunch.model import parse_stack

    src = tmp_path / "src"
    src.mkdir()
    module = src / "m.py"
    module.write_text("x = 1\n")
    age(module, 10)
    volume = {"type": "bind", "source": str(src), "target": "/app"}
    raw = {"name": "t", "services": {"web": {"volumes": [volume]}}}
    stack = parse_stack(raw)

    def detect() -> changes.ChangeSet:
        index.forget()
        return changes.detect(tmp_path, stack, raw["services"], {"web"}, [])

    first = detect()
    # As if indexed the moment it was written (a launch right after a `git pull`).
    mtime = module.stat().st_mtime_ns
    index.save(tmp_path, index.Index(mtime + 1, first.entries, first.config_hashes))
    racy = detect()
    assert not racy.changes and racy.entries == racy.old.files  # type: ignore[union-attr]
    assert not racy.index_kept and racy.index_ns == racy.scan.started_ns
    index.save(tmp_path, racy.new_index())
    with mock.patch.object(index, "_hash_all", side_effect=AssertionError("hashed")):
        again = detect()
    assert not again.changes and again.index_kept


def test_racily_clean_entries_are_refreshed_only_when_a_newer_scan_clears_them() -> None:
    second = 1_000_000_000

    def entry(mtime_ns: int) -> index.Entry:
        return index.Entry(FileStat(mtime_ns, mtime_ns, 1, 1), "d")

    files = {"a": entry(10 * second), "b": entry(99 * second + second // 2)}
    old = index.Index(100 * second, files)
    # b was racily clean (within 2 s of the index) and is not for a scan 5 s later.
    assert index.refreshes(old, old.files, 105 * second)
    # Still racily clean for a scan 1 s later: a write would buy nothing.
    assert not index.refreshes(old, old.files, 101 * second)
    # No racily clean entry at all: nothing to refresh.
    assert not index.refreshes(old, {"a": old.files["a"]}, 105 * second)
    # An mtime ahead of the clock stays racily clean.
    ahead = {"c": entry(200 * second)}
    assert not index.refreshes(index.Index(100 * second, ahead), ahead, 105 * second)


def test_state_lives_outside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    state.write_json(project, "x.json", {"a": 1})
    assert list(project.iterdir()) == []  # nothing a build context could take into an image
    assert state.read_json(project, "x.json") == {"a": 1}
    other = tmp_path / "other" / "proj"  # same name, another checkout: its own state
    other.mkdir(parents=True)
    assert state.read_json(other, "x.json") is None


def test_old_in_project_state_is_read_then_moved_out(tmp_path: Path) -> None:
    old = tmp_path / ".cslaunch"
    old.mkdir()
    (old / ".gitignore").write_text("*\n")
    (old / "lock").write_text("")
    (old / "index.json").write_text('{"version": 2}')
    (old / "proof.json").write_text('{"p": 1}')
    # A read-only command reads the old state where it is, and moves nothing.
    assert state.read_json(tmp_path, "proof.json") == {"p": 1}
    assert old.is_dir()
    # The first run that writes state moves the old documents and removes the directory.
    state.write_json(tmp_path, "last-launch.json", {"ok": True})
    assert not old.exists()
    assert state.read_json(tmp_path, "proof.json") == {"p": 1}
    assert index.index_path(tmp_path).parent == state.project_state(tmp_path)


def test_an_old_state_dir_holding_something_else_stays(tmp_path: Path) -> None:
    old = tmp_path / ".cslaunch"
    old.mkdir()
    (old / "notes.txt").write_text("mine")
    state.state_dir(tmp_path)
    assert (old / "notes.txt").read_text() == "mine"


def test_an_index_saved_as_json_is_read_once_then_replaced(tmp_path: Path) -> None:
    """The index of an earlier cslaunch (JSON, version 2) still counts: no launch after an
    upgrade treats every file as changed. The next save writes the binary index and drops it."""
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    age(f)
    _, idx = launch_once(tmp_path, None)
    e = idx.files[str(f)]
    row = [*e.stat, e.digest, e.changed_ns]
    old = {"version": 2, "scanned_ns": idx.scanned_ns, "services": {}, "files": {str(f): row}}
    state.write_json(tmp_path, index.JSON_INDEX_FILE, old)
    assert not index.index_path(tmp_path).exists()
    assert index.load(tmp_path) == idx
    index.save(tmp_path, idx)
    assert index.index_path(tmp_path).exists()
    assert not (state.project_state(tmp_path) / index.JSON_INDEX_FILE).exists()
    assert index.load(tmp_path) == idx


def test_a_no_op_keeps_every_entry_without_hashing(tmp_path: Path) -> None:
    """The column-wise no-op test and the per-file loop agree: nothing hashed, every entry
    the old one; one moved stat field sends it to the loop."""
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(name)
        age(tmp_path / name)
    _, idx = launch_once(tmp_path, None)

    def no_hash(path: str) -> str:
        raise AssertionError(f"hashed {path}")

    changes, entries = index.compare(idx, scan([Tree(str(tmp_path), everything)]), no_hash)
    assert not changes and entries == idx.files
    os.utime(tmp_path / "a.py", ns=(0, 5_000_000_000))  # stat moved, content did not
    changes, entries = index.compare(idx, scan([Tree(str(tmp_path), everything)]))
    assert not changes and entries[str(tmp_path / "a.py")].stat.mtime_ns == 5_000_000_000


def test_a_name_only_tree_tracks_what_its_include_says(tmp_path: Path) -> None:
    """by_name asks include once per distinct name: the same files as asking per path."""
    for rel in ("a/m.py", "b/m.py", "b/n.txt", "c/d/m.py", "c/d/x.pyc", "c/__pycache__/m.pyc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    asked: list[str] = []

    def py(rel: str) -> bool:
        asked.append(rel)
        return rel.endswith(".py")

    by_path = scan([Tree(str(tmp_path), lambda rel: rel.endswith(".py"))])
    by_name = scan([Tree(str(tmp_path), py, by_name=True)])
    assert by_name.files == by_path.files and len(by_name.files) == 3
    assert sorted(by_name.bytecode) == sorted(by_path.bytecode) and len(by_name.bytecode) == 2
    assert sorted(asked) == ["m.py", "n.txt"]


def test_an_index_kept_in_memory_stands_for_its_file_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watch loads the index once per batch: what this process saved or read is not read
    again while the file is as it was; another writer's index is."""
    (tmp_path / "a.py").write_text("x = 1\n")
    _, idx = launch_once(tmp_path, None)
    index.save(tmp_path, idx)
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    assert index.load(tmp_path) is idx
    assert index.load(tmp_path) is idx
    assert reads == []

    # Another cslaunch saves (another process: its own write, not this one's save).
    (tmp_path / "b.py").write_text("y = 2\n")
    _, theirs = launch_once(tmp_path, idx)
    data = index.index_path(tmp_path).read_bytes()
    index.save(tmp_path, theirs)
    other = index.index_path(tmp_path).read_bytes()
    state.write_bytes(tmp_path, index.INDEX_FILE, data)  # back to ours, a new file
    assert index.load(tmp_path) == idx
    state.write_bytes(tmp_path, index.INDEX_FILE, other)
    reads.clear()
    loaded = index.load(tmp_path)
    assert loaded == theirs and loaded is not theirs
    assert len(reads) == 1
    assert index.load(tmp_path) is loaded and len(reads) == 1


def test_a_focus_asks_only_its_paths_and_compares_with_the_last_proved_index(
    tmp_path: Path,
) -> None:
    from cslaunch import changes
    from cslaunch.model import parse_stack

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    for name in ("a.py", "b.py", "pkg/c.py"):
        (src / name).write_text(f"# {name}\n")
        age(src / name)  # not racily clean: an unsaved edit would be found by a re-hash
    volume = {"type": "bind", "source": str(src), "target": "/app"}
    raw = {"name": "t", "services": {"web": {"volumes": [volume]}}}
    stack = parse_stack(raw)

    def detect(focus: changes.Focus | None = None) -> changes.ChangeSet:
        return changes.detect(tmp_path, stack, raw["services"], {"web"}, [], focus=focus)

    first = detect()
    index.save(tmp_path, first.new_index())
    (src / "a.py").write_text("# edited\n")
    (src / "pkg/new.py").write_text("")
    (src / "b.py").write_text("# edited, and no event for it\n")
    saved = frozenset({str(src / "a.py"), str(src / "pkg/new.py")})
    focused = detect(changes.Focus(first.scan.files, saved))
    assert not focused.walked and focused.asked == saved
    assert focused.changes.all == saved  # only what the events named
    # Not proved (the launch ended early, say): the next batch, from this scan, still
    # finds a.py and new.py against the index, with its own save.
    (src / "pkg/c.py").write_text("# edited too\n")
    later = detect(changes.Focus(focused.scan.files, frozenset({str(src / "pkg/c.py")})))
    assert later.changes.all == saved | {str(src / "pkg/c.py")}
    walked = detect()
    assert walked.walked and walked.changes.all == later.changes.all | {str(src / "b.py")}
