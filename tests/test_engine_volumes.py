"""An anonymous volume over code the image bakes in (`volumes: ["/app/src"]` beside
`COPY src/ /app/src/`, compose#9450): Compose re-attaches it to the rebuilt service's new
container, so its old copy hides the new code. cslaunch renews it, unless it holds data the
image never wrote."""

from __future__ import annotations

import json

import pytest

from tests.stackutil import TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine


def baked_with_anonymous_volume(stack: TestStack) -> tuple[str, ...]:
    files = stack.add_baked_service()
    baked = stack.dir / "baked.yml"
    baked.write_text(baked.read_text() + '    volumes: ["/app/src"]\n')
    return files


def test_the_new_code_is_served_and_the_volume_renewed(stack: TestStack) -> None:
    files = baked_with_anonymous_volume(stack)
    stack.launched(*files)
    assert stack.greet_on("BAKED_PORT") == "hello from v1, t"
    edit_keeping_stat(stack.dir / "baked/src/app/greeting.py", "v1", "v2")

    result = stack.cslaunch("--json", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    baked = next(s for s in report["services"] if s["name"] == "baked")
    assert "anonymous volume at /app/src hid the image's new code: renewed" in baked["detail"]
    assert stack.greet_on("BAKED_PORT") == "hello from v2, t"


def test_a_volume_holding_data_the_image_never_wrote_is_kept(stack: TestStack) -> None:
    files = baked_with_anonymous_volume(stack)
    stack.launched(*files)
    stack.compose("exec", "-T", "baked", "sh", "-c", "echo keep > /app/src/upload.txt")
    edit_keeping_stat(stack.dir / "baked/src/app/greeting.py", "v1", "v2")

    result = stack.cslaunch(*files)
    assert result.returncode == 8, result.stdout + result.stderr
    assert "anonymous volume at /app/src" in result.stderr
    assert "/app/src/upload.txt, which the image never wrote" in result.stderr
    assert "docker compose up -d --renew-anon-volumes --no-deps baked" in result.stderr
    data = stack.compose("exec", "-T", "baked", "cat", "/app/src/upload.txt").stdout
    assert data.strip() == "keep"
