"""hostos: the Windows branch, run on Linux with fake kernel32 calls (tests/ntfs.py)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cslaunch import hostos
from cslaunch.ui import UI
from tests.ntfs import CREATED_NS, FakeNTFS, filetime, full_dir_info


def test_filetime_converts_as_os_stat_does() -> None:
    assert hostos.filetime_ns(116_444_736_000_000_000) == 0  # 1970-01-01
    assert hostos.filetime_ns(filetime(1_700_000_000_123_456_700)) == 1_700_000_000_123_456_700


def test_a_buffer_of_directory_entries_is_read_whole() -> None:
    buffer = full_dir_info(
        [
            ("a.py", filetime(1), filetime(2_000), filetime(3_000), 10),
            ("modèle_日本.py", filetime(1), filetime(4_000), filetime(5_000), 70_000_000_000),
        ]
    )
    assert hostos.parse_full_dir_info(buffer) == {
        "a.py": hostos.Listed(2_000, 3_000, 10),
        "modèle_日本.py": hostos.Listed(4_000, 5_000, 70_000_000_000),
    }


def test_a_listing_takes_every_buffer_and_closes_its_handle(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"m{i}.py").write_text("x" * i)
    fake = FakeNTFS(per_buffer=2)
    found = hostos.listing(str(tmp_path), fake.win32())
    assert {f"m{i}.py" for i in range(7)} <= set(found)
    assert found["m3.py"].size == 3
    assert found["m3.py"].ctime_ns // 100 == os.lstat(tmp_path / "m3.py").st_ctime_ns // 100
    assert fake.opened == [(str(tmp_path), True)]
    assert fake.open_handles == 0


def test_the_change_time_is_not_the_creation_time(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    fake = FakeNTFS()
    changed = hostos.change_time_ns(str(f), fake.win32())
    assert changed != CREATED_NS
    assert changed // 100 == os.lstat(f).st_ctime_ns // 100
    assert fake.open_handles == 0


def test_a_failed_query_still_closes_the_handle(tmp_path: Path) -> None:
    fake = FakeNTFS()

    def failing(handle: int, info_class: int, size: int) -> bytes | None:
        raise PermissionError("denied")

    win32 = hostos.Win32(fake.open, failing, fake.close)
    with pytest.raises(PermissionError):
        hostos.listing(str(tmp_path), win32)
    with pytest.raises(PermissionError):
        hostos.change_time_ns(str(tmp_path), win32)
    assert fake.open_handles == 0


def test_windows_stat_data_has_the_change_time_and_no_inode(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    st = os.lstat(f)
    mtime, ctime, size, ino = FakeNTFS().host().stat(str(f))
    assert (mtime, size, ino) == (st.st_mtime_ns, st.st_size, 0)
    assert ctime // 100 == st.st_ctime_ns // 100
    assert hostos.Host().stat(str(f)) == (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    assert hostos.Host().listing(str(tmp_path)) is None  # POSIX: scandir's stat data is whole


class FakeConsole:
    def __init__(self, mode: int | None, settable: bool = True):
        self.mode, self.settable = mode, settable
        self.set: list[int] = []

    def console(self) -> hostos.Console:
        return hostos.Console(lambda stream: 7, lambda h: self.mode, self.set_mode)

    def set_mode(self, handle: int, mode: int) -> bool:
        self.set.append(mode)
        return self.settable


def test_a_windows_console_is_asked_to_read_ansi_escapes() -> None:
    vt = hostos.ENABLE_VIRTUAL_TERMINAL_PROCESSING
    stream = io.StringIO()
    on = FakeConsole(0x3 | vt)
    assert hostos.ansi_console(stream, on.console()) and on.set == []
    off = FakeConsole(0x3)
    assert hostos.ansi_console(stream, off.console()) and off.set == [0x3 | vt]
    legacy = FakeConsole(0x3, settable=False)
    assert not hostos.ansi_console(stream, legacy.console())
    redirected = hostos.Console(lambda stream: None, lambda h: 0, lambda h, m: True)
    assert not hostos.ansi_console(stream, redirected)


def test_without_ansi_the_progress_line_is_erased_with_spaces() -> None:
    ui = UI()
    ui.stream = io.StringIO()
    ui.tty, ui.ansi = True, False
    ui.progress("waiting")
    ui.line("done")
    assert "\x1b" not in ui.stream.getvalue()
    ui.ansi = True
    ui.progress("waiting")
    assert "\x1b[2K" in ui.stream.getvalue()


def test_the_lock_is_one_the_os_releases() -> None:
    lock = hostos.file_lock("/tmp/x.lock")
    assert type(lock).__name__ == ("WindowsFileLock" if hostos.WINDOWS else "UnixFileLock")


def test_a_junction_is_told_by_its_reparse_tag_on_windows_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stat as stat_mod
    from types import SimpleNamespace

    from cslaunch import hostos

    tag = getattr(stat_mod, "IO_REPARSE_TAG_MOUNT_POINT", 0xA0000003)
    monkeypatch.setattr(stat_mod, "IO_REPARSE_TAG_MOUNT_POINT", tag, raising=False)
    junction = SimpleNamespace(stat=lambda follow_symlinks: SimpleNamespace(st_reparse_tag=tag))
    plain = SimpleNamespace(stat=lambda follow_symlinks: SimpleNamespace(st_reparse_tag=0))
    monkeypatch.setattr(hostos, "WINDOWS", True)
    assert hostos.is_junction(junction)  # type: ignore[arg-type]
    assert not hostos.is_junction(plain)  # type: ignore[arg-type]
    monkeypatch.setattr(hostos, "WINDOWS", False)
    assert not hostos.is_junction(junction)  # type: ignore[arg-type]
