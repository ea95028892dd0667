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
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cslaunch.scan import FileStat, Scan
from cslaunch.state import state_file, write_json

VERSION = 2
INDEX_FILE = "index.json"
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
    """Content hash; a symlink hashes as its target's name (the link itself is what changed)."""
    h = hashlib.blake2b(digest_size=16)
    if os.path.islink(path):
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
    old_files = old.files if old else {}
    racy_after = (old.scanned_ns - RACY_NS) if old else 0
    to_hash = []
    entries: dict[str, Entry] = {}
    for path, st in scan.files.items():
        prev = old_files.get(path)
        if prev is not None and not rehash and prev.stat == st and prev.stat.mtime_ns < racy_after:
            entries[path] = prev
        else:
            to_hash.append(path)
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
    deleted = {p for p in old_files if p not in scan.files}
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


def index_path(root: Path) -> Path:
    return state_file(root, INDEX_FILE)


def load(root: Path) -> Index | None:
    """The last index, or None when there is none or it cannot be trusted (the caller then
    treats everything as changed)."""
    try:
        data = json.loads(index_path(root).read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            return None
        files = {
            path: Entry(FileStat(*row[:4]), row[4], int(row[5]))
            for path, row in data["files"].items()
        }
        services = {
            str(name): value
            if isinstance(value, str)
            else {str(k): str(v) for k, v in value.items()}
            for name, value in dict(data.get("services", {})).items()
        }
        return Index(int(data["scanned_ns"]), files, services)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def save(root: Path, index: Index) -> None:
    write_json(
        root,
        INDEX_FILE,
        {
            "version": VERSION,
            "scanned_ns": index.scanned_ns,
            "services": index.services,
            "files": {
                path: [
                    e.stat.mtime_ns,
                    e.stat.ctime_ns,
                    e.stat.size,
                    e.stat.ino,
                    e.digest,
                    e.changed_ns,
                ]
                for path, e in sorted(index.files.items())
            },
        },
    )
