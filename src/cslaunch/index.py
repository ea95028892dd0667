"""The change index: what every tracked file looked like at the last successful launch.

Detection works like git's index: stat data (mtime, ctime, size, inode) decides which files
need hashing, the content hash decides whether they changed. An edit that puts mtime and size
back (`cp -p`, `rsync -a`, unzip) still changes ctime or the inode, and is hashed; a `touch`
changes stat data but not the hash, so it is no change. Entries whose mtime is too close to
the moment they were indexed are "racily clean" and always re-hashed, because an edit in the
same clock tick would leave stat data equal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import compress
from pathlib import Path
from typing import Any, NamedTuple

from cslaunch.scan import FileStat, Scan, paused_gc
from cslaunch.state import project_state, state_file, write_bytes

# File systems with coarse timestamps (FAT: 2 s, HFS+: 1 s) and clocks that disagree a little.
RACY_NS = 2_000_000_000
HASH_CHUNK = 1 << 20


ServiceHashes = dict[str, str] | str


class Entry(NamedTuple):
    """A named tuple, not a dataclass: an index loads tens of thousands of them."""

    stat: FileStat
    digest: str
    # When cslaunch first saw this content (the scan's start): a process that started
    # before it cannot be running it. Verification compares container start times with it.
    changed_ns: int = 0


@dataclass
class Index:
    scanned_ns: int = 0
    files: dict[str, Entry] = field(default_factory=dict)
    # service -> {key of its Compose config: hash of that key's value} (an index written
    # before per-key hashes holds one hash of the whole config instead)
    services: dict[str, ServiceHashes] = field(default_factory=dict)


@dataclass(frozen=True)
class Changes:
    added: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()

    @property
    def all(self) -> frozenset[str]:
        return self.added | self.modified | self.deleted

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


def hash_file(path: str) -> str:
    """Content hash: of what a link points to, which is what Python imports through it; a
    dangling link hashes as its target's name."""
    h = hashlib.blake2b(digest_size=16)
    if os.path.islink(path) and not os.path.isfile(path):
        h.update(b"link:" + os.readlink(path).encode("utf-8", "surrogateescape"))
        return h.hexdigest()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def compare(
    old: Index | None,
    scan: Scan,
    hasher: Callable[[str], str] = hash_file,
    *,
    rehash: bool = False,
) -> tuple[Changes, dict[str, Entry]]:
    """What changed since `old`, and the entries of the new index (from this scan)."""
    if old is not None and not rehash and _all_kept(old, scan):
        return Changes(), dict(old.files)
    with paused_gc():
        return _compare(old, scan, hasher, rehash)


def _all_kept(old: Index, scan: Scan) -> bool:
    """Whether _compare would keep every entry of `old` as it is and find nothing: the very
    same files, each with the stat data it was indexed with, none racily clean. The same
    test as _compare's, made over whole columns by C-level map/all (a 100k-file no-op: 20 ms
    instead of 200), so that the usual launch, where nothing moved, skips the per-file loop.
    Whoever changes that test changes this one with it (tests/test_index.py holds both to
    the same answers)."""
    if scan.files.keys() != old.files.keys():
        return False
    stats = list(map(_stat_of, old.files.values()))
    if not all(map(operator.eq, map(scan.files.__getitem__, old.files), stats)):
        return False
    return max(map(_mtime_of, stats), default=0) < _racy_after(old)


def _racy_after(old: Index) -> int:
    """Entries whose file's mtime is this or later were indexed racily clean: within the
    file system's time resolution of the scan, the file could have changed again unseen."""
    return old.scanned_ns - RACY_NS


_stat_of = operator.attrgetter("stat")
_mtime_of = operator.attrgetter("mtime_ns")


def refreshes(old: Index, entries: Mapping[str, Entry], scanned_ns: int) -> bool:
    """Whether an index of `entries` made at `scanned_ns` would hold as clean an entry that
    `old` holds as racily clean. Unsaved, every launch hashes such a file again, however long
    ago it was written (a `git pull` just before a launch: thousands of files, 0.2 s a
    no-op at 12k); git writes its index back after a status for the same reason."""
    racy_old, racy_new = old.scanned_ns - RACY_NS, scanned_ns - RACY_NS
    if racy_new <= racy_old:
        return False
    mtimes = list(map(_mtime_of, map(_stat_of, entries.values())))
    if max(mtimes, default=0) < racy_old:  # the usual case: no racily clean entry at all
        return False
    return any(racy_old <= m < racy_new for m in mtimes)


def _compare(
    old: Index | None, scan: Scan, hasher: Callable[[str], str], rehash: bool
) -> tuple[Changes, dict[str, Entry]]:
    old_files = old.files if old else {}
    gone = old_files.keys() - scan.files.keys()
    if old is None or rehash:
        to_hash, entries = list(scan.files), {}
    else:
        # The test whether a file may have changed, made by C-level set and map operations
        # (a relaunch after one edit over 100k files: no loop over every entry in Python):
        # a new file, stat data that moved, or an entry indexed racily clean is hashed;
        # _all_kept makes the same test.
        stats = dict(zip(old_files, map(_stat_of, old_files.values()), strict=True))
        moved = scan.files.items() - stats.items()
        racy = compress(old_files, map(_racy_after(old).__le__, map(_mtime_of, stats.values())))
        to_hash = sorted({path for path, _ in moved}.union(scan.files.keys() & set(racy)))
        entries = dict(old_files)
        for path in gone:
            del entries[path]
        for path in to_hash:
            entries.pop(path, None)
    digests = _hash_all(to_hash, hasher)
    added, modified = set(), set()
    for path in to_hash:
        digest = digests.get(path)
        if digest is None:
            continue  # vanished or unreadable since the walk: not indexed, seen next time
        prev = old_files.get(path)
        if prev is None:
            added.add(path)
        elif prev.digest != digest:
            modified.add(path)
        unchanged = prev is not None and prev.digest == digest
        changed_ns = prev.changed_ns if prev is not None and unchanged else scan.started_ns
        entries[path] = Entry(scan.files[path], digest, changed_ns)
    deleted = set(gone)
    # A file that vanished between walk and hash counts as deleted if it was indexed before.
    deleted |= {p for p in to_hash if p not in entries and p in old_files}
    return Changes(frozenset(added), frozenset(modified), frozenset(deleted)), entries


def _hash_all(paths: list[str], hasher: Callable[[str], str]) -> dict[str, str]:
    # One thread: with a pool, the GIL handed between threads costs more than hashing small
    # files (100k files: 2.1 s alone, 10.3 s with 8 threads on 2 cores).
    digests = {}
    for path in paths:
        # Vanished or unreadable since the walk: not indexed, seen next time.
        with contextlib.suppress(OSError):
            digests[path] = hasher(path)
    return digests


def config_hash(service_json: Any) -> str:
    data = json.dumps(service_json, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


UNKNOWN_KEY = "*"  # the index holds one hash of the whole config: which key moved is unknown


def config_hashes(service_json: Mapping[str, Any]) -> dict[str, str]:
    """A hash per key of a service's Compose config, `build` per sub-key ("build.args"), so a
    launch can tell what moved: what an image is built from, or only how it runs."""
    hashes = {}
    for key, value in service_json.items():
        if key == "build" and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                hashes[f"build.{sub}"] = config_hash(sub_value)
        else:
            hashes[key] = config_hash(value)
    return hashes


def changed_keys(
    old: ServiceHashes | None, new: Mapping[str, str], service_json: Mapping[str, Any]
) -> frozenset[str]:
    """The keys of a service's config that differ from the last launch's (none for a service
    the index has not seen: it starts or is built for another reason)."""
    if old is None:
        return frozenset()
    if isinstance(old, str):
        return frozenset() if old == config_hash(service_json) else frozenset({UNKNOWN_KEY})
    return frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


# --- storage -----------------------------------------------------------------------------
#
# The index is a marshal'd tuple of columns: paths, stat tuples, digests, change times. A
# 100k-file index loads in a tenth of the JSON's time: marshal builds the tuples in C, and
# the entries are made by C-level map/zip over tuple.__new__, with no Python call per file.
# The file is private to the user (state.py) and written atomically; marshal is not meant
# for data from others, and a file that does not decode is "no index".

MAGIC = "cslaunch-index"
VERSION = 3
INDEX_FILE = "index.bin"
JSON_INDEX_FILE = "index.json"  # version 2: read once, replaced by the next save
JSON_VERSION = 2
_BAD = (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, AttributeError)
_new_stat = partial(tuple.__new__, FileStat)
_new_entry = partial(tuple.__new__, Entry)


# The index this process last saved or read, with its file's path and stat data: watch
# loads the index once per batch of saves, and while the file is as it was the copy in
# memory stands for it (0.1 s at 50k files). Should another cslaunch save between a save
# here and its stat, the older copy kept only finds more changes, never fewer.
_held: tuple[Path, tuple[int, ...], Index] | None = None


def _identity(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def forget() -> None:
    """Drop the copy held in memory: the next load reads the file, as a one-off launch does."""
    global _held
    _held = None


def index_path(root: Path) -> Path:
    return state_file(root, INDEX_FILE)


def load(root: Path) -> Index | None:
    """The last index, or None when there is none or it cannot be trusted (the caller then
    treats everything as changed)."""
    global _held
    path = index_path(root)
    with paused_gc():
        try:
            identity = _identity(path)
            if _held is not None and _held[:2] == (path, identity):
                return _held[2]
            data = path.read_bytes()
        except FileNotFoundError:
            return _load_json(root)
        except OSError:
            return None
        try:
            found = _decode(data)
        except _BAD:
            return None
        # Changed between the stat and the read: the next load sees other stat data.
        _held = (path, identity, found) if found is not None else None
        return found


def _decode(data: bytes) -> Index | None:
    magic, version, scanned_ns, services, paths, stats, digests, changed = marshal.loads(data)
    if magic != MAGIC or version != VERSION or set(map(len, stats)) - {4}:
        return None
    entries = map(_new_entry, zip(map(_new_stat, stats), digests, changed, strict=True))
    return Index(int(scanned_ns), dict(zip(paths, entries, strict=True)), _services(services))


def _services(data: Any) -> dict[str, ServiceHashes]:
    return {
        str(name): value if isinstance(value, str) else {str(k): str(v) for k, v in value.items()}
        for name, value in dict(data).items()
    }


def _load_json(root: Path) -> Index | None:
    """An index saved before the binary format: used once, then saved anew."""
    try:
        data = json.loads(state_file(root, JSON_INDEX_FILE).read_text(encoding="utf-8"))
        if data.get("version") != JSON_VERSION:
            return None
        files = {
            path: Entry(FileStat(*row[:4]), row[4], int(row[5]))
            for path, row in data["files"].items()
        }
        return Index(int(data["scanned_ns"]), files, _services(data.get("services", {})))
    except _BAD:
        return None


def save(root: Path, index: Index) -> None:
    entries = index.files.values()
    columns = (
        MAGIC,
        VERSION,
        index.scanned_ns,
        index.services,
        tuple(index.files),
        tuple(map(tuple, (e.stat for e in entries))),
        tuple(e.digest for e in entries),
        tuple(e.changed_ns for e in entries),
    )
    write_bytes(root, INDEX_FILE, marshal.dumps(columns))
    global _held
    path = index_path(root)
    try:
        _held = (path, _identity(path), index)
    except OSError:
        _held = None
    with contextlib.suppress(OSError):
        (project_state(root) / JSON_INDEX_FILE).unlink()
