"""What changed since the last successful launch: files every service depends on, and each
service's Compose config. `detect` only reads (trees, Dockerfiles, the index);
`refresh_mtimes` is the one write, made by a launch just before it builds.
"""

from __future__ import annotations

import contextlib
import operator
import os
import posixpath
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from cslaunch import forked, gitview, index, scan, track
from cslaunch.context import under
from cslaunch.model import (
    Service,
    Stack,
    installs_at_start,
    is_proxy,
    serves_per_request,
    watches_its_files,
)


@dataclass
class ChangeSet:
    old: index.Index | None  # None: no usable index, everything counts as changed
    scan: scan.Scan
    changes: index.Changes
    entries: dict[str, index.Entry]
    files: dict[str, track.ServiceFiles]
    config_hashes: dict[str, index.ServiceHashes]
    config_changed: dict[str, frozenset[str]]  # service -> the keys of its config that moved
    # The paths asked again instead of a walk of every tree (watch's file events, Focus).
    asked: frozenset[str] | None = None
    # What git said, when it was asked (gitview): `git.view` set, it stood for the walk
    git: gitview.Seen | None = None

    @property
    def walked(self) -> bool:
        """The scan holds every tracked file as it is: a walk's, or git's word for one."""
        return self.asked is None

    @property
    def by_git(self) -> bool:
        return self.git is not None and self.git.view is not None

    @property
    def changed(self) -> frozenset[str] | None:
        return self.changes.all if self.old is not None else None

    @cached_property
    def index_kept(self) -> bool:
        """Nothing the index holds moved, not even stat data, and no racily clean entry would
        become clean by a newer scan time: the last index stands as it is (writing it again
        would only cost the write)."""
        return (
            self.old is not None
            and self.entries == self.old.files
            and self.config_hashes == self.old.services
            and not index.refreshes(self.old, self.entries, self.scan.started_ns)
        )

    @property
    def index_ns(self) -> int:
        """The scan time of the index this launch leaves behind, which its proof names."""
        return (
            self.old.scanned_ns
            if self.old is not None and self.index_kept
            else self.scan.started_ns
        )

    def new_index(self) -> index.Index:
        return index.Index(self.scan.started_ns, self.entries, self.config_hashes)


@dataclass(frozen=True)
class Focus:
    """What watch knows from file events: since a scan of the same trees found `known`,
    only `paths` can have changed (every save raises an event, and none was left out since
    that scan began). A launch then asks only those paths, not every file of the trees (0.3 s
    per 30k files), and compares with the index as ever: what the last proved launch saw."""

    known: Mapping[str, scan.FileStat]
    paths: frozenset[str]
    links: tuple[str, ...] = ()  # of the known files, the links (Scan.links)


def _read(path: Path | str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def service_files(
    service: Service,
    runs_code: bool,
    source_patterns: Collection[str],
    builder: Service | None = None,
) -> track.ServiceFiles:
    """`builder`: the service that builds the image this one runs (Stack.builder_of), whose
    build inputs are this one's too, seen through this one's own mounts."""
    built = builder or service
    # A job that is not the project's Python (Flyway over `./sql:/flyway/sql`, a bootstrap
    # script): every file its mounts show is its input
    job = service.one_shot and not runs_code
    dockerfile = None
    if built.build_context is not None:
        dockerfile = str(built.build_context / (built.dockerfile or "Dockerfile"))
    dirs, singles, targets, configs = [], [], [], []
    for bind in service.binds:
        if bind.source.is_dir():
            dirs.append(str(bind.source))
            targets.append((str(bind.source), bind.target))
        elif bind.source.is_file():
            singles.append(str(bind.source))
            if bind.config:
                configs.append(str(bind.source))
    hidden = hidden_venvs(service, dirs)
    context = str(built.build_context) if built.build_context else None
    text = built.dockerfile_inline or _read(dockerfile)
    return track.service_files(
        service.name,
        runs_code=runs_code or job,
        bind_dirs=dirs,
        bind_files=singles,
        config_files=configs,
        context=context,
        dockerfile=dockerfile,
        dockerfile_text=text,
        dockerignore_text=_read(Path(context) / ".dockerignore") if context else None,
        source_patterns=("*",) if job else tuple(source_patterns),
        target=built.target,
        hidden=hidden,
        bind_targets=targets,
        installs_at_start=installs_at_start(service),
        watches=watches_its_files(service, text) or serves_per_request(service),
        config_dirs=[h for h, t in targets if is_proxy(service) and _nginx_config(t, service)],
    )


def _nginx_config(target: str, service: Service) -> bool:
    """A directory nginx reads its configuration from at start (and on a reload): the
    usual ones, or where its command's `-c FILE` is."""
    target = posixpath.normpath(target)
    given, in_nginx = [], False
    for word, following in zip(service.words, [*service.words[1:], ""], strict=True):
        if word.rsplit("/", 1)[-1] == "nginx":
            in_nginx = True
        elif word in ("&&", "||", "|"):
            in_nginx = False  # another command's `-c` (`sh -c`, `envsubst ... -c`)
        elif in_nginx and word == "-c" and posixpath.dirname(following):
            given.append(posixpath.dirname(following))
    return any(
        under(target, d) or (target != "/" and under(d, target))
        for d in ("/etc/nginx", "/usr/local/openresty/nginx/conf", "/etc/openresty", *given)
    )


def _hidden_from_all(files: Iterable[track.ServiceFiles]) -> list[str]:
    """The hidden venvs (ServiceFiles.hidden) that every service bind-mounting them hides."""
    files = list(files)
    return [
        venv
        for venv in {h for sf in files for h in sf.hidden}
        if all(venv in sf.hidden for sf in files if any(scan.below(venv, d) for d in sf.bind_dirs))
    ]


def hidden_venvs(service: Service, dirs: Collection[str]) -> tuple[str, ...]:
    """The host's virtual environments (they hold `pyvenv.cfg`) below a bind-mounted
    directory that a volume of the service's own hides: the container runs its own
    environment there (`.:/app` beside `/app/.venv`), so their files are none of its code,
    and a `pip install` on the host restarts nothing."""
    found = []
    for volume in service.volume_targets:
        if volume in service.host_volumes:
            continue  # a host directory itself: the container may well run that venv
        volume = posixpath.normpath(volume)
        for bind in service.binds:
            base = posixpath.normpath(bind.target).rstrip("/") + "/"
            if str(bind.source) in dirs and volume.startswith(base):
                host = os.path.join(str(bind.source), *volume[len(base) :].split("/"))
                if os.path.isfile(os.path.join(host, "pyvenv.cfg")):
                    found.append(host)
    return tuple(found)


def detect(
    root: Path,
    stack: Stack,
    raw_services: Mapping[str, Any],
    runs_code: Collection[str],
    python_roots: Collection[Path],
    *,
    source_patterns: Collection[str] = (),
    extra_sources: Collection[Path] = (),
    use_index: bool = True,
    rehash: bool = False,
    focus: Focus | None = None,
) -> ChangeSet:
    files = {
        name: service_files(s, name in runs_code, source_patterns, stack.builder_of(s))
        for name, s in stack.services.items()
    }
    trees, singles = track.trees(files.values())
    # Python roots are walked for their sources and bytecode even where no bind tracks them
    # (python_roots configured by hand), but for a host venv no container sees.
    unseen = _hidden_from_all(files.values())
    trees += [
        scan.Tree(str(r), _is_python_source, by_name=True, skip=track.skip_below(unseen, str(r)))
        for r in python_roots
    ]
    # Inputs of a host-side frontend build: every file counts.
    trees += [scan.Tree(str(p), _any_file) for p in extra_sources if p.is_dir()]
    singles = [*singles, *(str(p) for p in extra_sources if not p.is_dir())]
    asking = None
    if focus is None:
        key = gitview.trees_key(files, python_roots, extra_sources)
        asking = gitview.begin(root, sorted({t.root for t in trees}), key)
    try:
        old = index.load(root) if use_index else None
        result, asked, seen = None, None, None
        if focus is not None and not rehash:
            result = scan.rescan(trees, singles, focus.known, focus.paths, links=focus.links)
            asked = focus.paths if result is not None else None
        if asking is not None and old is not None and not rehash:
            result, seen = _by_git(asking, old, trees, singles)
        if result is None:
            # The index says how large the walk will be: a large one is shared with helpers.
            large = old is not None and len(old.files) >= scan.SHARED_FROM_FILES
            result = scan.scan(trees, singles, helpers=forked.helpers() if large else 0)
            seen = gitview.after_walk(asking) if asking is not None else None
    finally:
        if asking is not None:
            asking.stop()
    changes, entries = index.compare(old, result, rehash=rehash)
    hashes: dict[str, index.ServiceHashes] = {}
    config_changed: dict[str, frozenset[str]] = {}
    for name in stack.services:
        raw = raw_services.get(name, {})
        hashes[name] = new = index.config_hashes(raw)
        keys = index.changed_keys(old.services.get(name), new, raw) if old else frozenset()
        if keys:
            config_changed[name] = keys
    return ChangeSet(old, result, changes, entries, files, hashes, config_changed, asked, seen)


def _by_git(
    asking: gitview.Asking, old: index.Index, trees: Sequence[scan.Tree], singles: Sequence[str]
) -> tuple[scan.Scan | None, gitview.Seen | None]:
    """The scan a walk would make, from git's word (gitview), when the last launch's view
    stands: the files git named or the view cannot vouch for asked again, the directories
    it names walked; the rest as the last index holds it."""
    stands = gitview.standing(asking, old.scanned_ns, len(old.files))
    if stands is None:
        return None, None
    view, named = stands
    asked = frozenset({*named.files, *view.unvouched})
    known = dict(zip(old.files, map(_stat_of, old.files.values()), strict=True))
    walk = {*view.walk, *named.dirs}
    # A walk lists every pyc; git names a committed one only once it moved: all are asked
    result = scan.from_git(trees, singles, known, [*asked, *view.bytecode], walk, view.links)
    if result is None:
        return None, None
    seen = gitview.Seen(asking.repo, asking.key, asking.identity, named, view=view, asked=asked)
    return result, seen


def leave_git_view(root: Path, cs: ChangeSet, left: index.Index) -> None:
    """What git vouches for beside `left`, the index a launch leaves, for the next launch to
    stand on instead of a walk (gitview); written only when it differs from the last."""
    if cs.git is None:
        return
    before = cs.old.files if cs.old is not None else {}
    view = gitview.leave(cs.git, left.scanned_ns, left.files, before, cs.scan.links)
    if view is not None and view != cs.git.view:
        gitview.save(root, view)


def after_jobs(
    new: index.Index,
    stack: Stack,
    tracked: Mapping[str, track.ServiceFiles],
    runs_code: Collection[str],
    ran: Mapping[str, Sequence[tuple[float, float]]],
    source_patterns: Collection[str] = (),
) -> index.Index:
    """The index a launch leaves, with what the jobs that ran in it wrote into their own
    mounts (`ran`: each job's containers' start and exit times, epoch seconds): a site, a
    certificate, its record of applied migrations are its results, not changes of what it
    reads to run it again for. Only files changed while a job ran (or new to the index),
    and that no other service uses (a code generator's output restarts what imports it): a
    save made during the launch is the next launch's to see."""
    trees = []
    for name in ran:
        files = service_files(replace(stack.services[name], one_shot=True), name in runs_code,
                              source_patterns)  # fmt: skip
        trees += [
            scan.Tree(d, files.is_source, by_name=True, skip=track.skip_below(files.hidden, d))
            for d in files.bind_dirs
        ]
    if not trees:
        return new
    windows = [(int(a * 1e9), int(b * 1e9) + _SETTLE_NS) for w in ran.values() for a, b in w]
    others = [f for name, f in tracked.items() if name not in ran]
    seen = scan.scan(trees, [])
    written = {}
    for path, stat in seen.files.items():
        known = new.files.get(path)
        if known is not None and known.stat == stat:
            continue
        # A file the index never held (the job is known as one only since it ran) is what it
        # ran with; one the index held counts only if it moved while the job ran.
        if known is not None and not any(start <= stat.mtime_ns <= end for start, end in windows):
            continue
        if any(f.restart_files([path]) or f.rebuild_files([path]) for f in others):
            continue
        with contextlib.suppress(OSError):
            written[path] = index.Entry(stat, index.hash_file(path), seen.started_ns)
    if not written:
        return new
    return index.Index(new.scanned_ns, {**new.files, **written}, new.services)


# How long after a container's exit its last writes may still land on the host
_SETTLE_NS = 1_000_000_000


_stat_of = operator.attrgetter("stat")


def _is_python_source(rel: str) -> bool:
    return rel.endswith(".py")


def _any_file(rel: str) -> bool:
    return True


def refresh_mtimes(cs: ChangeSet) -> list[str]:
    """Bump the mtime of changed build-context files whose mtime and size are what they were.

    BuildKit sends a context file again only when its stat data changed, so an edit that
    restores mtime and size (`cp -p`, rsync -a, unzip, some sync tools) is built from the old
    copy and the image keeps old code. The content did change, so a current mtime is the
    truth; this is the only change cslaunch makes to a non-bytecode file.
    """
    if cs.old is None:
        return []
    contexts = [sf.context for sf in cs.files.values() if sf.context]
    refreshed = []
    for path in sorted(cs.changes.modified):
        prev = cs.old.files.get(path)
        if prev is None or not any(path.startswith(c + os.sep) for c in contexts):
            continue
        try:
            st = os.lstat(path)
            if st.st_mtime_ns == prev.stat.mtime_ns and st.st_size == prev.stat.size:
                os.utime(path)
                refreshed.append(path)
                # The launch's own touch is not an edit during the launch: what it saw of
                # the file is what the file is now.
                entry = cs.entries.get(path)
                if entry is not None:
                    cs.entries[path] = entry._replace(stat=scan.file_stat(path))
        except OSError:
            continue
    return refreshed
