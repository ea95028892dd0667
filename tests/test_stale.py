"""Selective bytecode invalidation: only bytecode that can run code not on disk goes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cslaunch import bytecode
from cslaunch.errors import PathError


def tree(root: Path) -> dict[str, Path]:
    pkg = root / "pkg"
    cache = pkg / "__pycache__"
    cache.mkdir(parents=True)
    files = {
        "kept.py": pkg / "kept.py",
        "changed.py": pkg / "changed.py",
        "kept.pyc": cache / "kept.cpython-311.pyc",
        "changed.pyc": cache / "changed.cpython-311.pyc",
        "changed.opt.pyc": cache / "changed.cpython-312.opt-1.pyc",
        "orphan.pyc": cache / "gone.cpython-311.pyc",
        "legacy.pyc": pkg / "ghost.pyc",
        "data": cache / "notes.txt",
    }
    for path in files.values():
        path.write_text("x")
    return files


def test_stale_selects_changed_deleted_orphan_and_legacy(tmp_path: Path) -> None:
    f = tree(tmp_path)
    found = [str(p) for k, p in f.items() if k.endswith(".pyc")]
    doomed = dict(
        bytecode.stale(
            found,
            sources={str(f["kept.py"]), str(f["changed.py"])},
            changed={str(f["changed.py"])},
            roots=[str(tmp_path)],
        )
    )
    assert doomed == {
        str(f["changed.pyc"]): "changed",
        str(f["changed.opt.pyc"]): "changed",  # every tag and optimisation level
        str(f["orphan.pyc"]): "orphan",
        str(f["legacy.pyc"]): "legacy",
    }


def test_remove_reports_reasons_and_keeps_valid_bytecode(tmp_path: Path) -> None:
    f = tree(tmp_path)
    doomed = [(str(f["changed.pyc"]), "changed"), (str(f["orphan.pyc"]), "orphan")]
    dry = bytecode.remove(doomed, roots=[tmp_path], dry_run=True)
    assert dry.files == 2 and dry.dirs == 0 and f["changed.pyc"].exists()
    result = bytecode.remove(doomed, roots=[tmp_path])
    assert result.files == 2 and result.reasons == {"changed": 1, "orphan": 1}
    assert not f["changed.pyc"].exists() and f["kept.pyc"].exists() and f["data"].exists()


def test_remove_never_touches_links_or_non_bytecode(tmp_path: Path) -> None:
    target = tmp_path / "outside.pyc"
    target.write_text("x")
    link = tmp_path / "link.pyc"
    link.symlink_to(target)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    result = bytecode.remove([(str(link), "legacy"), (str(other), "legacy")], roots=[tmp_path])
    assert result.files == 0
    assert link.is_symlink() and target.exists() and other.exists()


def test_empty_pycache_goes(tmp_path: Path) -> None:
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    pyc = cache / "m.cpython-311.pyc"
    pyc.write_text("x")
    assert bytecode.remove([(str(pyc), "orphan")], roots=[tmp_path]).dirs == 1
    assert not cache.exists()


def test_stale_in_paths_finds_orphans_and_legacy_only(tmp_path: Path) -> None:
    f = tree(tmp_path)
    doomed = dict(bytecode.stale_in([tmp_path]))
    assert set(doomed) == {str(f["orphan.pyc"]), str(f["legacy.pyc"])}
    with pytest.raises(PathError):
        bytecode.stale_in([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("winerror", "reason"), [(None, "permission denied"), (32, "locked by another process")]
)
def test_unremovable_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, winerror: int | None, reason: str
) -> None:
    """Read-only (root ignores modes, so the refusal is simulated at the unlink) or locked by
    another process on Windows: reported and skipped, the rest goes on."""
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    stuck, other = cache / "a.cpython-311.pyc", cache / "b.cpython-311.pyc"
    stuck.write_text("x")
    other.write_text("x")
    real_unlink = os.unlink

    def unlink(path: str) -> None:
        if path == str(stuck):
            exc = PermissionError(13, "Permission denied")
            exc.winerror = winerror  # type: ignore[attr-defined]
            raise exc
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", unlink)
    result = bytecode.remove([(str(stuck), "orphan"), (str(other), "orphan")], roots=[tmp_path])
    assert result.files == 1 and not other.exists() and stuck.exists()
    assert [(s.path, s.reason) for s in result.skipped] == [(stuck, reason)]
    assert cache.exists()  # not empty, so not removed
