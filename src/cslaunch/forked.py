"""Work shared with forked copies of this process, for the one job where Python's own speed is
the limit: the walk of a large tree, an `lstat` and a few object allocations per file on one
core (threads share one interpreter lock, and were slower).

A forked copy already holds everything the work needs (the trees and their patterns), so
nothing is pickled; each result comes back through a pipe as marshal data. Only on Linux:
Windows has no fork, and on macOS system libraries are not safe in a forked child. Every
failure of a helper falls back to doing its share here, so a result is never lost.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
MAX_HELPERS = 3


def helpers() -> int:
    """How many forked helpers to share work with: one per further CPU this process may run
    on (a container's or a taskset's limit, not the machine's), at most MAX_HELPERS; none
    where forking is not safe."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except OSError:
        cpus = os.cpu_count() or 1
    return max(0, min(cpus - 1, MAX_HELPERS))


def run(
    work: Callable[[Sequence[T]], Any], shares: Sequence[Sequence[T]], meanwhile: Callable[[], None]
) -> list[Any]:
    """`work(share)` for each share, each in a forked helper, in order, while this process
    runs `meanwhile` (its own share, which needs no trip through a pipe). `work` must return
    marshal-able data (tuples, lists, str, int)."""
    pending: list[tuple[int, int]] = []
    results: list[Any] = []
    try:
        for share in shares:
            pending.append(_start(work, share))
        meanwhile()
        while pending:
            pid, fd = pending.pop(0)
            results.append(_collect(pid, fd, work, shares[len(results)]))
    finally:
        for pid, fd in pending:  # an error or Ctrl-C here: no helper is left behind
            _stop(pid, fd)
    return results


def _start(work: Callable[[Sequence[T]], Any], share: Sequence[T]) -> tuple[int, int]:
    """(pid, read end of its pipe); (0, -1) when no helper could be made."""
    try:
        read, write = os.pipe()
    except OSError:
        return 0, -1
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns when a process with threads forks: a lock another thread
            # holds stays held in the child. The child takes none: it lists directories,
            # stats files, matches names, writes one pipe and leaves by os._exit, without
            # imports, output, logging or subprocesses.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return 0, -1
    if pid == 0:  # pragma: no cover - the child; its result is what the tests check
        _child(read, write, work, share)
    os.close(write)
    return pid, read


def _child(read: int, write: int, work: Callable[[Sequence[T]], Any], share: Sequence[T]) -> None:
    code = 1
    try:
        # Ctrl-C reaches the whole process group: the child just ends, the parent reports.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(read)
        data = marshal.dumps(work(share))
        with open(write, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)  # no atexit handlers, no flush of the parent's buffered output


def _collect(pid: int, fd: int, work: Callable[[Sequence[T]], Any], share: Sequence[T]) -> Any:
    """The helper's result; its share done here when it failed or sent nothing whole."""
    if not pid:
        return work(share)
    try:
        with open(fd, "rb") as pipe:
            data = pipe.read()
    except OSError:
        data = b""
    except BaseException:
        _stop(pid, -1)
        raise
    _, status = os.waitpid(pid, 0)
    if status == 0 and data:
        with contextlib.suppress(ValueError, EOFError, TypeError):
            return marshal.loads(data)
    return work(share)


def _stop(pid: int, fd: int) -> None:
    if fd >= 0:
        os.close(fd)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
