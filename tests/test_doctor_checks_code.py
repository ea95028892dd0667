"""doctor's checks of code (checks_code): each against hand-made facts, one fixture that
triggers it and one that does not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cslaunch import doctor
from cslaunch.doctor import ClockSample, Mount, checks_code
from cslaunch.model import Service
from tests.doctorutil import MULTISTAGE, ROOT, anon, bind, facts, only, run, svc

# --- code baked into the image ----------------------------------------------------------------

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


def test_an_anonymous_volume_over_copied_code_names_the_mount_that_shows_it() -> None:
    web = svc(
        "web",
        build={"context": str(ROOT / "backend"), "target": "dev"},
        volumes=[anon("/srv/src")],
    )
    f = facts(web, python=frozenset({"web"}), dockerfiles={"web": MULTISTAGE})
    finding = only(run(checks_code.check_anonymous_over_code, f))
    assert finding.code == doctor.ANON_OVER_CODE
    assert "(src/ -> /srv/src)" in finding.message
    assert '"./backend/src:/srv/src"' in finding.fix  # the copy's source, not a guess


def test_an_anonymous_volume_below_a_copied_tree_mounts_that_part_of_it() -> None:
    web = svc("web", build={"context": str(ROOT / "api")}, volumes=[anon("/app/pkg")])
    text = "FROM python\nWORKDIR /app\nCOPY . .\n"
    sources = {"web": {".": doctor.SourceInfo("dir", True)}}
    f = facts(web, python=frozenset({"web"}), dockerfiles={"web": text}, sources=sources)
    assert '"./api/pkg:/app/pkg"' in only(run(checks_code.check_anonymous_over_code, f)).fix


def test_anonymous_volumes_are_read_against_the_stage_compose_builds() -> None:
    # The prod stage copies src from dev; the assets stage (not built) copies web/.
    web = svc(
        "web",
        build={"context": str(ROOT / "backend"), "target": "prod"},
        volumes=[anon("/build/web")],
    )
    f = facts(web, python=frozenset({"web"}), dockerfiles={"web": MULTISTAGE})
    assert run(checks_code.check_anonymous_over_code, f) == []


def test_an_anonymous_volume_over_dependencies_is_the_usual_pattern() -> None:
    web = svc("web", build={"context": str(ROOT / "front")}, volumes=[anon("/app/node_modules")])
    text = "FROM node\nWORKDIR /app\nCOPY . .\nRUN npm ci\n"
    f = facts(web, dockerfiles={"web": text})
    assert run(checks_code.check_anonymous_over_code, f) == []
