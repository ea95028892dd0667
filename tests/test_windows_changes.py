"""Issue #18: on Windows an edit that keeps mtime and size is detected by default.

Windows stat data is simulated on Linux (tests/ntfs.py): no inode, Python's `st_ctime` is the
creation time, and NTFS's change time is there to be asked. The scan and the index comparison
run as they do on Windows, with the kernel32 calls injected.
"""

from __future__ import annotations

import os
from pathlib import Path

from cslaunch import index, proof
from cslaunch.hostos import Host
from cslaunch.scan import Tree, file_stat, scan
from tests.ntfs import FakeNTFS


def everything(rel: str) -> bool:
    return True


def launch(
    root: Path, old: index.Index | None, host: Host, *, rehash: bool = False
) -> tuple[index.Changes, index.Index, list[str]]:
    """One change detection: what changed, the index it leaves, and the files it hashed."""
    hashed: list[str] = []

    def spy(path: str) -> str:
        hashed.append(path)
        return index.hash_file(path)

    s = scan([Tree(str(root), everything)], host=host)
    changes, entries = index.compare(old, s, spy, rehash=rehash)
    return changes, index.Index(s.started_ns, entries, {}), hashed


def project(root: Path) -> tuple[Path, Path]:
    """Two sources, old enough not to be "racily clean" (re-hashed for being recent)."""
    (root / "pkg").mkdir()
    a, b = root / "pkg" / "a.py", root / "b.py"
    a.write_text("ANSWER = 41\n")
    b.write_text("x = 1\n")
    for f in (a, b):
        set_mtime(f, f.stat().st_mtime_ns - 100_000_000_000)
    return a, b


def set_mtime(f: Path, ns: int) -> None:
    """As NTFS keeps it: in 100 ns units."""
    os.utime(f, ns=(f.stat().st_atime_ns, ns // 100 * 100))


def edit_keeping_mtime_and_size(f: Path, text: str) -> None:
    """What Explorer's copy-and-replace, robocopy or unzip do: new content, old mtime."""
    st = f.stat()
    f.write_text(text)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size


def test_an_edit_keeping_mtime_and_size_is_detected_without_full(tmp_path: Path) -> None:
    a, _ = project(tmp_path)
    host = FakeNTFS().host()
    _, idx, _ = launch(tmp_path, None, host)
    assert {e.stat.ino for e in idx.files.values()} == {0}  # no inode, as on Windows

    edit_keeping_mtime_and_size(a, "ANSWER = 42\n")
    changes, idx, hashed = launch(tmp_path, idx, host)
    assert changes.modified == {str(a)}
    assert hashed == [str(a)]  # only the file whose change time moved

    changes, _, hashed = launch(tmp_path, idx, host)
    assert not changes and hashed == []  # and the next launch is a no-op again


def test_with_only_the_creation_time_the_same_edit_needs_full(tmp_path: Path) -> None:
    """What Windows' `st_ctime` alone allowed (the README's old limitation)."""
    a, _ = project(tmp_path)
    host = FakeNTFS(creation_only=True).host()
    _, idx, _ = launch(tmp_path, None, host)
    edit_keeping_mtime_and_size(a, "ANSWER = 42\n")
    assert not launch(tmp_path, idx, host)[0]
    assert launch(tmp_path, idx, host, rehash=True)[0].modified == {str(a)}


def test_a_touch_is_not_a_change(tmp_path: Path) -> None:
    _, b = project(tmp_path)
    host = FakeNTFS().host()
    _, idx, _ = launch(tmp_path, None, host)
    # `touch -d`: mtime and change time move, content stays. (A touch to now is re-hashed on
    # the next launch as well: "racily clean", too close to the index's own time.)
    set_mtime(b, b.stat().st_mtime_ns + 10_000_000_000)
    changes, idx, hashed = launch(tmp_path, idx, host)
    assert not changes
    assert hashed == [str(b)]  # hashed once to know; the index keeps the new stat data
    _, _, hashed = launch(tmp_path, idx, host)
    assert hashed == []


def test_a_no_op_lists_each_directory_once_and_opens_no_file(tmp_path: Path) -> None:
    project(tmp_path)
    fake = FakeNTFS()
    _, idx, _ = launch(tmp_path, None, fake.host())
    fake.opened.clear()
    changes, _, hashed = launch(tmp_path, idx, fake.host())
    assert not changes and hashed == []
    assert sorted(fake.opened) == [(str(tmp_path), True), (str(tmp_path / "pkg"), True)]
    assert fake.open_handles == 0


def test_a_file_alone_has_the_stat_data_the_walk_gave_it(tmp_path: Path) -> None:
    """The proof compares a file's stat data now with the scan's: one file asked alone (its
    own handle) and its directory's listing must agree, or every file would look edited."""
    a, _ = project(tmp_path)
    host = FakeNTFS().host()
    walked = scan([Tree(str(tmp_path), everything)], host=host).files[str(a)]
    assert file_stat(str(a), host) == walked


def test_a_pyc_copied_over_another_moves_the_proof_digests(tmp_path: Path) -> None:
    """The no-op proof: a pyc replaced keeping mtime and size is seen from stat data alone."""
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    pyc = cache / "m.cpython-312.pyc"
    pyc.write_bytes(b"x" * 20)
    fake = FakeNTFS()
    before = proof.pyc_digests([str(pyc)], fake.host())
    assert proof.pyc_digests([str(pyc)], fake.host()) == before
    edit_keeping_mtime_and_size(pyc, "y" * 20)
    fake.opened.clear()
    assert proof.pyc_digests([str(pyc)], fake.host()) != before
    assert fake.opened == [(str(cache), True)]  # one listing, no pyc opened or read
    gone = proof.pyc_digests([str(pyc), str(cache / "gone.pyc")], fake.host())
    assert gone != proof.pyc_digests([str(pyc)], fake.host())
