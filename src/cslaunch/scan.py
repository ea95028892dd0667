"""One walk over every tree that can affect a service: stat data of the tracked files, and the
bytecode files met on the way (for selective invalidation).

Symlinks are never followed. Directories that never hold anything a service runs (VCS data,
caches, node_modules) are not entered; .dockerignored directories of a build context are not
entered when no `!` pattern could bring a file back.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple, cast

from cslaunch import forked
from cslaunch.context import DockerIgnore
from cslaunch.hostos import HOST, Host, Listed

PRUNE = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".cslaunch",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    }
)
PYCACHE = "__pycache__"
# A walk of this many files is worth sharing with forked helpers (`scan(helpers=)`): at 10k
# files a fork cost what it saved on a 2-CPU VM, at 20k it saved 10 per cent.
SHARED_FROM_FILES = 20_000
BYTECODE_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Tree:
    """A directory whose files (those `include` accepts) can change a service."""

    root: str  # absolute path
    include: Callable[[str], bool]  # over tree-relative paths with forward slashes
    ignore: DockerIgnore | None = None  # for a build context
    # `include` looks at the file name only (and there is no `ignore`): it is asked once per
    # distinct name, not once per file.
    by_name: bool = False
    skip: frozenset[str] = frozenset()  # tree-relative directories never entered


class FileStat(NamedTuple):
    """A named tuple, not a dataclass: tens of thousands are made per launch.

    `ctime_ns` is the time of the last change to the file, data or metadata (POSIX ctime,
    NTFS ChangeTime), never a creation time: an edit that puts mtime and size back still
    moves it. `ino` is 0 on Windows, whose directory listings have none."""

    mtime_ns: int
    ctime_ns: int
    size: int
    ino: int


@dataclass
class Scan:
    started_ns: int
    files: dict[str, FileStat] = field(default_factory=dict)  # absolute path -> stat
    bytecode: list[str] = field(default_factory=list)  # absolute paths of *.pyc / *.pyo
    # Directories that could not be listed, and links where bytecode would be (a linked
    # __pycache__ or pyc: not followed, so not listed)
    unreadable: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)  # where the walk began (see `enters`)
    # Tracked files that are links, tracked by what they point to: an edit there raises no
    # event naming the link, so a rescan asks them again
    links: list[str] = field(default_factory=list)


def file_stat(path: str, host: Host = HOST) -> FileStat:
    """The stat data of one file, of what a link points to (Host.stat). Raises OSError."""
    return FileStat(*host.stat(path))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while tens of thousands of tuples are made: they hold no
    cycles, and the collections their allocation triggers walked every object so far (a
    third of loading a 100k-file index)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# FileStat made by tuple.__new__ from C (a partial), not through the named tuple's Python-level
# __new__: the same value, without a Python call per file.
_new_stat = partial(tuple.__new__, FileStat)
_plain = cast(Callable[[FileStat], tuple[int, int, int, int]], tuple)


def file_stats(paths: Iterable[str], host: Host = HOST) -> dict[str, FileStat | None]:
    """The stat data of many files (None: gone or unreadable). On Windows one listing per
    directory rather than a handle per file (bytecode sits a few hundred to a __pycache__)."""
    found: dict[str, FileStat | None] = {}
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        by_dir.setdefault(os.path.dirname(path), []).append(path)
    for directory, members in by_dir.items():
        try:
            listed = host.listing(directory)
        except OSError:
            listed = {}
        for path in members:
            seen = listed.get(os.path.basename(path)) if listed is not None else None
            if seen is not None:
                found[path] = FileStat(seen.mtime_ns, seen.ctime_ns, seen.size, 0)
                continue
            try:
                found[path] = file_stat(path, host)
            except OSError:
                found[path] = None
    return found


def scan(
    trees: Sequence[Tree], single_files: Sequence[str] = (), host: Host = HOST, *, helpers: int = 0
) -> Scan:
    """Walk the trees (each directory once, however many trees share it) and stat the files;
    with `helpers`, that many forked processes walk shares of the trees alongside (see
    `forked`: for a tree large enough that the walk outweighs a fork)."""
    with paused_gc():
        return _scan(trees, single_files, host, helpers)


def _scan(trees: Sequence[Tree], single_files: Sequence[str], host: Host, helpers: int) -> Scan:
    result = Scan(started_ns=time.time_ns())
    walk = _Walk.over(trees, host)
    result.tops = _outermost(walk.roots)
    stack = [
        (top, [(t, "") for t in walk.by_root.get(top, [])])
        for top in result.tops
        if os.path.isdir(top) and not os.path.islink(top)
    ]
    if helpers and not host.windows:
        _walk_shared(walk, stack, helpers, result)
    else:
        walk.all(stack, result)
    for path in single_files:
        # A missing file is a deletion, which the index comparison sees.
        with contextlib.suppress(OSError):
            result.files[path] = file_stat(path, host)
    return result


def rescan(
    trees: Sequence[Tree],
    single_files: Sequence[str],
    known: Mapping[str, FileStat],
    paths: Iterable[str],
    host: Host = HOST,
    links: Iterable[str] = (),
) -> Scan | None:
    """The scan a walk of the trees would make now, when `known` is a walk's result and only
    `paths` can have changed since it began (watch's file events): `paths` and the single
    files are asked again, the rest is taken as it was. None when the paths cannot stand for
    a walk: a directory among them (a directory moved in raises no event per file), one gone
    that held known files, a path outside every tree or through a linked directory (a file
    reached two ways may be named by its events the way the walk does not take). Bytecode:
    what the paths' directories and their __pycache__ hold, the only pycs a change among them
    can make stale.
    """
    with paused_gc():
        result = Scan(started_ns=time.time_ns(), files=dict(known), links=list(links))
        outer = _outermost(sorted({os.path.normpath(t.root) for t in trees}))
        listed: dict[str, dict[str, os.DirEntry[str]] | None] = {}
        singles = {os.path.normpath(p) for p in single_files}
        for path in dict.fromkeys(os.path.normpath(p) for p in paths):
            if path in singles:
                continue  # asked again below
            top = next((r for r in outer if below(path, r)), None)
            if top is None:
                return None
            directory, name = os.path.split(path)
            if _through_link(top, directory):
                return None
            if directory not in listed:
                listed[directory] = _entries(directory, result)
            entry = (listed[directory] or {}).get(name)
            result.files.pop(path, None)
            if entry is None:
                prefix = path + os.sep
                if any(p.startswith(prefix) for p in known):
                    return None
                continue  # gone: the comparison sees the deletion
            if entry.is_dir(follow_symlinks=False):
                return None
            if _tracks(trees, top, path) and not name.endswith(BYTECODE_SUFFIXES):
                with contextlib.suppress(OSError):  # vanished since: seen next time
                    result.files[path] = file_stat(path, host)
                if entry.is_symlink() and path not in result.links:
                    result.links.append(path)
        for path in [*result.links, *single_files]:
            result.files.pop(path, None)
            with contextlib.suppress(OSError):
                result.files[path] = file_stat(path, host)
        for entries in listed.values():
            if entries is None:
                continue
            for name, entry in entries.items():
                if name == PYCACHE and entry.is_dir(follow_symlinks=False):
                    _collect_bytecode(entry.path, result)
                elif name.endswith(BYTECODE_SUFFIXES) and entry.is_file(follow_symlinks=False):
                    result.bytecode.append(entry.path)
        return result


def from_git(
    trees: Sequence[Tree],
    single_files: Sequence[str],
    known: Mapping[str, FileStat],
    asked: Iterable[str],
    walk: Iterable[str],
    links: Iterable[str] = (),
    host: Host = HOST,
) -> Scan | None:
    """The scan a walk of the trees would make now, when git vouches for every file of
    `known` but those `asked` and those below the directories in `walk` (gitview): the files
    are asked again (rescan), the directories walked anew, what `known` held below them
    dropped first. Bytecode: every pyc among `asked` (git names each untracked or ignored
    one, or its `__pycache__` among `walk`), as the walk would meet them. None when the
    files cannot stand for a walk (see `rescan`)."""
    asked = list(asked)
    result = rescan(
        trees, single_files, known, (p for p in asked if not p.endswith(BYTECODE_SUFFIXES)),
        host, links,
    )  # fmt: skip
    if result is None:
        return None
    result.bytecode = []
    walker = _Walk.over(trees, host)
    result.tops = _outermost(walker.roots)
    # A directory git names as one above a tree's root (the root inside an ignored or
    # untracked directory) stands for the tops below it, walked whole
    named = {os.path.normpath(d) for d in walk}
    for d in list(named):
        inside = [t for t in result.tops if below(t, d)]
        if inside:
            named.discard(d)
            named.update(inside)
    dirs = _outermost(sorted(named))
    # What `known` held below them goes, but for bytecode directories, which hold none
    holding = [d for d in dirs if os.path.basename(d) != PYCACHE]
    if holding:
        prefixes = tuple(d + os.sep for d in holding)
        for path in [p for p in result.files if p.startswith(prefixes)]:
            del result.files[path]
        result.links = [p for p in result.links if not p.startswith(prefixes)]
    for directory in dirs:
        if os.path.basename(directory) == PYCACHE:
            if _active_at(walker, result.tops, os.path.dirname(directory)):
                _pycache(directory, result)
            continue
        active = _active_at(walker, result.tops, directory)
        if active is not None and os.path.isdir(directory) and not os.path.islink(directory):
            walker.all([(directory, active)], result)
    for path in asked:
        if os.path.basename(path) == PYCACHE:  # a link git lists as a file
            if _active_at(walker, result.tops, os.path.dirname(path)):
                _pycache(path, result)
            continue
        if not path.endswith(BYTECODE_SUFFIXES):
            continue
        parent = os.path.dirname(path)
        if os.path.basename(parent) == PYCACHE:
            parent = os.path.dirname(parent)
        if _active_at(walker, result.tops, parent):
            if os.path.isfile(path) and not os.path.islink(path):
                result.bytecode.append(path)
            elif os.path.lexists(path):
                result.unreadable.append(path)  # a link: not followed
    # Met twice when named both by git and below a directory the view walks
    result.bytecode = list(dict.fromkeys(result.bytecode))
    result.unreadable = list(dict.fromkeys(result.unreadable))
    return result


def _pycache(path: str, result: Scan) -> None:
    """A `__pycache__` as the walk meets it: its bytecode listed, a link not followed."""
    if os.path.islink(path):
        result.unreadable.append(path)
    elif os.path.isdir(path):
        _collect_bytecode(path, result)


def _active_at(walk: _Walk, tops: Sequence[str], directory: str) -> _Active | None:
    """The trees active in `directory` as the walk would reach it (`_Walk.visit`), or None
    when the walk would not enter it: outside every top, through a pruned, bytecode or
    linked directory, or where no tree is active and no root lies below."""
    top = next((t for t in tops if directory == t or below(directory, t)), None)
    if top is None:
        return None
    path = top
    active: _Active = [(t, "") for t in walk.by_root.get(top, [])]
    for name in directory[len(top.rstrip(os.sep)) + 1 :].split(os.sep) if directory != top else []:
        if name in PRUNE or name == PYCACHE:
            return None
        path = os.path.join(path, name)
        if os.path.islink(path):
            return None
        active = walk.active_in(path, name, active)
        if not active and not _has_root_below(path, walk.roots):
            return None
    return active


def enters(tops: Sequence[str], directory: str) -> bool:
    """Whether a walk that began at `tops` (a Scan's) lists `directory`, spelled as it is
    spelled here: below one of them, through no linked or pruned directory, each name as the
    directory listing spells it (a file system that ignores case takes other spellings,
    which the walk does not)."""
    top = next((t for t in tops if directory == t or below(directory, t)), None)
    if top is None or not os.path.isdir(top) or os.path.islink(top):
        return False
    parent = top
    for name in directory[len(top.rstrip(os.sep)) + 1 :].split(os.sep) if directory != top else []:
        if name in PRUNE or name == PYCACHE:
            return False
        try:
            if name not in os.listdir(parent):
                return False
        except OSError:
            return False
        parent = os.path.join(parent, name)
        if os.path.islink(parent) or not os.path.isdir(parent):
            return False
    return True


def below(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip(os.sep) + os.sep)


def _entries(directory: str, result: Scan) -> dict[str, os.DirEntry[str]] | None:
    """A directory's entries by name (the exact names: an event may spell a name in another
    case on a file system that ignores case); None when it cannot be listed, as the walk."""
    try:
        with os.scandir(directory) as it:
            return {entry.name: entry for entry in it}
    except (FileNotFoundError, NotADirectoryError):  # gone, or a file now: no listing
        return None
    except OSError:
        result.unreadable.append(directory)
        return None


def _through_link(top: str, directory: str) -> bool:
    while len(directory) > len(top):
        if os.path.islink(directory):
            return True
        directory = os.path.dirname(directory)
    return False


def _tracks(trees: Sequence[Tree], top: str, path: str) -> bool:
    """Whether the walk from `top` would stat the file at `path` (no linked directory on the
    way): every directory on the way entered (not pruned) and a tree active there
    including it."""
    parts = path[len(top.rstrip(os.sep)) + 1 :].split(os.sep)
    if any(part in PRUNE or part == PYCACHE for part in parts[:-1]):
        return False
    for tree in trees:
        root = os.path.normpath(tree.root).rstrip(os.sep) + os.sep
        if not path.startswith(root):
            continue
        rel_parts = path[len(root) :].split(os.sep)
        rel = "/".join(rel_parts)
        ignore = tree.ignore
        if ignore and any(ignore.prunes("/".join(rel_parts[:i])) for i in range(1, len(rel_parts))):
            continue
        if any("/".join(rel_parts[:i]) in tree.skip for i in range(1, len(rel_parts))):
            continue
        if tree.include(rel_parts[-1] if tree.by_name and not ignore else rel) and not (
            ignore and ignore.ignored(rel)
        ):
            return True
    return False


def _outermost(roots: list[str]) -> list[str]:
    kept: list[str] = []
    for root in roots:  # sorted, so a parent comes before its children
        if not any(root == k or below(root, k) for k in kept):
            kept.append(root)
    return kept


# A tree active in a directory, with the directory's path relative to the tree root.
_Active = list[tuple[Tree, str]]


# A directory still to list, with the trees active in it
_Pending = tuple[str, _Active]
# What a share of the walk found, as marshal carries it: paths, their stat data as plain
# tuples, bytecode, unreadable, links
_Found = tuple[list[str], list[tuple[int, int, int, int]], list[str], list[str], list[str]]
# Directories listed before the walk is shared, per process: enough that the shares, dealt
# round-robin, come out about even
_SHARES_PER_PROCESS = 8


@dataclass
class _Walk:
    by_root: dict[str, list[Tree]]
    roots: list[str]
    host: Host
    # Tree -> file name -> included, for trees that look at the name only (by_name): a tree
    # has few distinct names, and a dict lookup costs less than a pattern match.
    memo: dict[int, dict[str, bool]] = field(default_factory=dict)

    def all(self, stack: list[_Pending], result: Scan) -> None:
        while stack:
            stack += self.visit(*stack.pop(), result)

    def share(self, share: Sequence[_Pending]) -> _Found:
        found = Scan(started_ns=0)
        self.all(list(share), found)
        return (
            list(found.files),
            list(map(_plain, found.files.values())),  # marshal takes no named tuple
            found.bytecode,
            found.unreadable,
            found.links,
        )

    @classmethod
    def over(cls, trees: Sequence[Tree], host: Host) -> _Walk:
        """A walk of the trees, each directory once however many trees share it."""
        by_root: dict[str, list[Tree]] = {}
        for tree in trees:
            by_root.setdefault(os.path.normpath(tree.root), []).append(tree)
        return cls(by_root, sorted(by_root), host)

    def active_in(self, child: str, name: str, active: _Active) -> _Active:
        """The trees active in `child`, named `name`, below a directory where `active` are:
        those that neither prune nor skip it, and those rooted there."""
        found = [
            (t, child_rel)
            for t, rel in active
            for child_rel in [f"{rel}/{name}" if rel else name]
            if not (t.ignore and t.ignore.prunes(child_rel)) and child_rel not in t.skip
        ]
        return found + [(t, "") for t in self.by_root.get(child, [])]

    def visit(self, path: str, active: _Active, result: Scan) -> list[_Pending]:
        """List one directory, stat the files a tree active there tracks; the directories
        to list next."""
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except FileNotFoundError:
            return []
        except OSError:
            result.unreadable.append(path)
            return []
        files = []
        below: list[_Pending] = []
        for entry in entries:
            name = entry.name
            if not entry.is_dir(follow_symlinks=False):
                if name == PYCACHE and active:
                    result.unreadable.append(entry.path)  # a link: not followed
                files.append(entry)
            elif name == PYCACHE:
                if active:
                    _collect_bytecode(entry.path, result)
            elif name not in PRUNE:
                child = entry.path
                child_active = self.active_in(child, name, active)
                if child_active or _has_root_below(child, self.roots):
                    below.append((child, child_active))
        _stat_files(path, files, active, self.memo, result, self.host)
        return below


def _walk_shared(walk: _Walk, stack: list[_Pending], helpers: int, result: Scan) -> None:
    """The walk, breadth first here until there are directories enough to deal out, then
    shared with `helpers` forked processes."""
    frontier = deque(stack)
    processes = helpers + 1
    while frontier and len(frontier) < _SHARES_PER_PROCESS * processes:
        frontier.extend(walk.visit(*frontier.popleft(), result))
    pending = list(frontier)
    shares = [share for i in range(1, processes) if (share := pending[i::processes])]
    here = pending[::processes]
    for files, stats, bytecode, unreadable, links in forked.run(
        walk.share, shares, lambda: walk.all(here, result)
    ):
        result.files.update(zip(files, map(_new_stat, stats), strict=True))
        result.bytecode += bytecode
        result.unreadable += unreadable
        result.links += links


def _stat_files(
    directory: str,
    files: list[os.DirEntry[str]],
    active: _Active,
    memo: dict[int, dict[str, bool]],
    result: Scan,
    host: Host,
) -> None:
    """Stat the files of one directory that a tree active there tracks."""
    listed: dict[str, Listed] | None = None  # Windows: this directory's change times
    trees = [
        (t, rel, memo.setdefault(id(t), {}) if t.by_name and not t.ignore else None)
        for t, rel in active
    ]
    for entry in files:
        name = entry.name
        if name.endswith(BYTECODE_SUFFIXES):
            if entry.is_file(follow_symlinks=False):
                result.bytecode.append(entry.path)
            else:
                result.unreadable.append(entry.path)  # a link: not followed
            continue
        for tree, rel, names in trees:
            if names is not None:
                included = names.get(name)
                if included is None:
                    included = names[name] = tree.include(name)
            else:
                file_rel = f"{rel}/{name}" if rel else name
                included = tree.include(file_rel) and not (
                    tree.ignore and tree.ignore.ignored(file_rel)
                )
            if included:
                if host.windows:
                    if listed is None:
                        listed = _listing(directory, host)
                    _record_listed(entry.path, listed.get(name), result, host)
                    break
                # Once per tracked file: try/except and a C-made FileStat, not a suppress()
                # context and calls (a tenth of a 100k-file walk).
                try:
                    st = entry.stat(follow_symlinks=False)
                    if st.st_mode & 0o170000 == 0o120000:  # a link: what it points to
                        st = _followed(entry, st)
                        result.links.append(entry.path)
                except OSError:
                    break  # vanished mid-walk: the next launch sees it as it is
                result.files[entry.path] = _new_stat(
                    (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
                )
                break


def _followed(entry: os.DirEntry[str], own: os.stat_result) -> os.stat_result:
    """A linked file is tracked by what it points to (`local_settings.py ->
    local_settings.py.dev`): Python imports that, and an edit there changes the module. A
    dangling link by its own stat data."""
    try:
        return entry.stat()
    except OSError:
        return own


def _listing(directory: str, host: Host) -> dict[str, Listed]:
    try:
        return host.listing(directory) or {}
    except OSError:
        return {}  # each file is then asked alone


def _record_listed(path: str, seen: Listed | None, result: Scan, host: Host) -> None:
    """A tracked file's stat data from its directory's listing (Windows); a file the listing
    missed (created since scandir listed it) is asked alone."""
    if seen is not None:
        result.files[path] = FileStat(seen.mtime_ns, seen.ctime_ns, seen.size, 0)
        return
    with contextlib.suppress(OSError):  # vanished mid-walk: the next launch sees it as it is
        result.files[path] = file_stat(path, host)


def _collect_bytecode(pycache: str, result: Scan) -> None:
    try:
        with os.scandir(pycache) as it:
            for entry in it:
                if not entry.name.endswith(BYTECODE_SUFFIXES):
                    continue
                if entry.is_file(follow_symlinks=False):
                    result.bytecode.append(entry.path)
                else:
                    result.unreadable.append(entry.path)  # a link: not followed
    except OSError:
        result.unreadable.append(pycache)


def _has_root_below(directory: str, roots: list[str]) -> bool:
    prefix = directory.rstrip(os.sep) + os.sep
    return any(r.startswith(prefix) for r in roots)
