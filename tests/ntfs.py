"""Fake kernel32 calls that answer over a Linux directory the way NTFS would, for testing the
Windows branch of hostos on Linux.

NTFS's ChangeTime moves on every write, rename and attribute change, as POSIX ctime does, so
the fake reports the Linux ctime as ChangeTime; CreationTime stays fixed, as it does on NTFS
when a file is written in place. `creation_only=True` reports the creation time as the change
time too: what Python's `st_ctime` gives on Windows, which cannot see an in-place edit.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cslaunch import hostos

CREATED_NS = 1_600_000_000_000_000_000  # 2020-09-13: every file's creation time here
_EPOCH_DIFF = 116_444_736_000_000_000


def filetime(ns: int) -> int:
    return ns // 100 + _EPOCH_DIFF


def full_dir_info(entries: list[tuple[str, int, int, int, int]]) -> bytes:
    """A buffer of FILE_FULL_DIR_INFO structures: (name, creation, write, change, size) in
    FILETIME units, each entry 8-byte aligned and chained by NextEntryOffset."""
    chunks = []
    for i, (name, created, written, changed, size) in enumerate(entries):
        encoded = name.encode("utf-16-le", "surrogatepass")
        head = struct.Struct("<IIqqqqqqIII")
        length = head.size + len(encoded)
        length += -length % 8
        following = length if i < len(entries) - 1 else 0
        fields = (following, 0, created, written, written, changed, size, size, 0x20)
        chunk = head.pack(*fields, len(encoded), 0) + encoded
        chunks.append(chunk.ljust(length, b"\0"))
    return b"".join(chunks)


@dataclass
class FakeNTFS:
    creation_only: bool = False
    per_buffer: int = 3  # entries per answer, so a listing takes several queries
    opened: list[tuple[str, bool]] = field(default_factory=list)  # every open, in order
    _handles: dict[int, tuple[str, list[str] | None]] = field(default_factory=dict)

    def win32(self) -> hostos.Win32:
        return hostos.Win32(self.open, self.query, self.close)

    def host(self) -> hostos.Host:
        return hostos.Host(self.win32())

    def open(self, path: str, directory: bool) -> int:
        os.lstat(path)  # FileNotFoundError as CreateFileW would fail
        self.opened.append((path, directory))
        handle = len(self.opened) + 100
        names = [".", "..", *sorted(os.listdir(path))] if directory else None
        self._handles[handle] = (path, names)
        return handle

    def query(self, handle: int, info_class: int, size: int) -> bytes | None:
        path, names = self._handles[handle]
        if info_class == hostos.FILE_BASIC_INFO:
            st = os.lstat(path)
            times = (CREATED_NS, st.st_atime_ns, st.st_mtime_ns, self._change(st))
            return struct.pack("<qqqqI4x", *(filetime(t) for t in times), 0x20)
        assert info_class == hostos.FILE_FULL_DIRECTORY_INFO and names is not None
        if not names:
            return None
        batch, names[:] = names[: self.per_buffer], names[self.per_buffer :]
        entries = []
        for name in batch:
            st = os.lstat(os.path.join(path, name))
            entries.append(
                (
                    name,
                    filetime(CREATED_NS),
                    filetime(st.st_mtime_ns),
                    filetime(self._change(st)),
                    st.st_size,
                )
            )
        return full_dir_info(entries)

    def close(self, handle: int) -> None:
        del self._handles[handle]

    @property
    def open_handles(self) -> int:
        return len(self._handles)

    def _change(self, st: os.stat_result) -> int:
        return CREATED_NS if self.creation_only else st.st_ctime_ns
