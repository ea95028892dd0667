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
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

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
    marshal-able data (tuples, lists, str, int), not None."""
    pending: list[tuple[int, int]] = []  # (pid, read end) of helpers not collected yet
    results: list[Any] = []
    try:
        for share in shares:
            pending.append(_start(work, share))
        meanwhile()
        for share in shares:
            pid, fd = pending[0]
            data = _receive(pid, fd)
            pending[0] = (0, -1)  # reaped: on Ctrl-C from here its fd leaks, never closed twice
            if fd >= 0:
                os.close(fd)
            pending.pop(0)
            found = _decoded(data) if data else None
            results.append(found if found is not None else work(share))
    finally:
        for pid, fd in pending:  # an error or Ctrl-C: no helper is left behind
            _stop(pid, fd)
    return results


# Ctrl-C and `docker stop`-like ends: blocked while a helper is forked, so that it cannot
# run this process's handlers (raise KeyboardInterrupt, release the project lock, print)
# before it has its own.
_ENDING = {signal.SIGINT, signal.SIGTERM}


def _start(work: Callable[[Sequence[T]], Any], share: Sequence[T]) -> tuple[int, int]:
    """(pid, read end of its pipe); (0, -1) when no helper could be made."""
    try:
        read, write = os.pipe()
    except OSError:
        return 0, -1
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns when a process with threads forks: a lock another thread
            # holds stays held in the child. The child takes none: it lists directories,
            # stats files, matches names, writes one pipe and leaves by os._exit, without
            # imports, output, logging or subprocesses.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its result is what the tests check
            _child(read, write, mask, work, share)
    except OSError:
        os.close(read)
        os.close(write)
        return 0, -1
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # what came meanwhile arrives now
    os.close(write)
    return pid, read


def _child(
    read: int,
    write: int,
    mask: Iterable[int],
    work: Callable[[Sequence[T]], Any],
    share: Sequence[T],
) -> NoReturn:
    code = 1
    try:
        # A Ctrl-C reaches the whole process group: the helper just ends (the default
        # action), the parent reports. Python cleared the handlers' pending calls at fork.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read)
        data = marshal.dumps(work(share))
        with open(write, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)  # no atexit handlers, no flush of the parent's buffered output


def _receive(pid: int, fd: int) -> bytes:
    """All a helper sent, once it has ended well; b"" when it failed or was never made."""
    if not pid:
        return b""
    try:
        with open(fd, "rb", closefd=False) as pipe:
            data = pipe.read()
    except OSError:
        data = b""
    _, status = os.waitpid(pid, 0)
    return data if status == 0 else b""


def _decoded(data: bytes) -> Any:
    """A helper's result; None when it sent nothing whole (its share is then done here)."""
    try:
        return marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None


def _stop(pid: int, fd: int) -> None:
    if fd >= 0:
        os.close(fd)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
