"""Delete Python bytecode from host directories that Python containers bind-mount.

A container that imports from a bind mount trusts the ``.pyc`` files it finds there. When the
host's clock, the container's clock and the source mtimes disagree (or a file was restored with
an old mtime), that bytecode can be stale yet look fresh, so the container would run code that
is no longer on disk. Removing it forces the container to compile what is actually there.

The full clean's only side effects are in :func:`_remove_file` (unlink one bytecode file) and
:func:`_remove_pycaches` (rmdir empty ``__pycache__`` directories); the walk itself only reads.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cslaunch import hostos, scan
from cslaunch.errors import PathError

PYCACHE = "__pycache__"
BYTECODE_SUFFIXES = (".pyc", ".pyo")

# Directories that never hold the project's bytecode but can be huge (VCS metadata, JS deps)
# or belong to cslaunch itself. Venvs are deliberately absent: a bind-mounted venv's bytecode
# is as likely to be stale as the project's.
PRUNE = frozenset({".git", ".hg", ".svn", "node_modules", ".cslaunch"})

# Windows error codes that arrive as a generic PermissionError but deserve a precise reason.
_WINERROR_ACCESS_DENIED = 5
_WINERROR_SHARING_VIOLATION = 32
_WINERROR_DIR_NOT_EMPTY = 145


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str  # short human reason, e.g. "permission denied", "locked by another process"


@dataclass
class CleanResult:
    roots: list[Path]  # the directories walked: resolved, deduplicated, nested ones dropped
    files: int = 0  # bytecode files removed (or that would be, in dry run)
    dirs: int = 0  # __pycache__ directories removed
    bytes: int = 0  # bytes of the removed files
    removed: list[Path] = field(default_factory=list)  # every removed file, then every dir
    skipped: list[Skipped] = field(default_factory=list)
    dry_run: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # why files went (selective mode)
    sized: bool = True  # False: bytes were not counted (the report had no use for them)

    def removed_elsewhere(self, paths: Sequence[str]) -> None:
        """Skipped files since removed another way (through a container, `pycs_inside`)."""
        gone = set(paths)
        if gone:
            self.skipped = [s for s in self.skipped if str(s.path) not in gone]
            self.files += len(gone)
            self.removed += [Path(p) for p in sorted(gone)]


# Decides whether one non-directory entry is bytecode to remove. Swappable so that a later
# stale-only mode can look inside the file (or at its source) instead of at the name alone.
Select = Callable[[os.DirEntry[str]], bool]


def is_bytecode(entry: os.DirEntry[str]) -> bool:
    """Any regular file named ``*.pyc`` / ``*.pyo``; symlinks and special files never qualify."""
    # The suffix test comes first: it is free, while is_file() may need a stat on file
    # systems whose directory listings carry no file type.
    return entry.name.endswith(BYTECODE_SUFFIXES) and entry.is_file(follow_symlinks=False)


def clean(
    roots: Sequence[Path], *, dry_run: bool = False, sizes: bool = True, paths: bool = True
) -> CleanResult:
    """Remove every bytecode file under ``roots`` and the ``__pycache__`` dirs left empty.

    Symlinks (and Windows junctions) are never followed nor removed, the root directories
    themselves are never removed, and ``.git``-like directories in :data:`PRUNE` are not
    entered. Files that cannot be removed are listed in ``skipped``; the walk goes on.

    What the report does not show need not be gathered: ``sizes=False`` leaves ``bytes`` at 0
    (``sized`` says so) and saves an lstat per file, ``paths=False`` leaves ``removed`` empty.
    On a warm cache the two are a third of a clean's time.

    Raises :class:`PathError`, before anything is removed, if a root is missing or not a
    directory.
    """
    resolved = _resolve_roots(roots)
    walk_roots = _walk_roots(resolved)
    tally = _Tally(sizes, paths)
    _walk(walk_roots, is_bytecode, dry_run, tally)
    _remove_pycaches(tally, dry_run, keep={dirpath for dirpath, _ in resolved})
    return CleanResult(
        roots=[Path(r) for r in walk_roots],
        files=tally.files,
        dirs=tally.dirs,
        bytes=tally.bytes,
        removed=[Path(p) for p in tally.removed],
        skipped=tally.skipped,
        dry_run=dry_run,
        sized=sizes,
    )


# How a directory is told apart from another: see _identity.
_Identity = tuple[int, int] | str


class _Tally:
    """What a clean did so far; paths stay str until the end (much cheaper than Path)."""

    def __init__(self, sizes: bool = True, paths: bool = True) -> None:
        self.sizes = sizes  # count the bytes removed (an lstat per file on POSIX)
        self.paths = paths  # keep the path of every file and dir removed
        self.files = 0
        self.dirs = 0
        self.bytes = 0
        self.removed: list[str] = []
        self.skipped: list[Skipped] = []
        # Every __pycache__ seen -> how many of its entries are still there. Filled during the
        # walk, consumed by _remove_pycaches once all the files are gone.
        self.pycaches: dict[str, int] = {}

    def add(self, other: _Tally) -> None:
        self.files += other.files
        self.dirs += other.dirs
        self.bytes += other.bytes
        self.removed += other.removed
        self.skipped += other.skipped
        self.pycaches.update(other.pycaches)


def _check_roots(roots: Sequence[Path]) -> list[str]:
    """Resolve the roots, fail on unusable ones, and return the ones to walk."""
    return _walk_roots(_resolve_roots(roots))


def _resolve_roots(roots: Sequence[Path]) -> list[tuple[str, _Identity]]:
    """Each root's resolved path and identity; PathError on a missing or non-directory one."""
    resolved: list[tuple[str, _Identity]] = []
    for root in roots:
        try:
            path = Path(root).resolve(strict=True)
            st = path.stat()
        except FileNotFoundError:
            raise PathError(f"bytecode root does not exist: {root}") from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop before 3.13
            raise PathError(f"bytecode root is unusable: {root} ({exc})") from None
        if not stat.S_ISDIR(st.st_mode):
            raise PathError(f"bytecode root is not a directory: {root}")
        resolved.append((str(path), _identity(path, st)))
    return resolved


def _walk_roots(resolved: list[tuple[str, _Identity]]) -> list[str]:
    """Each directory once, without those that another root's walk already reaches."""
    ids = {ident for _, ident in resolved}
    walk: list[str] = []
    seen: set[_Identity] = set()
    for dirpath, ident in resolved:
        if ident not in seen and not _covered_by_other_root(Path(dirpath), ids):
            walk.append(dirpath)
        seen.add(ident)
    return walk


def _identity(path: Path, st: os.stat_result) -> _Identity:
    # (device, inode) rather than the path, so that case-insensitive file systems (macOS,
    # Windows) cannot make one directory look like two; the path where there is no inode
    # number (some network shares on Windows report 0).
    return (st.st_dev, st.st_ino) if st.st_ino else os.path.normcase(path)


def _covered_by_other_root(path: Path, ids: set[_Identity]) -> bool:
    """True if an ancestor of ``path`` is a root whose walk reaches ``path``."""
    below = [path.name]  # names between the ancestor and path
    for parent in path.parents:
        try:
            ident = _identity(parent, parent.stat())
        except OSError:
            return False
        if ident in ids:
            # The ancestor's walk does not enter pruned directories, so a root inside one
            # must still be walked on its own.
            return not any(name in PRUNE for name in below)
        below.append(parent.name)
    return False


# Unlink and stat release the GIL, so threads overlap their waits on the disk. On a 2-CPU VM
# (ext4), 43k bytecode files took 6.5-7.4 s with 1 thread, 4.9 s with 2, 4.6 s with 4, and
# `find -delete` 5.9 s. On tmpfs, where the work is CPU-bound, 2 threads were no slower than
# 1 but 4 were 15% slower (GIL hand-offs), hence 2.
_WORKERS = 2


def _walk(roots: list[str], select: Select, dry_run: bool, tally: _Tally) -> None:
    """Scan every directory under ``roots`` once, removing the selected files.

    Breadth-first, one level at a time, each level split into one share per thread:
    iterative (no recursion limit) and with no shared state but what the main thread merges.
    One share per thread, not one task per directory: a task's hand-off costs more than
    listing a small directory (a third of a clean on a warm cache).
    """
    pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="cslaunch-bytecode")
    stop = threading.Event()
    try:
        level = roots
        while level:
            next_level: list[str] = []
            shares = [level[i::_WORKERS] for i in range(min(_WORKERS, len(level)))]
            for subdirs, part in pool.map(
                lambda share: _scan_all(share, select, dry_run, tally.sizes, tally.paths, stop),
                shares,
            ):
                next_level += subdirs
                tally.add(part)
            level = next_level
    finally:
        # On Ctrl-C, stop at once: the shares being scanned end after their current
        # directory, and the pool does not wait for the rest of the level.
        stop.set()
        pool.shutdown(cancel_futures=True)


def _scan_all(
    dirs: list[str], select: Select, dry_run: bool, sizes: bool, paths: bool, stop: threading.Event
) -> tuple[list[str], _Tally]:
    tally = _Tally(sizes, paths)
    subdirs: list[str] = []
    for path in dirs:
        if stop.is_set():
            break
        subdirs += _scan(path, select, dry_run, tally)
    return subdirs, tally


# Where the platform has directory descriptors (not Windows), each directory is opened once,
# listed through its descriptor and its files unlinked by name relative to it: no full path
# is built or resolved per file, and a directory swapped for a symlink since its parent was
# listed is refused (O_NOFOLLOW) rather than followed.
_BY_FD = (
    os.unlink in os.supports_dir_fd
    and os.scandir in os.supports_fd
    and hasattr(os, "O_DIRECTORY")
    and hasattr(os, "O_NOFOLLOW")
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # vanished, or not a directory any more


def _scan(path: str, select: Select, dry_run: bool, tally: _Tally) -> list[str]:
    """Remove the selected files in one directory; return its subdirectories to visit.

    os.scandir entries already know their type, so telling files from dirs and symlinks
    costs no syscall.
    """
    subdirs: list[str] = []
    fd = None
    try:
        fd = os.open(path, _DIR_FLAGS) if _BY_FD else None
        with os.scandir(path if fd is None else fd) as it:
            entries = list(it)
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        if exc.errno not in _GONE:  # else removed or replaced while we walked: not ours
            tally.skipped.append(Skipped(Path(path), f"cannot list directory: {_reason(exc)}"))
        return subdirs
    prefix = path.rstrip(os.sep) + os.sep
    left = 0  # entries that will still be there afterwards
    try:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                left += 1
                if entry.name not in PRUNE and not hostos.is_junction(entry):
                    subdirs.append(prefix + entry.name)
            elif not select(entry) or not _remove_file(entry, fd, prefix, dry_run, tally):
                left += 1
    finally:
        if fd is not None:
            os.close(fd)
    if os.path.basename(path) == PYCACHE:
        tally.pycaches[path] = left
    return subdirs


def _remove_file(
    entry: os.DirEntry[str], fd: int | None, prefix: str, dry_run: bool, tally: _Tally
) -> bool:
    """Remove one selected file; True if it is gone (or would be, in a dry run)."""
    try:
        # lstat on POSIX (the size is not in the listing); free on Windows.
        size = entry.stat(follow_symlinks=False).st_size if tally.sizes else 0
        if not dry_run:
            if fd is None:
                os.unlink(entry.path)
            else:
                os.unlink(entry.name, dir_fd=fd)
    except FileNotFoundError:
        return True  # removed concurrently: gone, but not by us, so not counted
    except OSError as exc:
        tally.skipped.append(Skipped(Path(prefix + entry.name), _reason(exc)))
        return False
    tally.files += 1
    tally.bytes += size
    if tally.paths:
        tally.removed.append(prefix + entry.name)
    return True


def _remove_pycaches(tally: _Tally, dry_run: bool, keep: Collection[str] = ()) -> None:
    """Remove the ``__pycache__`` dirs that the file removal left empty, deepest first.

    Counting entries instead of just trying rmdir lets a dry run report the same numbers a
    real run would, including a __pycache__ that only becomes empty once a nested one goes.
    A __pycache__ in ``keep`` (one given as a root) stays even when empty.
    """
    left = tally.pycaches
    for path in sorted(left, key=len, reverse=True):  # a child's path is longer than its parent's
        if left[path] or path in keep:
            continue
        if not dry_run:
            try:
                os.rmdir(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if not _is_not_empty(exc):  # not empty: something new appeared, leave it be
                    tally.skipped.append(Skipped(Path(path), _reason(exc)))
                continue
        tally.dirs += 1
        if tally.paths:
            tally.removed.append(path)
        parent = os.path.dirname(path)
        if parent in left:
            left[parent] -= 1


def _is_not_empty(exc: OSError) -> bool:
    return exc.errno in (errno.ENOTEMPTY, errno.EEXIST) or (
        getattr(exc, "winerror", None) == _WINERROR_DIR_NOT_EMPTY
    )


def _reason(exc: OSError) -> str:
    """A short reason for ``skipped``; the path is reported separately."""
    winerror = getattr(exc, "winerror", None)
    if winerror == _WINERROR_SHARING_VIOLATION:
        return "locked by another process"
    if winerror == _WINERROR_ACCESS_DENIED or isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.EBUSY:
        return "busy"
    return (exc.strerror or type(exc).__name__).lower()


# --- selective invalidation -----------------------------------------------------------------

CHANGED, DELETED, ORPHAN, LEGACY = "changed", "deleted", "orphan", "legacy"


def stale(
    found: Iterable[str],
    *,
    sources: Collection[str],
    changed: Collection[str],
    roots: Sequence[str],
) -> list[tuple[str, str]]:
    """Which bytecode files can run code that is not on disk, and why (pure).

    - ``__pycache__/m.*.pyc`` of a source whose content changed (every interpreter tag and
      optimisation level): Python would trust it when mtime and size were kept;
    - of a source that is gone (deleted, or an orphan): harmless to Python but dead weight;
    - a legacy ``m.pyc`` beside the sources: with ``m.py`` gone it is imported in its place.
    Valid bytecode of untouched modules stays: it keeps container start-up fast.
    """
    doomed = []
    for path in under(found, roots):
        directory, name = os.path.split(path)
        if os.path.basename(directory) == PYCACHE:
            source = os.path.join(os.path.dirname(directory), name.split(".", 1)[0] + ".py")
            if source in changed:
                doomed.append((path, DELETED if source not in sources else CHANGED))
            elif source not in sources:
                doomed.append((path, ORPHAN))
        else:
            doomed.append((path, LEGACY))
    return doomed


def under(found: Iterable[str], roots: Sequence[str]) -> list[str]:
    """Those of `found` below one of `roots` (pure)."""
    prefixes = tuple(r.rstrip("/\\") + os.sep for r in roots)
    return [path for path in found if path.startswith(prefixes)]


def remove(
    doomed: Sequence[tuple[str, str]], *, roots: Sequence[Path], dry_run: bool = False
) -> CleanResult:
    """Remove the given bytecode files (re-checked: regular files, bytecode names, no links)
    and the ``__pycache__`` directories they leave empty."""
    result = CleanResult(roots=[Path(r) for r in roots], dry_run=dry_run)
    tally = _Tally()
    emptied: dict[str, int] = {}  # __pycache__ dir -> files removed from it
    for path, reason in doomed:
        try:
            entry_stat = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            tally.skipped.append(Skipped(Path(path), _reason(exc)))
            continue
        if not stat.S_ISREG(entry_stat.st_mode) or not path.endswith(BYTECODE_SUFFIXES):
            continue  # replaced by a link or something else since the walk: not ours
        try:
            if not dry_run:
                os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            tally.skipped.append(Skipped(Path(path), _reason(exc)))
            continue
        tally.files += 1
        tally.bytes += entry_stat.st_size
        tally.removed.append(path)
        result.reasons[reason] = result.reasons.get(reason, 0) + 1
        parent = os.path.dirname(path)
        if os.path.basename(parent) == PYCACHE:
            emptied[parent] = emptied.get(parent, 0) + 1
    for directory, gone in emptied.items():
        try:
            # In a dry run the files are still there: count them as gone.
            tally.pycaches[directory] = len(os.listdir(directory)) - (gone if dry_run else 0)
        except OSError:
            tally.pycaches[directory] = 1  # cannot tell: leave it
    _remove_pycaches(tally, dry_run)
    result.files, result.dirs, result.bytes = tally.files, tally.dirs, tally.bytes
    result.removed = [Path(p) for p in tally.removed]
    result.skipped = tally.skipped
    return result


def stale_in(roots: Sequence[Path]) -> list[tuple[str, str]]:
    """Bytecode under ``roots`` that is stale whatever happened before: orphans and legacy
    files. Without a launch history nothing else can be told apart from valid bytecode."""
    walk_roots = _check_roots(roots)
    found = scan.scan([scan.Tree(r, _is_source, by_name=True) for r in walk_roots])
    return stale(found.bytecode, sources=set(found.files), changed=(), roots=walk_roots)


def _is_source(rel: str) -> bool:
    return rel.endswith(".py")


def listing(roots: Sequence[Path]) -> scan.Scan:
    """Every bytecode file under ``roots`` now (`bytecode`, with the directories that could
    not be listed): a walk that stats no other file."""
    return scan.scan([scan.Tree(str(r), _no_file, by_name=True) for r in roots])


def present(roots: Sequence[Path]) -> list[str]:
    """Every bytecode file under ``roots`` now."""
    return listing(roots).bytecode


def _no_file(rel: str) -> bool:
    return False
