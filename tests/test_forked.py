"""forked: work shared with forked helpers comes back whole, in order, or is done here."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import pytest

from cslaunch import forked

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="helpers are forked on Linux only")


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_each_share_comes_back_in_order_while_this_process_does_its_own() -> None:
    parent = os.getpid()
    here: list[int] = []

    def work(share: Sequence[int]) -> tuple[list[int], bool]:
        return [n * n for n in share], os.getpid() != parent

    results = forked.run(work, [[3], [4, 5, 6]], lambda: here.append(os.getpid()))
    assert results == [([9], True), ([16, 25, 36], True)]
    assert here == [parent]
    assert _no_children_left()


@pytest.mark.parametrize("how", ["exit", "raise", "unmarshallable"])
def test_a_failed_helper_has_its_share_done_here(how: str) -> None:
    parent = os.getpid()

    def work(share: Sequence[int]) -> object:
        if os.getpid() != parent:
            if how == "exit":
                os._exit(0)  # says nothing
            if how == "raise":
                raise RuntimeError("boom")
            return object()
        return sum(share)

    assert forked.run(work, [[1], [2, 3]], lambda: None) == [1, 5]
    assert _no_children_left()


def test_an_error_here_leaves_no_helper_behind() -> None:
    def meanwhile() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.run(lambda share: ["x" * 100] * 100_000, [[1], [2]], meanwhile)
    assert _no_children_left()


def test_a_result_larger_than_a_pipe_holds() -> None:
    results = forked.run(lambda share: ["x" * 100] * share[0], [[1], [100_000]], lambda: None)
    assert len(results[1]) == 100_000


def test_no_helpers_where_forking_is_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert forked.helpers() == 0
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert forked.helpers() == forked.MAX_HELPERS
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert forked.helpers() == 0


def test_a_helper_has_its_own_signal_handlers_and_this_process_keeps_its_mask() -> None:
    """A Ctrl-C while a helper is being made must not run this process's handlers in it
    (KeyboardInterrupt out of the walk, the project lock released, output twice): the
    endings are blocked across the fork, and the helper unblocks them under default
    handlers."""
    import signal

    def work(share: Sequence[int]) -> tuple[bool, bool, list[int]]:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return (
            signal.getsignal(signal.SIGINT) == signal.SIG_DFL,
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            sorted(int(s) for s in mask),
        )

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    [(int_default, term_default, mask)] = forked.run(work, [[1]], lambda: None)
    assert int_default and term_default
    assert signal.SIGINT not in mask and signal.SIGTERM not in mask
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
