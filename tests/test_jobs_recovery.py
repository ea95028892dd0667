"""Recovery, and the overview of the jobs it acts on, through cslaunch.jobs, with the helper
run in-process against a real redis-server (tests/redisutil.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cslaunch import jobs
from cslaunch.docker import ComposeProject
from cslaunch.jobs import RQSetup, RQWorkerService
from cslaunch.jobs import redis as redis_maint
from cslaunch.rqconfig import RQConfig
from cslaunch.ui import UI
from tests.redisutil import (
    RedisServer,
    free_port,
    ghost_started,
    setup_for,
    status_of,
)

# These fake the docker CLI: container calls must take it, not the Engine API.
pytestmark = pytest.mark.usefixtures("cli_path")


def test_api_recover_status_render(
    server: RedisServer, r: Any, in_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ComposeProject(Path("."))
    ids = ghost_started(server, r, 2)
    setup = setup_for(server)

    st = jobs.status(project, setup)
    assert st.ok and [s.orphaned for s in st.started] == [True, True]
    assert st.queues[0].name == "default" and st.queues[0].started == 2
    jobs.render_status(UI(), st)
    assert "INTERRUPTED" in capsys.readouterr().out

    dry = jobs.recover(project, setup, dry_run=True)
    assert dry.count("requeue") == 2 and jobs.recovery_summary(dry).startswith("would requeue 2")
    report = jobs.recover(project, setup)
    assert sorted(j.id for j in report.jobs) == sorted(ids)
    assert report.to_json()["jobs"][0]["action"] == "requeue"
    assert jobs.recovery_summary(report) == (
        "requeued 2 interrupted jobs; removed 1 dead worker registration of ghost (process gone)"
    )
    jobs.render_recovery(UI(), report)
    assert "requeued at the front of its queue" in capsys.readouterr().out
    json.dumps(report.to_json())
    json.dumps(st.to_json())


def test_api_policy_from_config(server: RedisServer, r: Any, in_process: None) -> None:
    ghost_started(server, r, 1)
    report = jobs.recover(ComposeProject(Path(".")), setup_for(server, RQConfig(policy="fail")))
    assert report.policy == "fail" and report.count("fail") == 1


def test_api_redis_down_is_a_warning(in_process: None) -> None:
    setup = RQSetup(
        (RQWorkerService("w", f"redis://127.0.0.1:{free_port()}/0", "command", (), "python3"),),
        None,
    )
    report = jobs.recover(ComposeProject(Path(".")), setup)
    assert not report.ok and report.state == "unreachable" and report.warning
    assert jobs.recovery_summary(report).startswith("skipped: Redis is unreachable")
    health = redis_maint.measure(ComposeProject(Path(".")), setup)
    assert not health.ok and health.state == "unreachable"
    result = redis_maint.maintain(ComposeProject(Path(".")), setup)
    assert not result.ok and result.warning


def test_workers_only_clears_dead_registrations_and_leaves_their_jobs(
    server: RedisServer, r: Any, in_process: None
) -> None:
    """Before workers restart: the registration a dead worker of a fixed name leaves is
    removed (its successor could not start), its jobs wait for the new workers."""
    project = ComposeProject(Path("."))
    setup = setup_for(server)
    ids = ghost_started(server, r, 1, name="w1")
    before = jobs.recover(project, setup, workers_only=True)
    assert [w.name for w in before.workers_cleaned] == ["w1"] and before.jobs == []
    assert status_of(r, ids[0]) == "started"  # left for the recovery after the restart
    after = jobs.recover(project, setup)
    assert [(j.id, j.action) for j in after.jobs] == [(ids[0], "requeue")]
