"""plan.make_plan as a pure function: the model, hand-made container state, the changed files
and the flags in; a plan out."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cslaunch.containers import Container
from cslaunch.model import Service, Stack, parse_service
from cslaunch.plan import LEAVE, REBUILD, RECREATE, RESTART, START, Flags, Plan, make_plan
from cslaunch.track import ServiceFiles, service_files
from cslaunch.track import trees as track_trees

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
APP = {"context": "/p/backend", "dockerfile": "Dockerfile"}
PYTHON = {"backend", "worker1", "worker2"}
BACKEND_DOCKERFILE = (
    "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\n"
    "RUN pip install -r requirements.txt\nCOPY src/ /app/src/\n"
)
FRONTEND_DOCKERFILE = "FROM python:3.12-slim\nCOPY build.py ./\nCOPY src/ ./src/\n"
DEFAULT_FLAGS = Flags()
ALL = ["backend", "frontend", "redis", "worker1", "worker2"]


def container(service: str, status: str = "running", n: int = 1) -> Container:
    return Container(
        id=f"{service}-{n}-{status}",
        name=f"proj-{service}-{n}",
        service=service,
        status=status,
        health=None,
        health_output="",
        exit_code=0 if status == "running" else 1,
        restart_count=0,
        started_at=T0,
        created=T0,
        image_id="sha256:abc",
        pid=100 + n if status == "running" else 0,
    )


def service(name: str, **fields: Any) -> Service:
    return parse_service(name, fields)


def example_stack() -> Stack:
    """Shaped like examples/: a backend and two workers sharing one image with ./backend/src
    bind-mounted, a frontend whose image bakes its bundle in, and Redis."""
    mount = [{"type": "bind", "source": "/p/backend/src", "target": "/app/src"}]
    app: dict[str, Any] = {"image": "proj-app", "build": APP, "volumes": mount}
    services = [
        service("backend", **app, command=["python3", "-m", "app"]),
        service("worker1", **app, command=["rq", "worker"]),
        service("worker2", **app, command=["rq", "worker"]),
        service("frontend", build={"context": "/p/frontend"}, command=["nginx"]),
        service("redis", image="redis:7", command=["redis-server"]),
    ]
    return Stack("proj", {s.name: s for s in services})


def example_files() -> dict[str, ServiceFiles]:
    def app(name: str) -> ServiceFiles:
        return service_files(
            name,
            runs_code=True,
            bind_dirs=["/p/backend/src"],
            bind_files=[],
            context="/p/backend",
            dockerfile="/p/backend/Dockerfile",
            dockerfile_text=BACKEND_DOCKERFILE,
            dockerignore_text=None,
        )

    frontend = service_files(
        "frontend",
        runs_code=False,
        bind_dirs=[],
        bind_files=[],
        context="/p/frontend",
        dockerfile="/p/frontend/Dockerfile",
        dockerfile_text=FRONTEND_DOCKERFILE,
        dockerignore_text=None,
    )
    return {"backend": app("backend"), "worker1": app("worker1"), "worker2": app("worker2"),
            "frontend": frontend}  # fmt: skip


def running(stack: Stack | None = None, **overrides: list[Container]) -> dict[str, list[Container]]:
    state = {name: [container(name)] for name in (stack or example_stack()).services}
    state.update(overrides)
    return state


def plan_for(
    containers: Mapping[str, Sequence[Container]],
    *,
    changed: Collection[str] | None = None,
    config_changed: Mapping[str, Collection[str]] | None = None,
    images_missing: Collection[str] = (),
    flags: Flags = DEFAULT_FLAGS,
    stack: Stack | None = None,
    held: Collection[str] = (),
) -> Plan:
    return make_plan(
        stack or example_stack(),
        containers,
        lambda s: s.name in PYTHON,
        example_files(),
        changed,
        config_changed,
        images_missing,
        flags,
        held,
    )


def actions(plan: Plan) -> dict[str, tuple[str, bool]]:
    return {p.service: (p.action, p.build) for p in plan.services}


def reasons(plan: Plan) -> dict[str, str]:
    return {p.service: p.reason for p in plan.services}


# --- first launch (no change index) --------------------------------------------------------


def test_stopped_stack_starts_everything() -> None:
    plan = plan_for({})
    assert not plan.running
    assert plan.first
    assert plan.with_action(START) == ALL
    assert actions(plan)["redis"] == (START, False)
    assert all(p.reason.startswith("not running") for p in plan.services)


def test_exited_containers_are_not_running() -> None:
    plan = plan_for({name: [container(name, "exited")] for name in ALL})
    assert not plan.running
    assert plan.with_action(START) == ALL


def test_running_stack_first_launch_rebuilds_buildable_and_leaves_redis() -> None:
    plan = plan_for(running())
    assert plan.running
    assert actions(plan) == {
        "backend": (REBUILD, True),
        "frontend": (REBUILD, True),
        "redis": (LEAVE, False),
        "worker1": (REBUILD, True),
        "worker2": (REBUILD, True),
    }
    assert "none of the project's code" in reasons(plan)["redis"]


def test_running_stack_first_launch_without_build_restarts() -> None:
    plan = plan_for(running(), flags=Flags(build=False))
    assert actions(plan) == {
        "backend": (RESTART, False),
        "frontend": (RESTART, False),  # buildable: its image may be out of date
        "redis": (LEAVE, False),
        "worker1": (RESTART, False),
        "worker2": (RESTART, False),
    }
    assert "first launch" in reasons(plan)["backend"]


def test_python_service_from_a_stock_image_is_restarted_not_built() -> None:
    stack = Stack("p", {"api": service("api", image="python:3.12", command=["python", "a.py"])})
    plan = make_plan(stack, {"api": [container("api")]}, lambda s: True, {}, None)
    assert actions(plan) == {"api": (RESTART, False)}
    assert plan.build == ()


def test_one_of_two_replicas_exited_starts_the_service() -> None:
    state = running(worker1=[container("worker1", n=1), container("worker1", "exited", 2)])
    plan = plan_for(state, changed=set())
    assert plan.running
    assert actions(plan)["worker1"] == (START, False)
    assert actions(plan)["worker2"] == (LEAVE, False)


def test_missing_service_in_running_stack_is_started() -> None:
    state = running()
    del state["redis"]
    plan = plan_for(state, changed=set())
    assert plan.running
    assert actions(plan)["redis"] == (START, False)


def test_no_build() -> None:
    for state in ({}, running()):
        for changed in (None, {"/p/backend/requirements.txt"}):
            plan = plan_for(state, changed=changed, flags=Flags(build=False))
            assert plan.build == ()
            assert not any(p.build for p in plan.services)


# --- one build per image ------------------------------------------------------------------


def test_shared_image_built_once() -> None:
    plan = plan_for({})
    # backend, worker1 and worker2 share proj-app + ./backend: the first one builds it.
    assert plan.build == ("backend", "frontend")
    assert [p.service for p in plan.services if p.build] == [
        "backend",
        "frontend",
        "worker1",
        "worker2",
    ]


def test_shared_build_context_with_different_image_names_built_separately() -> None:
    stack = Stack(
        "p",
        {
            "a": service("a", image="img-a", build=APP),
            "b": service("b", image="img-b", build=APP),
        },
    )
    assert make_plan(stack, {}, lambda s: True, {}, None).build == ("a", "b")


def test_same_context_without_image_name_built_per_service() -> None:
    # Without `image:` Compose names each service's image after the service.
    stack = Stack("p", {n: service(n, build={"context": "/p/app"}) for n in ("a", "b")})
    assert make_plan(stack, {}, lambda s: True, {}, None).build == ("a", "b")


def test_same_image_different_dockerfile_built_separately() -> None:
    stack = Stack(
        "p",
        {
            "a": service("a", image="img", build={"context": "/p", "dockerfile": "A.Dockerfile"}),
            "b": service("b", image="img", build={"context": "/p", "dockerfile": "B.Dockerfile"}),
        },
    )
    assert make_plan(stack, {}, lambda s: True, {}, None).build == ("a", "b")


# --- with a change index --------------------------------------------------------------------


def test_nothing_changed_leaves_everything() -> None:
    plan = plan_for(running(), changed=set())
    assert not plan.first
    assert plan.noop
    assert plan.build == ()
    assert reasons(plan)["backend"] == "nothing it uses changed"
    assert reasons(plan)["redis"] == "runs none of the project's code"


def test_bind_mounted_source_change_restarts_its_services() -> None:
    changed = {"/p/backend/src/app/server.py"}
    plan = plan_for(running(), changed=changed)
    # The mount hides the baked copy: a restart, not a rebuild.
    assert plan.with_action(RESTART) == ["backend", "worker1", "worker2"]
    assert plan.with_action(LEAVE) == ["frontend", "redis"]
    assert plan.build == ()
    backend = next(p for p in plan.services if p.service == "backend")
    assert backend.files == ("/p/backend/src/app/server.py",)
    assert backend.reason == "changed: app/server.py"


def test_baked_in_change_rebuilds_once() -> None:
    plan = plan_for(running(), changed={"/p/backend/requirements.txt"})
    assert plan.with_action(REBUILD) == ["backend", "worker1", "worker2"]
    assert plan.build == ("backend",)
    assert "image content changed" in reasons(plan)["backend"]


def test_dockerfile_change_rebuilds() -> None:
    plan = plan_for(running(), changed={"/p/frontend/Dockerfile"})
    assert plan.with_action(REBUILD) == ["frontend"]
    assert plan.build == ("frontend",)


def test_baked_in_change_without_build_restarts_on_old_image() -> None:
    plan = plan_for(running(), changed={"/p/frontend/src/app.js"}, flags=Flags(build=False))
    assert actions(plan)["frontend"] == (RESTART, False)
    assert "--no-build" in reasons(plan)["frontend"]


def test_file_outside_every_service_changes_nothing() -> None:
    plan = plan_for(running(), changed={"/p/README.md", "/p/backend/notes.txt"})
    assert plan.noop


def test_config_change_recreates() -> None:
    plan = plan_for(
        running(), changed=set(), config_changed={"redis": {"command"}, "backend": {"environment"}}
    )
    assert plan.with_action(RECREATE) == ["backend", "redis"]
    assert not any(p.build for p in plan.services)
    assert reasons(plan)["backend"] == "Compose config changed: environment"


@pytest.mark.parametrize(
    "key", ["build.args", "build.target", "build.dockerfile_inline", "build.dockerfile", "image"]
)
def test_a_change_of_what_the_image_is_built_from_rebuilds(key: str) -> None:
    """`up -d` alone would recreate the container from the OLD image, and the index would
    then call that image up to date."""
    plan = plan_for(running(), changed=set(), config_changed={"frontend": {key, "environment"}})
    assert actions(plan)["frontend"] == (REBUILD, True)
    assert plan.build == ("frontend",)
    assert key in reasons(plan)["frontend"]
    assert actions(plan)["backend"] == (LEAVE, False)


def test_a_build_change_of_a_shared_image_rebuilds_every_service_of_it_once() -> None:
    keys = {"build.args"}
    plan = plan_for(
        running(),
        changed=set(),
        config_changed=dict.fromkeys(["backend", "worker1", "worker2"], keys),
    )
    assert plan.with_action(REBUILD) == ["backend", "worker1", "worker2"]
    assert plan.build == ("backend",)


def test_a_build_change_with_no_build_recreates_and_says_so() -> None:
    plan = plan_for(
        running(),
        changed=set(),
        config_changed={"frontend": {"build.args"}},
        flags=Flags(build=False),
    )
    assert actions(plan)["frontend"] == (RECREATE, False)
    assert "--no-build" in reasons(plan)["frontend"]


def test_an_image_change_of_a_pulled_service_recreates() -> None:
    plan = plan_for(running(), changed=set(), config_changed={"redis": {"image"}})
    assert actions(plan)["redis"] == (RECREATE, False)
    assert reasons(plan)["redis"] == "image changed: pulled if missing, then recreated"


def test_an_index_without_per_key_hashes_rebuilds_a_buildable_service_whose_config_moved() -> None:
    plan = plan_for(running(), changed=set(), config_changed={"frontend": {"*"}, "redis": {"*"}})
    assert actions(plan)["frontend"] == (REBUILD, True)
    assert actions(plan)["redis"] == (RECREATE, False)


def test_missing_image_rebuilds() -> None:
    plan = plan_for(running(), changed=set(), images_missing={"frontend"})
    assert actions(plan)["frontend"] == (REBUILD, True)
    assert reasons(plan)["frontend"] == "image missing"
    assert actions(plan)["backend"] == (LEAVE, False)


def test_force_restarts_code_services_only() -> None:
    plan = plan_for(running(), changed=set(), flags=Flags(force=True))
    assert plan.with_action(RESTART) == ["backend", "frontend", "worker1", "worker2"]
    assert actions(plan)["redis"] == (LEAVE, False)
    assert reasons(plan)["backend"] == "--force"


def test_rebuild_flag_rebuilds_every_buildable_service() -> None:
    plan = plan_for(running(), changed=set(), flags=Flags(rebuild=True))
    assert plan.with_action(REBUILD) == ["backend", "frontend", "worker1", "worker2"]
    assert plan.build == ("backend", "frontend")
    assert reasons(plan)["frontend"] == "--rebuild"


def test_stopped_service_with_changes_starts_and_builds() -> None:
    state = running()
    del state["backend"]
    plan = plan_for(state, changed={"/p/backend/requirements.txt"})
    assert actions(plan)["backend"] == (START, True)
    assert reasons(plan)["backend"].startswith("not running; build: image content changed")


# --- one-shot services: another waits for them to complete ---------------------------------


def _one_shot_stack() -> tuple[Stack, dict[str, ServiceFiles]]:
    """The fastapi template's shape: `prestart` runs the migrations, `backend` waits for it
    with `condition: service_completed_successfully`; both share one image and mount."""
    from cslaunch.model import parse_stack

    mount = [{"type": "bind", "source": "/p/backend/src", "target": "/app/src"}]
    app: dict[str, Any] = {"image": "proj-app", "build": APP, "volumes": mount}
    stack = parse_stack(
        {
            "name": "proj",
            "services": {
                "prestart": {**app, "command": ["python3", "-m", "app.prestart"]},
                "backend": {
                    **app,
                    "command": ["python3", "-m", "app"],
                    "depends_on": {"prestart": {"condition": "service_completed_successfully"}},
                },
            },
        }
    )
    files = example_files()
    return stack, {"prestart": files["backend"], "backend": files["backend"]}


def _one_shot_plan(exit_code: int, changed: Collection[str]) -> Plan:
    stack, files = _one_shot_stack()
    done = Container(
        id="p1", name="proj-prestart-1", service="prestart", status="exited", health=None,
        health_output="", exit_code=exit_code, restart_count=0, started_at=T0, created=T0,
        image_id="sha256:abc", pid=0,
    )  # fmt: skip
    state = {"prestart": [done], "backend": [container("backend")]}
    return make_plan(stack, state, lambda s: True, files, changed)


def test_a_one_shot_that_completed_is_left_until_what_it_runs_changes() -> None:
    stack, _ = _one_shot_stack()
    assert stack.services["prestart"].one_shot and not stack.services["backend"].one_shot
    plan = _one_shot_plan(0, [])
    assert plan.noop
    assert reasons(plan)["prestart"] == "completed (exit 0); nothing it uses changed"
    edited = _one_shot_plan(0, ["/p/backend/src/app/prestart.py"])
    assert actions(edited) == {"prestart": (START, False), "backend": (RESTART, False)}


def test_a_one_shot_that_failed_runs_again() -> None:
    assert actions(_one_shot_plan(1, []))["prestart"] == (START, False)


def test_a_completed_one_shot_is_neither_named_nor_pulled_in_by_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compose's `up` starts any container not running: a completed one-shot the plan left
    must not be named, nor come along as a dependency of what is started (--no-deps)."""
    from cslaunch import act, docker

    stack, _ = _one_shot_stack()
    ups: list[tuple[str, ...]] = []
    monkeypatch.setattr(docker, "compose_step", lambda project, *args, what: ups.append(args))
    waited: list[Sequence[str]] = []
    act.converge(object(), stack, waited.append, completed=["prestart"])  # type: ignore[arg-type]
    assert ups == [("up", "--detach", "--no-build", "--no-deps", "backend")]
    assert waited == []
    ups.clear()
    act.converge(object(), stack, waited.append)  # type: ignore[arg-type]
    assert ups == [
        ("up", "--detach", "--no-build", "--no-deps", "prestart"),
        ("up", "--detach", "--no-build", "--no-deps", "backend"),
    ]
    assert waited == [["prestart"]]


def test_every_proxy_is_reloaded_when_anything_else_was_touched() -> None:
    """CaseStrainer's nginx proxies to the frontend without depending on it, and
    django-on-docker's is `build: ./nginx` over `FROM nginx`: both keep a recreated
    upstream's dead address unless reloaded."""
    import dataclasses

    from cslaunch.act import proxies_to_reload
    from cslaunch.context import base_image
    from cslaunch.model import is_proxy, parse_stack

    stack = parse_stack(
        {
            "name": "p",
            "services": {
                "nginx": {"image": "nginx:1.25", "depends_on": {"backend": {}}},
                "built": {"build": {"context": "/p/nginx"}},
                "backend": {"image": "app"},
                "frontend": {"image": "app"},
            },
        }
    )
    dockerfile = (
        "FROM node:20 AS build\nRUN npm ci\nFROM nginx:1.17.2-alpine\nCOPY --from=build /d /d\n"
    )
    assert base_image(dockerfile) == "nginx:1.17.2-alpine"
    assert base_image(dockerfile, "build") == "node:20"
    built = dataclasses.replace(stack.services["built"], base_image=base_image(dockerfile))
    stack = dataclasses.replace(stack, services={**stack.services, "built": built})
    assert is_proxy(built)
    assert proxies_to_reload(stack, ["frontend"]) == ["built", "nginx"]
    assert proxies_to_reload(stack, ["nginx", "frontend"]) == ["built"]
    assert proxies_to_reload(stack, []) == []


def test_fresh_anonymous_volumes_only_where_each_is_inside_a_bind_mount(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cslaunch import act, docker
    from cslaunch.model import parse_stack

    def vol(target: str, source: str | None = None) -> dict[str, str]:
        if source:
            return {"type": "bind", "source": source, "target": target}
        return {"type": "volume", "target": target}

    built = {"build": {"context": "/p"}}
    stack = parse_stack(
        {
            "name": "p",
            "services": {
                "node": {**built, "volumes": [vol("/app", "/p"), vol("/app/node_modules")]},
                "api": {**built, "volumes": [vol("/app/", "/p"), vol("/app/.venv/")]},
                "db": {"image": "pg", "volumes": [vol("/app", "/p"), vol("/var/lib/pg/data")]},
                "plain": {**built, "volumes": [vol("/app", "/p")]},
                "media": {
                    **built,
                    "volumes": [vol("/app", "/p"), vol("/app/.venv"), vol("/app/media")],
                },
            },
        }
    )
    assert [n for n, s in stack.services.items() if act.renewable(s)] == ["node", "api"]
    # The image's own VOLUME may hold data too: -V would renew it with the rest.
    assert not act.renewable(stack.services["api"], {"/data": {}})
    assert act.renewable(stack.services["api"], {"/app/.venv": {}})
    assert act.renewable(stack.services["api"], {"/app": {}})  # covered by the mount
    ups: list[tuple[str, ...]] = []
    monkeypatch.setattr(docker, "compose_step", lambda project, *args, what: ups.append(args))
    act.converge(object(), stack, lambda names: None, renew=["node"])  # type: ignore[arg-type]
    assert ("up", "--detach", "--no-build", "--no-deps", "--renew-anon-volumes", "node") in ups
    assert ("up", "--detach", "--no-build", "--no-deps", "api", "db", "media", "plain") in ups


def test_a_service_running_an_image_another_builds_moves_with_that_build() -> None:
    """`worker: {image: app}` (no build, code baked in) beside `web: {build: ., image: app}`
    with the project mounted: the mount hides web's baked copy, not the worker's; the change
    the worker sees builds the image, and the build recreates the worker."""
    mount = [{"type": "bind", "source": "/p/backend/src", "target": "/app/src"}]
    web = service("web", image="app:latest", build=APP, volumes=mount, command=["python3", "w"])
    worker = service("worker", image="app", command=["rq", "worker"])
    stack = Stack("proj", {"web": web, "worker": worker})
    assert stack.builder_of(worker) is web and stack.builder_of(web) is None

    def files(bind_dirs: list[str]) -> ServiceFiles:
        return service_files(
            "x",
            runs_code=True,
            bind_dirs=bind_dirs,
            bind_files=[],
            context="/p/backend",
            dockerfile="/p/backend/Dockerfile",
            dockerfile_text=BACKEND_DOCKERFILE,
            dockerignore_text=None,
            bind_targets=[(d, "/app/src") for d in bind_dirs],
        )

    plan = make_plan(
        stack,
        running(stack),
        lambda s: True,
        {"web": files(["/p/backend/src"]), "worker": files([])},
        ["/p/backend/src/tasks.py"],
    )
    assert actions(plan) == {"web": (REBUILD, True), "worker": (RECREATE, False)}
    assert reasons(plan)["web"] == "image content changed for worker: src/tasks.py"
    assert plan.build == ("web",)


def test_a_one_shot_runs_again_when_a_file_its_mounts_show_changes(tmp_path: Path) -> None:
    """A migration tool that is not the project's Python (Flyway over `./sql:/flyway/sql`):
    every file its mounts show is its input; a new migration runs it again."""
    from cslaunch.changes import service_files as files_of

    sql = tmp_path / "sql"
    sql.mkdir()
    flyway = parse_service(
        "flyway",
        {"image": "flyway/flyway", "volumes": [
            {"type": "bind", "source": str(sql), "target": "/flyway/sql"}]},
    )  # fmt: skip
    files = files_of(replace(flyway, one_shot=True), False, ())
    assert files.restart_files([str(sql / "V2__add_column.sql")]) == [
        str(sql / "V2__add_column.sql")
    ]
    assert files_of(flyway, False, ()).restart_files([str(sql / "V2__add_column.sql")]) == []


def test_an_image_built_from_another_is_built_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cslaunch import act, docker

    api = service("api", image="app", build={"context": "/p/api"})
    worker = replace(service("worker", build={"context": "/p/worker"}), base_image="app:latest")
    other = service("other", build={"context": "/p/other"})
    stack = Stack("proj", {"api": api, "worker": worker, "other": other})
    assert stack.base_builder(worker) is api
    built: list[tuple[str, ...]] = []
    monkeypatch.setattr(docker, "compose_step", lambda project, *args, what: built.append(args))
    act.build(object(), ["other", "worker", "api"], stack)  # type: ignore[arg-type]
    assert built == [("build", "other", "api"), ("build", "worker")]
    plan = make_plan(stack, running(stack), lambda s: True, {}, [], {"api": ["build.args"]})
    assert actions(plan)["worker"] == (REBUILD, True)


def test_what_a_job_wrote_goes_into_the_index_and_nothing_else(tmp_path: Path) -> None:
    """`migrate` and `web` both mount the project: the index keeps every entry it had; a
    file the job wrote while it ran (new, or moved in its run) goes in; a save to what web
    uses, or one outside the job's run, is left for the next launch to see."""
    import time

    from cslaunch import changes, index, scan

    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "Dockerfile").write_text("FROM python\n")
    bind = [{"type": "bind", "source": str(tmp_path), "target": "/app"}]
    stack = Stack("p", {
        "web": service("web", build={"context": str(tmp_path)}, volumes=bind),
        "migrate": service("migrate", volumes=bind, command=["sh", "-c", "ls > out.txt"]),
    })  # fmt: skip
    tracked = {n: changes.service_files(s, n == "web", ()) for n, s in stack.services.items()}
    trees, singles = track_trees(tracked.values())
    first = scan.scan(trees, singles)
    _, entries = index.compare(None, first)
    before = index.Index(first.started_ns, entries, {})
    start = time.time()
    (tmp_path / "out.txt").write_text("listing\n")  # the job's output
    (tmp_path / "app.py").write_text("x = 2\n")  # a save to what web runs
    ran = {"migrate": [(start - 1, time.time())]}
    after = changes.after_jobs(before, stack, tracked, {"web"}, ran)
    assert set(before.files) <= set(after.files)
    assert after.files[str(tmp_path / "app.py")] == before.files[str(tmp_path / "app.py")]
    assert str(tmp_path / "out.txt") in after.files
    later = changes.after_jobs(before, stack, tracked, {"web"}, {"migrate": [(0.0, 1.0)]})
    assert str(tmp_path / "out.txt") in later.files  # new to the index: what it ran with


def test_a_completed_job_runs_again_for_a_new_container_of_what_it_sets_up() -> None:
    minio = service("minio", image="minio/minio")
    buckets = replace(
        service("createbuckets", image="minio/mc", depends_on={"minio": {}}), one_shot=True
    )
    stack = Stack("p", {"minio": minio, "createbuckets": buckets})
    done = Container(
        id="b1", name="p-createbuckets-1", service="createbuckets", status="exited",
        health=None, health_output="", exit_code=0, restart_count=0, started_at=T0,
        created=T0, image_id="sha256:abc", pid=0,
    )  # fmt: skip
    state = {"minio": [container("minio")], "createbuckets": [done]}
    plan = make_plan(stack, state, lambda s: False, {}, [])
    assert actions(plan)["createbuckets"] == (LEAVE, False)
    plan = make_plan(stack, state, lambda s: False, {}, [], {"minio": ["environment"]})
    assert actions(plan) == {"minio": (RECREATE, False), "createbuckets": (START, False)}


# --- containers held back stopped by the last launch (watch) -------------------------------


def test_a_held_back_worker_restarts_rather_than_being_started_by_compose() -> None:
    held = container("worker1", status="exited")
    state = running(worker1=[held])
    plan = plan_for(state, changed=[], held={held.id})
    # Started as it was by the restart step: `up` would cost a Compose model load.
    assert actions(plan)["worker1"] == (RESTART, False)
    assert "held back" in reasons(plan)["worker1"]
    assert actions(plan)["backend"] == (LEAVE, False)
    assert not plan.noop  # a batch that changed nothing still starts it


def test_a_held_back_worker_whose_code_changed_says_so() -> None:
    held = container("worker1", status="exited")
    source = "/p/backend/src/app/greeting.py"
    plan = plan_for(running(worker1=[held]), changed=[source], held={held.id})
    assert actions(plan)["worker1"] == (RESTART, False)
    assert reasons(plan)["worker1"].startswith("changed:")


def test_a_stopped_container_not_held_back_is_started() -> None:
    stopped = container("worker1", status="exited")
    plan = plan_for(running(worker1=[stopped]), changed=[], held={"another-id"})
    assert actions(plan)["worker1"] == (START, False)


def test_the_containers_a_launch_held_back_reach_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """stack.compute passes LaunchOptions.held on: without it the plan would say START and
    `up` would start the worker (a Compose model load) instead of the restart step."""
    from types import SimpleNamespace

    from cslaunch import stack as stack_module
    from cslaunch.stack import LaunchOptions

    held = container("worker1", status="exited")
    found = SimpleNamespace(
        stack=example_stack(), containers=running(worker1=[held]), python=frozenset(PYTHON)
    )
    cs = SimpleNamespace(files=example_files(), changed=[], config_changed={}, old=object())
    monkeypatch.setattr(stack_module, "change_set", lambda *a, **k: cs)
    options = LaunchOptions(build=False, held=frozenset({held.id}))
    _, plan = stack_module.compute(None, found, options)  # type: ignore[arg-type]
    assert actions(plan)["worker1"] == (RESTART, False)
    _, plan = stack_module.compute(None, found, LaunchOptions(build=False))  # type: ignore[arg-type]
    assert actions(plan)["worker1"] == (START, False)
