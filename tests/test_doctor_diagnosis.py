"""doctor's diagnosis: all checks in order, the exit code, the JSON document and the text."""

from __future__ import annotations

import json

import pytest

from cslaunch import doctor
from cslaunch.doctor import Facts
from cslaunch.output import SCHEMA
from cslaunch.ui import UI
from tests.doctorutil import RQ, anon, bind, facts, svc


def broken() -> Facts:
    web = svc("web", command=["python3", "-m", "app"], volumes=[bind("a", "/a"), anon("/a/b")])
    return facts(web, svc("worker", command=RQ), python=frozenset({"web", "worker"}))


def test_diagnose_orders_errors_first_and_fails_the_exit_code() -> None:
    findings = doctor.diagnose(broken())
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert findings[0].code == doctor.BIND_HIDDEN
    assert doctor.exit_code(findings) == doctor.EXIT_ERRORS == 9
    warnings_only = [f for f in findings if f.severity != doctor.ERROR]
    assert doctor.exit_code(warnings_only) == 0
    assert doctor.exit_code([]) == 0


def test_a_clean_stack_has_no_findings() -> None:
    s = svc("api", command=["python3", "-m", "app"], init=True)
    assert doctor.diagnose(facts(s, python=frozenset({"api"}))) == []


def test_json_document_is_versioned_and_complete() -> None:
    findings = doctor.diagnose(broken())
    doc = json.loads(json.dumps(doctor.to_json(findings, project="p", notes=["clock: no"])))
    assert doc["schema"] == SCHEMA
    assert (doc["command"], doc["project"], doc["ok"]) == ("doctor", "p", False)
    assert doc["counts"]["error"] == 1
    assert doc["not_checked"] == ["clock: no"]
    assert set(doc["findings"][0]) == {"code", "severity", "service", "message", "fix"}
    assert doctor.to_json([])["ok"] is True


def test_render_shows_each_finding_with_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    doctor.render(UI(), doctor.diagnose(broken()), project="p", notes=["clock: no container"])
    out = capsys.readouterr().out
    assert "error: service web: the anonymous volume at /a/b" in out
    assert "fix: remove the volume `/a/b` from service web" in out
    assert "[bind-hidden-by-volume]" in out
    assert "not checked: clock: no container" in out
    assert "1 error(s)" in out
    doctor.render(UI(quiet=True), doctor.diagnose(broken()))
    assert "info:" not in capsys.readouterr().out


def test_render_says_so_when_nothing_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    doctor.render(UI(), [])
    assert "no problems found" in capsys.readouterr().out
