"""Prove it: the code each Python container runs is the code on disk.

For every running Python service, one `docker exec` runs proofscript.py with the container's
own Python. It hashes the source files the service runs (bind-mounted or baked in by COPY),
compares them with the host's, and checks every pyc beside them: a pyc whose header says
"valid" must hold the code of the source, and no sourceless legacy pyc may stand in for a
deleted module. On the host, the container's start time must be after the newest content
change of those files: otherwise the process may hold old modules in memory.
"""

from __future__ import annotations

import bisect
import os
import posixpath
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from cslaunch import bytecode, proof, scan
from cslaunch.changes import ChangeSet
from cslaunch.containers import Container, by_service, project_containers
from cslaunch.context import image_path, under
from cslaunch.docker import ComposeProject
from cslaunch.index import Entry
from cslaunch.model import Service
from cslaunch.proof import Binds, Proof, pyc_digests, record
from cslaunch.proofrun import MAX_AT_ONCE, Ahead, Looked, look, question
from cslaunch.scan import BYTECODE_SUFFIXES, PYCACHE, FileStat, Scan, file_stat
from cslaunch.stack import Detected
from cslaunch.track import ServiceFiles
from cslaunch.ui import plural

FRESH, STALE, SKIPPED = "fresh", "stale", "skipped"
# The biggest question the proof keeps for the next launch to ask ahead (about 8k files):
# asking ahead saves one exec, a bigger tree's look takes far longer than that anyway.
KEPT_QUESTION_MAX = 1 << 20
# Docker's start time and the host's clock: allowed to disagree this much.
CLOCK_SLACK_NS = 1_000_000_000


class Target(NamedTuple):
    """A named tuple, not a dataclass: a 100k-file tree makes 100k of them per service."""

    host: str
    container: str
    digest: str
    changed_ns: int
    stat: FileStat  # as the launch saw it


def changed_since_scan(target: Target) -> bool:
    """Edited after the launch looked: not what this launch applied, so not its verdict
    (the next launch, or watch, picks it up)."""
    try:
        return file_stat(target.host) != target.stat
    except OSError:
        return True


def source_of(problem: Sequence[str]) -> str:
    """The source file a problem the probe found is about: a pyc's source (the probe names
    it; a PYTHONPYCACHEPREFIX mirror is not beside it), or the path itself."""
    if len(problem) > 2:
        return problem[2]
    path = problem[0]
    head, name = posixpath.split(path)
    if posixpath.basename(head) == "__pycache__" and name.endswith(".pyc"):
        return posixpath.join(posixpath.dirname(head), name.split(".", 1)[0] + ".py")
    return path


def set_aside_edits(looked: Looked, targets: Sequence[Target]) -> tuple[Looked, set[str]]:
    """The look without its problems about host files edited since the scan (pending: the
    next launch takes them), and those files. Only the files behind a problem are stat'ed
    again: a launch over a 100k-file tree need not stat it twice."""
    if isinstance(looked, str) or not looked["problems"]:
        return looked, set()  # the usual case: no map of a 100k-file tree to make
    by_path = {t.container: t for t in targets}
    about = [(p, by_path.get(source_of(p))) for p in looked["problems"]]
    edited = {t.host for _, t in about if t is not None and changed_since_scan(t)}
    if not edited:
        return looked, edited
    kept = [p for p, t in about if t is None or t.host not in edited]
    return {**looked, "problems": kept}, edited


@dataclass(frozen=True)
class Verdict:
    service: str
    state: str  # fresh / stale / skipped
    problems: tuple[tuple[str, str], ...] = ()  # (path, reason)
    checked: int = 0
    pycs: int = 0
    seconds: float = 0.0
    detail: str = ""
    pending: tuple[str, ...] = ()  # host files edited during the launch: not checked
    hashed: int = 0  # of `checked`, read and hashed in the container: not the host's own file

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.service,
            "state": self.state,
            "problems": [{"path": p, "reason": r} for p, r in self.problems],
            "checked": self.checked,
            "pycs": self.pycs,
            "hashed": self.hashed,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "pending": list(self.pending),
        }


class Sources:
    """The indexed .py files sorted by path, so that what lies under a directory is one
    slice (a 100k-file tree and 30 services: a bisect each, not 30 passes over the index);
    each bind mount's targets are made once however many services share it."""

    def __init__(self, entries: Mapping[str, Entry]) -> None:
        self.entries = entries
        self.paths = sorted(p for p in entries if p.endswith(".py"))
        self.shown: dict[tuple[str, str], dict[str, Target]] = {}
        self.seen: dict[tuple[object, ...], list[Target]] = {}  # by the binds (and venvs)

    def under(self, directory: str) -> Iterator[str]:
        prefix = directory.rstrip("/\\") + os.sep
        for i in range(bisect.bisect_left(self.paths, prefix), len(self.paths)):
            if not self.paths[i].startswith(prefix):
                return
            yield self.paths[i]

    def count_under(self, directories: Iterable[str]) -> int:
        """How many sources lie under any of these directories: bisects, no Target made."""
        spans = []
        for directory in directories:
            prefix = directory.rstrip("/\\") + os.sep
            # Every path under `prefix` sorts between it and prefix + the highest character.
            lo = bisect.bisect_left(self.paths, prefix)
            spans.append((lo, bisect.bisect_left(self.paths, prefix + "\U0010ffff", lo)))
        total, reach = 0, 0
        for lo, hi in sorted(spans):  # nested directories: count their files once
            lo = max(lo, reach)
            if hi > lo:
                total, reach = total + hi - lo, hi
        return total

    def in_dir(self, directory: str) -> Iterator[str]:
        """The sources directly in `directory`, none below."""
        prefix_len = len(directory.rstrip("/\\")) + 1
        return (p for p in self.under(directory) if os.sep not in p[prefix_len:])

    def target(self, path: str, source: str, target: str) -> Target:
        """The source at `path`, below the bind mount of `source` at `target`."""
        e = self.entries[path]
        return Target(path, inside(path, source, target), e.digest, e.changed_ns, e.stat)

    def through(self, source: str, target: str) -> dict[str, Target]:
        """What a bind mount of `source` at `target` shows, by container path."""
        key = (source, target)
        if key not in self.shown:
            prefix_len = len(source.rstrip("/\\")) + 1
            base = target.rstrip("/") + "/"
            found = {}
            # Plain concatenation: posixpath.join was most of the time on a 100k-file tree.
            for path in self.under(source):
                e = self.entries[path]
                rel = path[prefix_len:]
                inside = base + (rel if os.sep == "/" else rel.replace(os.sep, "/"))
                found[inside] = Target(path, inside, e.digest, e.changed_ns, e.stat)
            self.shown[key] = found
        return self.shown[key]


def inside(path: str, source: str, target: str) -> str:
    """Where a bind mount of `source` at `target` shows the host's `path` (below `source`)."""
    rel = path[len(source.rstrip("/\\")) + 1 :]
    if not rel:
        return target
    return target.rstrip("/") + "/" + (rel if os.sep == "/" else rel.replace(os.sep, "/"))


def bind_key(service: Service, files: ServiceFiles) -> tuple[tuple[str, str], ...]:
    """(host source, container target) of the bind mounts that show the service's code."""
    return tuple(
        (str(b.source), b.target) for b in service.binds if str(b.source) in files.bind_dirs
    )


def single_targets(service: Service, files: ServiceFiles, sources: Sources) -> list[Target]:
    """Python sources bind-mounted one file at a time (`./settings.py:/app/settings.py`).
    Their pycs are the container's own, in a `__pycache__` no host listing sees."""
    found = []
    for bind in service.binds:
        path = str(bind.source)
        if path in files.bind_files and path.endswith(".py") and path in sources.entries:
            e = sources.entries[path]
            found.append(Target(path, bind.target, e.digest, e.changed_ns, e.stat))
    return found


@dataclass(frozen=True)
class Moved:
    """What moved since the last proof, which covers the rest (see `since_proof`)."""

    proof: Proof
    sources: frozenset[str]  # .py files added, edited or with other stat data than it saw
    gone: frozenset[str]  # files deleted since
    pyc_dirs: frozenset[str]  # directories whose bytecode moved (proof.pyc_digests)
    tops: tuple[str, ...]  # where the listing of the bytecode began: it covers only below
    unreadable: tuple[str, ...]  # bytecode it could not list or did not follow: no digest


def moved_since(
    previous: Proof,
    old: Mapping[str, Entry],
    entries: Mapping[str, Entry],
    gone: Iterable[str],
    pycs: Mapping[str, str],
    listing: Scan,
) -> Moved:
    """What moved between the index the last proof was made against (`old`) and this
    launch's, and between the bytecode it saw and `pycs` (pure)."""
    # A touched source counts, not only an edited one: its new mtime may make a pyc's header
    # "valid" that was not (the pyc was fine while Python saw the mismatch and recompiled).
    same = entries is old or entries == old  # the usual no-op: compared in C
    moved = () if same else (p for p, e in entries.items() if p.endswith(".py") and old.get(p) != e)
    return Moved(
        previous,
        frozenset(moved),
        frozenset(gone),
        frozenset(proof.moved_dirs(previous.pycs, pycs)),
        tuple(listing.tops),
        # A directory of sources the walk could not read has no source in the index, so no
        # look asks about it; a __pycache__ or pyc beside readable sources that it could not
        # read or did not follow (a link) does matter.
        tuple(
            u
            for u in listing.unreadable
            if os.path.basename(u) == PYCACHE or u.endswith(BYTECODE_SUFFIXES)
        ),
    )


@dataclass(frozen=True)
class Since:
    """A look at what moved since the last proof only."""

    targets: list[Target]
    dirs: tuple[str, ...]  # container directories to search for sourceless pycs


def since_proof(
    moved: Moved | None,
    name: str,
    running: Sequence[Container],
    binds: tuple[tuple[str, str], ...],
    sources: Sources,
    venvs: Sequence[str] = (),
    singles: Sequence[Target] = (),
) -> Since | None:
    """What a look at the service's containers must ask when the last proof covers the rest,
    or None when it does not (pure but for `scan.enters`' listings).

    The proof covers a container it proved, restarted since or not: a container keeps the
    mounts it was made with, and what a bind mount shows is the host's file. A source whose
    index entry has not moved, in a directory whose pycs have not moved, is what it was
    proven to be. It does not cover a container it did not prove (recreated, scaled up),
    other bind mounts, a bind mount the listing of the bytecode did not wholly enter (behind
    a link, pruned, bytecode it could not read or did not follow: no digest), nor a
    mount inside a bind mount that hides sources or pycs (a volume's or a tmpfs's files
    move with no host-side trace)."""
    if moved is None or not binds or moved.proof.binds.get(name) != [list(b) for b in binds]:
        return None
    ids = proof.proven(moved.proof, name)
    if not all(c.id in ids for c in running):
        return None
    if not all(scan.enters(moved.tops, source) for source, _ in binds):
        return None
    if any(u == s or scan.below(u, s) for u in moved.unreadable for s, _ in binds):
        return None
    shown_alone = {posixpath.normpath(t.container) for t in singles}
    if any(_mounted_inside(c, binds, sources, venvs, shown_alone) for c in running):
        return None
    asked: dict[str, Target] = {}
    dirs: set[str] = set()
    for source, target in binds:
        below = [p for p in moved.sources if scan.below(p, source) and not _in_any(p, venvs)]
        for path in below:
            if path in sources.entries:
                t = sources.target(path, source, target)
                asked[t.container] = t
        for directory in moved.pyc_dirs:
            if _in_any(directory, venvs):
                continue
            if directory == source or scan.below(directory, source):
                dirs.add(inside(directory, source, target))
                for path in sources.in_dir(directory):
                    t = sources.target(path, source, target)
                    asked[t.container] = t
        for path in moved.gone:
            if path.endswith(".py") and scan.below(path, source) and not _in_any(path, venvs):
                dirs.add(inside(os.path.dirname(path), source, target))
    # A file mounted alone over the tree's copy is what the container sees there.
    asked = {c: t for c, t in asked.items() if posixpath.normpath(c) not in shown_alone}
    asked.update((t.container, t) for t in singles if t.host in moved.sources)
    return Since([asked[c] for c in sorted(asked)], tuple(sorted(dirs)))


def _hides(container: Container, host: str, binds: tuple[tuple[str, str], ...]) -> bool:
    """Whether the container has a mount other than a bind where a bind mount would show
    the host's `host` (the volume over a venv that Compose declares, in this container)."""
    at = {posixpath.normpath(inside(host, s, t)) for s, t in binds if scan.below(host, s)}
    return any(kind != "bind" and posixpath.normpath(d) in at for kind, _, d in container.mounts)


def _in_any(path: str, dirs: Sequence[str]) -> bool:
    """Whether `path` is one of `dirs` or lies below one."""
    return any(path == d or scan.below(path, d) for d in dirs)


def _mounted_inside(
    container: Container,
    binds: tuple[tuple[str, str], ...],
    sources: Sources,
    venvs: Sequence[str] = (),
    shown_alone: Collection[str] = (),
) -> bool:
    """Whether another mount inside one of the bind mounts hides sources, or pycs beside
    them: what it shows moves with no trace on the host. (A `.venv` volume with no
    project source below it hides nothing a look asks about.)"""
    # The engine cleans the paths it reports; Compose keeps a target as it was written.
    clean = [(source, posixpath.normpath(target)) for source, target in binds]
    targets = {target for _, target in clean}
    for _, _, dest in container.mounts:
        dest = posixpath.normpath(dest)
        if dest in targets or dest in shown_alone:
            continue
        for source, target in clean:
            if not dest.startswith(target.rstrip("/") + "/"):
                continue
            names = dest[len(target.rstrip("/")) + 1 :].split("/")
            hidden = os.path.join(source, *names)
            if hidden in venvs:
                continue
            if PYCACHE in names or names[-1].endswith(BYTECODE_SUFFIXES):
                return True
            if sources.count_under([hidden]) or (
                hidden.endswith(".py") and hidden in sources.entries
            ):
                return True
    return False


def targets(
    service: Service,
    files: ServiceFiles,
    sources: Sources,
    venvs: Sequence[str] = (),
    singles: Sequence[Target] = (),
) -> tuple[list[Target], bool]:
    """The Python sources a service runs, with their path in the container, and whether
    every one comes through a bind mount (pure). `venvs`: host directories it does not see
    (ServiceFiles.hidden); `singles`: its files mounted alone (single_targets)."""
    baked = has_baked_code(files)
    key = bind_key(service, files)
    seen = (key, tuple(venvs), tuple(singles))
    if not baked and seen in sources.seen:
        return sources.seen[seen], True
    found: dict[str, Target] = {}
    for source, target in key:
        shown = sources.through(source, target)
        if venvs:
            hidden = tuple(v + os.sep for v in venvs)
            shown = {k: t for k, t in shown.items() if not t.host.startswith(hidden)}
        found.update(shown)
    found.update((t.container, t) for t in singles)  # mounted over the tree's copy: wins
    bound = len(found)
    if baked:
        assert files.context is not None and files.copies is not None
        prefix = files.context.rstrip("/\\") + os.sep
        targets_hidden = [b.target.rstrip("/") + "/" for b in service.binds]
        for path in sources.under(files.context):
            if any(path.startswith(source.rstrip("/\\") + os.sep) for source, _ in key):
                continue  # the bind mount shows the host file: checked above
            rel = path[len(prefix) :].replace(os.sep, "/")
            if not files.copied(rel) or files.ignore.ignored(rel):
                continue
            baked_at = image_path(list(files.copies), rel, files.image_stages)
            if baked_at is None or any(baked_at.startswith(t) for t in targets_hidden):
                continue  # not followed, or hidden under a bind mount
            entry = sources.entries[path]
            found.setdefault(
                baked_at, Target(path, baked_at, entry.digest, entry.changed_ns, entry.stat)
            )
    result = [found[inside] for inside in sorted(found)]
    if not baked:
        sources.seen[seen] = result
    return result, len(found) == bound


def has_baked_code(files: ServiceFiles) -> bool:
    """Whether the image's COPYs are followed, so sources baked into it are looked at too."""
    return bool(files.context and files.copies is not None)


def host_path(service: Service, inside: str) -> str | None:
    """The host file a container path shows through a bind mount, if any."""
    for bind in sorted(service.binds, key=lambda b: -len(b.target)):
        if under(inside, bind.target):
            rel = inside[len(bind.target.rstrip("/")) :].lstrip("/")
            return str(bind.source / rel) if rel else str(bind.source)
    return None


def started_too_early(container: Container, wanted: Sequence[Target]) -> tuple[str, str] | None:
    """A process older than the newest content it should run may hold the old modules."""
    if not wanted or container.started_at is None:
        return None
    newest = max(wanted, key=lambda t: t.changed_ns)
    started_ns = int(container.started_at.timestamp() * 1e9)
    if started_ns + CLOCK_SLACK_NS < newest.changed_ns:
        when = datetime.fromtimestamp(newest.changed_ns / 1e9, tz=timezone.utc)
        return (
            newest.host,
            f"changed at {when:%H:%M:%S} after the container started "
            f"({container.started_at:%H:%M:%S}): the process may run the old module",
        )
    return None


def verdict(
    service: str,
    container: Container,
    wanted: Sequence[Target],
    pending: tuple[str, ...],
    looked: Looked,
    took: float,
    through: str | None = None,
    asked_ahead: bool = False,
    since: bool = False,
) -> Verdict:
    """The verdict on one container from a look (its own, or `through` another container's
    that sees the same files): the files as the look found them, the process age its own."""
    if isinstance(looked, str):
        return Verdict(service, SKIPPED, seconds=took, detail=looked, pending=pending)
    problems = [(p[0], p[1]) for p in looked["problems"]]
    late = started_too_early(container, wanted)
    if late:
        problems.append(late)
    detail = f"Python {looked['python']}"
    if since:
        detail += f"; {SINCE}"
    if through:
        detail += f"; files looked at through {through}: same image and mounts"
    if asked_ahead:
        detail += f"; {AHEAD}"
    return Verdict(
        service,
        STALE if problems else FRESH,
        tuple(problems),
        int(looked["checked"]),
        int(looked["pycs"]),
        took,
        detail,
        pending,
        int(looked.get("hashed") or 0),
    )


@dataclass
class Group:
    """Containers that see the same files the same way, and what one look asks them."""

    members: list[tuple[str, Container]]
    targets: list[Target]
    dirs: tuple[str, ...] = ()  # more directories to search for sourceless pycs
    since: bool = False  # only what moved since the last proof


def verify_group(group: Group, ahead: Ahead | None = None) -> tuple[list[Verdict], str]:
    """One look (or its answer asked ahead), a verdict for each container, and the question
    asked."""
    first_service, first = group.members[0]
    start = time.monotonic()
    asked = question(((t.container, t.digest, t.stat) for t in group.targets), group.dirs)
    early = ahead.answer(first.id, asked) if ahead else None
    looked = early if early is not None else look(first.id, asked)
    looked, edited = set_aside_edits(looked, group.targets)
    pending = tuple(sorted(edited))
    wanted = [t for t in group.targets if t.host not in edited]
    took = time.monotonic() - start
    verdicts = [
        verdict(
            name,
            c,
            wanted,
            pending,
            looked,
            took,
            through=None if i == 0 else first_service,
            asked_ahead=early is not None,
            since=group.since,
        )
        for i, (name, c) in enumerate(group.members)
    ]
    return verdicts, asked


@dataclass
class Verification:
    verdicts: list[Verdict] = field(default_factory=list)
    proof: Proof | None = None  # what a later launch may rely on, when this one proved it all

    @property
    def stale(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.state == STALE]


@dataclass
class _Sorted:
    done: list[Verdict] = field(default_factory=list)  # verdicts that need no look
    groups: dict[tuple[object, ...], Group] = field(default_factory=dict)
    baked: set[str] = field(default_factory=set)  # containers whose code is in their image
    binds: dict[str, Binds] = field(default_factory=dict)  # services proven through these


def _sort_out(
    services: Mapping[str, Service],
    python: Sequence[str],
    files: Mapping[str, ServiceFiles],
    sources: Sources,
    containers: Mapping[str, Sequence[Container]],
    moved: Moved | None,
) -> _Sorted:
    """Each service's verdict where no look is needed (nothing it runs moved since the last
    proof, nothing to look at), and the looks the others need, grouped: the whole look, or
    only what moved since the last proof."""
    out = _Sorted()
    for name in sorted(python):
        running = [c for c in containers.get(name, []) if c.running]
        if not running:
            out.done.append(Verdict(name, SKIPPED, detail="not running"))
            continue
        binds = bind_key(services[name], files[name])
        venvs = tuple(h for h in files[name].hidden if all(_hides(c, h, binds) for c in running))
        singles = single_targets(services[name], files[name], sources)
        baked = has_baked_code(files[name])
        # Only bind-mounted code: what moved is asked without the whole tree's targets (making
        # each file's took half a second at 100k files).
        since = None if baked else since_proof(moved, name, running, binds, sources, venvs, singles)
        shown = sources.count_under(files[name].bind_dirs) if since is not None else 0
        if since is not None and (since.targets or since.dirs or shown):
            _rely(out, name, running, binds, since, shown)
            continue
        wanted, bound = targets(services[name], files[name], sources, venvs, singles)
        if not wanted:
            out.done.append(Verdict(name, SKIPPED, detail="no project source found in it"))
            continue
        if bound:
            out.binds[name] = [list(b) for b in binds]
        since = (
            since_proof(moved, name, running, binds, sources, venvs, singles)
            if baked and bound
            else None
        )
        if since is not None:
            _rely(out, name, running, binds, since, len(wanted))
        elif bound:
            _join(out, name, running, ("whole", binds), wanted, ())
        else:
            for c in running:  # code in an image's layers is each container's own
                out.groups.setdefault((c.id,), Group([], wanted)).members.append((name, c))
                out.baked.add(c.id)
    return out


def _rely(
    out: _Sorted,
    name: str,
    running: Sequence[Container],
    binds: tuple[tuple[str, str], ...],
    since: Since,
    checked: int,
) -> None:
    """A service the last proof covers but for `since`: a look at that, or none."""
    out.binds[name] = [list(b) for b in binds]
    if since.targets or since.dirs:
        key = ("since", binds, since.dirs, tuple(t.host for t in since.targets))
        _join(out, name, running, key, since.targets, since.dirs)
    else:
        out.done.append(Verdict(name, FRESH, checked=checked, detail=STANDS))


def _join(
    out: _Sorted,
    name: str,
    running: Sequence[Container],
    key: tuple[object, ...],
    wanted: list[Target],
    dirs: tuple[str, ...],
) -> None:
    """Containers that see their code only through the same bind mounts, from the same image,
    see the same files: one look serves them all (30 services over one tree need not hash
    it 30 times)."""
    for c in running:
        group = out.groups.setdefault(
            (*key, c.image_id, c.mounts), Group([], wanted, dirs, key[0] == "since")
        )
        group.members.append((name, c))


def verify(
    services: Mapping[str, Service],
    python: Sequence[str],
    files: Mapping[str, ServiceFiles],
    entries: Mapping[str, Entry],
    containers: Mapping[str, Sequence[Container]],
    *,
    listing: Scan | None = None,
    index_ns: int = 0,
    baseline: Baseline | None = None,
    ahead: Ahead | None = None,
) -> Verification:
    """Every running Python service, in parallel: one exec each, except where what they run
    did not move since the last proof (`baseline`) or `ahead` already asked. `listing`: the
    bytecode below the Python roots (its tops). The proof made here is recorded against the
    index of `index_ns`, which the launch saves."""
    listing = listing or Scan(0)
    pycs = pyc_digests(listing.bytecode)  # before looking: a pyc planted later must not count
    moved = (
        moved_since(baseline.proof, baseline.files, entries, baseline.gone, pycs, listing)
        if baseline is not None
        else None
    )
    out = _sort_out(services, python, files, Sources(entries), containers, moved)
    groups = list(out.groups.values())
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_AT_ONCE, len(groups)))) as pool:
        answers = list(pool.map(lambda g: verify_group(g, ahead), groups))
    looked = [v for vs, _ in answers for v in vs]
    asked = {}
    for group, (_, q) in zip(groups, answers, strict=True):
        first = group.members[0][1].id
        if first in out.baked and len(q) <= KEPT_QUESTION_MAX:
            asked[first] = q
    verdicts = sorted(out.done + looked, key=_name)
    all_fresh = all(v.state != STALE and not v.pending for v in verdicts)
    # Proven: a service every container of which was found fresh (one that could not be
    # looked at, beside replicas that were, is not).
    states: dict[str, set[str]] = {}
    for v in verdicts:
        states.setdefault(v.service, set()).add(v.state)
    fresh = [name for name, found in states.items() if found == {FRESH}]
    kept = record(index_ns, pycs, fresh, containers, asked, out.binds) if all_fresh else None
    return Verification(verdicts, kept)


@dataclass(frozen=True)
class Baseline:
    """The last proof, with what this launch's index says moved since (its index)."""

    proof: Proof
    files: Mapping[str, Entry]  # the index the proof was made against
    gone: frozenset[str]  # indexed then, deleted since


AHEAD = "looked at while cslaunch loaded (the last launch's question, same container)"
STANDS = "the last proof stands: no source or pyc moved since, same containers"
SINCE = "asked only what moved since the last proof"


def _name(v: Verdict) -> str:
    return v.service


def verify_stack(
    found: Detected,
    cs: ChangeSet,
    compose: ComposeProject,
    containers: dict[str, list[Container]] | None = None,
    *,
    previous: Proof | None = None,
    ahead: Ahead | None = None,
    listed: Scan | None = None,
) -> Verification:
    """`previous`: the last proof, made against the index this launch compared with.
    `listed`: the bytecode files the launch's walk found, when nothing since removed or
    wrote any but the running containers (a no-op); else they are listed again here:
    after a clean or a start the containers wrote new pycs, and the proof must cover what
    is there now. A pyc a running container writes after either listing is in the next
    launch's, whose digests then differ: the proof no longer covers its directory there."""
    return verify(
        found.stack.services,
        sorted(found.python),
        cs.files,
        cs.entries,
        containers if containers is not None else by_service(project_containers(compose)),
        listing=bytecode.listing(found.roots.roots) if listed is None else listed,
        index_ns=cs.index_ns,
        # Watch's batches ask only the saved files: an edit no file event told of has an
        # index entry that did not move, and only a whole look would still see it.
        baseline=(
            Baseline(previous, cs.old.files, cs.changes.deleted)
            if previous is not None and cs.old is not None and cs.walked
            else None
        ),
        ahead=ahead,
    )


def summary(checked: Verification) -> str:
    fresh = [v for v in checked.verdicts if v.state == FRESH]
    looked = [v for v in fresh if v.detail != STANDS]
    files = sum(v.checked for v in looked)
    pycs = sum(v.pycs for v in looked)
    text = f"{len(fresh)} fresh ({plural(files, 'file')}, {plural(pycs, 'pyc')} checked"
    if len(looked) < len(fresh):
        text += f"; {len(fresh) - len(looked)} unchanged since the last proof"
    since = sum(SINCE in v.detail for v in looked)
    if since:
        text += f"; {since} asked only what moved since it"
    text += ")"
    if checked.stale:
        text += f", {len(checked.stale)} STALE: " + ", ".join(v.service for v in checked.stale)
    pending = {p for v in checked.verdicts for p in v.pending}
    if pending:
        text += (
            f"; {plural(len(pending), 'file')} edited during the launch: the next launch takes them"
        )
    skipped = [v for v in checked.verdicts if v.state == SKIPPED]
    if skipped:
        text += ", skipped " + ", ".join(f"{v.service} ({v.detail})" for v in skipped)
    return text
