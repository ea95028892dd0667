"""Compose features on small real stacks: what the model says is what runs (issue #15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stackutil import TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine


@pytest.fixture
def small(engine: str, tmp_path: Path) -> Iterator[list[TestStack]]:
    """Stacks a test makes with make(); all taken down at the end."""
    made: list[TestStack] = []
    try:
        yield made
    finally:
        for s in made:
            s.down()


def make(
    made: list[TestStack], tmp_path: Path, files: dict[str, str], env: dict[str, str] | None = None
) -> TestStack:
    base = os.environ.get("CSLAUNCH_BASE_IMAGE", "cslaunch-base:bookworm-2")
    s = TestStack.from_files(tmp_path / f"s{len(made)}", files, base_image=base, env=env)
    made.append(s)
    return s


def actions(report: dict) -> dict[str, str]:
    return {s["name"]: s["action"] for s in report["services"]}


# --- 1: a change of what an image is built from rebuilds it ----------------------------------

BUILT = {
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE} AS one\n"
        "ARG FLAVOUR=plain\n"
        "ENV FLAVOUR=${FLAVOUR} STAGE=one\n"
        "FROM one AS two\n"
        "ENV STAGE=two\n"
    ),
    "compose.yaml": (
        "services:\n"
        "  app:\n"
        "    build:\n"
        "      context: .\n"
        "      args: {BASE_IMAGE: '${BASE_IMAGE}', FLAVOUR: '${FLAVOUR:-plain}'}\n"
        "      target: '${TARGET:-one}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {MODE: '${MODE:-a}'}\n"
        "  inline:\n"
        "    build:\n"
        "      context: .\n"
        "      dockerfile_inline: |\n"
        "        FROM ${BASE_IMAGE}\n"
        "        ENV INLINE=${INLINE:-first}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
    ),
}


def test_build_args_target_and_inline_dockerfile_changes_rebuild(
    small: list[TestStack], tmp_path: Path
) -> None:
    s = make(small, tmp_path, BUILT)
    s.launched()
    assert s.container_env("app")["FLAVOUR"] == "plain"
    assert s.container_env("app")["STAGE"] == "one"
    assert s.container_env("inline")["INLINE"] == "first"

    s.set_env({"FLAVOUR": "spicy"})
    report = s.launched()
    assert actions(report) == {"app": "rebuild", "inline": "leave"}
    assert "build.args" in report["services"][0]["reason"]
    assert s.container_env("app")["FLAVOUR"] == "spicy"

    s.set_env({"TARGET": "two"})
    assert actions(s.launched())["app"] == "rebuild"
    assert s.container_env("app")["STAGE"] == "two"

    s.set_env({"INLINE": "second"})
    assert actions(s.launched()) == {"app": "leave", "inline": "rebuild"}
    assert s.container_env("inline")["INLINE"] == "second"

    # How it runs, not what it runs: recreated from the image it has.
    s.set_env({"MODE": "b"})
    report = s.launched()
    assert actions(report) == {"app": "recreate", "inline": "leave"}
    assert not any(svc["build"] for svc in report["services"])
    assert s.container_env("app")["MODE"] == "b"
    assert s.container_env("app")["FLAVOUR"] == "spicy"

    report = s.launched()
    assert report["up_to_date"] is True


# --- 2: secrets are masked where they live, never names, booleans or numbers -----------------

SECRETS = {
    "compose.yaml": (
        "services:\n"
        "  gitea:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {DB_PASSWD: gitea, POSTGRES_PASSWORD: 'true', DB_PORT: '120'}\n"
        "  db:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sh, -c, 'echo auth with $$POSTGRES_PASSWORD; "
        'if [ "$$FAIL" = 1 ]; then exit 3; fi; exec sleep infinity\']\n'
        "    environment: {POSTGRES_PASSWORD: hunter2hunter2, FAIL: '${FAIL:-0}'}\n"
    ),
}


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert "Traceback" not in result.stderr, result.stderr
    data: dict = json.loads(result.stdout)  # exactly one valid JSON document
    return data


def test_secrets_are_masked_where_they_live_and_names_never(
    small: list[TestStack], tmp_path: Path
) -> None:
    s = make(small, tmp_path, SECRETS)
    s.name += "-gitea"  # the project's name holds the secret `gitea`; so does a service's
    s.set_env({"COMPOSE_PROJECT_NAME": s.name})
    report = _json(s.cslaunch("--json"))
    assert report["ok"] is True and report["up_to_date"] is False
    assert report["project"] == s.name
    assert [svc["name"] for svc in report["services"]] == ["db", "gitea"]

    for command in ("plan", "status", "verify", "doctor"):
        result = s.cslaunch(command, "--json")
        data = _json(result)
        assert data["command"] == command
        assert "***" not in result.stdout, result.stdout
        assert data.get("project", s.name) == s.name
        human = s.cslaunch(command)
        assert "***" not in human.stdout + human.stderr
        if command != "verify":  # no Python service here: it names none
            assert s.name in human.stdout + human.stderr

    s.set_env({"FAIL": "1"})
    result = s.cslaunch("--json")
    assert result.returncode == 1
    report = _json(result)
    db = next(svc for svc in report["services"] if svc["name"] == "db")
    assert "auth with ***" in db["logs"]
    assert "hunter2hunter2" not in result.stdout + result.stderr
    assert report["project"] == s.name


# --- 4: a service is known to run Python from the programs it runs ----------------------------

UVICORN = {
    # No "python" anywhere in the Dockerfile, the image name or the command.
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE}\n"
        "COPY uvicorn /usr/local/bin/uvicorn\n"
        "COPY app /srv/app\n"
        "WORKDIR /srv\n"
        'CMD ["uvicorn", "app.main:app"]\n'
    ),
    "uvicorn": (
        "#!/usr/bin/python3\n"
        "import sys, time\n"
        "sys.path.insert(0, '/srv')\n"
        "import app.main\n"
        "time.sleep(1e9)\n"
    ),
    "app/__init__.py": "",
    "app/main.py": "app = 'hello'\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "  worker:\n"  # the api's image, pulled rather than built: its config says uvicorn
        "    image: ${COMPOSE_PROJECT_NAME}-api\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    depends_on: [api]\n"
    ),
}


def test_a_uvicorn_service_is_known_to_run_python_and_verified(
    small: list[TestStack], tmp_path: Path
) -> None:
    s = make(small, tmp_path, UVICORN)
    (s.dir / "uvicorn").chmod(0o755)
    report = s.launched()
    verdicts = {v["name"]: v for v in report["verify"]}
    assert verdicts["api"]["state"] == "fresh"
    assert verdicts["api"]["checked"] >= 2  # app/__init__.py and app/main.py, baked in
    # Once the image exists, its own config says what the worker runs.
    result = s.cslaunch("verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {v["name"] for v in json.loads(result.stdout)["services"]} == {"api", "worker"}

    # Code changed inside the container behind the host's back: found stale.
    cid = s.compose("ps", "-q", "api").stdout.split()[0]
    subprocess.run(
        ["docker", "exec", cid, "sh", "-c", "echo \"app = 'changed'\" > /srv/app/main.py"],
        check=True,
    )
    result = s.cslaunch("verify", "--json")
    assert result.returncode == 8, result.stdout + result.stderr
    stale = {v["name"]: v["state"] for v in json.loads(result.stdout)["services"]}
    assert stale["api"] == "stale"


# --- 5: COMPOSE_FILE, COMPOSE_PROFILES, COMPOSE_PROJECT_NAME from the project's .env ----------

SLEEPER = (
    "    image: ${BASE_IMAGE}\n"
    "    network_mode: none\n"
    "    init: true\n"
    "    command: [sleep, infinity]\n"
)


def test_compose_variables_from_dotenv(small: list[TestStack], tmp_path: Path) -> None:
    # A parent directory's project (one Compose rejects) must not be taken instead.
    (tmp_path / "compose.yaml").write_text("services:\n  decoy:\n    ports: notalist\n")
    files = {
        "deploy/base.yml": "services:\n  app:\n" + SLEEPER,
        "deploy/extra.yml": "services:\n  extra:\n    profiles: [extra]\n" + SLEEPER,
    }
    s = make(
        small,
        tmp_path,
        files,
        env={"COMPOSE_FILE": "deploy/base.yml:deploy/extra.yml", "COMPOSE_PROFILES": "extra"},
    )
    report = s.launched()
    assert report["project"] == s.name
    assert {svc["name"] for svc in report["services"]} == {"app", "extra"}
    assert {svc["state"] for svc in report["services"]} == {"ready"}
    # .env's name wins over cslaunch's config, as over a Compose file's `name:`.
    (s.dir / "cslaunch.toml").write_text('project_name = "cslt-not-this-one"\n')
    assert json.loads(s.cslaunch("plan", "--json").stdout)["project"] == s.name
    status = json.loads(s.cslaunch("status", "--json").stdout)
    assert status["project"] == s.name
    assert {r["name"]: r["state"] for r in status["services"]} == {
        "app": "running",
        "extra": "running",
    }


# --- 6: -f -, the Compose file on standard input ---------------------------------------------


def test_compose_file_on_stdin(small: list[TestStack], tmp_path: Path) -> None:
    text = (
        "services:\n  app:\n"
        + SLEEPER
        + "    volumes: [./src:/srv/src]\n"  # relative to the working directory, as in Compose
    )
    s = make(small, tmp_path, {"stack.yml": text, "src/app.py": "x = 1\n"})
    s.files = ("stack.yml",)  # for taking it down
    # Its own temporary directory: what another run left in the shared one is not its own.
    private = tmp_path / "tmp"
    private.mkdir()

    def piped(*args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "cslaunch", "-f", "-", *args, "--json"],
            input=text,
            cwd=s.dir,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(private)},
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        data: dict = json.loads(result.stdout)
        return data

    report = piped("up")
    assert report["project"] == s.name
    assert s.inspect("app")["Mounts"][0]["Source"] == str(s.dir / "src")
    assert piped("plan")["up_to_date"] is True
    assert not list(private.glob("cslaunch-stdin-*"))  # removed at exit


# --- 13: cslaunch's own files never enter a build context ------------------------------------


def test_cslaunch_state_never_enters_an_image(small: list[TestStack], tmp_path: Path) -> None:
    files = {
        "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /code\n",
        "compose.yaml": (
            "services:\n  app:\n"
            "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
            "    network_mode: none\n    init: true\n    command: [sleep, infinity]\n"
        ),
        "main.py": "x = 1\n",
    }
    s = make(small, tmp_path, files)
    s.launched()
    (s.dir / "main.py").write_text("x = 2\n")
    assert actions(s.launched())["app"] == "rebuild"
    listing = s.compose("exec", "-T", "app", "ls", "-A", "/code").stdout.split()
    assert "main.py" in listing and ".cslaunch" not in listing
    assert not (s.dir / ".cslaunch").exists()


# --- 7: a repair is reported as one; container paths as the container shows them ------------

BAKED = {
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE}\n"
        "WORKDIR /srv\n"
        "COPY . .\n"
        'CMD ["python3", "-c", "import sys, time; sys.path.insert(0, \'/srv\'); '
        'import app.main; time.sleep(1e9)"]\n'
    ),
    "app/__init__.py": "",
    "app/main.py": "VALUE = 1\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "  other:\n" + SLEEPER
    ),
}


def test_a_repair_is_reported_as_one(small: list[TestStack], tmp_path: Path) -> None:
    s = make(small, tmp_path, BAKED)
    s.launched()
    cid = s.compose("ps", "-q", "api").stdout.split()[0]
    subprocess.run(
        ["docker", "exec", cid, "sh", "-c", "echo 'VALUE = 2' > /srv/app/main.py"], check=True
    )
    result = s.cslaunch("verify", "--json")
    assert result.returncode == 8
    (api,) = [v for v in json.loads(result.stdout)["services"] if v["name"] == "api"]
    assert [p["path"] for p in api["problems"]] == ["/srv/app/main.py"]  # not /srv/./app/...

    report = s.launched()
    assert report["up_to_date"] is False
    outcomes = {o["name"]: o for o in report["services"]}
    assert outcomes["api"]["action"] == "repaired"
    assert "left running" not in outcomes["api"]["detail"]
    assert outcomes["other"]["detail"].endswith("(left running)")
    assert {v["name"]: v["state"] for v in report["verify"]}["api"] == "fresh"

    subprocess.run(
        ["docker", "exec", s.compose("ps", "-q", "api").stdout.split()[0], "sh", "-c",
         "echo 'VALUE = 3' > /srv/app/main.py"],
        check=True,
    )  # fmt: skip
    human = s.cslaunch()
    assert human.returncode == 0, human.stdout + human.stderr
    assert "Repaired stale code in api" in human.stdout
    assert "Up to date" not in human.stdout


# --- build.target: the proof looks where the stage Compose builds put the code ---------------

TARGETED = {
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE} AS base\n"
        "WORKDIR /srv\n"
        "FROM base AS dev\n"
        "COPY app/ ./app/\n"  # at /srv/app: dev starts in base's WORKDIR
        'CMD ["python3", "-c", "import sys, time; sys.path.insert(0, \'/srv\'); '
        'import app.main; time.sleep(1e9)"]\n'
        "FROM ${BASE_IMAGE} AS prod\n"
        "COPY app/ /opt/app/\n"
    ),
    "app/__init__.py": "",
    "app/main.py": "VALUE = 1\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., target: dev, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
    ),
}


def test_the_proof_of_a_target_build_looks_where_that_stage_put_the_code(
    small: list[TestStack], tmp_path: Path
) -> None:
    s = make(small, tmp_path, TARGETED)
    report = s.launched()
    (api,) = report["verify"]
    assert (api["state"], api["checked"], api["problems"]) == ("fresh", 2, [])
    result = s.cslaunch("verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr


# --- the host's venv beside the container's own, hidden by a volume --------------------------

VENV = {
    "Dockerfile": (
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE}\n"
        "WORKDIR /app\n"
        "RUN python3 -m venv --without-pip /app/.venv"
        " && echo \"WHERE = 'image'\" > /app/.venv/lib/python3.11/site-packages/dep.py\n"
    ),
    ".dockerignore": ".venv\n",
    "app/__init__.py": "",
    "app/main.py": "import dep\n\nVALUE = 1\n",
    # The developer's own venv on the host (uv sync, pip install -e .): other files.
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    ".venv/lib/python3.11/site-packages/dep.py": "WHERE = 'host'\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app', '/app/.venv']\n"
        '    command: ["/app/.venv/bin/python", "-c",'
        ' "import time, app.main; time.sleep(1e9)"]\n'
    ),
}


def test_the_hosts_venv_hidden_by_the_containers_own_is_not_its_code(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`.:/app` beside a `/app/.venv` volume: the container runs its own environment, not
    the host's venv under the bind mount. Its files are not asked about nor restart it, the
    project's are and do, and a relaunch asks only what moved."""
    s = make(small, tmp_path, VENV)
    (api,) = s.launched()["verify"]
    assert (api["state"], api["checked"], api["problems"]) == ("fresh", 2, [])
    where = ("exec", "-T", "api", "/app/.venv/bin/python", "-c", "import dep; print(dep.WHERE)")
    assert s.compose(*where).stdout.strip() == "image"
    # A `pip install` on the host: nothing the container runs, nothing restarted.
    (s.dir / ".venv/lib/python3.11/site-packages/dep.py").write_text("WHERE = 'host, newer'\n")
    assert actions(s.launched()) == {"api": "leave"}
    (s.dir / "app/main.py").write_text("import dep\n\nVALUE = 2\n")
    report = s.launched()
    assert actions(report) == {"api": "restart"}
    (api,) = report["verify"]
    assert api["state"] == "fresh" and "only what moved" in api["detail"], api
    assert s.cslaunch("verify", "--json").returncode == 0


# --- a Python file bind-mounted alone: its pyc is the container's own -----------------------

SINGLE = {
    "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n",
    "settings.py": "VALUE = 'v1'\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['./settings.py:/app/settings.py']\n"
        '    command: ["python3", "-c", "import sys, time; sys.path.insert(0, \'/app\');'
        ' import settings; time.sleep(1e9)"]\n'
    ),
}


def test_a_file_mounted_alone_is_proven_with_the_pyc_its_container_wrote(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`./settings.py:/app/settings.py`: the pyc Python writes for it lands in the
    container's own /app/__pycache__, where no host-side clean reaches. An edit that keeps
    mtime and size leaves that pyc "valid": the restarted process would run the old code.
    The proof looks at it, finds it stale, and the repair's new container runs the new."""
    s = make(small, tmp_path, SINGLE)
    (api,) = s.launched()["verify"]
    assert (api["state"], api["checked"], api["pycs"]) == ("fresh", 1, 1), api
    show = "import sys; sys.path.insert(0, '/app'); import settings; print(settings.VALUE)"
    value = ("exec", "-T", "api", "python3", "-c", show)
    assert s.compose(*value).stdout.strip() == "v1"
    edit_keeping_stat(s.dir / "settings.py", "v1", "v2")
    report = s.launched()
    assert any(step["name"] == "repair" for step in report["steps"]), report["steps"]
    assert s.compose(*value).stdout.strip() == "v2"
    assert s.cslaunch("verify", "--json").returncode == 0


# --- PYTHONPYCACHEPREFIX: the pycs live in the container's own layer ------------------------

PREFIX = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENV PYTHONPYCACHEPREFIX=/root/.cache/pycache\n"
        "WORKDIR /srv\n"
    ),
    "app/__init__.py": "",
    "app/settings.py": "VALUE = 'v1'\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['./app:/srv/app']\n"
        "    command: [sh, -c, \"python3 -c 'import app.settings, time; time.sleep(1e9)'\"]\n"
    ),
}


def test_pycs_under_the_containers_pycache_prefix_are_proven(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`ENV PYTHONPYCACHEPREFIX` keeps the pycs out of the bind-mounted tree, in a mirror
    tree in the container's own layer, which a restart keeps and no host-side clean
    reaches. An edit that keeps mtime and size leaves the pyc there "valid": the restarted
    process runs the old code. The proof looks there, finds it stale, and the repair's new
    container runs the new code."""
    s = make(small, tmp_path, PREFIX)
    (api,) = s.launched()["verify"]
    assert (api["state"], api["checked"], api["pycs"]) == ("fresh", 2, 2), api
    assert not (s.dir / "app" / "__pycache__").exists()
    value = ("exec", "-T", "api", "python3", "-c", "import app.settings as m; print(m.VALUE)")
    assert s.compose(*value).stdout.strip() == "v1"
    edit_keeping_stat(s.dir / "app" / "settings.py", "v1", "v2")
    report = s.launched()
    assert actions(report) == {"api": "repaired"}, report["services"]
    (api,) = report["verify"]
    assert api["state"] == "fresh", api
    assert s.compose(*value).stdout.strip() == "v2"
    assert s.cslaunch("verify", "--json").returncode == 0


# --- the whole project bind-mounted over an image built from it ------------------------------

WHOLE = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
        "COPY deps.txt .\n"
        "RUN mkdir -p /opt/deps && cp deps.txt /opt/deps/installed.txt\n"
        "COPY ./compose/start /start\n"
        "RUN sed -i 's/\\r$//g' /start && chmod +x /start\n"
        "COPY . .\n"
    ),
    "deps.txt": "deps-v1\n",
    "compose/start": '#!/bin/sh\necho start-v1 > /tmp/started\nexec "$@"\n',
    "app/__init__.py": "",
    "app/main.py": "VALUE = 'v1'\n",
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app']\n"
        "    entrypoint: [/start]\n"
        "    command: [python3, -c, 'import app.main, time; time.sleep(1e9)']\n"
    ),
}


def test_the_whole_project_mounted_still_rebuilds_for_what_the_build_ran(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`.:/app` over `COPY deps.txt .`, `RUN <install from it>`, `COPY ./compose/start
    /start`, `COPY . .` (cookiecutter-django, flask-redis-queue, redash): the mount shows the
    new code and the new deps.txt, but what the build made of deps.txt and the start script
    the container runs are the image's. Code is restarted, those rebuild."""
    s = make(small, tmp_path, WHOLE)
    s.launched()
    show = ("exec", "-T", "web", "cat", "/opt/deps/installed.txt", "/tmp/started")
    assert s.compose(*show).stdout.split() == ["deps-v1", "start-v1"]
    (s.dir / "app" / "main.py").write_text("VALUE = 'v2'\n")
    assert actions(s.launched()) == {"web": "restart"}
    (s.dir / "deps.txt").write_text("deps-v2\n")
    report = s.launched()
    assert actions(report) == {"web": "rebuild"}, report["services"]
    assert s.compose(*show).stdout.split() == ["deps-v2", "start-v1"]
    (s.dir / "compose" / "start").write_text('#!/bin/sh\necho start-v2 > /tmp/started\nexec "$@"\n')
    assert actions(s.launched()) == {"web": "rebuild"}
    assert s.compose(*show).stdout.split() == ["deps-v2", "start-v2"]
    (s.dir / "README.md").write_text("docs\n")  # copied by `COPY . .`, shown by the mount
    assert actions(s.launched()) == {"web": "leave"}


# --- a one-shot service another waits for (fastapi template's `prestart`) --------------------

ONE_SHOT = {
    "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n",
    "app/__init__.py": "",
    "app/prestart.py": (
        "import time\n\ntime.sleep(3)  # migrations\n"
        "with open('/data/runs', 'a') as f:\n    f.write('run\\n')\n"
    ),
    "app/main.py": (
        "import os, time\n\n"
        "runs = open('/data/runs').read().count('run') if os.path.exists('/data/runs') else 0\n"
        "open('/data/seen', 'w').write(str(runs))\ntime.sleep(1e9)\n"
    ),
    "data/.keep": "",
    "compose.yaml": (
        "x-app: &app\n"
        "  build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "  network_mode: none\n"
        "  volumes: ['./app:/app/app', './data:/data']\n"
        "services:\n"
        "  prestart:\n"
        "    <<: *app\n"
        '    command: [sh, -c, "python3 -m app.prestart"]\n'
        "  backend:\n"
        "    <<: *app\n"
        "    init: true\n"
        "    command: [python3, -m, app.main]\n"
        "    depends_on:\n"
        "      prestart: {condition: service_completed_successfully}\n"
    ),
}


def test_a_one_shot_runs_to_completion_first_and_then_only_when_it_changed(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`prestart` (migrations) with `backend` waiting for it to complete: backend starts
    after it finished, not 1.5 s into it; a launch with nothing changed leaves it (Compose
    would start it again: migrations every launch, never a no-op); an edit runs it again."""
    s = make(small, tmp_path, ONE_SHOT)
    s.launched()
    runs = s.dir / "data" / "runs"
    assert runs.read_text().count("run") == 1
    assert (s.dir / "data" / "seen").read_text() == "1"  # it waited for the migrations
    report = s.launched()
    assert report["up_to_date"] is True, report["services"]
    assert actions(report) == {"prestart": "leave", "backend": "leave"}
    assert runs.read_text().count("run") == 1
    # Something else for `up` to do (backend's environment changed): Compose's `up` would
    # start the completed one-shot again with it.
    compose = (s.dir / "compose.yaml").read_text()
    (s.dir / "compose.yaml").write_text(
        compose.replace("    init: true\n", "    init: true\n    environment: {MODE: b}\n")
    )
    report = s.launched()
    assert actions(report) == {"prestart": "leave", "backend": "recreate"}, report["services"]
    assert runs.read_text().count("run") == 1
    (s.dir / "app" / "prestart.py").write_text(ONE_SHOT["app/prestart.py"] + "# v2\n")
    report = s.launched()
    assert actions(report)["prestart"] == "start", report["services"]
    assert runs.read_text().count("run") == 2


# --- pycs the host's user may not delete (a container running as root wrote them) ---------

ROOT_PYCS = {
    "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /srv\n",
    "app/__init__.py": "",
    "app/settings.py": "VALUE = 'v1'\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['./app:/srv/app']\n"
        "    command: [python3, -c, 'import app.settings, time; time.sleep(1e9)']\n"
    ),
}


def test_a_stale_pyc_the_host_may_not_delete_goes_through_the_container(
    small: list[TestStack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container running as root (the default) writes root-owned __pycache__ into the
    bind-mounted tree; on a Linux host the user running cslaunch may not unlink the pycs in
    it. After an edit that keeps mtime and size the stale pyc stayed, the restarted service
    ran the old code, and no repair could help (exit 8 every launch). Denied here as it is
    to such a user, the pyc is removed through the container, as root, and the new code
    runs with no repair."""
    from cslaunch import launch
    from cslaunch.project import resolve
    from cslaunch.stack import LaunchOptions
    from cslaunch.ui import UI

    s = make(small, tmp_path, ROOT_PYCS)
    s.launched()
    tag = "cpython-311"
    pyc = s.dir / "app" / "__pycache__" / f"settings.{tag}.pyc"
    assert pyc.is_file()
    edit_keeping_stat(s.dir / "app" / "settings.py", "v1", "v2")
    real_unlink = os.unlink

    def denied(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".pyc") and str(s.dir) in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", denied)
    monkeypatch.chdir(s.dir)
    report = launch.launch(resolve(cwd=s.dir), LaunchOptions(), UI(json_mode=True, quiet=True))
    monkeypatch.undo()
    assert report.ok, report.error
    assert not report.repaired
    assert report.bytecode is not None and report.bytecode.skipped == []
    assert str(pyc) in {str(p) for p in report.bytecode.removed}
    show = "import app.settings as m; print(m.VALUE)"
    assert s.compose("exec", "-T", "api", "python3", "-c", show).stdout.strip() == "v2"


# --- an image's new packages under an anonymous volume inside the mount ----------------------

DEPS = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
        "COPY requirements.txt .\n"
        "RUN python3 -m venv --without-pip /app/.venv && cp requirements.txt /app/.venv/INSTALLED\n"
        "COPY . .\n"
    ),
    "requirements.txt": "dep==1\n",
    "app/__init__.py": "",
    "app/main.py": "import time\n\ntime.sleep(1e9)\n",
    "compose.yaml": (
        "services:\n"
        "  api:\n"
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app', '/app/.venv']\n"
        "    command: [/app/.venv/bin/python, -m, app.main]\n"
    ),
}


def test_a_rebuilt_image_shows_its_new_packages_under_the_anonymous_volume(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`.:/app` beside `/app/.venv` (the uv/poetry in-project venv; `/app/node_modules` for
    node): Compose gives the recreated container the old one's anonymous volume, so the
    rebuilt image's packages stayed hidden behind the old ones. Each anonymous volume of the
    service lies inside its mount: it is renewed."""
    s = make(small, tmp_path, DEPS)
    s.launched()
    show = ("exec", "-T", "api", "cat", "/app/.venv/INSTALLED")
    assert s.compose(*show).stdout.strip() == "dep==1"
    (s.dir / "requirements.txt").write_text("dep==2\n")
    report = s.launched()
    assert actions(report) == {"api": "rebuild"}, report["services"]
    assert s.compose(*show).stdout.strip() == "dep==2"


# --- a dev server's sources under its own mount (Vite, webpack --watch) ----------------------

DEV_SERVER = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
        "COPY package.json /app/\n"
        "RUN mkdir -p /app/node_modules && cp package.json /app/node_modules/INSTALLED\n"
        "COPY ./ /app/\n"
        "RUN cat src/page.txt > /tmp/built\n"
    ),
    "package.json": '{"dependencies": {"vue": "3.4"}}\n',
    "src/page.txt": "page v1\n",
    # A stand-in for a dev server that serves what it watches (`vite`, `npm run dev`).
    "devserver.sh": "while true; do cat /app/src/page.txt > /tmp/served; sleep 0.2; done\n",
    "compose.yaml": (
        "services:\n"
        "  frontend:\n"
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app', '/app/node_modules']\n"
        "    command: [sh, /app/devserver.sh, --watch]\n"
    ),
}


def test_a_dev_server_serves_its_mounted_sources_and_rebuilds_for_its_manifest(
    small: list[TestStack], tmp_path: Path
) -> None:
    """A frontend dev server (a stand-in for `npm run dev`) over `./:/app` beside
    `/app/node_modules`: a source save is the mount's and its watcher's, no rebuild (it was
    one per save); a package.json change rebuilds, with a fresh node_modules."""
    s = make(small, tmp_path, DEV_SERVER)
    s.launched()
    (s.dir / "src" / "page.txt").write_text("page v2\n")
    report = s.launched()
    assert actions(report) == {"frontend": "leave"}, report["services"]
    served = ("exec", "-T", "frontend", "cat", "/tmp/served")
    assert s.compose(*served).stdout.strip() == "page v2"
    (s.dir / "package.json").write_text('{"dependencies": {"vue": "3.5"}}\n')
    report = s.launched()
    assert actions(report) == {"frontend": "rebuild"}, report["services"]
    installed = ("exec", "-T", "frontend", "cat", "/app/node_modules/INSTALLED")
    assert "3.5" in s.compose(*installed).stdout
    # Run once at start instead (`node server.js`): the image is what it runs.
    compose = (s.dir / "compose.yaml").read_text()
    (s.dir / "compose.yaml").write_text(compose.replace(", --watch]", "]"))
    s.launched()
    (s.dir / "src" / "page.txt").write_text("page v3\n")
    assert actions(s.launched()) == {"frontend": "rebuild"}


# --- a service that installs its dependencies as it starts -----------------------------------

INSTALLS = {
    "package.json": '{"dependencies": {"vue": "3.4"}}\n',
    "src/App.vue": "<template>v1</template>\n",
    "compose.yaml": (
        "services:\n"
        "  node:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app']\n"
        # npm is not in the test image: the copy stands in for what `npm install` writes.
        '    command: [sh, -c, "npm install 2>/dev/null; cp /app/package.json /tmp/installed;'
        ' exec sleep 1e9"]\n'
    ),
}


def test_a_service_that_installs_as_it_starts_restarts_for_its_manifest(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`sh -c "npm install && npm run dev"` from a stock image (superset-node's shape): a
    package.json change is installed only at the next start. It restarts; a source save,
    its watcher's, does not."""
    s = make(small, tmp_path, INSTALLS)
    s.launched()
    (s.dir / "src" / "App.vue").write_text("<template>v2</template>\n")
    assert actions(s.launched()) == {"node": "leave"}
    (s.dir / "package.json").write_text('{"dependencies": {"vue": "3.5"}}\n')
    assert actions(s.launched()) == {"node": "restart"}
    assert "3.5" in s.compose("exec", "-T", "node", "cat", "/tmp/installed").stdout


# --- nginx's configuration mounted as a directory ---------------------------------------------

NGINX_CONF = {
    "conf.d/default.conf": "server { listen 8089; location / { return 200 'v1'; } }\n",
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    image: ${BASE_IMAGE}\n"
        "    network_mode: none\n"
        "    volumes: ['./conf.d:/etc/nginx/conf.d:ro']\n"
        "    command: [nginx, -g, 'daemon off;']\n"
    ),
}


# nginx given its own configuration file where it is mounted (`-c`)
NGINX_OWN_CONF = {
    "conf.d/default.conf": (
        "events {}\nhttp { server { listen 8089; location / { return 200 'v1'; } } }\n"
    ),
    "compose.yaml": NGINX_CONF["compose.yaml"]
    .replace("/etc/nginx/conf.d:ro", "/config:ro")
    .replace("[nginx, -g,", "[nginx, -c, /config/default.conf, -g,"),
}


@pytest.mark.parametrize("files", [NGINX_CONF, NGINX_OWN_CONF], ids=["conf.d", "own-path"])
def test_an_nginx_config_directory_change_restarts_nginx(
    small: list[TestStack], tmp_path: Path, files: dict[str, str]
) -> None:
    """`./nginx/conf.d:/etc/nginx/conf.d` (the usual shape, where a single file mount would
    miss an editor's rename), or a directory its `-c` names: nginx reads it at start, so a
    change there restarts it; it was not even tracked."""
    s = make(small, tmp_path, files)
    s.launched()
    get = ("exec", "-T", "web", "curl", "-s", "http://127.0.0.1:8089/")
    assert s.compose(*get).stdout == "v1"
    conf = s.dir / "conf.d" / "default.conf"
    conf.write_text(conf.read_text().replace("'v1'", "'v2'"))
    assert actions(s.launched()) == {"web": "restart"}
    assert s.compose(*get).stdout == "v2"


# --- one image built by one service, run by others (`image: app` with no `build:`) ----------

SHARED_IMAGE = {
    "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\nCOPY app /app/app\n",
    "app/__init__.py": "",
    "app/tasks.py": "VERSION = 'v1'\n",
    "app/migrate.py": (
        "from app import tasks\n\nwith open('/data/migrated', 'a') as f:\n"
        "    f.write(tasks.VERSION + '\\n')\n"
    ),
    "data/.keep": "",
    "compose.yaml": (
        "x-run: &run\n"
        "  image: '${SHARED_IMAGE}'\n"
        "  network_mode: none\n"
        "  init: true\n"
        "services:\n"
        "  web:\n"
        "    <<: *run\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    command: [python3, -c, 'import app.tasks, time; time.sleep(1e9)']\n"
        "    depends_on:\n"
        "      migrate: {condition: service_completed_successfully}\n"
        "  worker:\n"
        "    <<: *run\n"
        "    command: [sh, -c, 'python3 -c \"import app.tasks, time; time.sleep(1e9)\"']\n"
        "  migrate:\n"
        "    <<: *run\n"
        "    volumes: ['./data:/data']\n"
        "    command: [python3, -m, app.migrate]\n"
    ),
}


def test_services_running_an_image_another_builds_follow_its_rebuild(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`web` builds the image; `worker` and the one-shot `migrate` run it with no `build:`
    of their own (a common shape: one image, several commands). A changed baked file
    rebuilt web's image, while the worker was left running the old one and the migration
    was never run on the new code."""
    s = make(small, tmp_path, SHARED_IMAGE)
    s.set_env({"SHARED_IMAGE": f"{s.name}-app:latest"})
    s.launched()
    migrated = s.dir / "data" / "migrated"
    assert migrated.read_text().split() == ["v1"]
    assert actions(s.launched()) == {"web": "leave", "worker": "leave", "migrate": "leave"}
    (s.dir / "app" / "tasks.py").write_text("VERSION = 'v2'\n")
    report = s.launched()
    assert actions(report) == {"web": "rebuild", "worker": "recreate", "migrate": "start"}, report[
        "services"
    ]
    assert migrated.read_text().split() == ["v1", "v2"]
    image = s.inspect("web")["Image"]
    assert s.inspect("worker")["Image"] == image
    states = {v["name"]: v["state"] for v in report["verify"]}
    assert states == {"web": "fresh", "worker": "fresh", "migrate": "skipped"}, report["verify"]


# --- `docker init`'s Dockerfile: the requirements bind-mounted into the RUN that installs ----

RUN_MOUNT = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
        "RUN --mount=type=bind,source=requirements.txt,target=requirements.txt \\\n"
        "    cp requirements.txt /installed.txt\n"
        "COPY . .\n"
    ),
    "requirements.txt": "flask==3.0\n",
    "app/__init__.py": "",
    "app/main.py": "import time\n\ntime.sleep(1e9)\n",
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    volumes: ['.:/app']\n"
        "    command: [python3, -m, app.main]\n"
    ),
}


def test_a_list_a_build_step_mounted_rebuilds_under_the_whole_project_mount(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`RUN --mount=type=bind,source=requirements.txt ... pip install` then `COPY . .`, the
    project mounted at /app: a changed requirements.txt was hidden behind the mount (the
    Dockerfile was not followed at all), and the image kept the old packages."""
    s = make(small, tmp_path, RUN_MOUNT)
    s.launched()
    show = ("exec", "-T", "web", "cat", "/installed.txt")
    assert s.compose(*show).stdout == "flask==3.0\n"
    (s.dir / "app" / "main.py").write_text(RUN_MOUNT["app/main.py"] + "# edited\n")
    assert actions(s.launched()) == {"web": "restart"}
    (s.dir / "requirements.txt").write_text("flask==3.1\n")
    assert actions(s.launched()) == {"web": "rebuild"}
    assert s.compose(*show).stdout == "flask==3.1\n"


# --- django-rq's shape: `manage.py rqworker`, Redis named only in the app's settings --------

SETTINGS_REDIS = {
    "settings.py": (
        "RQ_QUEUES = {'default': {'HOST': 'redis', 'PORT': 6379, 'DB': 0, 'PASSWORD': 's3cr3t'}}\n"
    ),
    "manage.py": (
        '"""Stands in for Django\'s manage.py with django-rq: `rqworker QUEUES`."""\n'
        "import sys\n\nfrom redis import Redis\nfrom rq import Queue, Worker\n\n"
        "import settings\n\n\n"
        "def conn():\n    q = settings.RQ_QUEUES['default']\n"
        "    return Redis(host=q['HOST'], port=q['PORT'], db=q['DB'], password=q['PASSWORD'])\n\n\n"
        "if sys.argv[1] == 'rqworker':\n"
        "    queues = [Queue(n, connection=conn()) for n in sys.argv[2:]]\n"
        "    Worker(queues, connection=conn()).work()\n"
        "elif sys.argv[1] == 'enqueue':\n"
        "    print(Queue(connection=conn()).enqueue('tasks.slow', 30).id)\n"
        "else:\n"
        "    job = Queue(connection=conn()).fetch_job(sys.argv[2])\n"
        "    print(getattr(job.get_status(), 'value', job.get_status()), job.result)\n"
    ),
    "tasks.py": "import time\n\nVERSION = 'v1'\n\n\ndef slow(seconds):\n"
    "    time.sleep(seconds)\n    return VERSION\n",
    "compose.yaml": (
        "services:\n"
        "  redis:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    command: redis-server --save '' --appendonly no --requirepass s3cr3t\n"
        "  rqworker:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    working_dir: /app\n"
        "    volumes: ['.:/app']\n"
        "    command: python3 manage.py rqworker default\n"
        "    stop_grace_period: 1s\n"
        "    depends_on: [redis]\n"
    ),
}


# The same, its packages in a venv the command names by path (netbox's
# `/opt/netbox/venv/bin/python manage.py rqworker`), not on PATH
VENV_PYTHON = "/opt/venv/bin/python"
IN_A_VENV = {
    **SETTINGS_REDIS,
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        "RUN python3 -m venv --without-pip /opt/venv \\\n"
        "    && site=$(python3 -c 'import os, rq; print(os.path.dirname(os.path.dirname("
        "rq.__file__)))') \\\n"
        "    && mv $site/* /opt/venv/lib/python3*/site-packages/ \\\n"
        "    && ! python3 -c 'import rq'\n"
    ),
    "compose.yaml": SETTINGS_REDIS["compose.yaml"]
    .replace(
        "    image: '${BASE_IMAGE}'\n    working_dir: /app\n",
        "    build: {context: ., network: host, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    working_dir: /app\n",
    )
    .replace("command: python3 manage.py", f"command: {VENV_PYTHON} manage.py"),
}


@pytest.mark.parametrize(
    ("files", "python"),
    [(SETTINGS_REDIS, "python3"), (IN_A_VENV, VENV_PYTHON)],
    ids=["settings", "venv"],
)
def test_a_worker_whose_redis_only_its_settings_name_keeps_its_job(
    small: list[TestStack], tmp_path: Path, files: dict[str, str], python: str
) -> None:
    """The worker's Redis is in the app's settings (django-rq's RQ_QUEUES), not in its
    environment: Redis was asked at localhost, the busy worker was not known to be busy, and
    the job its restart cut short stayed "started" forever. The stack's Redis service, by
    name and with the password its command sets, is asked instead; with the interpreter
    the worker runs, where rq is only in its venv."""
    s = make(small, tmp_path, files)
    s.launched()
    manage = ("exec", "-T", "rqworker", python, "manage.py")
    job = s.compose(*manage, "enqueue").stdout.strip()
    deadline = time.monotonic() + 30
    while not s.compose(*manage, "status", job).stdout.startswith("started"):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    (s.dir / "tasks.py").write_text(SETTINGS_REDIS["tasks.py"].replace("v1", "v2"))
    report = s.launched()
    assert {j["id"]: j["action"] for j in report["jobs"]["jobs"]} == {job: "requeue"}
    deadline = time.monotonic() + 60
    while (status := s.compose(*manage, "status", job).stdout.split()) != ["finished", "v2"]:
        assert status[0] in ("queued", "started"), status  # never lost
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


# --- a healthcheck with a `$` left to the container's shell (`$${REDIS_PASSWORD}`) ----------

DOLLAR_HEALTH = {
    "compose.yaml": (
        "services:\n"
        "  db:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {MARK: ok}\n"
        "    healthcheck:\n"
        "      test: [CMD-SHELL, 'test \"$${MARK}\" = ok']\n"
        "      interval: 60s\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    depends_on: {db: {condition: service_healthy}}\n"
    ),
}


def test_a_healthcheck_with_an_escaped_dollar_passes_when_the_app_does(
    small: list[TestStack], tmp_path: Path
) -> None:
    """Compose's model keeps `$$` escaped; run as it stood, the check tested the shell's
    PID and failed until Docker's own first check, one 60 s interval later."""
    s = make(small, tmp_path, DOLLAR_HEALTH)
    report = s.launched()
    assert sum(step["seconds"] for step in report["steps"]) < 30, report["steps"]


# --- a service switched off with `deploy.replicas: 0` (`${WORKER_REPLICAS:-2}` set to 0) -----

ZERO_REPLICAS = {
    "app.py": "import time\n\ntime.sleep(1e9)\n",
    "compose.yaml": (
        "x-app: &app\n"
        "  image: '${BASE_IMAGE}'\n"
        "  network_mode: none\n"
        "  init: true\n"
        "  working_dir: /app\n"
        "  volumes: ['.:/app']\n"
        "  command: [python3, app.py]\n"
        "services:\n"
        "  web:\n"
        "    <<: *app\n"
        "  worker:\n"
        "    <<: *app\n"
        "    deploy: {replicas: '${WORKER_REPLICAS:-2}'}\n"
    ),
}


def test_a_service_scaled_to_zero_is_left_off(small: list[TestStack], tmp_path: Path) -> None:
    """It has no container: the wait for one timed out (120 s), every launch."""
    s = make(small, tmp_path, ZERO_REPLICAS, env={"WORKER_REPLICAS": "0"})
    report = s.launched("--timeout", "20")
    assert actions(report)["worker"] == "leave", report["services"]
    assert s.compose("ps", "-q", "worker").stdout.strip() == ""
    report = s.launched("--timeout", "20")
    assert report["up_to_date"] is True, report["services"]


# --- a file given as a Compose `configs:` entry -----------------------------------------------

CONFIG_FILE = {
    "settings.ini": "mode = one\n",
    "compose.yaml": (
        "services:\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sh, -c, 'cp /etc/app.ini /tmp/seen && exec sleep infinity']\n"
        "    configs: [{source: app_ini, target: /etc/app.ini}]\n"
        "configs:\n"
        "  app_ini: {file: ./settings.ini}\n"
    ),
}


def test_a_changed_config_file_restarts_what_reads_it(
    small: list[TestStack], tmp_path: Path
) -> None:
    """Compose mounts a `configs:` file like a bind: it was not tracked at all ("up to
    date") while the service kept the settings it read at start."""
    s = make(small, tmp_path, CONFIG_FILE)
    s.launched()
    (s.dir / "settings.ini").write_text("mode = two\n")
    assert actions(s.launched()) == {"app": "restart"}
    assert s.compose("exec", "-T", "app", "cat", "/tmp/seen").stdout == "mode = two\n"


# --- what restarts with another: its network's owner, `depends_on: {restart: true}` --------

RESTARTS_WITH = {
    "web/greet.py": "TEXT = 'one'\n",
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    init: true\n"
        "    working_dir: /app\n"
        "    volumes: ['./web:/app']\n"
        "    command: [python3, -c, 'import greet, time; time.sleep(1e9)']\n"
        "  side:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    init: true\n"
        "    network_mode: 'service:web'\n"
        "    command: [sleep, infinity]\n"
        "  db:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {MODE: '${DB_MODE:-a}'}\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    depends_on: {db: {condition: service_started, restart: true}}\n"
    ),
}


def test_a_service_restarts_with_the_one_whose_network_it_shares_or_it_says_so(
    small: list[TestStack], tmp_path: Path
) -> None:
    """A sidecar in web's network namespace (`network_mode: service:web`, dev containers)
    kept only its loopback once web restarted, and was reported ready; `app` with
    `depends_on: {db: {restart: true}}` (Compose's documented example) was left running
    when db was recreated."""
    s = make(small, tmp_path, RESTARTS_WITH)
    s.launched()
    (s.dir / "web" / "greet.py").write_text("TEXT = 'two'\n")
    report = s.launched()
    assert actions(report)["side"] == "restart", report["services"]
    interfaces = s.compose("exec", "-T", "side", "ls", "/sys/class/net").stdout.split()
    assert interfaces != ["lo"], interfaces
    app_started = s.started_at("app")
    s.set_env({"DB_MODE": "b"})
    report = s.launched()
    assert actions(report)["db"] == "recreate", report["services"]
    assert actions(report)["app"] in ("restart", "recreated"), report["services"]
    assert s.started_at("app") != app_started


# --- a module that is a link (`local_settings.py -> local_settings.py.dev`) ------------------

LINKED_MODULE = {
    "app/local_settings.py.dev": "MODE = 'one'\n",
    "compose.yaml": (
        "services:\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    working_dir: /app\n"
        "    volumes: ['./app:/app']\n"
        '    command: [python3, -c, "import local_settings as s, time; '
        "open('/tmp/seen', 'w').write(s.MODE); time.sleep(1e9)\"]\n"
    ),
}


def test_a_module_that_is_a_link_is_tracked_by_what_it_points_to(
    small: list[TestStack], tmp_path: Path
) -> None:
    """Django's `ln -s local_settings.py.dev local_settings.py`: the link was tracked by its
    target's name, so an edit of the target was "up to date" and proven fresh while the
    old settings ran; an edit keeping mtime and size left a stale pyc trusted."""
    s = make(small, tmp_path, LINKED_MODULE)
    (s.dir / "app" / "local_settings.py").symlink_to("local_settings.py.dev")
    # One that leaves the mount dangles in the container: nothing there to prove (exit 8
    # every launch, when the host's content was looked for)
    (s.dir / "config").mkdir()
    (s.dir / "config" / "extra.py").write_text("EXTRA = 1\n")
    (s.dir / "app" / "extra.py").symlink_to("../config/extra.py")
    s.launched()
    seen = ("exec", "-T", "app", "cat", "/tmp/seen")
    assert s.compose(*seen).stdout == "one"
    (s.dir / "app" / "local_settings.py.dev").write_text("MODE = 'two'\n")
    assert actions(s.launched()) == {"app": "restart"}
    assert s.compose(*seen).stdout == "two"
    edit_keeping_stat(s.dir / "app" / "local_settings.py.dev", "two", "six")
    report = s.launched()
    assert actions(report) == {"app": "restart"}, report["services"]
    assert s.compose(*seen).stdout == "six"
    assert {v["name"]: v["state"] for v in report["verify"]} == {"app": "fresh"}


# --- an allowlist .dockerignore (`*`, then `!app`) -------------------------------------------

ALLOWLIST = {
    ".dockerignore": "*\n!app\n",
    "Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /srv\nCOPY . .\n",
    "app/__init__.py": "",
    "app/m.py": "VALUE = 1\n",
    "tools/gen.py": "print('generates something')\n",
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [python3, -c, 'import app.m, time; time.sleep(1e9)']\n"
    ),
}


def test_an_allowlist_dockerignore_is_read_as_docker_reads_it(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`*` then `!app`: read as a .gitignore, `*` left tools/gen.py in the context, so the
    proof looked for it in the image (exit 8 every launch) and an edit there rebuilt."""
    s = make(small, tmp_path, ALLOWLIST)
    report = s.launched()
    assert {v["name"]: v["state"] for v in report["verify"]} == {"web": "fresh"}
    (s.dir / "tools" / "gen.py").write_text("print('generates more')\n")
    assert actions(s.launched()) == {"web": "leave"}
    (s.dir / "app" / "m.py").write_text("VALUE = 2\n")
    assert actions(s.launched()) == {"web": "rebuild"}


# --- jobs nothing waits for (frappe's `create-site`, a migration behind a plain depends_on) --

BOOTSTRAP_JOBS = {
    "sql/V1__init.sql": "create table t (a int);\n",
    "data/.keep": "",
    "sites/.keep": "",
    "compose.yaml": (
        "x-job: &job\n"
        "  image: '${BASE_IMAGE}'\n"
        "  network_mode: none\n"
        "services:\n"
        "  create-site:\n"
        "    <<: *job\n"
        "    volumes: ['./sites:/sites']\n"
        "    command: [sh, -c, 'test ! -e /sites/site && echo made > /sites/site']\n"
        "  migrate:\n"
        "    <<: *job\n"
        "    volumes: ['./data:/data', './sql:/sql']\n"
        "    command: [sh, -c, 'ls /sql >> /data/applied']\n"
        "  web:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    depends_on: [migrate]\n"
    ),
}


def test_a_job_nothing_waits_for_is_left_done_until_what_it_reads_changes(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`create-site` fails once its site exists, and nothing waits for it to complete:
    started again on every launch, it failed every launch after the first. Jobs that finished
    of their own are now left done while their config and the files their mounts show (what
    they wrote themselves aside) are as they ran with."""
    s = make(small, tmp_path, BOOTSTRAP_JOBS)
    s.launched()
    applied = s.dir / "data" / "applied"
    assert applied.read_text().split() == ["V1__init.sql"]
    report = s.launched()
    assert report["up_to_date"] is True, report["services"]
    assert actions(s.launched()) == {"create-site": "leave", "migrate": "leave", "web": "leave"}
    (s.dir / "sql" / "V2__more.sql").write_text("alter table t add b int;\n")
    report = s.launched()
    assert actions(report)["migrate"] == "start", report["services"]
    assert actions(report)["create-site"] == "leave", report["services"]
    assert applied.read_text().split()[-2:] == ["V1__init.sql", "V2__more.sql"]


# --- an image built FROM another the stack builds (`FROM app:latest`) ------------------------

FROM_SIBLING = {
    "api/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /app\nCOPY . /app/\n",
    "api/tasks.py": "VERSION = 'v1'\n",
    "compose.yaml": (
        "x-run: &run\n"
        "  network_mode: none\n"
        "  init: true\n"
        "  command: [python3, -c, 'import tasks, time; time.sleep(1e9)']\n"
        "services:\n"
        "  api:\n"
        "    <<: *run\n"
        "    image: '${APP_IMAGE}'\n"
        "    build: {context: ./api, args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "  worker:\n"
        "    <<: *run\n"
        "    build: {context: ./worker}\n"
        "    working_dir: /app\n"
    ),
}


def test_an_image_built_from_another_the_stack_builds_is_rebuilt_after_it(
    small: list[TestStack], tmp_path: Path
) -> None:
    """ytdigest's `ops/Dockerfile.whisper` is `FROM ytdigest-backend:latest`, which another
    service builds: after an edit the backend was rebuilt, the worker kept the old base."""
    s = make(small, tmp_path, FROM_SIBLING)
    image = f"{s.name}-app:latest"
    s.set_env({"APP_IMAGE": image})
    (s.dir / "worker").mkdir()
    (s.dir / "worker" / "Dockerfile").write_text(f"FROM {image}\nENV ROLE=worker\n")
    s.launched()
    (s.dir / "api" / "tasks.py").write_text("VERSION = 'v2'\n")
    report = s.launched()
    assert actions(report) == {"api": "rebuild", "worker": "rebuild"}, report["services"]
    shown = s.compose("exec", "-T", "worker", "cat", "/app/tasks.py").stdout
    assert shown == "VERSION = 'v2'\n"


# --- a HEALTHCHECK in the Dockerfile, which the Compose model does not show ------------------

IMAGE_HEALTH = {
    "Dockerfile": (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nHEALTHCHECK --interval=60s CMD test -e /tmp/up\n"
    ),
    "compose.yaml": (
        "services:\n"
        "  db:\n"
        "    build: {context: ., args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sh, -c, 'touch /tmp/up && exec sleep infinity']\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    depends_on: {db: {condition: service_healthy}}\n"
    ),
}


def test_an_images_own_healthcheck_is_run_when_the_app_is_up(
    small: list[TestStack], tmp_path: Path
) -> None:
    """A Dockerfile's HEALTHCHECK (60 s interval) with a service waiting for it to pass:
    cslaunch ran only the Compose file's checks, so the start waited one whole interval."""
    s = make(small, tmp_path, IMAGE_HEALTH)
    report = s.launched()
    assert sum(step["seconds"] for step in report["steps"]) < 30, report["steps"]


# --- nginx started by a script named for it (frappe's `nginx-entrypoint.sh`) -----------------

NGINX_SCRIPT = {
    "nginx-entrypoint.sh": (
        "#!/bin/sh\n"
        "echo 'server { listen 8089; location / { return 200 ok; } }' "
        "> /etc/nginx/conf.d/default.conf\n"
        "nginx -g 'daemon off;'\n"
    ),
    "compose.yaml": (
        "services:\n"
        "  backend:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {APP_ENV: '${APP_ENV:-a}'}\n"
        "  frontend:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    command: [nginx-entrypoint.sh]\n"
        "    volumes: ['./nginx-entrypoint.sh:/usr/local/bin/nginx-entrypoint.sh:ro']\n"
    ),
}


def test_an_nginx_started_by_its_script_is_reloaded(small: list[TestStack], tmp_path: Path) -> None:
    """It was not known for an nginx: a recreated backend's new address (Docker keeps none)
    was never resolved, and the proxy answered from whichever container took the old one."""
    s = make(small, tmp_path, NGINX_SCRIPT)
    (s.dir / "nginx-entrypoint.sh").chmod(0o755)
    s.launched()
    s.set_env({"APP_ENV": "b"})
    report = s.launched()
    assert actions(report)["backend"] == "recreate", report["services"]
    assert any(step["name"] == "reload proxies" for step in report["steps"]), report["steps"]


# --- Redis listening where its config file says, or on a unix socket only --------------------

REDIS_ELSEWHERE = {
    "redis.conf": '# as shipped, trimmed\nport 6380\nsave ""\nappendonly no\n',
    "compose.yaml": (
        "services:\n"
        "  cache:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    command: [redis-server, /usr/local/etc/redis/redis.conf]\n"
        "    volumes: ['./redis.conf:/usr/local/etc/redis/redis.conf:ro']\n"
        "  queue:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    command: [redis-server, --port, '0', --unixsocket, /tmp/redis.sock]\n"
    ),
}


def test_redis_is_ready_where_it_listens(small: list[TestStack], tmp_path: Path) -> None:
    """PING went to 127.0.0.1:6379 (and to port 0) whatever redis.conf or the command said:
    neither was ever ready, and every launch failed at the time limit."""
    s = make(small, tmp_path, REDIS_ELSEWHERE)
    s.launched("--timeout", "20")


# --- an RQ worker beside a server in one container ------------------------------------------

WORKER_AND_SERVER = {
    "app/web.py": (
        "import http.server, time\n\ntime.sleep(6)  # the server's start-up\n"
        "http.server.HTTPServer(('127.0.0.1', 5000), http.server.SimpleHTTPRequestHandler)"
        ".serve_forever()\n"
    ),
    "compose.yaml": (
        "services:\n"
        "  redis:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    command: redis-server --save '' --protected-mode no\n"
        "  app:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    working_dir: /app\n"
        "    volumes: ['./app:/app']\n"
        "    command: sh -c 'rq worker --url redis://redis:6379/0 default & exec python3 web.py'\n"
        "    healthcheck:\n"
        '      test: [CMD, python3, -c, "import urllib.request; '
        "urllib.request.urlopen('http://127.0.0.1:5000')\"]\n"
        "      interval: 30s\n"
    ),
}


def test_a_worker_beside_a_server_is_ready_when_both_are(
    small: list[TestStack], tmp_path: Path
) -> None:
    """The worker's registration stood in for the service's healthcheck: ready as the worker
    registered, while the server was still starting."""
    s = make(small, tmp_path, WORKER_AND_SERVER)
    s.launched()
    probe = ("exec", "-T", "app", "python3", "-c",
             "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000')")  # fmt: skip
    assert s.compose(*probe, check=False).returncode == 0


# --- the Compose file in a subdirectory of the repository (`docker/compose.yaml`) ------------

IN_A_SUBDIRECTORY = {
    ".git/HEAD": "ref: refs/heads/main\n",
    "app/settings.py": "VALUE = 'one'\n",
    "docker/compose.yaml": (
        "services:\n"
        "  api:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    working_dir: /app\n"
        "    volumes: ['../app:/app']\n"
        "    command: [python3, -c, 'import settings, time; time.sleep(1e9)']\n"
    ),
}


def test_code_mounted_from_beside_the_compose_files_directory_is_cleaned(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`../app` is outside the Compose file's directory but inside its repository: its
    stale pycs were left to the repair pass, with a warning, every launch."""
    s = make(small, tmp_path, IN_A_SUBDIRECTORY)
    shutil.copy(s.dir / ".env", s.dir / "docker" / ".env")
    launch = ("--json", "-f", "docker/compose.yaml")
    assert s.cslaunch(*launch).returncode == 0
    edit_keeping_stat(s.dir / "app" / "settings.py", "one", "two")
    result = s.cslaunch(*launch)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert actions(report) == {"api": "restart"}, report["services"]  # not "repaired"
    assert "not cleaning" not in result.stdout + result.stderr


SEED_JOB = {
    "data/.keep": "",
    "compose.yaml": (
        "services:\n"
        "  store:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    init: true\n"
        "    command: [sleep, infinity]\n"
        "    environment: {MODE: '${MODE:-a}'}\n"
        "  seed:\n"
        "    image: '${BASE_IMAGE}'\n"
        "    network_mode: none\n"
        "    volumes: ['./data:/data']\n"
        "    command: [sh, -c, 'echo seeded >> /data/seeded']\n"
        "    depends_on: [store]\n"
    ),
}


def test_a_completed_job_runs_again_when_what_it_sets_up_is_new(
    small: list[TestStack], tmp_path: Path
) -> None:
    """`createbuckets` after MinIO: left done while MinIO runs on, run again for a new
    MinIO container (whose buckets, without a data volume, are gone)."""
    s = make(small, tmp_path, SEED_JOB)
    s.launched()
    assert actions(s.launched()) == {"store": "leave", "seed": "leave"}
    s.set_env({"MODE": "b"})
    assert actions(s.launched()) == {"store": "recreate", "seed": "start"}
    assert (s.dir / "data" / "seeded").read_text().split() == ["seeded", "seeded"]
