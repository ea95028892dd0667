"""The cslaunch.jobs package itself: what it offers callers and what it imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cslaunch import jobs

# Every module of cslaunch.jobs but redis (Redis maintenance), which reports through
# cslaunch.report.
JOBS_ROOMS = ("setup", "helper", "workers", "recovery", "overview")


def test_jobs_module_does_not_import_config() -> None:
    """The jobs machinery imports neither cslaunch.config nor cslaunch.model (which imports
    config): RQConfig lives in rqconfig, apart from both, so no cycle can form."""
    rooms = ", ".join(f"cslaunch.jobs.{room}" for room in JOBS_ROOMS)
    code = f"import sys, {rooms}; print(sorted(m for m in sys.modules if 'cslaunch.' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "cslaunch.config" not in out and "cslaunch.model" not in out


def test_package_face_is_lazy_and_complete() -> None:
    """`import cslaunch.jobs` loads no room; each name it offers comes from its room."""
    code = (
        "import sys, cslaunch.jobs as j; print(sorted(m for m in sys.modules if 'jobs.' in m)); "
        "print(all(getattr(j, n).__module__.startswith('cslaunch.jobs.') for n in j.__all__))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
    with pytest.raises(AttributeError):
        _ = jobs.no_such_name  # type: ignore[attr-defined]
