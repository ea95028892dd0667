"""The probe verify runs inside containers, run here with the host's Python on a host tree:
it must agree with the host's index (hash_file) and find what the engine tests find."""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cslaunch.index import hash_file
from cslaunch.proofrun import SCRIPT, STDLIB_ONLY, question
from cslaunch.scan import file_stat


def probe(
    files: list[tuple[Path, str, list[int]]],
    dirs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    asked = question(((str(p), digest, st) for p, digest, st in files), dirs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | (env or {})
    result = subprocess.run(
        [sys.executable, "-S", str(SCRIPT)],
        input=asked,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def indexed(path: Path) -> tuple[Path, str, list[int]]:
    """A file as the host's index holds it."""
    return path, hash_file(str(path)), list(file_stat(str(path)))


def test_the_hosts_very_file_is_not_read_again_any_other_copy_is(tmp_path: Path) -> None:
    m = tmp_path / "m.py"
    m.write_text("x = 1\n")
    found = probe([indexed(m)])
    assert (found["problems"], found["checked"], found["hashed"]) == ([], 1, 0)

    # Same contents, another inode (a copy in an image layer): hashed, and agrees.
    path, digest, st = indexed(m)
    copy = tmp_path / "copy.py"
    copy.write_bytes(m.read_bytes())
    found = probe([(copy, digest, st)])
    assert (found["problems"], found["hashed"]) == ([], 1)

    # Written since the index saw it: ctime moved, so it is hashed and found to differ.
    m.write_text("x = 2\n")
    os.utime(m, ns=(st[0], st[0]))
    found = probe([(path, digest, st)])
    assert found["problems"] == [[str(m), "differs from the host's file"]]


def test_a_symlink_hashes_as_the_index_hashes_it(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("x = 1\n")
    link = tmp_path / "m.py"
    link.symlink_to("real.py")
    path, digest, _ = indexed(link)
    found = probe([(path, digest, [0, 0, 0, 0])])  # not the same file: hashed
    assert (found["problems"], found["hashed"]) == ([], 1)
    # The host hashed a link by its target's name where it dangled there (an absolute link
    # into the container's own tree); one that dangles here has nothing to import.
    by_name = hashlib.blake2b(b"link:real.py", digest_size=16).hexdigest()
    assert probe([(path, by_name, [0, 0, 0, 0])])["problems"] == []
    gone = tmp_path / "gone.py"
    gone.symlink_to("../config/local_settings.py")
    assert probe([(gone, "content-the-host-read", [0, 0, 0, 0])])["problems"] == []


def test_stale_and_sourceless_pycs_are_found_without_rehashing_the_source(
    tmp_path: Path,
) -> None:
    m = tmp_path / "m.py"
    m.write_text("GREETING = 'v1'\n")
    st = m.stat()
    # A pyc of other code whose header still matches m.py's mtime and size.
    other = tmp_path / "other.py"
    other.write_text("GREETING = 'v7'\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache = tmp_path / "__pycache__"
    pyc = cache / f"m.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(other), cfile=str(pyc), dfile=str(m), doraise=True)
    other.unlink()
    legacy = tmp_path / "gone.pyc"
    legacy.write_bytes(pyc.read_bytes())

    found = probe([indexed(m)])
    assert found["hashed"] == 0 and found["pycs"] == 1
    assert {p[0]: (p[1].split(":")[0], *p[2:]) for p in found["problems"]} == {
        str(pyc): ("stale pyc", str(m)),
        str(legacy): ("sourceless legacy pyc",),
    }


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    found = probe([(tmp_path / "gone.py", "0" * 32, [1, 2, 3, 4])])
    assert found["problems"] == [[str(tmp_path / "gone.py"), "missing in the container"]]


def test_each_module_is_matched_with_its_own_pycs_only(tmp_path: Path) -> None:
    """`m.py` and `mm.py` side by side, one with an optimized pyc too: each source is checked
    against the pycs its stem names (m.*, mm.*), a stale one of `m` reported as such."""
    tag = sys.implementation.cache_tag
    m, mm = tmp_path / "m.py", tmp_path / "mm.py"
    m.write_text("X = 1\n")
    mm.write_text("Y = 2\n")
    cache = tmp_path / "__pycache__"
    py_compile.compile(str(mm), cfile=str(cache / f"mm.{tag}.pyc"), doraise=True)
    py_compile.compile(str(m), cfile=str(cache / f"m.{tag}.opt-1.pyc"), doraise=True, optimize=1)
    # m's plain pyc: other code under a header that matches m.py's mtime and size.
    st = m.stat()
    other = tmp_path / "other.txt"
    other.write_text("X = 7\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    py_compile.compile(str(other), cfile=str(cache / f"m.{tag}.pyc"), dfile=str(m), doraise=True)

    found = probe([indexed(m), indexed(mm)])
    assert found["pycs"] == 3
    assert [(p[0], p[1].split(":")[0]) for p in found["problems"]] == [
        (str(cache / f"m.{tag}.pyc"), "stale pyc")
    ]


def test_directories_asked_alone_are_searched_for_sourceless_pycs(tmp_path: Path) -> None:
    """A deleted module's directory: its legacy pyc is imported though no source is asked."""
    gone = tmp_path / "pkg"
    gone.mkdir()
    (gone / "old.pyc").write_bytes(b"x")
    (gone / "kept.pyc").write_bytes(b"x")
    (gone / "kept.py").write_text("x = 1\n")
    found = probe([], dirs=(str(gone),))
    assert found["problems"] == [
        [str(gone / "old.pyc"), "sourceless legacy pyc: imported although its source is gone"]
    ]
    assert found["checked"] == 0
    assert probe([])["problems"] == []


def _stale_pyc(source: Path, pyc: Path, other_code: str) -> None:
    """A pyc of other code whose header matches `source`'s mtime and size."""
    st = source.stat()
    other = source.parent / "other.tmp"
    other.write_text(other_code)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    py_compile.compile(str(other), cfile=str(pyc), dfile=str(source), doraise=True)
    other.unlink()


def test_under_a_pycache_prefix_the_mirror_is_looked_at_not_pycache(tmp_path: Path) -> None:
    """PYTHONPYCACHEPREFIX in the container's environment: Python keeps its pycs in a mirror
    tree under the prefix (which a restarted container keeps) and reads no __pycache__."""
    tag = sys.implementation.cache_tag
    src, prefix = tmp_path / "app", tmp_path / "prefix"
    src.mkdir()
    m, n = src / "m.py", src / "n.py"
    m.write_text("GREETING = 'v1'\n")
    n.write_text("y = 2\n")
    mirror = prefix / str(src).lstrip("/")
    _stale_pyc(m, mirror / f"m.{tag}.pyc", "GREETING = 'v7'\n")
    py_compile.compile(str(n), cfile=str(mirror / f"n.{tag}.pyc"), doraise=True)
    _stale_pyc(n, src / "__pycache__" / f"n.{tag}.pyc", "y = 7\n")  # read by none

    found = probe([indexed(m), indexed(n)], env={"PYTHONPYCACHEPREFIX": str(prefix)})
    assert found["pycs"] == 2
    assert [(path, why.split(":")[0], source) for path, why, source in found["problems"]] == [
        (str(mirror / f"m.{tag}.pyc"), "stale pyc", str(m))
    ]
    # Without the prefix Python reads __pycache__, and so does the probe.
    found = probe([indexed(m), indexed(n)])
    assert [p[0] for p in found["problems"]] == [str(src / "__pycache__" / f"n.{tag}.pyc")]


@pytest.mark.parametrize("inside", ["tree", "root"])
def test_a_prefix_mirror_inside_the_tree_is_no_sourceless_pyc(tmp_path: Path, inside: str) -> None:
    """A prefix inside the bind mount (`/app/.pyc`), or `/` itself: its mirror pycs sit in
    directories the host sees as holding bytecode; `m.cpython-311.pyc` names no module, so
    Python never imports it in place of a deleted one."""
    tag = sys.implementation.cache_tag
    src = tmp_path / "app"
    src.mkdir()
    m = src / "m.py"
    m.write_text("x = 1\n")
    prefix = src / ".pyc" if inside == "tree" else Path("/")
    mirror = prefix / str(src).lstrip("/")
    py_compile.compile(str(m), cfile=str(mirror / f"m.{tag}.pyc"), doraise=True)
    (mirror / f"gone.{tag}.pyc").write_bytes((mirror / f"m.{tag}.pyc").read_bytes())
    found = probe(
        [indexed(m)], dirs=(str(mirror), str(src)), env={"PYTHONPYCACHEPREFIX": str(prefix)}
    )
    assert (found["problems"], found["pycs"]) == ([], 1)


def test_the_probe_does_not_import_the_projects_modules(tmp_path: Path) -> None:
    """Run as the container runs it, in the project's directory: a `json.py` there stays
    the project's, not the standard library's."""
    (tmp_path / "json.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    result = subprocess.run(
        [sys.executable, "-S", "-c", STDLIB_ONLY, SCRIPT.read_text(encoding="utf-8")],
        input=question([], ()),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(result.stdout)["checked"] == 0
    assert not (tmp_path / "ran").exists()
