"""What git already knows about a work tree, so that a launch need not stat every file.

git's index holds each tracked file's stat data as of when git found its content equal to
the staged blob; `git diff-files` stats the files in C, with threads, and names each whose
stat data is not that, and `git ls-files --others` every path git does not track. cslaunch's
own index *vouches* for a tracked file when its entry's stat data is the one git holds: both
then saw the same version of the file, so while git finds that stat data still, it is what
cslaunch last hashed. A launch then asks only the files git names, those the index cannot
vouch for, and linked files, and walks the directories git names; the rest of the last
index stands, as it would after a walk that found it unmoved.

The vouching is worked out at a launch that walks (the first, and each one after git's own
index changed: a commit, a checkout, a `git add`) and holds only while git's index is that
very file. Anything in doubt means a walk, as without git: no git or work tree, a repository
on a file system that ignores case or with its work tree elsewhere (`core.worktree`), a git
that warns or fails, git's index rewritten during the look, a SHA-256, split or sparse
index, or git naming a large share of the files.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from cslaunch import track
from cslaunch.context import DockerIgnore
from cslaunch.scan import BYTECODE_SUFFIXES, FileStat
from cslaunch.state import state_file, write_bytes

STATE_FILE = "gitview.bin"
MAGIC = "cslaunch-gitview"
VERSION = 1
# Asking more than this share of the index's files one by one costs more than a walk (and
# a few hundred files cost less than git's listings whatever the tree).
MOST_ASKED = 0.125
FEW_ASKED = 500
_MASK32 = 0xFFFFFFFF
# git's own settings that would make it name less than every file whose stat data moved, or
# every path it does not track: a file system monitor, mtimes of directories, ctime and
# inode ignored, names matched ignoring case.
_STRICT = (
    "core.ignorecase=false",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.checkStat=default",
    "core.trustctime=true",
    "core.ignoreStat=false",
)
# An identity of git's index file: its stat data and its closing checksum. git only ever
# replaces it (written beside, renamed over), so any change gives other stat data; the
# checksum guards against an inode number reused within one tick of the clock.
Identity = tuple[int, int, int, int, int, bytes]
# What git's index holds of a file, as cslaunch's FileStat is compared with it
GitStat = tuple[int, int, int, int]


@dataclass(frozen=True)
class Repo:
    top: str  # the work tree's root
    index: Path  # git's index file


@dataclass(frozen=True)
class GitIndex:
    """What a launch that walked read of git's index."""

    identity: Identity
    stats: dict[str, GitStat]  # absolute path -> stat data, for the entries it can vouch by
    tracked: frozenset[str]  # every entry's absolute path
    gitlinks: tuple[str, ...]  # submodules' directories: their files are not in this index
    # Entries git does not stat (assumed unchanged, skip-worktree, intent to add, unmerged):
    # it would not name their files, there or not
    flagged: tuple[str, ...] = ()


@dataclass
class View:
    """What the next launch needs to take git's word for the files it does not name: saved
    beside cslaunch's index, whose scan time it names."""

    index_ns: int
    key: str  # the trees it was made for (trees_key)
    identity: Identity  # git's index it vouched against
    # Files asked every launch: those the index holds and cannot vouch for, those git does
    # not stat, and those named since the view was made
    unvouched: tuple[str, ...]
    links: tuple[str, ...]  # linked files the index holds (tracked by what they point to)
    walk: tuple[str, ...]  # walked every launch: directories git lists whole, submodules
    bytecode: tuple[str, ...]  # bytecode git tracks (committed pycs): named only when moved


@dataclass(frozen=True)
class Named:
    """What git named below the trees: absolute paths."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]  # directories holding no tracked file (ignored, untracked, repos)


@dataclass
class Seen:
    """What a launch learnt from git, for the view it leaves (`leave`)."""

    repo: Repo
    key: str
    identity: Identity
    named: Named
    # A launch that walked: git's index as it reads it, beside the rest of the launch (0.085 s
    # at 52k files, needed only for the view the launch leaves at its end)
    read: Future[GitIndex | None] | None = None
    view: View | None = None  # a launch that asked git: the view it stood on
    asked: frozenset[str] = frozenset()  # what that launch asked again


def trees_key(
    files: Mapping[str, track.ServiceFiles],
    python_roots: Iterable[Path],
    extra_sources: Iterable[Path],
) -> str:
    """What decides which files a launch tracks (the trees and their rules), as text: a view
    made for other trees names nothing about the files these track anew."""
    parts = [
        [(f.name, _plain(getattr(sf, f.name))) for f in fields(sf) if f.name != "copied"]
        for _, sf in sorted(files.items())
    ]
    return repr((parts, sorted(map(str, python_roots)), sorted(map(str, extra_sources))))


def _plain(value: Any) -> Any:
    """A value whose repr is all of it, the same in every process: patterns by their text
    (a compiled pattern's repr is cut at 200 characters), sets sorted (a set of strings is
    ordered by a hash seeded per process)."""
    if isinstance(value, DockerIgnore):
        return [(pattern.pattern, excluded) for pattern, excluded in value.rules]
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def find(roots: Sequence[str]) -> Repo | None:
    """The git work tree that holds every root, when git can vouch for it (see the module's
    doc): the nearest one above each root, the same for all (a root in a repository nested
    in another is one git's listing of the outer does not look into); not on Windows, whose
    stat data git keeps otherwise."""
    if sys.platform == "win32" or not roots:
        return None
    found = {_nearest(Path(root)) for root in roots}
    if len(found) != 1:
        return None
    (top,) = found
    if top is None:
        return None
    dot = top / ".git"
    if dot.is_dir():
        return _checked(str(top), dot)
    try:  # a linked work tree or a submodule: `gitdir: <its git dir>`
        text = dot.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    return _checked(str(top), top / text[len("gitdir:") :].strip())


def _nearest(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _checked(top: str, git_dir: Path) -> Repo | None:
    config = _config_text(git_dir)
    if config is None or _OTHER_LAYOUT.search(config):
        return None
    if os.path.exists(os.path.join(top, ".GIT")):  # names matched ignoring case
        return None
    return Repo(top, git_dir / "index")


# A repository whose index this does not read (SHA-256 object names), or whose work tree is
# not the directory holding `.git`
_OTHER_LAYOUT = re.compile(r"objectformat\s*=\s*sha256|^\s*worktree\s*=", re.MULTILINE)


def _config_text(git_dir: Path) -> str | None:
    """The repository's config (a linked work tree's shared one too, and its own), lowercased;
    None when unreadable."""
    texts = []
    try:
        texts.append((git_dir / "config").read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        pass
    except OSError:
        return None
    with contextlib.suppress(OSError):
        texts.append((git_dir / "config.worktree").read_text(encoding="utf-8", errors="replace"))
    common = git_dir / "commondir"
    if common.is_file():
        try:
            shared = git_dir / common.read_text(encoding="utf-8").strip() / "config"
            texts.append(shared.read_text(encoding="utf-8", errors="replace"))
        except (OSError, UnicodeDecodeError):
            return None
    return "\n".join(texts).lower()


def identity(repo: Repo) -> Identity | None:
    try:
        with open(repo.index, "rb") as f:
            st = os.fstat(f.fileno())
            f.seek(max(0, st.st_size - _CHECKSUM))
            return _identity(st, f.read())
    except OSError:
        return None


def _identity(st: os.stat_result, tail: bytes) -> Identity:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns, tail[-_CHECKSUM:])


# --- git's index --------------------------------------------------------------------------
#
# The format is git's (Documentation/gitformat-index.txt), versions 2 to 4; only the stat
# data, mode, flags and path of each entry are read. dulwich reads it too, in 0.31 s at 52k
# entries on the test VM, with a dependency; this reads what is needed in 0.085 s.

_ENTRY = struct.Struct(">10I20xH")  # ctime s, ns, mtime s, ns, dev, ino, mode, uid, gid, size
_ASSUME_VALID, _EXTENDED, _STAGE = 0x8000, 0x4000, 0x3000
_SKIP_WORKTREE, _INTENT_TO_ADD = 0x4000, 0x2000
_GITLINK, _LINK, _FILE = 0o160000, 0o120000, 0o100000
_CHECKSUM = 20  # SHA-1 (a SHA-256 repository is not read: see _checked)


def read_index(repo: Repo) -> GitIndex | None:
    """git's index as it is now; None when it cannot be read (then no vouching)."""
    try:
        with open(repo.index, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except OSError:
        return None
    try:
        return _parse(data, repo.top, _identity(st, data))
    except (struct.error, ValueError, IndexError):
        return None


def _parse(data: bytes, top: str, ident: Identity) -> GitIndex | None:
    if data[:4] != b"DIRC":
        return None
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3, 4):
        return None
    # git may compare whole seconds only (a build without USE_NSEC, as Debian's): an edit
    # within the second of the mtime or ctime it holds is unseen by its stat data. Only an
    # entry both of whose times are seconds older than git's index, written after them, is
    # certain to differ in git's eyes after any edit since.
    racy_s = ident[3] // 1_000_000_000
    stats: dict[str, GitStat] = {}
    tracked, gitlinks, flagged = [], [], []
    prefix = top.rstrip(os.sep) + os.sep
    unpack, find_nul, size_of = _ENTRY.unpack_from, data.index, _ENTRY.size
    pos, previous = 12, b""
    for _ in range(count):
        entry_start = pos
        cs, cn, ms, mn, _dev, ino, mode, _uid, _gid, size, flags = unpack(data, pos)
        pos += size_of
        extended = 0
        if flags & _EXTENDED:
            (extended,) = struct.unpack_from(">H", data, pos)
            pos += 2
        if version == 4:
            strip, pos = _varint(data, pos)
            end = find_nul(b"\0", pos)
            name = previous[: len(previous) - strip] + data[pos:end]
            pos = end + 1
            previous = name
        else:
            end = find_nul(b"\0", pos)
            name = data[pos:end]
            # padded with 1 to 8 NULs to a multiple of 8 bytes from the entry's start
            pos = entry_start + ((end - entry_start) // 8 + 1) * 8
        path = prefix + _native(name)
        tracked.append(path)
        kind = mode & 0o170000
        if kind == _GITLINK:
            gitlinks.append(path)
        elif flags & (_ASSUME_VALID | _STAGE) or extended & (_SKIP_WORKTREE | _INTENT_TO_ADD):
            flagged.append(path)
        elif kind in (_FILE, _LINK) and ms < racy_s and cs < racy_s:
            stats[path] = (ms * 1_000_000_000 + mn, cs * 1_000_000_000 + cn, size, ino)
    # A split index holds only what changed since a shared one, a sparse one whole
    # directories as one entry: either way not every file's entry is here.
    while pos + 8 <= len(data) - _CHECKSUM:
        signature, length = data[pos : pos + 4], struct.unpack_from(">I", data, pos + 4)[0]
        if signature in (b"link", b"sdir"):
            return None
        pos += 8 + length
    return GitIndex(ident, stats, frozenset(tracked), tuple(gitlinks), tuple(flagged))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset encoding (varint.c), as version 4 spells how much of the previous path
    an entry's path drops."""
    byte = data[pos]
    pos += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos


def _as_git(stat: FileStat) -> GitStat:
    return (stat.mtime_ns, stat.ctime_ns, stat.size & _MASK32, stat.ino & _MASK32)


# --- what git names ----------------------------------------------------------------------
#
# Two listings, both without a look at any file's content: `git diff-files` names each
# tracked file whose stat data is not what git's index holds (a touch too: `git status`
# would compare the content, through clean filters and line-ending conversion, and call an
# edit they hide clean), and `git ls-files --others --directory` every path git does not
# track, whatever the ignore rules say, a directory holding no tracked file as one path.


def _env() -> dict[str, str]:
    # The user's GIT_DIR, GIT_INDEX_FILE... name another repository or index than the one
    # found here by its path.
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def listing_argvs(repo: Repo, roots: Sequence[str]) -> tuple[list[str], list[str]]:
    git = ["git", "-C", repo.top, "--no-optional-locks"]
    for setting in _STRICT:
        git += ["-c", setting]
    top = repo.top.rstrip(os.sep)
    spec = ["--"]
    if all(r != top for r in roots):
        spec += [
            ":(top,literal)" + os.path.relpath(r, top).replace(os.sep, "/") for r in sorted(roots)
        ]
    # Submodules are walked by every launch (View.walk): never named here
    changed = [*git, "diff-files", "--name-only", "-z", "--ignore-submodules=all", *spec]
    others = [*git, "ls-files", "-z", "--others", "--directory", *spec]
    return changed, others


def start_listing(
    repo: Repo, roots: Sequence[str], changed: bool = True
) -> list[subprocess.Popen[bytes]] | None:
    """Both listings, or (not `changed`: for a launch that walks) the untracked paths only."""
    procs: list[subprocess.Popen[bytes]] = []
    argvs = listing_argvs(repo, roots)
    try:
        for argv in argvs if changed else argvs[1:]:
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=_env(),
                )
            )
    except OSError:  # no git
        stop(procs)
        return None
    return procs


def finish_listing(procs: Sequence[subprocess.Popen[bytes]], repo: Repo) -> Named | None:
    """What git named; None when git failed or warned (an unreadable directory, a repository
    it refuses to trust: it then may have named less than there is)."""
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0 or err.strip():
                return None
            outs.append(out)
    finally:
        stop(procs)
    *changed, others = outs
    return parse_listing(changed[0] if changed else b"", others, repo.top)


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _close(proc.stdout)
        _close(proc.stderr)


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        stream.close()


def parse_listing(changed: bytes, others: bytes, top: str) -> Named:
    """Both listings' NUL-terminated paths, relative to the work tree; a directory's ends
    with `/`."""
    prefix = top.rstrip(os.sep) + os.sep
    files = [prefix + _native(name) for name in changed.split(b"\0") if name]
    dirs = []
    for name in others.split(b"\0"):
        if name.endswith(b"/"):
            dirs.append(prefix + _native(name[:-1]))
        elif name:
            files.append(prefix + _native(name))
    return Named(tuple(files), tuple(dirs))


def _native(name: bytes) -> str:
    """A path as git spells it (bytes, `/`), as this system spells it."""
    text = os.fsdecode(name)
    return text if os.sep == "/" else text.replace("/", os.sep)


# --- the view a launch leaves -------------------------------------------------------------


def load(root: Path) -> View | None:
    try:
        data = marshal.loads(state_file(root, STATE_FILE).read_bytes())
        magic, version, *rest = data
        if magic != MAGIC or version != VERSION:
            return None
        index_ns, key, ident, unvouched_, links, walk, bytecode = rest
        return View(int(index_ns), str(key), tuple(ident), tuple(unvouched_), tuple(links),
                    tuple(walk), tuple(bytecode))  # fmt: skip
    except (OSError, ValueError, EOFError, TypeError):
        return None


def save(root: Path, view: View) -> None:
    data = (MAGIC, VERSION, view.index_ns, view.key, view.identity, view.unvouched,
            view.links, view.walk, view.bytecode)  # fmt: skip
    write_bytes(root, STATE_FILE, marshal.dumps(data))


def leave(
    seen: Seen,
    index_ns: int,
    files: Mapping[str, Any],
    before: Mapping[str, Any],
    links: Collection[str],
) -> View | None:
    """The view for the index a launch leaves (`files`: its entries, `before`: the last
    index's). A launch that walked vouches anew by git's index as it read it: a file
    cslaunch indexes is left to git's word when git tracks it with the same stat data, or
    lies below a directory every launch walks; any other is asked every time. One that
    asked git keeps the view it stood on and adds all it asked and every entry that moved
    (a file edited back to what git holds has another entry than git's)."""
    walk = {*seen.named.dirs}
    if seen.read is not None:
        try:
            read = seen.read.result()
        except Exception:  # no view, as when git's index could not be read
            return None
        if read is None or read.identity != seen.identity:  # changed since the listing began
            return None
        walk.update(read.gitlinks)
        prefixes = tuple(d + os.sep for d in walk)
        stats, tracked = read.stats, read.tracked
        doubtful = [
            path
            for path, entry in files.items()
            if (stats.get(path) != _as_git(entry.stat) if path in tracked
                else not path.startswith(prefixes))
        ]  # fmt: skip
        doubtful += read.flagged  # whether the index holds them or not: git never names them
        bytecode = tuple(p for p in read.tracked if p.endswith(BYTECODE_SUFFIXES))
        return View(index_ns, seen.key, read.identity, tuple(sorted(set(doubtful))),
                    tuple(links), tuple(sorted(walk)), bytecode)  # fmt: skip
    assert seen.view is not None
    view = seen.view
    # The same dict: the launch kept the last index as it was (a no-op)
    moved = () if files is before else {p for p, e in files.items() if before.get(p) != e}
    return View(
        index_ns,
        seen.key,
        seen.identity,
        tuple(sorted({*view.unvouched, *seen.asked, *moved})),
        tuple(links),
        tuple(sorted({*view.walk, *walk})),
        view.bytecode,
    )


_UNSET = Named((), ())


@dataclass
class Asking:
    """git's listings under way, started before cslaunch's index is loaded: git stats with
    its own threads while Python reads."""

    repo: Repo
    key: str
    identity: Identity  # git's index when the listings began
    view: View | None  # the view the last launch left
    procs: list[subprocess.Popen[bytes]]
    _named: Named | None = field(default=_UNSET, init=False)

    def named(self) -> Named | None:
        """What git named, once it is done; None when it failed, warned, or its index
        changed while it looked."""
        if self._named is _UNSET:
            named = finish_listing(self.procs, self.repo)
            self._named = named if identity(self.repo) == self.identity else None
        return self._named

    def stop(self) -> None:
        stop(self.procs)


def begin(root: Path, roots: Sequence[str], key: str) -> Asking | None:
    """git's listings of the work tree that holds the roots, started at once."""
    repo = find(roots)
    if repo is None:
        return None
    ident = identity(repo)
    if ident is None:
        return None
    view = load(root)
    # Without a view made against git's index as it is, the launch walks: it needs only the
    # untracked paths, for the view it leaves
    stands = view is not None and view.key == key and tuple(view.identity) == ident
    procs = start_listing(repo, roots, changed=stands)
    if procs is None:
        return None
    return Asking(repo, key, ident, view if stands else None, procs)


def standing(asking: Asking, index_ns: int, indexed: int) -> tuple[View, Named] | None:
    """The last view and what git named, when together they stand for a walk of the index
    made at `index_ns` with `indexed` files: the view was left with that index, for these
    trees, against git's index as it is, and git named few enough files."""
    view = asking.view  # kept by `begin` only when made for these trees and git's index
    if view is None or view.index_ns != index_ns:
        return None
    named = asking.named()
    if named is None:
        return None
    asked = len(named.files) + len(view.unvouched)
    if asked > FEW_ASKED and asked > MOST_ASKED * indexed:
        return None
    return view, named


def after_walk(asking: Asking) -> Seen | None:
    """What a launch that walked learnt from git, to vouch by: None when git's index changed
    since the listings began, or git failed."""
    named = asking.named()
    if named is None:
        return None
    read: Future[GitIndex | None] = Future()

    def reading() -> None:
        try:
            read.set_result(read_index(asking.repo))
        except BaseException as e:  # pragma: no cover - read_index returns None on failure
            read.set_exception(e)

    threading.Thread(target=reading, name="cslaunch-git-index", daemon=True).start()
    return Seen(asking.repo, asking.key, asking.identity, named, read=read)
