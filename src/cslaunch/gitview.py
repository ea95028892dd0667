"""What git already knows about a work tree, so that a launch need not stat every file.

git's index holds each tracked file's stat data as of when git found its content equal to
the staged blob, and `git status` stats the files in C, with threads, and names each that
differs, and every untracked or ignored file. cslaunch's own index *vouches* for a tracked
file when its entry's stat data is the one git holds: both then saw the same version of the
file, so while git calls it clean it is still what cslaunch last hashed. A launch then asks
only the files git names, those the index cannot vouch for, and linked files; the rest of
the last index stands, as it would after a walk that found it unmoved.

The vouching is worked out at a launch that walks (the first, and each one after git's own
index changed: a commit, a checkout, a `git add`) and holds only while git's index is that
very file. Anything in doubt means a walk, as without git: no git or work tree, a repository
on a file system that ignores case, a git that warns or fails, git's index rewritten during
the look, a SHA-256 repository, or git naming a large share of the files.
"""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from cslaunch import track
from cslaunch.context import DockerIgnore
from cslaunch.scan import FileStat
from cslaunch.state import state_file, write_bytes

STATE_FILE = "gitview.bin"
MAGIC = "cslaunch-gitview"
VERSION = 1
# Asking more than this share of the index's files one by one costs more than a walk (and
# a few hundred files cost less than a status whatever the tree).
MOST_ASKED = 0.125
FEW_ASKED = 500
_MASK32 = 0xFFFFFFFF
# git's own settings that make a clean report mean less than "the stat data git holds, or
# the content": a file system monitor, mtimes of directories, ctime and inode ignored.
_STRICT = (
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


@dataclass
class View:
    """What the next launch needs to take git's word for the files it does not name: saved
    beside cslaunch's index, whose scan time it names."""

    index_ns: int
    key: str  # the trees it was made for (trees_key)
    identity: Identity  # git's index it vouched against
    unvouched: tuple[str, ...]  # tracked files the index holds and cannot vouch for
    links: tuple[str, ...]  # linked files the index holds (tracked by what they point to)
    walk: tuple[str, ...]  # directories always walked (submodules)
    bytecode: tuple[str, ...]  # bytecode git tracks (committed pycs): status never names it


@dataclass(frozen=True)
class Named:
    """What `git status` named below the trees: absolute paths."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]  # untracked or ignored directories, submodules


@dataclass
class Seen:
    """What a launch learnt from git, for the view it leaves (`leave`)."""

    repo: Repo
    key: str
    identity: Identity
    named: Named
    read: GitIndex | None = None  # a launch that walked: git's index as it read it
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
    in another is one git's status of the outer does not look into); not on Windows, whose
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
    if config is None or "ignorecase = true" in config or "objectformat = sha256" in config:
        return None
    return Repo(top, git_dir / "index")


def _config_text(git_dir: Path) -> str | None:
    """The repository's config (a linked work tree's shared one too), lowercased and with
    tabs as spaces; None when unreadable."""
    texts = []
    try:
        texts.append((git_dir / "config").read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        pass
    except OSError:
        return None
    common = git_dir / "commondir"
    if common.is_file():
        try:
            shared = git_dir / common.read_text(encoding="utf-8").strip() / "config"
            texts.append(shared.read_text(encoding="utf-8", errors="replace"))
        except (OSError, UnicodeDecodeError):
            return None
    return " ".join(texts).lower().replace("\t", " ")


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
    tracked, gitlinks = [], []
    prefix = top.rstrip(os.sep) + os.sep
    native = os.sep != "/"
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
        text = name.decode("utf-8", "surrogateescape")
        path = prefix + (text.replace("/", os.sep) if native else text)
        tracked.append(path)
        kind = mode & 0o170000
        if kind == _GITLINK:
            gitlinks.append(path)
        elif (
            kind in (_FILE, _LINK)
            and ms < racy_s
            and cs < racy_s
            and not flags & (_ASSUME_VALID | _STAGE)
            and not extended & (_SKIP_WORKTREE | _INTENT_TO_ADD)
        ):
            stats[path] = (ms * 1_000_000_000 + mn, cs * 1_000_000_000 + cn, size, ino)
    # A split index holds only what changed since a shared one, a sparse one whole
    # directories as one entry: either way not every file's entry is here.
    while pos + 8 <= len(data) - _CHECKSUM:
        signature, length = data[pos : pos + 4], struct.unpack_from(">I", data, pos + 4)[0]
        if signature in (b"link", b"sdir"):
            return None
        pos += 8 + length
    return GitIndex(ident, stats, frozenset(tracked), tuple(gitlinks))


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


# --- git status ---------------------------------------------------------------------------


def _env() -> dict[str, str]:
    # The user's GIT_DIR, GIT_INDEX_FILE... name another repository or index than the one
    # found here by its path.
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def status_argv(repo: Repo, roots: Sequence[str]) -> list[str]:
    argv = ["git", "-C", repo.top, "--no-optional-locks"]
    for setting in _STRICT:
        argv += ["-c", setting]
    argv += ["status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignored=matching",
             "--no-renames", "--ignore-submodules=none"]  # fmt: skip
    top = repo.top.rstrip(os.sep)
    if all(r != top for r in roots):
        argv.append("--")
        argv += [
            ":(top,literal)" + os.path.relpath(r, top).replace(os.sep, "/") for r in sorted(roots)
        ]
    return argv


def start_status(repo: Repo, roots: Sequence[str]) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            status_argv(repo, roots),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
    except OSError:
        return None  # no git


def finish_status(proc: subprocess.Popen[bytes], repo: Repo) -> Named | None:
    """What the status named; None when git failed or warned (an unreadable directory, a
    repository it refuses to trust: it then may have named less than there is)."""
    try:
        out, err = proc.communicate()
    except BaseException:
        stop(proc)
        raise
    if proc.returncode != 0 or err.strip():
        return None
    try:
        return parse_status(out, repo.top)
    except (ValueError, IndexError):
        return None


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    _close(proc.stdout)
    _close(proc.stderr)
    proc.wait()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        stream.close()


def parse_status(out: bytes, top: str) -> Named:
    """`git status --porcelain=v2 -z` records: changed (`1`, `2`: with its old path in the
    next record, `u`: unmerged), untracked (`?`) and ignored (`!`) paths; a directory ends
    with `/`, a submodule's record says `S...`."""
    prefix = top.rstrip(os.sep) + os.sep
    files: list[str] = []
    dirs: list[str] = []
    records = out.split(b"\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if not record:
            continue
        kind = record[:1]
        if kind in (b"?", b"!"):
            name, submodule = record[2:], False
        elif kind == b"1":
            fields_ = record.split(b" ", 8)
            name, submodule = fields_[8], fields_[2].startswith(b"S")
        elif kind == b"2":
            fields_ = record.split(b" ", 9)
            name, submodule = fields_[9], fields_[2].startswith(b"S")
            files.append(prefix + _native(records[i]))  # the path it was renamed from
            i += 1
        elif kind == b"u":
            fields_ = record.split(b" ", 10)
            name, submodule = fields_[10], fields_[2].startswith(b"S")
        elif kind == b"#":
            continue
        else:
            raise ValueError(f"unknown status record {record[:20]!r}")
        path = prefix + _native(name.rstrip(b"/"))
        (dirs if submodule or name.endswith(b"/") else files).append(path)
    return Named(tuple(files), tuple(dirs))


def _native(name: bytes) -> str:
    return os.fsdecode(name).replace("/", os.sep)


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
) -> View:
    """The view for the index a launch leaves (`files`: its entries, `before`: the last
    index's). A launch that walked vouches anew by git's index as it read it: a file
    cslaunch indexes is left to git's word when git tracks it with the same stat data, or
    lies below a directory every launch walks; any other is asked every time. One that
    asked git keeps the view it stood on and adds all it asked and every entry that moved
    (a file edited back to what git holds has another entry than git's)."""
    walk = {*seen.named.dirs}
    if seen.read is not None:
        read = seen.read
        walk.update(read.gitlinks)
        prefixes = tuple(d + os.sep for d in walk)
        stats, tracked = read.stats, read.tracked
        doubtful = [
            path
            for path, entry in files.items()
            if (stats.get(path) != _as_git(entry.stat) if path in tracked
                else not path.startswith(prefixes))
        ]  # fmt: skip
        bytecode = tuple(p for p in read.tracked if p.endswith((".pyc", ".pyo")))
        return View(index_ns, seen.key, read.identity, tuple(sorted(doubtful)),
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
    """A status under way, started before cslaunch's index is loaded: git stats with its own
    threads while Python reads."""

    repo: Repo
    key: str
    identity: Identity  # git's index when the status began
    view: View | None  # the view the last launch left
    proc: subprocess.Popen[bytes]
    _named: Named | None = field(default=_UNSET, init=False)

    def named(self) -> Named | None:
        """What git named, once it is done; None when it failed, warned, or its index
        changed while it looked."""
        if self._named is _UNSET:
            named = finish_status(self.proc, self.repo)
            self._named = named if identity(self.repo) == self.identity else None
        return self._named

    def stop(self) -> None:
        stop(self.proc)


def begin(root: Path, roots: Sequence[str], key: str) -> Asking | None:
    """A status of the work tree that holds the roots, started at once."""
    repo = find(roots)
    if repo is None:
        return None
    ident = identity(repo)
    if ident is None:
        return None
    proc = start_status(repo, roots)
    if proc is None:
        return None
    return Asking(repo, key, ident, load(root), proc)


def standing(asking: Asking, index_ns: int, indexed: int) -> tuple[View, Named] | None:
    """The last view and what git named, when together they stand for a walk of the index
    made at `index_ns` with `indexed` files: the view was left with that index, for these
    trees, against git's index as it is, and git named few enough files."""
    view = asking.view
    if view is None or view.index_ns != index_ns or view.key != asking.key:
        return None
    if tuple(view.identity) != asking.identity:
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
    since the status began, or git failed."""
    named = asking.named()
    if named is None:
        return None
    read = read_index(asking.repo)
    if read is None or read.identity != asking.identity:
        return None
    return Seen(asking.repo, asking.key, asking.identity, named, read=read)
