"""Running the in-container helper through `docker exec` / `docker compose exec`
(cslaunch.jobs.helper), with the docker CLI faked at the subprocess boundary.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cslaunch import docker, jobs, rqscript
from cslaunch.docker import ComposeProject
from cslaunch.jobs import RQWorkerService

# These fake the docker CLI: container calls must take it, not the Engine API.
pytestmark = pytest.mark.usefixtures("cli_path")


class FakeRun:
    """docker.run replaced: answers per (service, python)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, str, str]]):
        self.answers = answers
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert isinstance(argv, list)
        if argv[:2] == ["docker", "ps"]:  # a named project's container lookup
            label = "label=com.docker.compose.service="
            service = next(a[len(label) :] for a in argv if a.startswith(label))
            return subprocess.CompletedProcess(argv, 0, f"cid-{service}\n", "")
        self.calls.append(argv)
        self.inputs.append(kwargs.get("input"))
        i = argv.index("exec")
        if argv[i + 1] == "-i":  # docker exec -i CONTAINER ...
            service, python = argv[i + 2].removeprefix("cid-"), argv[i + 3]
        else:  # docker compose exec -T SERVICE ...
            service, python = argv[i + 2], argv[i + 3]
        code, out, err = self.answers.get((service, python), (1, "", "unexpected"))
        return subprocess.CompletedProcess(argv, code, out, err)


def two_workers() -> list[RQWorkerService]:
    return [
        RQWorkerService("worker1", "redis://r/0", "command", ("default",), "python3"),
        RQWorkerService("worker2", "redis://r/0", "command", ("high",), "/venv/bin/python"),
    ]


def test_run_helper_argv_and_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = rqscript.MARKER + json.dumps({"ok": True, "state": "ok"}) + "\n"
    fake = FakeRun(
        {
            ("worker1", "python3"): (1, "", 'service "worker1" is not running'),
            ("worker2", "/venv/bin/python"): (126, "", "OCI runtime exec failed: no such file"),
            ("worker2", "python3"): (0, "some noise\n" + ok, ""),
        }
    )
    monkeypatch.setattr(docker, "run", fake)
    project = ComposeProject(Path("/p"), files=("a.yml",), name="demo")
    doc = jobs.run_helper(project, two_workers(), {"action": "status"})
    assert doc["ok"] is True and doc["service"] == "worker2"
    argv = fake.calls[-1]
    # Named project: straight into the running container, no Compose model loaded.
    assert argv[:7] == ["docker", "exec", "-i", "cid-worker2", "python3", "-B", "-c"]
    assert argv[7:] == [jobs.script_text()]  # no request in the arguments: `ps` shows those
    request = json.loads(fake.inputs[-1] or "")
    assert request["action"] == "status" and request["url"] == "redis://r/0"
    assert request["queues"] == ["default", "high"]


def test_run_helper_of_an_unnamed_project_goes_through_compose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok = rqscript.MARKER + json.dumps({"ok": True, "state": "ok"}) + "\n"
    fake = FakeRun({("worker1", "python3"): (0, ok, "")})
    monkeypatch.setattr(docker, "run", fake)
    jobs.run_helper(ComposeProject(Path("/p"), files=("a.yml",)), two_workers(), {})
    assert fake.calls[-1][:8] == ["docker", "compose", "-f", "a.yml", "exec", "-T", "worker1",
                                  "python3"]  # fmt: skip


def test_run_helper_nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "run", FakeRun({}))
    with pytest.raises(jobs.JobsError, match="could not reach RQ through any worker container"):
        jobs.run_helper(ComposeProject(Path("/p")), two_workers(), {"action": "status"})


def test_run_helper_crash_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    tb = "Traceback (most recent call last):\n  File x\nNameError: name 'x' is not defined\n"
    monkeypatch.setattr(docker, "run", FakeRun({("worker1", "python3"): (1, "", tb)}))
    with pytest.raises(jobs.JobsError) as info:
        jobs.run_helper(ComposeProject(Path("/p")), two_workers(), {"action": "status"})
    assert "NameError" in info.value.message and "\n" not in info.value.message


def test_parse_output_ignores_noise() -> None:
    assert jobs.parse_output("x\n" + rqscript.MARKER + '{"a": 1}\ny\n') == {"a": 1}
    assert jobs.parse_output("no marker") is None
    assert jobs.parse_output(rqscript.MARKER + "{broken") is None


def test_script_is_self_contained() -> None:
    """The helper runs with only the app's rq and redis: nothing from cslaunch, no third-party
    import at module level, and nothing newer than Python 3.8 needs."""
    source = jobs.script_text()
    assert "from cslaunch" not in source and "import cslaunch" not in source
    top_imports = [
        line
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and "__future__" not in line
    ]
    for line in top_imports:
        module = line.split()[1].split(".")[0]
        assert module in sys.stdlib_module_names, line
    ast.parse(source, feature_version=(3, 8))  # best effort: grammar newer than 3.8 fails
