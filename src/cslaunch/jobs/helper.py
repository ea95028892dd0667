"""Running the in-container helper (cslaunch.rqscript) in a worker container: the app's
own rq and redis-py read and change RQ's registries there, whatever RQ version the app uses
and whether or not its Redis is published to the host."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from cslaunch import docker
from cslaunch.errors import LAUNCH_FAILED, CslaunchError
from cslaunch.jobs.setup import RQSetup, RQWorkerService


class JobsError(CslaunchError):
    """The RQ helper could not run in any worker container (none running, no Python, no rq)."""

    exit_code = LAUNCH_FAILED


def script_text() -> str:
    """The in-container helper, as shipped in the package."""
    return resources.files("cslaunch").joinpath("rqscript.py").read_text(encoding="utf-8")


MARKER = "CSLAUNCH-RQ-JSON:"


def parse_output(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def run_helper(
    project: docker.ComposeProject,
    workers: Sequence[RQWorkerService],
    request: Mapping[str, Any],
    *,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run the helper with `request` in the first worker container that can run it.

    Raises JobsError when none can (no container running, no Python, the helper crashed);
    Redis trouble comes back in the document ("state": unreachable / auth / loading).
    """
    script = script_text()
    problems: list[str] = []
    for worker in workers:
        body = {
            "url": worker.redis_url,
            "queues": list(dict.fromkeys(q for w in workers for q in w.queues)),
            "serializer": worker.serializer,
            "job_class": worker.job_class,
            "config_module": worker.config_module,
            "fallback_url": worker.fallback_url,
            **request,
        }
        pythons = list(dict.fromkeys([worker.python, "python3", "python"]))
        for python in pythons:
            # The request goes on stdin: its Redis URL may hold a password, which `ps` shows
            # for arguments.
            result = docker.exec_service(
                project,
                worker.service,
                [python, "-B", "-c", script],
                input=json.dumps(body),
                timeout=timeout,
            )
            doc = parse_output(result.stdout)
            if doc is not None:
                doc["service"] = worker.service
                return doc
            problem = docker.first_error_line(result.stderr or result.stdout)
            if _missing_program(result.returncode, result.stderr):
                problems.append(f"{worker.service}: no {python}")
                continue
            if "Traceback" in result.stderr:
                raise JobsError(
                    f"the RQ helper failed in {worker.service}: {problem}",
                    detail=result.stderr[-4000:],
                )
            problems.append(f"{worker.service}: {problem}")
            break  # not running, or exec refused: try the next worker service
    raise JobsError(
        "could not reach RQ through any worker container ("
        + "; ".join(problems or ["no worker service"])
        + ")",
        hint="start the stack (cslaunch up) and check that the worker image has rq installed",
    )


def _missing_program(code: int, stderr: str) -> bool:
    lowered = stderr.lower()
    return (
        code in (126, 127)
        or "executable file not found" in lowered
        or ("no such file or directory" in lowered and "exec" in lowered)
    )


def run_per_redis(
    project: docker.ComposeProject, setup: RQSetup, request: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Run the helper once per Redis the workers use."""
    return [run_helper(project, group, request, timeout=timeout) for group in setup.targets()]
