"""Load: a 30-service stack over a 100k-file tree still launches, relaunches after an edit and
proves it (benchmarks/bench_scale.py measures how the time grows)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stackutil import TestStack, edit_keeping_stat, get_text, scale_stack

pytestmark = pytest.mark.engine


@pytest.fixture
def big(engine: str, tmp_path: Path) -> Iterator[TestStack]:
    stack = scale_stack(tmp_path / "big", services=30, files=100_000, base_image=engine)
    try:
        yield stack
    finally:
        stack.down()


def test_30_services_over_100k_files_launch_relaunch_and_prove(big: TestStack) -> None:
    start = time.monotonic()
    report = big.launched("--timeout", "300")
    first = time.monotonic() - start
    assert len(report["services"]) == 30
    assert all(v["state"] == "fresh" for v in report["verify"]), report["verify"]

    edit_keeping_stat(big.dir / "src/app/version.py", '"v1"', '"v2"')
    start = time.monotonic()
    report = big.launched("--timeout", "300")
    again = time.monotonic() - start
    assert report["changes"] == [str(big.dir / "src/app/version.py")]
    assert {s["action"] for s in report["services"]} == {"restart"}
    served = {get_text(f"http://127.0.0.1:{port}/") for port in big.ports.values()}
    assert served == {f"v2 s{i}" for i in range(30)}
    # One look serves all 30 containers: they share the image and the bind mount.
    looked = [v for v in report["verify"] if "through" not in v["detail"]]
    assert len(looked) == 1, report["verify"]
    print(f"\nSCALE: 30 services, 100k files: first launch {first:.1f} s, relaunch {again:.1f} s")
