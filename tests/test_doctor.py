"""doctor: every check against hand-made facts, one fixture that triggers it and one that
does not; the Dockerfile and Redis parsers; JSON, exit code and rendering."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cslaunch import doctor
from cslaunch.config import Config, ServiceConfig
from cslaunch.containers import Container
from cslaunch.doctor import (
    ClockSample,
    Facts,
    Finding,
    Mount,
    Pid1,
    RedisFacts,
    checks_code,
    checks_restarts,
    dockerfile,
    gathering,
)
from cslaunch.model import Service, parse_service
from cslaunch.output import SCHEMA
from cslaunch.ui import UI

ROOT = Path("/proj")
RQ = ["rq", "worker", "--url", "redis://127.0.0.1:6379/0", "default"]


def svc(name: str, **compose: Any) -> Service:
    """A service as Compose's JSON model describes it."""
    return parse_service(name, compose)


def bind(source: str, target: str) -> dict[str, Any]:
    return {"type": "bind", "source": str(ROOT / source), "target": target}


def anon(target: str) -> dict[str, Any]:
    return {"type": "volume", "target": target}


def facts(*services: Service, **kwargs: Any) -> Facts:
    return Facts(project="p", root=ROOT, services={s.name: s for s in services}, **kwargs)


def container(service: str, *, health: str | None = None) -> Container:
    return Container(
        id="c-" + service,
        name="p-" + service + "-1",
        service=service,
        status="running",
        health=health,
        health_output="",
        exit_code=0,
        restart_count=0,
        started_at=None,
        created=None,
        image_id="sha256:0",
        pid=0,
    )


def run(check: Any, f: Facts) -> list[Finding]:
    return list(check(f))


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# --- code baked into the image --------------------------------------------------------------

BACKEND_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY src/ /app/src/
CMD ["python3", "-m", "app.server"]
"""


def backend(**extra: Any) -> Service:
    return svc(
        "backend",
        build={"context": str(ROOT / "backend")},
        command=["python3", "-m", "app.server"],
        **extra,
    )


def test_code_copied_without_a_bind_mount_is_a_warning_with_the_mount_to_add() -> None:
    f = facts(backend(), python=frozenset({"backend"}), dockerfiles={"backend": BACKEND_DOCKERFILE})
    finding = only(run(checks_code.check_baked_code, f))
    assert (finding.code, finding.severity, finding.service) == (
        doctor.CODE_BAKED,
        doctor.WARNING,
        "backend",
    )
    assert "src/ -> /app/src" in finding.message
    assert '`volumes: ["./backend/src:/app/src"]`' in finding.fix
    assert "service backend" in finding.fix


def test_code_under_a_bind_mount_or_a_watch_sync_is_not_baked() -> None:
    mounted = backend(volumes=[bind("backend/src", "/app/src")])
    f = facts(mounted, python=frozenset({"backend"}), dockerfiles={"backend": BACKEND_DOCKERFILE})
    assert run(checks_code.check_baked_code, f) == []
    # A bind over a parent of the COPY destination covers it too.
    parent = backend(volumes=[bind("backend", "/app")])
    assert run(checks_code.check_baked_code, replace(f, services={"backend": parent})) == []
    watched = replace(f, services={"backend": backend()}, watch_targets={"backend": ("/app",)})
    assert run(checks_code.check_baked_code, watched) == []


def test_only_manifests_copied_is_not_baked_code() -> None:
    text = "FROM python\nWORKDIR /app\nCOPY requirements.txt pyproject.toml ./\nRUN pip install .\n"
    f = facts(backend(), python=frozenset({"backend"}), dockerfiles={"backend": text})
    assert run(checks_code.check_baked_code, f) == []


def test_code_a_later_build_step_consumes_is_only_info() -> None:
    text = (
        "FROM python\nWORKDIR /build\nCOPY build.py ./\nCOPY src/ ./src/\n"
        "RUN python3 build.py src /srv/dist\n"
    )
    front = svc("frontend", build={"context": str(ROOT / "frontend")}, command=["python3"])
    f = facts(front, python=frozenset({"frontend"}), dockerfiles={"frontend": text})
    finding = only(run(checks_code.check_baked_code, f))
    assert finding.severity == doctor.INFO
    assert "rebuild is expected" in finding.message
    # The directory of code is what to mount, at its own destination.
    assert '"./frontend/src:/build/src"' in finding.fix


def test_baked_code_of_a_non_python_service_is_info_and_image_only_services_are_skipped() -> None:
    f = facts(backend(), dockerfiles={"backend": BACKEND_DOCKERFILE})
    assert only(run(checks_code.check_baked_code, f)).severity == doctor.INFO
    pulled = svc("redis", image="redis:7")
    assert (
        run(checks_code.check_baked_code, facts(pulled, dockerfiles={"redis": "COPY . /x"})) == []
    )


def proxy_service() -> Service:
    return svc("proxy", build={"context": str(ROOT / "proxy")}, image="nginx")


def test_a_config_file_copied_is_not_code() -> None:
    text = "FROM nginx\nCOPY conf /etc/nginx/conf.d/default.conf\n"
    sources = {"proxy": {"conf": doctor.SourceInfo("file", False)}}
    f = facts(proxy_service(), dockerfiles={"proxy": text}, sources=sources)
    assert run(checks_code.check_baked_code, f) == []
    # A directory of config only, as the build context has it, is not code either.
    text = "FROM nginx\nCOPY conf.d /etc/nginx/conf.d\n"
    sources = {"proxy": {"conf.d": doctor.SourceInfo("dir", False)}}
    assert (
        run(checks_code.check_baked_code, replace(f, dockerfiles={"proxy": text}, sources=sources))
        == []
    )


def test_no_mount_over_the_root_or_a_system_directory() -> None:
    text = "FROM scratch\nCOPY . .\n"
    sources = {"proxy": {".": doctor.SourceInfo("dir", True, ())}}
    f = facts(proxy_service(), dockerfiles={"proxy": text}, sources=sources)
    finding = only(run(checks_code.check_baked_code, f))
    assert "volumes" not in finding.fix
    assert finding.fix.startswith("no bind mount is safe here: a mount at / would lie over")


@pytest.mark.parametrize(
    ("run_step", "hidden"),
    [
        (
            "RUN python -m venv /app/.venv && /app/.venv/bin/pip install -r requirements.txt",
            "/app/.venv",
        ),
        ("RUN uv sync --frozen", "/app/.venv"),
        ("RUN npm ci", "/app/node_modules"),
        ("RUN pip install -e .", "/app/*.egg-info"),
        ("ENV VIRTUAL_ENV=/app/venv", "/app/venv"),
    ],
)
def test_no_mount_over_what_the_image_builds_a_narrower_one_instead(
    run_step: str, hidden: str
) -> None:
    text = f"FROM python:3.12\nWORKDIR /app\nCOPY . /app\n{run_step}\n"
    sources = {"backend": {".": doctor.SourceInfo("dir", True, ("api", "tests"))}}
    f = facts(
        backend(), python=frozenset({"backend"}), dockerfiles={"backend": text}, sources=sources
    )
    finding = only(run(checks_code.check_baked_code, f))
    assert '`volumes: ["./backend/api:/app/api", "./backend/tests:/app/tests"]`' in finding.fix
    assert f"a mount at /app would hide {hidden}, which the image builds there" in finding.fix
    # With no subdirectory of code to mount instead, none is safe, and it says so.
    bare = {"backend": {".": doctor.SourceInfo("dir", True, ())}}
    finding = only(run(checks_code.check_baked_code, replace(f, sources=bare)))
    assert finding.fix.startswith(
        f"no bind mount is safe here: a mount at /app would hide {hidden}"
    )


def test_context_sources_are_looked_at_on_disk(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("server {}\n")
    (tmp_path / "app" / "pkg").mkdir(parents=True)
    (tmp_path / "app" / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "app" / "static").mkdir()
    (tmp_path / "app" / "static" / "s.txt").write_text("")
    (tmp_path / "app" / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / "app" / ".venv" / "lib" / "site.py").write_text("")
    copies = dockerfile.dockerfile_copies(
        "FROM x\nCOPY conf /etc/c\nCOPY app/ /srv/\nCOPY *.py /\n"
    )
    assert gathering._context_sources(tmp_path, copies) == {
        "conf": doctor.SourceInfo("file", False),
        "app": doctor.SourceInfo("dir", True, ("pkg",)),
    }


def test_dockerfile_copies_follow_workdir_continuations_and_the_last_stage() -> None:
    text = """\
# syntax=docker/dockerfile:1
FROM node AS assets
COPY web/ /web/
FROM python:3.12 AS final
WORKDIR /srv
WORKDIR app
COPY --chown=app:app \\
     ["pkg/", "extra.py", "./"]
COPY --from=assets /web/dist /srv/static
ADD https://example.com/x.tgz /tmp/
COPY $HOME/x /y
RUN python -m compileall pkg
"""
    copies = dockerfile.dockerfile_copies(text)
    assert [(c.sources, c.dest, c.dest_is_dir, c.consumed) for c in copies] == [
        (("pkg/", "extra.py"), "/srv/app", True, True),
        (("web/dist",), "/srv/static", False, False),  # the context's web/ went to /web
        (("$HOME/x",), "/y", False, False),
    ]


MULTISTAGE = """\
FROM python:3.12 AS base
WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt

FROM base AS dev
COPY src/ ./src/
CMD ["uvicorn", "src.main:app", "--reload"]

FROM node:20 AS assets
WORKDIR /build
COPY web/ ./web/
RUN npm run build --prefix web

FROM base AS prod
COPY --from=assets /build/web/dist /srv/static
COPY --from=dev /srv/src /srv/src
COPY --from=nginx:1.27 /etc/nginx/mime.types /etc/
"""


def test_the_stage_compose_builds_and_what_it_takes_from_earlier_stages() -> None:
    def copies(target: str | None) -> list[tuple[tuple[str, ...], str, bool]]:
        return [
            (c.sources, c.dest, c.consumed)
            for c in dockerfile.dockerfile_copies(MULTISTAGE, target)
        ]

    # dev inherits base's WORKDIR and files: its code lands at /srv/src, not /src.
    assert copies("dev") == [(("requirements.txt",), "/srv", True), (("src/",), "/srv/src", False)]
    assert (
        copies(None)
        == copies("prod")
        == [
            (("requirements.txt",), "/srv", True),
            (("web/dist",), "/srv/static", True),  # built by a RUN of its stage: expected
            (("src/",), "/srv/src", False),  # the context's code, by way of dev
        ]
    )


def test_a_target_stage_with_its_code_mounted_is_not_baked() -> None:
    s = svc(
        "api",
        build={"context": str(ROOT / "api"), "target": "dev"},
        volumes=[bind("api/src", "/srv/src")],
    )
    f = facts(s, python=frozenset({"api"}), dockerfiles={"api": MULTISTAGE})
    assert run(checks_code.check_baked_code, f) == []
    # The last stage (prod) is not what Compose builds: its --from copies do not count.
    mounted_prod = replace(f, services={"api": svc("api", build={"context": str(ROOT / "api")})})
    assert only(run(checks_code.check_baked_code, mounted_prod)).code == doctor.CODE_BAKED


# --- a bind mount hidden by a volume ----------------------------------------------------------


def test_anonymous_volume_inside_bind_mounted_code_is_an_error() -> None:
    s = svc("web", volumes=[bind("app", "/app"), anon("/app/src")])
    finding = only(run(checks_code.check_hidden_binds, facts(s)))
    assert (finding.code, finding.severity, finding.service) == (
        doctor.BIND_HIDDEN,
        doctor.ERROR,
        "web",
    )
    assert "anonymous volume at /app/src hides ./app/src" in finding.message
    assert "compose#9450" in finding.message
    assert "--renew-anon-volumes web" in finding.fix


def test_volume_at_the_bind_target_itself_hides_it_all() -> None:
    s = svc("web", volumes=[bind("src", "/app/src")])
    vols = {"web": (Mount("volume", "/app/src", "", declared=False),)}
    finding = only(run(checks_code.check_hidden_binds, facts(s, volumes=vols)))
    assert "hides ./src of the bind mount ./src:/app/src" in finding.message
    assert "VOLUME /app/src" in finding.fix  # not in the Compose file: the image's VOLUME


def test_volume_on_a_parent_path_hides_nothing() -> None:
    # Docker mounts the deeper path last: the bind lies on top of the volume.
    s = svc("web", volumes=[bind("src", "/app/src"), anon("/app")])
    assert run(checks_code.check_hidden_binds, facts(s)) == []


def test_dependency_volumes_and_volumes_over_nothing_are_deliberate() -> None:
    s = svc("web", volumes=[bind("front", "/app"), anon("/app/node_modules"), anon("/app/data")])
    f = facts(s, host_paths={str(ROOT / "front" / "data"): False})
    assert run(checks_code.check_hidden_binds, f) == []
    # The same data path with files on the host is hidden.
    f = replace(f, host_paths={str(ROOT / "front" / "data"): True})
    assert only(run(checks_code.check_hidden_binds, f)).code == doctor.BIND_HIDDEN


def test_named_volume_and_tmpfs_found_on_the_container_count_too() -> None:
    s = svc("web", volumes=[bind("app", "/app")])
    vols = {"web": (Mount("volume", "/app/lib", "webcache"), Mount("tmpfs", "/app/tmp"))}
    found = run(checks_code.check_hidden_binds, facts(s, volumes=vols))
    assert [("volume webcache" in f.message, "tmpfs" in f.message) for f in found] == [
        (True, False),
        (False, True),
    ]


# --- PID 1 and SIGTERM ------------------------------------------------------------------------


def test_pid1_that_ignores_sigterm_is_told_to_use_init() -> None:
    s = svc("api", command=["python3", "-m", "app"], stop_grace_period="20s")
    f = facts(s, pid1={"api": Pid1("python3", False)})
    finding = only(run(checks_restarts.check_pid1, f))
    assert (finding.code, finding.severity) == (doctor.PID1_SIGTERM, doctor.WARNING)
    assert "20 s stop grace" in finding.message
    assert "add `init: true` to service api" in finding.fix


@pytest.mark.parametrize(
    "pid1",
    [Pid1("python3", True), Pid1("docker-init", False), Pid1(None, None)],
)
def test_pid1_that_handles_sigterm_is_an_init_or_is_unknown_is_fine(pid1: Pid1) -> None:
    s = svc("api", command=["python3", "-m", "app"])
    assert run(checks_restarts.check_pid1, facts(s, pid1={"api": pid1})) == []


def test_init_true_is_enough_for_a_plain_program() -> None:
    s = svc("api", command=["python3", "-m", "app"], init=True)
    assert run(checks_restarts.check_pid1, facts(s, pid1={"api": Pid1("docker-init", False)})) == []


def test_shell_as_pid1_names_the_program_and_the_exec_fix() -> None:
    s = svc("worker", command=["sh", "-c", "echo starting; " + " ".join(RQ)])
    f = facts(s, pid1={"worker": Pid1("sh", False)})
    finding = only(run(checks_restarts.check_pid1, f))  # one finding, not also pid1-ignores-sigterm
    assert (finding.code, finding.severity) == (doctor.PID1_SHELL, doctor.WARNING)
    assert "to rq" in finding.message and "RQ worker cannot finish its job" in finding.message
    assert '`command: ["sh", "-c", "echo starting; exec rq worker --url' in finding.fix
    assert '`command: ["rq", "worker", "--url", "..."]`' in finding.fix
    assert "`init: true` alone only ends the stall" in finding.fix


def test_shell_command_is_found_from_the_model_when_the_stack_is_down() -> None:
    s = svc("worker", entrypoint=["/bin/bash", "-ec"], command=["cd /app && " + " ".join(RQ)])
    assert only(run(checks_restarts.check_pid1, facts(s))).code == doctor.PID1_SHELL


def test_shell_under_init_loses_a_workers_shutdown_unless_it_execs() -> None:
    script = "echo starting; " + " ".join(RQ)
    s = svc("worker", command=["sh", "-c", script], init=True)
    finding = only(run(checks_restarts.check_pid1, facts(s)))
    assert finding.code == doctor.PID1_SHELL
    assert "never shuts down cleanly" in finding.message
    execs = svc("worker", command=["sh", "-c", "echo starting; exec " + " ".join(RQ)], init=True)
    assert run(checks_restarts.check_pid1, facts(execs)) == []
    # A non-worker behind a shell under init just dies at once: nothing to lose.
    server = svc("web", command=["sh", "-c", "cd /app; python3 -m http.server"], init=True)
    assert run(checks_restarts.check_pid1, facts(server)) == []


SHELL_WRAPPERS = [
    # (the wrapper, what the fix must say, what it must never say)
    (
        ["bash", "-c", "envsubst < /t > /etc/nginx/conf.d/default.conf && nginx -g 'daemon off;'"],
        "\"envsubst < /t > /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'\"",
        "daemon off; exec",
    ),
    (["sh", "-c", "python manage.py migrate || exit 1"], "builtin `exit`", "exec exit"),
    (["sh", "-c", "python app.py; return 111"], "builtin `return`", "exec return"),
    (
        ["sh", "-c", 'if [ -n "$D" ]; then python -m debugpy a.py\nelse gunicorn a\nfi'],
        "`fi`, the end of a compound command",
        "exec fi",
    ),
]


@pytest.mark.parametrize(("command", "says", "never"), SHELL_WRAPPERS)
def test_shell_wrappers_get_an_exec_fix_only_where_it_runs(
    command: list[str], says: str, never: str
) -> None:
    finding = only(run(checks_restarts.check_pid1, facts(svc("web", command=command))))
    assert finding.code == doctor.PID1_SHELL
    assert says in finding.fix
    assert never not in finding.fix
    assert "to exit" not in finding.message and "to fi" not in finding.message


def test_the_exec_fix_is_the_compose_key_that_holds_the_wrapper() -> None:
    s = svc("w", entrypoint=["/bin/sh", "-c"], command=["cd /app && rq worker --url $REDIS_URL"])
    finding = only(run(checks_restarts.check_pid1, facts(s)))
    # Compose interpolates `$`: the fix writes the literal as `$$`.
    assert '`command: ["cd /app && exec rq worker --url $$REDIS_URL"]`' in finding.fix


def test_a_lone_command_under_sh_c_is_execd_by_the_shell() -> None:
    assert (
        run(checks_restarts.check_pid1, facts(svc("w", command=["sh", "-c", "gunicorn app"]))) == []
    )


# --- stop grace -------------------------------------------------------------------------------


def test_rq_worker_with_the_default_stop_grace_is_warned() -> None:
    finding = only(run(checks_restarts.check_stop_grace, facts(svc("worker", command=RQ))))
    assert (finding.code, finding.severity) == (doctor.STOP_GRACE, doctor.WARNING)
    assert "10 s stop grace (Docker's default)" in finding.message
    assert "180 s" in finding.message
    assert "add `stop_grace_period: 3m` to service worker" in finding.fix


def test_rq_worker_with_a_long_grace_and_non_workers_are_fine() -> None:
    assert (
        run(checks_restarts.check_stop_grace, facts(svc("w", command=RQ, stop_grace_period="3m")))
        == []
    )
    assert (
        run(checks_restarts.check_stop_grace, facts(svc("api", command=["python3", "app.py"])))
        == []
    )


def test_a_short_cslaunch_grace_is_named_in_the_fix() -> None:
    s = svc("worker", command=["rqworker", "default"], stop_grace_period="5m")
    cfg = Config(services={"worker": ServiceConfig(grace=30)})
    finding = only(run(checks_restarts.check_stop_grace, facts(s, config=cfg)))
    assert "30 s cslaunch `grace`" in finding.message
    assert finding.fix.startswith("raise `grace` in [tool.cslaunch.services.worker] to 180")
    assert "stop_grace_period" not in finding.fix  # Compose's own grace is long enough


def test_gunicorn_needs_its_graceful_timeout() -> None:
    short = svc("api", command=["gunicorn", "--graceful-timeout", "60", "app:app"])
    finding = only(run(checks_restarts.check_stop_grace, facts(short)))
    assert "60 s" in finding.message and "stop_grace_period: 1m" in finding.fix
    ok = svc("api", command=["gunicorn", "app:app"], stop_grace_period="45s")
    assert run(checks_restarts.check_stop_grace, facts(ok)) == []


# --- bytecode settings ------------------------------------------------------------------------


def code_service(**extra: Any) -> Service:
    return svc("api", command=["python3", "-m", "app"], volumes=[bind("src", "/app")], **extra)


@pytest.mark.parametrize(
    ("env", "code", "words"),
    [
        ({"PYTHONDONTWRITEBYTECODE": "1"}, doctor.PYC_DONTWRITE, "still reads pycs"),
        ({"PYTHONPYCACHEPREFIX": "/tmp/pyc"}, doctor.PYC_PREFIX, "tmpfs: [/tmp/pyc]"),
        ({}, doctor.PYC_TIMESTAMP, "--invalidation-mode checked-hash"),
        ({"SOURCE_DATE_EPOCH": "0"}, doctor.PYC_TIMESTAMP, "SOURCE_DATE_EPOCH is set"),
    ],
)
def test_bytecode_choice_is_explained(env: dict[str, str], code: str, words: str) -> None:
    f = facts(code_service(), python=frozenset({"api"}), env={"api": env})
    finding = only(run(checks_code.check_bytecode, f))
    assert (finding.code, finding.severity, finding.service) == (code, doctor.INFO, "api")
    assert words in finding.message + finding.fix


def test_bytecode_is_not_discussed_without_bind_mounted_python_code() -> None:
    baked = svc("api", command=["python3", "-m", "app"])
    assert run(checks_code.check_bytecode, facts(baked, python=frozenset({"api"}))) == []
    assert run(checks_code.check_bytecode, facts(code_service())) == []  # not a Python service


# --- clocks -----------------------------------------------------------------------------------


def test_clock_skew_beyond_a_second_is_a_warning() -> None:
    sample = ClockSample("api", host_before=1000.0, container=1003.1, host_after=1000.2)
    finding = only(run(checks_code.check_clock, facts(svc("api"), clock=sample)))
    assert (finding.code, finding.severity, finding.service) == (
        doctor.CLOCK_SKEW,
        doctor.WARNING,
        "api",
    )
    assert "3.0 s ahead of the host's" in finding.message
    behind = replace(sample, container=990.0)
    assert "behind" in only(run(checks_code.check_clock, facts(svc("api"), clock=behind))).message


@pytest.mark.parametrize(
    "sample",
    [
        None,
        ClockSample("api", 1000.0, 1000.5, 1000.1),
        # 1.4 s off, but a slow exec (1 s) and whole-second resolution leave it in doubt.
        ClockSample("api", 1000.0, 1002.0, 1001.2, resolution=1.0),
    ],
)
def test_clocks_within_a_second_or_the_measurement_error_are_fine(
    sample: ClockSample | None,
) -> None:
    assert run(checks_code.check_clock, facts(svc("api"), clock=sample)) == []


# --- file sharing -----------------------------------------------------------------------------


def test_wsl_bind_mount_from_a_windows_drive_is_warned() -> None:
    s = svc("api", volumes=[{"type": "bind", "source": "/mnt/c/Users/me/app", "target": "/app"}])
    finding = only(run(checks_code.check_file_sharing, facts(s, wsl=True)))
    assert (finding.code, finding.service) == (doctor.WSL_DRIVE, "api")
    assert "microsoft/WSL#4739" in finding.message
    assert run(checks_code.check_file_sharing, facts(s, wsl=False)) == []
    linux = svc("api", volumes=[{"type": "bind", "source": "/home/me/app", "target": "/app"}])
    assert run(checks_code.check_file_sharing, facts(linux, wsl=True)) == []


def test_docker_desktop_bind_mounts_are_warned_once() -> None:
    a = svc("a", volumes=[bind("a", "/a")])
    b = svc("b", volumes=[bind("b", "/b")])
    finding = only(run(checks_code.check_file_sharing, facts(a, b, docker_os="Docker Desktop")))
    assert (finding.code, finding.service) == (doctor.DESKTOP_SHARING, None)
    assert run(checks_code.check_file_sharing, facts(svc("r"), docker_os="Docker Desktop")) == []
    assert run(checks_code.check_file_sharing, facts(a, docker_os="Ubuntu 24.04 LTS")) == []


def test_windows_drive_paths_under_docker_desktop_are_warned() -> None:
    s = svc("api", volumes=[{"type": "bind", "source": "C:\\Users\\me\\app", "target": "/app"}])
    found = {
        f.code for f in run(checks_code.check_file_sharing, facts(s, docker_os="Docker Desktop"))
    }
    assert found == {doctor.WSL_DRIVE, doctor.DESKTOP_SHARING}


# --- Redis ------------------------------------------------------------------------------------


def test_aof_that_is_never_rewritten_is_warned() -> None:
    cfg = {"appendonly": "yes", "auto-aof-rewrite-percentage": "0"}
    f = facts(svc("redis"), redis={"redis": RedisFacts(6379, cfg)})
    finding = only(run(checks_restarts.check_redis, f))
    assert (finding.code, finding.severity) == (doctor.REDIS_AOF_NO_REWRITE, doctor.WARNING)
    assert "--auto-aof-rewrite-percentage 100" in finding.fix


@pytest.mark.parametrize(
    "cfg",
    [
        {"appendonly": "yes"},  # Redis' defaults rewrite at 100 % growth over 64 MB
        {"appendonly": "yes", "auto-aof-rewrite-percentage": "100"},
        {"appendonly": "no", "auto-aof-rewrite-percentage": "0"},
    ],
)
def test_aof_with_rewrites_or_off_is_fine(cfg: dict[str, str]) -> None:
    assert (
        run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": RedisFacts(1, cfg)}))
        == []
    )


def test_huge_aof_is_warned_with_the_rewrite_command() -> None:
    big = RedisFacts(6390, {"appendonly": "yes"}, aof_size=2 * 1024**3, live=True)
    finding = only(run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": big})))
    assert finding.code == doctor.REDIS_AOF_LARGE
    assert "2048 MB" in finding.message
    assert "redis-cli -p 6390 BGREWRITEAOF" in finding.fix
    small = replace(big, aof_size=10 * 1024**2)
    assert run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": small})) == []


def test_redis_parsers() -> None:
    words = ["redis-server", "--port", "6390", "--appendonly", "yes", "--protected-mode", "no"]
    assert gathering.redis_flags(words) == {
        "port": "6390",
        "appendonly": "yes",
        "protected-mode": "no",
    }
    assert gathering.parse_config_get("appendonly\nyes\nreplicaof\n\nport\n6390\n") == {
        "appendonly": "yes",
        "replicaof": "",
        "port": "6390",
    }
    assert gathering.parse_config_get("NOAUTH Authentication required.\n") == {}
    info = "# Persistence\r\naof_enabled:1\r\naof_current_size:1419\r\n"
    assert gathering.parse_info(info)["aof_current_size"] == "1419"


# --- RQ healthcheck ---------------------------------------------------------------------------


def test_rq_worker_without_a_healthcheck_is_info() -> None:
    finding = only(run(checks_restarts.check_rq_health, facts(svc("worker", command=RQ))))
    assert (finding.code, finding.severity, finding.service) == (
        doctor.RQ_NO_HEALTHCHECK,
        doctor.INFO,
        "worker",
    )
    assert "--only-workers" in finding.fix


def test_rq_worker_with_a_healthcheck_in_compose_or_image_is_fine() -> None:
    checked = svc("worker", command=RQ, healthcheck={"test": ["CMD", "rq", "info"]})
    assert run(checks_restarts.check_rq_health, facts(checked)) == []
    plain = svc("worker", command=RQ)
    from_image = facts(plain, containers={"worker": [container("worker", health="healthy")]})
    assert run(checks_restarts.check_rq_health, from_image) == []
    assert run(checks_restarts.check_rq_health, facts(svc("api", command=["python3"]))) == []


# --- diagnose, JSON, exit code, rendering -----------------------------------------------------


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


# --- gathering helpers (no engine) ------------------------------------------------------------


def test_mounts_merge_the_model_with_the_container() -> None:
    raw = {
        "volumes": [anon("/app/src"), {"type": "volume", "source": "data", "target": "/data"}],
        "tmpfs": ["/run/x:size=1m"],
    }
    inspected = {
        "Mounts": [
            {"Type": "volume", "Name": "a" * 64, "Destination": "/app/src"},
            {"Type": "volume", "Name": "f" * 64, "Destination": "/var/lib/img"},
            {"Type": "bind", "Source": "/proj/app", "Destination": "/app"},
        ],
        "HostConfig": {"Tmpfs": {"/scratch": ""}},
    }
    assert gathering._mounts(raw, inspected) == (
        Mount("volume", "/app/src"),
        Mount("volume", "/data", "data"),
        Mount("tmpfs", "/run/x"),
        Mount("tmpfs", "/scratch", "", False),
        Mount("volume", "/var/lib/img", "", False),
    )


def test_environment_overlays_the_container_env_on_the_model() -> None:
    raw = {"environment": {"A": "1", "UNSET": None, "B": "model"}}
    inspected = {"Config": {"Env": ["B=container", "PYTHONDONTWRITEBYTECODE=1"]}}
    assert gathering._environment(raw, inspected) == {
        "A": "1",
        "B": "container",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def test_host_paths_record_whether_a_volume_hides_anything(tmp_path: Path) -> None:
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "src" / "m.py").write_text("")
    (tmp_path / "app" / "empty").mkdir()
    s = parse_service(
        "web",
        {
            "volumes": [
                {"type": "bind", "source": str(tmp_path / "app"), "target": "/app"},
                anon("/app/src"),
                anon("/app/empty"),
                anon("/app/missing"),
                anon("/elsewhere"),
            ]
        },
    )
    assert gathering._host_paths({"web": s}, {}) == {
        str(tmp_path / "app" / "src"): True,
        str(tmp_path / "app" / "empty"): False,
        str(tmp_path / "app" / "missing"): False,
    }


def test_wsl_is_detected_from_proc_version(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("Linux version 5.15.153.1-microsoft-standard-WSL2 (gcc ...)")
    assert gathering._under_wsl(version)
    version.write_text("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)")
    assert not gathering._under_wsl(version)
    assert not gathering._under_wsl(tmp_path / "missing")


def test_a_fixed_worker_name_explains_the_ttl_trap() -> None:
    named = [*RQ[:2], "--name", "w1", *RQ[2:]]
    finding = only(
        run(checks_restarts.check_fixed_worker_names, facts(svc("worker", command=named)))
    )
    assert (finding.code, finding.severity) == (doctor.RQ_FIXED_NAME, doctor.WARNING)
    assert "'w1'" in finding.message and "420 s" in finding.message
    assert "There exists an active worker named" in finding.message
    assert "drop `--name`" in finding.fix and "stop_grace_period: 3m" in finding.fix
    # A grace as long as RQ's job timeout: the trap is left to kills, and said as info.
    long = svc("worker", command=named, stop_grace_period="3m")
    finding = only(run(checks_restarts.check_fixed_worker_names, facts(long)))
    assert finding.severity == doctor.INFO and "stop_grace_period" not in finding.fix
    # Workers RQ names itself are not concerned.
    assert run(checks_restarts.check_fixed_worker_names, facts(svc("worker", command=RQ))) == []
