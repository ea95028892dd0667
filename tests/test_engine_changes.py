"""The minimal plan against a real engine: only what changed is restarted, rebuilt, recreated."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.stackutil import TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine

GREETING = Path("backend/src/app/greeting.py")
ALL = ("backend", "frontend", "redis", "worker1", "worker2")


def started(stack: TestStack, *services: str) -> dict[str, str]:
    return {s: stack.started_at(s) for s in services}


def actions(report: dict) -> dict[str, str]:
    return {s["name"]: s["action"] for s in report["services"]}


def test_stat_preserving_edit_restarts_only_the_code_services(stack: TestStack) -> None:
    stack.launched()
    assert stack.greet() == "hello from v1, t"
    before = started(stack, *ALL)
    edit_keeping_stat(stack.dir / GREETING, "hello from v1", "hello from v2")

    report = stack.launched()
    assert report["changes"] == [str(stack.dir / GREETING)]
    assert actions(report) == {
        "backend": "restart",
        "worker1": "restart",
        "worker2": "restart",
        "frontend": "leave",
        "redis": "leave",
    }
    assert report["bytecode"]["files"] >= 1  # greeting's stale pyc, and only its
    assert stack.greet() == "hello from v2, t"
    assert stack.run_job() == "hello from v2, t"
    after = started(stack, *ALL)
    assert after["frontend"] == before["frontend"] and after["redis"] == before["redis"]
    assert after["backend"] != before["backend"]


def test_touch_and_noop_restart_nothing(stack: TestStack) -> None:
    stack.launched()
    pycache = stack.dir / "backend/src/app/__pycache__"
    kept = sorted(p.name for p in pycache.glob("*.pyc"))
    before = started(stack, *ALL)
    os.utime(stack.dir / GREETING)  # touch: new mtime, same content

    report = stack.launched()
    assert report["up_to_date"] is True
    assert set(actions(report).values()) == {"leave"}
    assert started(stack, *ALL) == before
    assert sorted(p.name for p in pycache.glob("*.pyc")) == kept  # valid bytecode stays
    plan = stack.cslaunch("plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["up_to_date"] is True


def test_redis_is_asked_again_only_after_it_restarted(
    stack: TestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis loads its dataset as it starts: the same process, seen ready by the last launch,
    is past that, on a no-op or a relaunch of other services. A restarted one is asked
    (PING, LOADING) again."""
    from cslaunch import docker, launch
    from cslaunch.project import resolve
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    stack.launched()
    redis_id = stack.inspect("redis")["Id"]
    execs: list[str] = []
    real = docker.exec_in

    def counted(container_id: str, argv: list[str], **kw: object) -> object:
        execs.append(container_id)
        return real(container_id, argv, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(docker, "exec_in", counted)
    monkeypatch.chdir(stack.dir)

    def relaunch(up_to_date: bool = True) -> None:
        report = launch.launch(
            resolve(cwd=stack.dir), LaunchOptions(), UI(json_mode=True, quiet=True)
        )
        assert report.ok and report.up_to_date is up_to_date, report.error

    (stack.dir / GREETING).write_text((stack.dir / GREETING).read_text().replace("v1", "v2"))
    relaunch(up_to_date=False)  # the backend and workers restarted, Redis left alone
    assert stack.greet().startswith("hello from v2")
    relaunch()
    assert redis_id not in execs
    stack.compose("restart", "redis")
    relaunch()
    assert redis_id in execs


def test_baked_service_change_rebuilds_only_it(stack: TestStack) -> None:
    files = stack.add_baked_service()  # its own copy of the code, COPYed, not mounted
    stack.launched(*files)
    assert stack.get("/api/greet?name=b", "BAKED_PORT")["message"] == "hello from v1, b"
    others = ("backend", "frontend", "redis", "worker1", "worker2")
    before = started(stack, *others)

    # mtime and size kept: BuildKit alone would reuse its cached copy of the file.
    edit_keeping_stat(stack.dir / "baked/src/app/greeting.py", "hello from v1", "hello from v4")
    report = stack.launched(*files)
    assert actions(report)["baked"] == "rebuild"
    assert {n: a for n, a in actions(report).items() if n != "baked"} == dict.fromkeys(
        others, "leave"
    )
    assert stack.get("/api/greet?name=b", "BAKED_PORT")["message"] == "hello from v4, b"
    assert started(stack, *others) == before


def test_requirements_change_rebuilds_and_env_change_recreates(stack: TestStack) -> None:
    stack.launched()
    reqs = stack.dir / "backend/requirements.txt"
    reqs.write_text(reqs.read_text() + "# pinned later\n")
    report = stack.launched()
    acts = actions(report)
    assert acts["backend"] == acts["worker1"] == acts["worker2"] == "rebuild"
    assert acts["frontend"] == acts["redis"] == "leave"

    compose = stack.dir / "docker-compose.yml"
    text = compose.read_text()
    marker = "  worker2:\n    <<: *app\n"
    assert marker in text
    compose.write_text(
        text.replace(
            marker,
            marker + "    environment:\n      REDIS_URL: redis://127.0.0.1:${REDIS_PORT:-6390}/0\n"
            "      EXTRA_SETTING: '1'\n",
        )
    )
    before = started(stack, "worker1", "backend")
    report = stack.launched()
    acts = actions(report)
    assert acts["worker2"] == "recreate"
    assert acts["worker1"] == acts["backend"] == "leave"
    assert started(stack, "worker1", "backend") == before
    env = stack.inspect("worker2")["Config"]["Env"]
    assert "EXTRA_SETTING=1" in env


def test_frontend_source_change_serves_new_bundle(stack: TestStack) -> None:
    stack.launched()
    app_js = stack.dir / "frontend/src/app.js"
    app_js.write_text(app_js.read_text().replace("frontend v1", "frontend v9"))
    report = stack.launched()
    acts = actions(report)
    assert acts["frontend"] == "rebuild"
    assert acts["backend"] == "leave"
    index = stack.get("/", "FRONTEND_PORT")
    bundle = index.split('src="', 1)[1].split('"', 1)[0]
    assert "frontend v9" in stack.get("/" + bundle, "FRONTEND_PORT")


def test_deleted_module_with_legacy_pyc_no_longer_imports(stack: TestStack) -> None:
    extra = stack.dir / "backend/src/app/extra.py"
    extra.write_text("VALUE = 42\n")
    stack.launched()
    # A legacy (PEP 3147 "sourceless") pyc beside the source, as Python 2-era tools wrote.
    stack.compose(
        "exec", "-T", "backend", "python3", "-m", "compileall", "-b", "-q", "/app/src/app/extra.py"
    )
    assert (stack.dir / "backend/src/app/extra.pyc").exists()
    extra.unlink()
    probe = ("exec", "-T", "backend", "python3", "-c", "import app.extra as e; print(e.VALUE)")
    assert stack.compose(*probe).stdout.strip() == "42"  # the ghost module still imports

    report = stack.launched()
    assert report["bytecode"]["files"] >= 1
    assert not (stack.dir / "backend/src/app/extra.pyc").exists()
    ghost = stack.compose(*probe, check=False)
    assert ghost.returncode != 0 and "ModuleNotFoundError" in ghost.stderr


def test_host_frontend_build_runs_when_its_sources_change(stack: TestStack) -> None:
    """[tool.cslaunch.frontend]: a bundle built on the host and served from a bind mount."""
    (stack.dir / "frontend/dist").mkdir()
    port = stack.ports["FRONTEND_PORT"] + 1 if stack.ports["FRONTEND_PORT"] < 65000 else 1026
    (stack.dir / "static.yml").write_text(
        "services:\n"
        "  static:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: host\n"
        f"    command: [python3, -m, http.server, '{port}', --bind, 127.0.0.1, -d, /srv]\n"
        "    volumes: ['./frontend/dist:/srv:ro']\n"
    )
    (stack.dir / "cslaunch.toml").write_text(
        "compose_files = ['docker-compose.yml', 'static.yml']\n"
        "[frontend]\n"
        "build = ['python3', 'build.py', 'src', 'dist']\n"
        "cwd = 'frontend'\n"
        "sources = ['frontend/src', 'frontend/build.py']\n"
        "output = 'frontend/dist'\n"
    )
    stack.files = ("docker-compose.yml", "static.yml")
    stack.ports["STATIC_PORT"] = port
    report = stack.launched()
    assert any(s["name"] == "frontend build" for s in report["steps"])

    def bundle() -> str:
        index = stack.get("/", "STATIC_PORT")
        return str(stack.get("/" + index.split('src="', 1)[1].split('"', 1)[0], "STATIC_PORT"))

    assert "frontend v1" in bundle()
    assert not any(s["name"] == "frontend build" for s in stack.launched()["steps"])  # no change

    app_js = stack.dir / "frontend/src/app.js"
    app_js.write_text(app_js.read_text().replace("frontend v1", "frontend v5"))
    report = stack.launched()
    assert any(s["name"] == "frontend build" for s in report["steps"])
    assert "frontend v5" in bundle()

    (stack.dir / "frontend/build.py").write_text("raise SystemExit('bundler exploded')\n")
    failed = stack.cslaunch()
    assert failed.returncode == 1
    assert "frontend build failed" in failed.stderr and "bundler exploded" in failed.stderr


def test_a_noop_writes_the_index_again_once_its_racily_clean_entries_clear(
    stack: TestStack,
) -> None:
    """A file touched just before a launch is indexed racily clean; the next no-op, seconds
    later, finds it unchanged and writes the index again, so the one after hashes nothing."""
    from cslaunch.index import index_path

    stack.launched()
    os.utime(stack.dir / GREETING)  # new stat data, within the racy window of this launch
    assert stack.launched()["up_to_date"] is True
    written = index_path(stack.dir).stat().st_mtime_ns
    time.sleep(2.5)  # the racy window (index.RACY_NS) passes

    assert stack.launched()["up_to_date"] is True
    refreshed = index_path(stack.dir).stat().st_mtime_ns
    assert refreshed != written
    assert stack.launched()["up_to_date"] is True
    assert index_path(stack.dir).stat().st_mtime_ns == refreshed


def _git(repo: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        env=env,
        check=True,
        capture_output=True,
    )


def _changes_step(report: dict) -> str:
    return next(s["summary"] for s in report["steps"] if s["name"] == "changes")


def test_a_git_work_tree_is_asked_through_git(stack: TestStack) -> None:
    """In a git work tree the launch after a walk stands on git's word (gitview): the files
    git vouches for are not stat'ed, and an edit git names, or one of an ignored file, is
    found, restarted and proved as after a walk."""
    (stack.dir / ".gitignore").write_text("__pycache__/\n*.log\n")
    time.sleep(1.1)  # files older than git's index by a second: git vouches for them
    _git(stack.dir, "init", "-q")
    _git(stack.dir, "add", "-A")
    _git(stack.dir, "commit", "-qm", "stack")
    first = stack.launched()
    assert "git vouched" not in _changes_step(first)  # a walk, which leaves git's view
    noop = stack.launched()
    assert noop["up_to_date"] is True
    assert "git vouched for all but" in _changes_step(noop), _changes_step(noop)

    edit_keeping_stat(stack.dir / GREETING, "hello from v1", "hello from v3")
    report = stack.launched()
    assert "git vouched for all but" in _changes_step(report), _changes_step(report)
    assert report["changes"] == [str(stack.dir / GREETING)]
    assert actions(report)["backend"] == "restart" and actions(report)["redis"] == "leave"
    assert stack.greet() == "hello from v3, t"

    edit_keeping_stat(stack.dir / GREETING, "hello from v3", "hello from v1")  # as committed
    report = stack.launched()
    assert report["changes"] == [str(stack.dir / GREETING)]
    assert stack.greet() == "hello from v1, t"
    assert stack.launched()["up_to_date"] is True
