"""Everything cslaunch does differently on Windows, in one place: the rest of the code never
asks which operating system it runs on.

- **Stat data.** POSIX ctime moves on every write and rename; Windows' `st_ctime` is the
  creation time (deprecated as such since Python 3.12, still so today) and a directory
  listing has no inode. NTFS does keep a change time that moves like POSIX ctime
  (`ChangeTime`); it is read here with `GetFileInformationByHandleEx`: one call per
  directory (`FILE_FULL_DIR_INFO`, the same directory entries `os.scandir` reads), or one
  handle per file (`FILE_BASIC_INFO`) for a file met alone.
- **File locks.** filelock's `msvcrt.locking` lock on Windows, `fcntl.flock` elsewhere: both
  die with their holder, which a lock file alone would not.
- **The engine.** Docker Desktop on Windows listens on a named pipe, which cslaunch does not
  speak; the docker CLI does, so every engine call goes through it there.
- **Console colour.** A Windows console understands ANSI escapes only once asked to.

The Windows branch is tested on Linux with fake kernel32 calls (`Win32`); only `_kernel32`,
which binds the real ones, runs on Windows alone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

from filelock import BaseFileLock, UnixFileLock, WindowsFileLock

WINDOWS = os.name == "nt"

# FILE_INFO_BY_HANDLE_CLASS values and the layouts of the two structures read (winbase.h).
FILE_BASIC_INFO = 0  # CreationTime, LastAccessTime, LastWriteTime, ChangeTime, attributes
FILE_BASIC_INFO_SIZE = 40
FILE_FULL_DIRECTORY_INFO = 14  # one FILE_FULL_DIR_INFO per entry, chained by offsets
_BASIC = struct.Struct("<qqqqI")
# Of FILE_FULL_DIR_INFO only NextEntryOffset, LastWriteTime, ChangeTime, EndOfFile and
# FileNameLength (skipped: FileIndex, CreationTime, LastAccessTime, AllocationSize,
# FileAttributes, EaSize); the UTF-16 name follows at byte 68.
_FULL_DIR = struct.Struct("<I20xqqq12xI4x")
LISTING_BUFFER = 64 * 1024
# FILETIME counts 100 ns from 1601-01-01; Python's ns count from 1970-01-01 the same way.
_EPOCH_DIFF = 116_444_736_000_000_000


def filetime_ns(filetime: int) -> int:
    """A FILETIME as nanoseconds since the Unix epoch, as `os.stat` converts it."""
    return (filetime - _EPOCH_DIFF) * 100


class Listed(NamedTuple):
    """One file as its directory's listing gives it (Windows)."""

    mtime_ns: int
    ctime_ns: int  # NTFS ChangeTime: any write, rename or attribute change moves it
    size: int


@dataclass(frozen=True)
class Win32:
    """The kernel32 calls the change time needs. Tests inject fakes of these three."""

    # path, whether it is a directory -> an open handle (read attributes / list only);
    # raises OSError
    open: Callable[[str, bool], int]
    # handle, information class, buffer size -> the buffer the call filled; None when a
    # directory has no more entries; raises OSError
    query: Callable[[int, int, int], bytes | None]
    close: Callable[[int], None]


def change_time_ns(path: str, win32: Win32) -> int:
    """NTFS's change time of one file (not following a link): one handle, one query."""
    handle = win32.open(path, False)
    try:
        buffer = win32.query(handle, FILE_BASIC_INFO, FILE_BASIC_INFO_SIZE)
    finally:
        win32.close(handle)
    if buffer is None:
        raise OSError(f"no basic information for {path}")
    return filetime_ns(_BASIC.unpack_from(buffer)[3])


def listing(directory: str, win32: Win32) -> dict[str, Listed]:
    """Every entry of a directory with its write time, change time and size: one handle and
    one query per 64 KB of entries (some 600 names), instead of a handle per file."""
    handle = win32.open(directory, True)
    found: dict[str, Listed] = {}
    try:
        while (buffer := win32.query(handle, FILE_FULL_DIRECTORY_INFO, LISTING_BUFFER)) is not None:
            found.update(parse_full_dir_info(buffer))
    finally:
        win32.close(handle)
    return found


def parse_full_dir_info(buffer: bytes) -> dict[str, Listed]:
    """The entries of one buffer of FILE_FULL_DIR_INFO structures."""
    found: dict[str, Listed] = {}
    offset = 0
    unpack, head = _FULL_DIR.unpack_from, _FULL_DIR.size
    while True:
        following, write, change, size, name_length = unpack(buffer, offset)
        start = offset + head
        name = buffer[start : start + name_length].decode("utf-16-le", "surrogatepass")
        found[name] = Listed((write - _EPOCH_DIFF) * 100, (change - _EPOCH_DIFF) * 100, size)
        if not following:
            return found
        offset += following


@dataclass(frozen=True)
class Host:
    """How this machine's stat data is read. POSIX: `os.lstat` and `DirEntry.stat` say
    everything. Windows (`win32` set): the change time comes from NTFS and the inode is 0
    (a listing has none; the change time does its job, as a replaced file has a new one)."""

    win32: Win32 | None = None

    @property
    def windows(self) -> bool:
        return self.win32 is not None

    def stat(self, path: str) -> tuple[int, int, int, int]:
        """(mtime_ns, ctime_ns, size, inode) of one file; of what a link points to, which
        is what Python imports through it (a dangling link: its own)."""
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(OSError):
                st = os.stat(path)
        if self.win32 is None:
            return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino
        return st.st_mtime_ns, change_time_ns(path, self.win32), st.st_size, 0

    def listing(self, directory: str) -> dict[str, Listed] | None:
        """A directory's entries with change times (Windows); None on POSIX, where the
        listing's own stat data holds them. Raises OSError."""
        return None if self.win32 is None else listing(directory, self.win32)


def _kernel32() -> Win32:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    create = k32.CreateFileW
    create.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID]
    create.argtypes += [wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
    create.restype = wintypes.HANDLE
    get_info = k32.GetFileInformationByHandleEx
    get_info.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
    get_info.restype = wintypes.BOOL
    close = k32.CloseHandle
    close.argtypes = [wintypes.HANDLE]
    close.restype = wintypes.BOOL
    invalid = wintypes.HANDLE(-1).value
    read_attributes, list_directory = 0x80, 0x1
    share_all, open_existing = 0x7, 3
    # Backup semantics: a directory can be opened; open reparse point: a link is not followed.
    flags = 0x02000000 | 0x00200000
    no_more_files = 18

    def open_(path: str, directory: bool) -> int:
        access = list_directory if directory else read_attributes
        handle = create(path, access, share_all, None, open_existing, flags, None)
        if handle is None or handle == invalid:
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
        return int(handle)

    def query(handle: int, info_class: int, size: int) -> bytes | None:
        buffer = ctypes.create_string_buffer(size)
        if get_info(handle, info_class, buffer, size):
            return buffer.raw
        error = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
        if error == no_more_files:
            return None
        raise ctypes.WinError(error)  # type: ignore[attr-defined,unused-ignore]

    def close_(handle: int) -> None:
        close(handle)

    return Win32(open_, query, close_)


HOST = Host(_kernel32() if WINDOWS else None)


# --- file locks ----------------------------------------------------------------------------


def is_junction(entry: os.DirEntry[str]) -> bool:
    """A Windows junction, which can point anywhere like a directory symlink, yet is a
    directory to DirEntry.is_dir(follow_symlinks=False). The lstat of an entry is free on
    Windows; there are no junctions elsewhere."""
    if not WINDOWS:
        return False
    tag: int = getattr(entry.stat(follow_symlinks=False), "st_reparse_tag", 0)
    return tag == getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", -1)


def file_lock(path: str) -> BaseFileLock:
    """A lock the OS releases when its holder dies (never filelock's SoftFileLock, a plain
    file that a killed run would leave behind)."""
    return WindowsFileLock(path) if WINDOWS else UnixFileLock(path)


# --- the engine and the docker CLI ---------------------------------------------------------


def engine_socket_usable() -> bool:
    """Whether the engine can be reached on a Unix socket. Docker Desktop on Windows listens
    on a named pipe instead, which the docker CLI speaks and cslaunch does not."""
    return not WINDOWS and hasattr(socket, "AF_UNIX")


def executable(name: str) -> str:
    """The file name of a program: `docker-compose.exe` on Windows."""
    return name + ".exe" if WINDOWS else name


def system_plugin_dirs() -> list[Path]:
    """Where the docker CLI looks for plugins besides the user's directory."""
    if WINDOWS:
        bases = (os.environ.get("PROGRAMDATA"), os.environ.get("PROGRAMFILES"))
        return [Path(b) / "Docker" / "cli-plugins" for b in bases if b]
    return [
        Path(d)
        for d in (
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        )
    ]


def user_cache_dir() -> Path:
    """The platform's per-user cache directory, where cslaunch keeps its state."""
    if WINDOWS:
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "cslaunch" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "cslaunch"
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache") / (
        "cslaunch"
    )


# --- console colour ------------------------------------------------------------------------


@dataclass(frozen=True)
class Console:
    """The three kernel32 calls that switch a Windows console to ANSI escapes (injectable)."""

    handle: Callable[[TextIO], int | None]  # the console handle of a stream, None: not one
    get_mode: Callable[[int], int | None]
    set_mode: Callable[[int, int], bool]


ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004


def ansi_console(stream: TextIO, console: Console | None = None) -> bool:
    """Whether ANSI escapes written to this terminal stream are understood, asking a Windows
    console to understand them (Windows 10 and later can; Windows Terminal always does)."""
    if console is None:
        if not WINDOWS:
            return True
        console = _console()
    handle = console.handle(stream)
    if handle is None:
        return False
    mode = console.get_mode(handle)
    if mode is None:
        return False
    if mode & ENABLE_VIRTUAL_TERMINAL_PROCESSING:
        return True
    return console.set_mode(handle, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING)


def _console() -> Console:  # pragma: no cover - Windows only
    import ctypes
    import msvcrt
    from ctypes import wintypes

    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]

    def handle(stream: TextIO) -> int | None:
        try:
            return int(msvcrt.get_osfhandle(stream.fileno()))  # type: ignore[attr-defined,unused-ignore]
        except (OSError, ValueError, AttributeError):
            return None

    def get_mode(h: int) -> int | None:
        mode = wintypes.DWORD()
        return int(mode.value) if k32.GetConsoleMode(h, ctypes.byref(mode)) else None

    def set_mode(h: int, mode: int) -> bool:
        return bool(k32.SetConsoleMode(h, mode))

    return Console(handle, get_mode, set_mode)
