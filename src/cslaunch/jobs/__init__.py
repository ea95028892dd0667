"""Background jobs survive every relaunch: find the RQ workers in the Compose model, recover
the jobs a restart interrupted, and show the queues.

Restarting an RQ worker interrupts the job it runs. RQ itself only notices after the job's
started-registry entry expires (about 90 s) *and* a worker's maintenance pass runs (every
600 s), and then moves the job to Failed. cslaunch recovers such jobs right after the
restart: requeued at the front of their queue (policy "requeue", the default) or moved to
Failed with a clear reason (policy "fail"). It never deletes a job.

The work happens inside a worker container, with the app's own rq and redis-py (see
cslaunch.rqscript): the app's Redis is often not published to the host, and RQ 1.x, 2.x and
3.x keep their registries differently.

The rooms, each importing only those before it:
    setup      the RQ setup of a stack, from the Compose model (pure)
    helper     running cslaunch.rqscript in a worker container
    workers    workers found from what runs; a worker container's readiness
    recovery   recovering interrupted jobs
    overview   what `cslaunch jobs` shows
    redis      Redis maintenance (`cslaunch redis`, and hourly at most in a launch)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cslaunch.jobs.helper import JobsError, parse_output, run_helper, script_text
    from cslaunch.jobs.overview import JobsStatus, render_status, status
    from cslaunch.jobs.recovery import (
        RecoveryReport,
        recover,
        recovery_summary,
        render_recovery,
    )
    from cslaunch.jobs.setup import RQSetup, RQWorkerService, find_rq, parse_worker_command
    from cslaunch.jobs.workers import (
        Discovered,
        LiveWorkers,
        discover,
        discover_stack,
        helper_services,
        setup_of,
    )

# The room of each name callers use, imported on first use (PEP 562): a launch with nothing
# to do needs the setup and the workers but not recovery or the overview, whose dataclasses
# cost milliseconds to build, and doctor needs only parse_worker_command.
_ROOMS = {
    "JobsError": "helper",
    "parse_output": "helper",
    "run_helper": "helper",
    "script_text": "helper",
    "JobsStatus": "overview",
    "render_status": "overview",
    "status": "overview",
    "RecoveryReport": "recovery",
    "recover": "recovery",
    "recovery_summary": "recovery",
    "render_recovery": "recovery",
    "RQSetup": "setup",
    "RQWorkerService": "setup",
    "find_rq": "setup",
    "parse_worker_command": "setup",
    "Discovered": "workers",
    "LiveWorkers": "workers",
    "discover": "workers",
    "discover_stack": "workers",
    "helper_services": "workers",
    "setup_of": "workers",
}
__all__ = [
    "Discovered",
    "JobsError",
    "JobsStatus",
    "LiveWorkers",
    "RQSetup",
    "RQWorkerService",
    "RecoveryReport",
    "discover",
    "discover_stack",
    "find_rq",
    "helper_services",
    "parse_output",
    "parse_worker_command",
    "recover",
    "recovery_summary",
    "render_recovery",
    "render_status",
    "run_helper",
    "script_text",
    "setup_of",
    "status",
]


def __getattr__(name: str) -> Any:
    room = _ROOMS.get(name)
    if room is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{room}"), name)
    globals()[name] = value  # the next use is a plain attribute
    return value
