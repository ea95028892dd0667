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


def test_each_share_comes_back_in_order() -> None:
    parent = os.getpid()

    def work(share: Sequence[int]) -> tuple[list[int], bool]:
        return [n * n for n in share], os.getpid() != parent

    results = forked.run(work, [[1, 2], [3], [4, 5, 6]])
    assert [r[0] for r in results] == [[1, 4], [9], [16, 25, 36]]
    assert [r[1] for r in results] == [False, True, True]  # the first share here, the rest not
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

    assert forked.run(work, [[1], [2, 3]]) == [1, 5]
    assert _no_children_left()


def test_an_error_here_leaves_no_helper_behind() -> None:
    parent = os.getpid()

    def work(share: Sequence[int]) -> int:
        if os.getpid() == parent:
            raise KeyboardInterrupt
        return 0

    with pytest.raises(KeyboardInterrupt):
        forked.run(work, [[1], [2], [3]])
    assert _no_children_left()


def test_a_result_larger_than_a_pipe_holds() -> None:
    results = forked.run(lambda share: ["x" * 100] * share[0], [[1], [100_000]])
    assert len(results[1]) == 100_000


def test_no_helpers_where_forking_is_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert forked.helpers() == 0
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert forked.helpers() == forked.MAX_HELPERS
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert forked.helpers() == 0
