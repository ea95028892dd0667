"""Compose features on small real stacks: what the model says is what runs (issue #15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stackutil import TestStack

pytestmark = pytest.mark.engine


@pytest.fixture
def small(engine: str, tmp_path: Path) -> Iterator[list[TestStack]]:
    """Stacks a test makes with make(); all taken down at the end."""
    made: list[TestStack] = []
    try:
        yield made
    finally:
        for s in made:
            s.down()


def make(
    made: list[TestStack], tmp_path: Path, files: dict[str, str], env: dict[str, str] | None = None
) -> TestStack:
    import os

    base = os.environ.get("CSLAUNCH_BASE_IMAGE", "cslaunch-base:bookworm-2")
    s = TestStack.from_files(tmp_path / f"s{len(made)}", files, base_image=base, env=env)
    made.append(s)
    return s


def actions(report: dict) -> dict[str, str]:
    return {s["name"]: s["action"] for s in report["services"]}


# --- 1: a change of what an image is built from rebuilds it ----------------------------------

BUILT = {
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE} AS one\n"
        "ARG FLAVOUR=plain\n"
        "ENV FLAVOUR=${FLAVOUR} STAGE=one\n"
        "FROM one AS two\n"
        "ENV STAGE=two\n"
    ),
    "compose.yaml": (
        "services:\n"
        "  app:\n"
        "    build:\n"
        "      context: .\n"
        "      args: {BASE_IMAGE: '${BASE_IMAGE}', FLAVOUR: '${FLAVOUR:-plain}'}\n"
        "      target: '${TARGET:-one}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {MODE: '${MODE:-a}'}\n"
        "  inline:\n"
        "    build:\n"
        "      context: .\n"
        "      dockerfile_inline: |\n"
        "        FROM ${BASE_IMAGE}\n"
        "        ENV INLINE=${INLINE:-first}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
    ),
}


def test_build_args_target_and_inline_dockerfile_changes_rebuild(
    small: list[TestStack], tmp_path: Path
) -> None:
    s = make(small, tmp_path, BUILT)
    s.launched()
    assert s.container_env("app")["FLAVOUR"] == "plain"
    assert s.container_env("app")["STAGE"] == "one"
    assert s.container_env("inline")["INLINE"] == "first"

    s.set_env({"FLAVOUR": "spicy"})
    report = s.launched()
    assert actions(report) == {"app": "rebuild", "inline": "leave"}
    assert "build.args" in report["services"][0]["reason"]
    assert s.container_env("app")["FLAVOUR"] == "spicy"

    s.set_env({"TARGET": "two"})
    assert actions(s.launched())["app"] == "rebuild"
    assert s.container_env("app")["STAGE"] == "two"

    s.set_env({"INLINE": "second"})
    assert actions(s.launched()) == {"app": "leave", "inline": "rebuild"}
    assert s.container_env("inline")["INLINE"] == "second"

    # How it runs, not what it runs: recreated from the image it has.
    s.set_env({"MODE": "b"})
    report = s.launched()
    assert actions(report) == {"app": "recreate", "inline": "leave"}
    assert not any(svc["build"] for svc in report["services"])
    assert s.container_env("app")["MODE"] == "b"
    assert s.container_env("app")["FLAVOUR"] == "spicy"

    report = s.launched()
    assert report["up_to_date"] is True
