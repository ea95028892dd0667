"""The rooms of docs/architecture.md and what each may import, checked against the code's
own import statements (module level and inside functions alike), so the page stays true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "cslaunch"


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(("cslaunch", *parts)).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "cslaunch":
                found |= {f"cslaunch.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cslaunch"):
                found.add(str(node.module))
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cslaunch")}
        graph[module] = found
    return graph


GRAPH = _imports()


def _importers(prefix: str) -> set[str]:
    return {
        m
        for m, deps in GRAPH.items()
        if not m.startswith(prefix) and any(d == prefix or d.startswith(prefix + ".") for d in deps)
    }


def test_the_scripts_run_in_containers_import_nothing_of_cslaunch() -> None:
    assert GRAPH["cslaunch.rqscript"] == set()
    assert GRAPH["cslaunch.proofscript"] == set()


def test_only_the_command_line_imports_the_commands() -> None:
    assert _importers("cslaunch.commands") == {"cslaunch.cli"}
    assert _importers("cslaunch.cli") == {"cslaunch.__main__"}


def test_only_up_and_watch_import_the_launch_pipeline() -> None:
    assert _importers("cslaunch.launch") == {"cslaunch.commands.up", "cslaunch.commands.watch"}


@pytest.mark.parametrize(
    "module",
    [
        "cslaunch.plan",
        "cslaunch.track",
        "cslaunch.context",
        "cslaunch.model",
        "cslaunch.shell",
        "cslaunch.redact",
        "cslaunch.config",
        "cslaunch.rqconfig",
        "cslaunch.toml_reader",
        "cslaunch.index",
        "cslaunch.stop",
        "cslaunch.doctor.facts",
        "cslaunch.doctor.checks_code",
        "cslaunch.doctor.checks_restarts",
        "cslaunch.doctor.dockerfile",
        "cslaunch.jobs.setup",
    ],
)
def test_pure_rooms_do_not_reach_the_engine(module: str) -> None:
    edge = {"cslaunch.docker", "cslaunch.engine_api", "cslaunch.compose_config"}
    assert not GRAPH[module] & edge, f"{module} imports {GRAPH[module] & edge}"


def test_the_edge_imports_only_what_is_below_it() -> None:
    assert GRAPH["cslaunch.hostos"] == set()
    assert GRAPH["cslaunch.engine_api"] <= {"cslaunch.hostos", "cslaunch.errors"}
    assert GRAPH["cslaunch.docker"] <= {"cslaunch.engine_api", "cslaunch.errors", "cslaunch.hostos"}
