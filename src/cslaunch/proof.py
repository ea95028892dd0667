"""What the last launch proved, so the next one need not look inside again at what has not
moved since.

A verification proves, for a service whose code is bind-mounted, facts about host files (the
sources, the pycs beside them) and about its containers (which mounts they show, when their
process started). A container keeps the mounts it was made with, restarted or not, and what
a bind mount shows is the host's file. So while it is the container proven, a source whose
index entry has not moved since, in a directory whose pycs have the stat data they had (a
pyc copied in with `cp -p` still changes ctime), is still what it was proven to be: only the
sources that moved, and those beside pycs that moved, need a look (verify.since_proof). On a
no-op, where nothing moved, that is no look at all. Code baked into an image is different:
`docker cp` or a shell in the container can change it behind every host-side check, so
those services are looked at whole on every launch. (The engine's list of what was written
in a container's layer, `docker diff`, would say, but it takes 0.7-1 s per container even
when empty.)

A proof also keeps what it asked each container it looked inside whose code is (partly)
baked into its image: the next launch asks the same question ahead (proofrun.py).

Readiness rests on the same facts: Redis loads its dataset only when its process starts, so
a Redis container that is the one the last launch saw ready need not be asked again whether
it is still loading (`settled`); its health check and state still count.

`moved_dirs`, `proven` and `settled` are pure; `load`, `save` and `pyc_digests` are the edges.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cslaunch.containers import Container
from cslaunch.hostos import HOST, Host
from cslaunch.scan import PYCACHE, file_stats
from cslaunch.state import read_json, write_json

PROOF_FILE = "proof.json"
VERSION = 3

Identity = list[list[str]]  # a service's running containers: [id, start] each
Binds = list[list[str]]  # [host source, container target] of the bind mounts a proof covers


@dataclass(frozen=True)
class Proof:
    index_ns: int  # the index the proof was made against (its scan's start)
    pycs: dict[str, str]  # pyc_digests() just before the proof looked
    containers: dict[str, Identity] = field(default_factory=dict)  # proven fresh
    ready: dict[str, Identity] = field(default_factory=dict)  # seen ready by that launch
    looks: dict[str, str] = field(default_factory=dict)  # container id -> what it was asked
    # service -> the bind mounts it was proven through, when it runs no code from its image
    binds: dict[str, Binds] = field(default_factory=dict)


def identity(containers: Iterable[Container]) -> Identity:
    return sorted(
        [c.id, c.started_at.isoformat() if c.started_at else ""] for c in containers if c.running
    )


def pyc_digests(paths: Iterable[str], host: Host = HOST) -> dict[str, str]:
    """A hash over the stat data of the bytecode files (a vanished one counts too) for each
    directory of sources they would stand in for: the one above `__pycache__`, or their own
    for legacy pycs. The change time moves on every write, on Windows too (NTFS
    ChangeTime), so a pyc copied in over another with its mtime and size is seen without
    reading any pyc."""
    stats = file_stats(paths, host)
    by_dir: dict[str, list[str]] = {}
    for path in stats:
        by_dir.setdefault(sources_dir(path), []).append(path)
    digests = {}
    for directory, members in by_dir.items():
        h = hashlib.blake2b(digest_size=16)
        for path in sorted(members):
            name = path.encode("utf-8", "surrogateescape")
            st = stats[path]
            if st is None:
                h.update(name + b"\0gone\n")
            else:
                h.update(
                    b"%s\0%d\0%d\0%d\0%d\n" % (name, st.mtime_ns, st.ctime_ns, st.size, st.ino)
                )
        digests[directory] = h.hexdigest()
    return digests


def sources_dir(pyc: str) -> str:
    """The directory whose modules a bytecode file may stand in for."""
    parent = os.path.dirname(pyc)
    return os.path.dirname(parent) if os.path.basename(parent) == PYCACHE else parent


def moved_dirs(before: Mapping[str, str], now: Mapping[str, str]) -> set[str]:
    """Directories whose bytecode is not what it was (pure)."""
    return {d for d in before.keys() | now.keys() if before.get(d) != now.get(d)}


def proven(proof: Proof, service: str) -> set[str]:
    """The ids of the service's containers the proof proved fresh (pure)."""
    return {cid for cid, _ in proof.containers.get(service, [])}


def settled(proof: Proof | None, containers: Mapping[str, Sequence[Container]]) -> set[str]:
    """Services whose running containers are the ones the last launch saw ready (pure)."""
    if proof is None:
        return set()
    return {
        name
        for name, found in containers.items()
        if identity(found) and proof.ready.get(name) == identity(found)
    }


def load(root: Path, index_ns: int) -> Proof | None:
    """The last proof, if it was made against the index of `index_ns` (the one this launch
    compared with): any other launch since, or a failed one, voids it."""
    data = read_json(root, PROOF_FILE)
    try:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        if int(data["index_ns"]) != index_ns:
            return None
        return Proof(
            int(data["index_ns"]),
            {str(k): str(v) for k, v in data["pycs"].items()},
            _identities(data["containers"]),
            _identities(data.get("ready", {})),
            _looks(data),
            {str(k): [[str(a), str(b)] for a, b in v] for k, v in data["binds"].items()},
        )
    except (KeyError, TypeError, ValueError):
        return None


def recorded_looks(root: Path) -> dict[str, str]:
    """What the last proof asked inside containers, whichever index it was made against."""
    data = read_json(root, PROOF_FILE)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    return _looks(data)


def _looks(data: Mapping[str, object]) -> dict[str, str]:
    looks = data.get("looks")
    if not isinstance(looks, dict):
        return {}
    return {str(k): v for k, v in looks.items() if isinstance(v, str)}


def save(root: Path, proof: Proof) -> None:
    write_json(
        root,
        PROOF_FILE,
        {
            "version": VERSION,
            "index_ns": proof.index_ns,
            "pycs": proof.pycs,
            "containers": proof.containers,
            "ready": proof.ready,
            "looks": proof.looks,
            "binds": proof.binds,
        },
    )


def _identities(data: Mapping[str, Iterable[Sequence[str]]]) -> dict[str, Identity]:
    return {str(k): [[str(a), str(b)] for a, b in v] for k, v in data.items()}


def record(
    index_ns: int,
    pycs: Mapping[str, str],
    fresh: Iterable[str],
    containers: Mapping[str, Sequence[Container]],
    looks: Mapping[str, str] | None = None,
    binds: Mapping[str, Binds] | None = None,
) -> Proof:
    """The proof of a launch that worked: every container in `containers` was ready."""
    ready = {name: identity(found) for name, found in containers.items() if identity(found)}
    kept = {s: identity(containers.get(s, [])) for s in fresh}
    bound = {s: b for s, b in (binds or {}).items() if s in kept}
    return Proof(index_ns, dict(pycs), kept, ready, dict(looks or {}), bound)
