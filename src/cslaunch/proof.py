"""When the last launch's proof still stands, so a no-op launch need not look inside again.

A verification proves, for a service whose code is bind-mounted, facts about host files (the
sources, the pycs beside them) and about one container (which mounts they show, when its
process started). When none of those facts has moved since, the proof still holds: the index
says no source changed, the stat data of every pyc under the project's Python trees is what
it was (a pyc copied in with `cp -p` still changes ctime), and every container is the one
proven, started at the same moment. Code baked into an image is different: `docker cp` or a
shell in the container can change it behind every host-side check, so those services are
looked at again on every launch.

`stands` is pure; `load`, `save` and `bytecode_digest` are the edges.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cslaunch.containers import Container
from cslaunch.state import read_json, write_json

PROOF_FILE = "proof.json"
VERSION = 1


@dataclass(frozen=True)
class Proof:
    index_ns: int  # the index the proof was made against (its scan's start)
    bytecode: str  # bytecode_digest() just before the proof looked
    containers: dict[str, list[list[str]]] = field(default_factory=dict)  # service -> [id, start]


def identity(containers: Iterable[Container]) -> list[list[str]]:
    return sorted(
        [c.id, c.started_at.isoformat() if c.started_at else ""] for c in containers if c.running
    )


# POSIX ctime moves on every write; Windows' ctime is the creation time, which a copy over
# an existing file keeps, so there the contents are hashed too.
STAT_SEES_WRITES = os.name != "nt"


def bytecode_digest(paths: Iterable[str]) -> str:
    """One hash over the stat data of every bytecode file (a vanished one counts too)."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(paths):
        name = path.encode("utf-8", "surrogateescape")
        try:
            st = os.lstat(path)
            h.update(b"%s\0%d\0%d\0%d\0%d\n" % (
                name, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino
            ))  # fmt: skip
            if not STAT_SEES_WRITES:
                with open(path, "rb") as f:
                    h.update(f.read())
        except OSError:
            h.update(name + b"\0gone\n")
    return h.hexdigest()


def stands(
    proof: Proof | None,
    *,
    bytecode: str,
    service: str,
    running: Sequence[Container],
    all_bind_mounted: bool,
) -> bool:
    """Whether the last proof of `service` still holds without looking inside (pure)."""
    if proof is None or not all_bind_mounted or not running:
        return False
    return proof.bytecode == bytecode and proof.containers.get(service) == identity(running)


def load(root: Path, index_ns: int) -> Proof | None:
    """The last proof, if it was made against the index of `index_ns` (the one this launch
    compared with): any other launch since, or a failed one, voids it."""
    data = read_json(root, PROOF_FILE)
    try:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        if int(data["index_ns"]) != index_ns:
            return None
        containers = {
            str(k): [[str(a), str(b)] for a, b in v] for k, v in data["containers"].items()
        }
        return Proof(int(data["index_ns"]), str(data["bytecode"]), containers)
    except (KeyError, TypeError, ValueError):
        return None


def save(root: Path, proof: Proof) -> None:
    write_json(
        root,
        PROOF_FILE,
        {
            "version": VERSION,
            "index_ns": proof.index_ns,
            "bytecode": proof.bytecode,
            "containers": proof.containers,
        },
    )


def record(
    index_ns: int,
    bytecode: str,
    fresh: Iterable[str],
    containers: Mapping[str, Sequence[Container]],
) -> Proof:
    return Proof(index_ns, bytecode, {s: identity(containers.get(s, [])) for s in fresh})
