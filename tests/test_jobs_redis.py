"""Redis maintenance (cslaunch.jobs.redis), with the helper run in-process against a real
redis-server (tests/redisutil.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cslaunch.docker import ComposeProject
from cslaunch.jobs import redis as redis_maint
from cslaunch.rqconfig import RQConfig
from cslaunch.ui import UI
from tests.redisutil import (
    RedisServer,
    old_jobs,
    setup_for,
)

# These fake the docker CLI: container calls must take it, not the Engine API.
pytestmark = pytest.mark.usefixtures("cli_path")


def test_api_measure_and_maintain(
    server: RedisServer, r: Any, in_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    old_jobs(r, 12, 3, days_ago=30)
    project = ComposeProject(Path("."))
    setup = setup_for(server, RQConfig(max_job_keys=10, cache_patterns=("c:*",)))
    r.set("c:1", "x")
    health = redis_maint.measure(project, setup)
    assert health.ok and health.job_keys == 15 and health.jobs_by_status["finished"] == 12
    redis_maint.render_health(UI(), health)
    result = redis_maint.maintain(project, setup)
    assert result.ok and result.purged == 15 and result.cache_deleted == 1
    assert result.before and result.after and result.after.job_keys == 0
    redis_maint.render_maintenance(UI(), result)
    out = capsys.readouterr().out
    assert "Purged 15 old jobs" in out and "RQ jobs 15 -> 0" in out
    json.dumps(result.to_json())
