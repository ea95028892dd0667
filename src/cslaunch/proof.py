"""When the last launch's proof still stands, so a no-op launch need not look inside again.

A verification proves, for a service whose code is bind-mounted, facts about host files (the
sources, the pycs beside them) and about one container (which mounts they show, when its
process started). When none of those facts has moved since, the proof still holds: the index
says no source changed, the stat data of every pyc under the project's Python trees is what
it was (a pyc copied in with `cp -p` still changes ctime), and every container is the one
proven, started at the same moment. Code baked into an image is different: `docker cp` or a
shell in the container can change it behind every host-side check, so those services are
looked at again on every launch. (The engine's list of what was written in a container's
layer, `docker diff`, would say, but it takes 0.7-1 s per container even when empty.)

A proof also keeps what it asked each container it looked inside whose code is (partly)
baked into its image: the next launch asks the same question ahead (proofrun.py).

Readiness rests on the same facts: Redis loads its dataset only when its process starts, so
a Redis container that is the one the last launch saw ready need not be asked again whether
it is still loading (`settled`); its health check and state still count.

`stands` and `settled` are pure; `load`, `save` and `bytecode_digest` are the edges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cslaunch.containers import Container
from cslaunch.hostos import HOST, Host
from cslaunch.scan import file_stats
from cslaunch.state import read_json, write_json

PROOF_FILE = "proof.json"
VERSION = 2

Identity = list[list[str]]  # a service's running containers: [id, start] each


@dataclass(frozen=True)
class Proof:
    index_ns: int  # the index the proof was made against (its scan's start)
    bytecode: str  # bytecode_digest() just before the proof looked
    containers: dict[str, Identity] = field(default_factory=dict)  # proven fresh
    ready: dict[str, Identity] = field(default_factory=dict)  # seen ready by that launch
    looks: dict[str, str] = field(default_factory=dict)  # container id -> what it was asked


def identity(containers: Iterable[Container]) -> Identity:
    return sorted(
        [c.id, c.started_at.isoformat() if c.started_at else ""] for c in containers if c.running
    )


def bytecode_digest(paths: Iterable[str], host: Host = HOST) -> str:
    """One hash over the stat data of every bytecode file (a vanished one counts too). The
    change time moves on every write, on Windows too (NTFS ChangeTime), so a pyc copied in
    over another with its mtime and size is seen without reading any pyc."""
    h = hashlib.blake2b(digest_size=16)
    stats = file_stats(paths, host)
    for path in sorted(stats):
        name = path.encode("utf-8", "surrogateescape")
        st = stats[path]
        if st is None:
            h.update(name + b"\0gone\n")
        else:
            h.update(b"%s\0%d\0%d\0%d\0%d\n" % (name, st.mtime_ns, st.ctime_ns, st.size, st.ino))
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
            str(data["bytecode"]),
            _identities(data["containers"]),
            _identities(data.get("ready", {})),
            _looks(data),
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
            "bytecode": proof.bytecode,
            "containers": proof.containers,
            "ready": proof.ready,
            "looks": proof.looks,
        },
    )


def _identities(data: Mapping[str, Iterable[Sequence[str]]]) -> dict[str, Identity]:
    return {str(k): [[str(a), str(b)] for a, b in v] for k, v in data.items()}


def record(
    index_ns: int,
    bytecode: str,
    fresh: Iterable[str],
    containers: Mapping[str, Sequence[Container]],
    looks: Mapping[str, str] | None = None,
) -> Proof:
    """The proof of a launch that worked: every container in `containers` was ready."""
    ready = {name: identity(found) for name, found in containers.items() if identity(found)}
    proven = {s: identity(containers.get(s, [])) for s in fresh}
    return Proof(index_ns, bytecode, proven, ready, dict(looks or {}))
