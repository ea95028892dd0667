"""model.parse_stack and friends, on JSON printed by the real `docker compose config` and on
hand-written dicts shaped like it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cslaunch.config import Config, ServiceConfig
from cslaunch.model import (
    Roots,
    Service,
    Stack,
    app_url,
    parse_duration,
    parse_service,
    parse_stack,
    python_roots,
    runs_python,
)
from cslaunch.plan import make_plan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NO_CONFIG = Config()

# A second project whose services cover the edge cases of the Compose JSON (ports, init,
# stop_grace_period, disabled healthchecks, file and socket binds, binds outside the project).
EDGE_COMPOSE = """\
name: edge
services:
  web:
    image: nginx:1.27
    ports: ["127.0.0.1:8080:80", "9000:90/udp", "443"]
    init: true
    stop_grace_period: 1m30s
    healthcheck:
      disable: true
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./static:/usr/share/nginx/html:ro
  api:
    image: python:3.12
    entrypoint: sh -c "python app.py"
    ports: ["8000:8000"]
    volumes:
      - .:/app
      - ./src:/app/src
      - /opt/shared-lib:/ext
      - cache:/root/.cache
    healthcheck:
      test: ["NONE"]
    depends_on: [db, redis]
  db:
    image: postgres:16
    ports: ["5432:5432"]
    command: postgres -c max_connections=50
  redis:
    image: redis:7-alpine
    ports: ["6379:6379"]
  job:
    image: alpine:3
    command: ["./manage.py", "migrate"]
    healthcheck:
      test: curl -f http://localhost/ || exit 1
volumes:
  cache: {}
"""


@dataclass(frozen=True)
class Real:
    example_dir: Path
    example: dict[str, Any]
    edge_dir: Path
    edge: dict[str, Any]


def _compose_config(directory: Path, *files: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update(BASE_IMAGE="python:3.12-slim", REDIS_IMAGE="redis:7-alpine")
    argv = ["docker", "compose"]
    for f in files:
        argv += ["-f", f]
    result = subprocess.run(
        [*argv, "config", "--format", "json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    if shutil.which("docker") is None:
        if os.environ.get("CSLAUNCH_REQUIRE_ENGINE"):
            pytest.fail("no docker CLI")
        pytest.skip("needs the docker CLI for `docker compose config`")
    base = tmp_path_factory.mktemp("model")
    example_dir = base / "example"
    shutil.copytree(
        EXAMPLES, example_dir, ignore=shutil.ignore_patterns("__pycache__", ".cslaunch")
    )
    edge_dir = base / "edge"
    edge_dir.mkdir()
    (edge_dir / "edge.yml").write_text(EDGE_COMPOSE, encoding="utf-8")
    return Real(
        example_dir=example_dir,
        example=_compose_config(example_dir),
        edge_dir=edge_dir,
        edge=_compose_config(edge_dir, "edge.yml"),
    )


def dockerfile_text(service: Service) -> str | None:
    if service.build_context is None:
        return None
    return (service.build_context / (service.dockerfile or "Dockerfile")).read_text()


def svc(name: str = "app", **fields: Any) -> Service:
    """A service parsed from a hand-written dict shaped like Compose's JSON."""
    return parse_service(name, fields)


def stack_of(*services: Service, name: str = "proj") -> Stack:
    return Stack(name=name, services={s.name: s for s in services})


def bind(source: str, target: str = "/app") -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": target, "bind": {}}


def port(published: int, target: int = 80, host_ip: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"mode": "ingress", "target": target, "published": str(published)}
    p["protocol"] = "tcp"
    if host_ip:
        p["host_ip"] = host_ip
    return p


# --- parse_stack on the real example ----------------------------------------------------------


def test_example_services(real: Real) -> None:
    stack = parse_stack(real.example)
    assert stack.name == "cslaunch-example"
    assert stack.names() == ["backend", "frontend", "redis", "worker1", "worker2"]


def test_example_backend_fields(real: Real) -> None:
    backend = parse_stack(real.example).services["backend"]
    assert backend.image == "cslaunch-example-app"
    assert backend.build_context == real.example_dir / "backend"
    assert backend.buildable
    assert backend.dockerfile == "Dockerfile"
    assert backend.command == ("python3", "-m", "app.server")
    assert backend.entrypoint == ()
    assert [(b.source, b.target) for b in backend.binds] == [
        (real.example_dir / "backend" / "src", "/app/src")
    ]
    assert backend.network_mode == "host"
    assert backend.depends_on == ("redis",)
    assert backend.healthcheck is not None
    assert backend.healthcheck[:2] == ("CMD", "python3")
    assert not backend.init
    assert backend.stop_grace is None
    assert backend.ports == ()


def test_example_redis_fields(real: Real) -> None:
    redis = parse_stack(real.example).services["redis"]
    assert redis.image == "redis:7-alpine"
    assert not redis.buildable
    assert redis.binds == ()
    assert redis.volume_targets == ("/data",)
    assert redis.words[0] == "redis-server"


def test_example_runs_python(real: Real) -> None:
    stack = parse_stack(real.example)
    python = {
        s.name for s in stack.services.values() if runs_python(s, dockerfile_text(s), NO_CONFIG)
    }
    assert python == {"backend", "frontend", "worker1", "worker2"}


def test_example_python_roots(real: Real) -> None:
    stack = parse_stack(real.example)
    roots = python_roots(
        stack, real.example_dir, lambda s: runs_python(s, dockerfile_text(s), NO_CONFIG), NO_CONFIG
    )
    assert roots.roots == (real.example_dir / "backend" / "src",)
    assert roots.outside == ()


def test_example_app_url_from_host_network_healthcheck(real: Real) -> None:
    # Host networking, no published ports: the frontend's healthcheck names its origin.
    assert app_url(parse_stack(real.example), NO_CONFIG) == "http://127.0.0.1:5081"


def test_example_workers_share_one_build(real: Real) -> None:
    stack = parse_stack(real.example)
    plan = make_plan(stack, {}, lambda s: True, {}, None)
    assert plan.build == ("backend", "frontend")


# --- parse_stack on the real edge-case project -------------------------------------------------


def test_edge_ports(real: Real) -> None:
    web = parse_stack(real.edge).services["web"]
    # UDP and unpublished ports are left out; the host IP is kept.
    assert [(p.published, p.target, p.host_ip) for p in web.ports] == [(8080, 80, "127.0.0.1")]


def test_edge_init_grace_and_disabled_healthcheck(real: Real) -> None:
    services = parse_stack(real.edge).services
    assert services["web"].init
    assert services["web"].stop_grace == 90.0
    assert services["web"].healthcheck is None  # disable: true
    assert services["api"].healthcheck is None  # test: ["NONE"]
    assert services["job"].healthcheck == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")


def test_edge_shell_entrypoint_and_string_command(real: Real) -> None:
    services = parse_stack(real.edge).services
    assert services["api"].entrypoint == ("sh", "-c", "python app.py")
    assert services["api"].words == ("sh", "-c", "python", "app.py")
    assert services["db"].command == ("postgres", "-c", "max_connections=50")
    assert services["api"].depends_on == ("db", "redis")


def test_edge_runs_python(real: Real) -> None:
    stack = parse_stack(real.edge)
    python = {s.name for s in stack.services.values() if runs_python(s, None, NO_CONFIG)}
    assert python == {"api", "job"}


def test_edge_python_roots(real: Real) -> None:
    stack = parse_stack(real.edge)
    python = {"api", "job"}
    roots = python_roots(stack, real.edge_dir, lambda s: s.name in python, NO_CONFIG)
    assert roots.roots == (real.edge_dir,)  # `.` swallows the nested ./src
    assert roots.outside == (Path("/opt/shared-lib"),)


def test_edge_python_roots_ignore_non_python_binds(real: Real) -> None:
    # If nginx's bind mounts counted, ./static would be a root: nothing else is Python.
    stack = parse_stack(real.edge)
    roots = python_roots(
        stack, real.edge_dir, lambda s: s.name == "web", NO_CONFIG, is_file=looks_like_file
    )
    assert roots.roots == (real.edge_dir / "static",)
    assert roots.outside == ()  # the docker socket and nginx.conf are skipped


def test_edge_app_url_prefers_web_over_api(real: Real) -> None:
    assert app_url(parse_stack(real.edge), NO_CONFIG) == "http://127.0.0.1:8080"


# --- runs_python ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["python", "app.py"],
        ["python3", "-m", "app.server"],
        ["python3.12", "-m", "app"],
        ["/usr/local/bin/python3", "x"],
        ["gunicorn", "app:app", "-b", "0.0.0.0:8000"],
        ["uvicorn", "main:app", "--reload"],
        ["rq", "worker", "default"],
        ["celery", "-A", "proj", "worker"],
        ["sh", "-c", "python app.py"],
        ["sh", "-c", "cd /app && exec gunicorn wsgi"],
        ["./manage.py", "runserver"],
        ["bash", "-c", "python manage.py migrate && exec daphne asgi:app"],
    ],
)
def test_python_commands(command: list[str]) -> None:
    assert runs_python(svc(image="alpine:3", command=command), None, NO_CONFIG)


def test_python_entrypoint() -> None:
    service = svc(image="debian", entrypoint=["gunicorn"], command=["app:app"])
    assert runs_python(service, None, NO_CONFIG)


def test_shell_string_with_unbalanced_quote_still_scanned() -> None:
    service = svc(image="alpine", command=["sh", "-c", "python 'app.py"])
    assert runs_python(service, None, NO_CONFIG)


@pytest.mark.parametrize("image", ["python:3.12", "python:3.12-slim", "docker.io/library/python"])
def test_python_image(image: str) -> None:
    assert runs_python(svc(image=image), None, NO_CONFIG)


def test_built_image_name_does_not_count() -> None:
    # The name of an image we build says nothing about it; its Dockerfile does.
    service = svc(image="python-tools", build={"context": "/p/tools"})
    assert not runs_python(service, "FROM node:20\nRUN npm ci\n", NO_CONFIG)


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM python:3.12-slim\nCOPY . /app\n",
        "ARG BASE=python:3.11\nFROM $BASE\n",
        "FROM debian:12\nRUN apt-get install -y python3\n",
        'FROM debian\nCMD ["python3", "app.py"]\n',
        "from python:3.12 as base\n",
    ],
)
def test_python_dockerfile(dockerfile: str) -> None:
    service = svc(image="proj-app", build={"context": "/p/app"})
    assert runs_python(service, dockerfile, NO_CONFIG)


def test_dockerfile_comment_or_copy_does_not_count() -> None:
    dockerfile = "FROM node:20\n# python is not used here\nCOPY python-notes.txt /\n"
    assert not runs_python(svc(build={"context": "/p"}), dockerfile, NO_CONFIG)


@pytest.mark.parametrize(
    ("image", "command"),
    [
        ("redis:7-alpine", None),
        ("redis:7", ["redis-server", "--appendonly", "yes"]),
        ("nginx:1.27", None),
        ("nginx", ["nginx", "-g", "daemon off;"]),
        ("postgres:16", ["postgres", "-c", "max_connections=50"]),
    ],
)
def test_not_python(image: str, command: list[str] | None) -> None:
    assert not runs_python(svc(image=image, command=command), None, NO_CONFIG)


def test_config_override_wins() -> None:
    redis = svc("redis", image="redis:7", command=["redis-server"])
    backend = svc("backend", image="python:3.12", command=["python", "app.py"])
    config = Config(
        services={"redis": ServiceConfig(python=True), "backend": ServiceConfig(python=False)}
    )
    assert runs_python(redis, None, config)
    assert not runs_python(backend, "FROM python:3.12", config)
    # A config entry without `python` leaves the decision to the model.
    assert runs_python(backend, None, Config(services={"backend": ServiceConfig(stop="kill")}))


# --- python_roots ----------------------------------------------------------------------------

PROJECT = Path("/home/dev/proj")


def roots_of(
    *services: Service, config: Config = NO_CONFIG, python: set[str] | None = None
) -> Roots:
    stack = stack_of(*services)
    wanted = python if python is not None else set(stack.services)
    return python_roots(stack, PROJECT, lambda s: s.name in wanted, config, is_file=looks_like_file)


def looks_like_file(path: Path) -> bool:
    """These hand-made paths do not exist: say which ones stand for files."""
    return path.suffix in (".py", ".conf", ".sock")


def test_only_python_services_binds() -> None:
    result = roots_of(
        svc("api", volumes=[bind("/home/dev/proj/api")]),
        svc("nginx", volumes=[bind("/home/dev/proj/static")]),
        python={"api"},
    )
    assert result.roots == (PROJECT / "api",)


def test_nested_roots_collapse_to_outermost() -> None:
    result = roots_of(
        svc("a", volumes=[bind("/home/dev/proj/src/pkg"), bind("/home/dev/proj/lib")]),
        svc("b", volumes=[bind("/home/dev/proj/src"), bind("/home/dev/proj/src/pkg/sub")]),
    )
    assert result.roots == (PROJECT / "lib", PROJECT / "src")


def test_same_root_from_two_services_listed_once() -> None:
    result = roots_of(
        svc("a", volumes=[bind("/home/dev/proj/src")]),
        svc("b", volumes=[bind("/home/dev/proj/src")]),
    )
    assert result.roots == (PROJECT / "src",)


def test_project_dir_itself_is_a_root() -> None:
    result = roots_of(svc("a", volumes=[bind("/home/dev/proj"), bind("/home/dev/proj/src")]))
    assert result.roots == (PROJECT,)


def test_sibling_with_common_prefix_is_outside() -> None:
    # /home/dev/proj-old is not inside /home/dev/proj, though the string starts the same.
    result = roots_of(svc("a", volumes=[bind("/home/dev/proj-old/src")]))
    assert result.roots == ()
    assert result.outside == (Path("/home/dev/proj-old/src"),)


def test_binds_outside_project_reported_once() -> None:
    result = roots_of(
        svc("a", volumes=[bind("/home/dev/shared"), bind("/home/dev/proj/src")]),
        svc("b", volumes=[bind("/home/dev/shared", "/shared")]),
    )
    assert result.roots == (PROJECT / "src",)
    assert result.outside == (Path("/home/dev/shared"),)


def test_file_and_socket_binds_skipped() -> None:
    result = roots_of(
        svc(
            "a",
            volumes=[
                bind("/home/dev/proj/settings.py", "/app/settings.py"),
                bind("/home/dev/proj/gunicorn.conf", "/etc/gunicorn.conf"),
                bind("/var/run/docker.sock", "/var/run/docker.sock"),
                bind("/run/user/1000/ssh-agent", "/ssh"),
            ],
        )
    )
    assert result.roots == ()
    assert result.outside == ()


def test_volumes_are_not_roots() -> None:
    service = svc(
        "a",
        volumes=[
            {"type": "volume", "source": "data", "target": "/data"},
            {"type": "tmpfs", "target": "/tmp"},
            {"type": "bind", "source": "", "target": "/x"},
        ],
    )
    assert service.volume_targets == ("/data",)
    assert roots_of(service).roots == ()


def test_config_python_roots_override() -> None:
    config = Config(python_roots=(Path("/x/a/b"), Path("/x/a"), Path("/elsewhere")))
    result = roots_of(svc("a", volumes=[bind("/home/dev/proj/src")]), config=config)
    assert result.roots == (Path("/elsewhere"), Path("/x/a"))
    assert result.outside == ()


def test_directory_with_a_dot_in_its_name_is_a_root() -> None:
    project = Path("/home/dev/example.com")
    stack = stack_of(svc("a", volumes=[bind(str(project))]))
    assert python_roots(stack, project, lambda s: True, NO_CONFIG).roots == (project,)


def test_project_under_devel_is_not_special() -> None:
    project = Path("/devel/proj")
    stack = stack_of(svc("a", volumes=[bind("/devel/proj/src")]))
    assert python_roots(stack, project, lambda s: True, NO_CONFIG).roots == (project / "src",)


# --- app_url --------------------------------------------------------------------------------


def test_config_url_wins() -> None:
    stack = stack_of(svc("frontend", ports=[port(3000)]))
    assert app_url(stack, Config(url="https://dev.example.com")) == "https://dev.example.com"


def test_frontend_port_preferred_over_backend() -> None:
    stack = stack_of(
        svc("api", ports=[port(8000)]),
        svc("backend", ports=[port(8001)]),
        svc("frontend", ports=[port(3000)]),
    )
    assert app_url(stack, NO_CONFIG) == "http://localhost:3000"


@pytest.mark.parametrize("proxy_name", ["nginx", "proxy", "edge", "caddy"])
def test_the_proxy_in_front_is_the_app_not_a_service_named_app(proxy_name: str) -> None:
    stack = stack_of(
        svc("app", ports=[port(8000)]),
        svc(proxy_name, image="nginx:1.27", ports=[port(8080)]),
        svc("db", ports=[port(5432)]),
    )
    assert app_url(stack, NO_CONFIG) == "http://localhost:8080"


def test_a_service_named_app_alone_is_the_app() -> None:
    stack = stack_of(svc("app", ports=[port(8000)]), svc("db", ports=[port(5432)]))
    assert app_url(stack, NO_CONFIG) == "http://localhost:8000"


def test_backend_port_when_no_frontend() -> None:
    stack = stack_of(
        svc("backend", ports=[port(8000, host_ip="127.0.0.1")]),
        svc("worker"),
        svc("db", ports=[port(5432)]),
    )
    assert app_url(stack, NO_CONFIG) == "http://127.0.0.1:8000"


@pytest.mark.parametrize("host_ip", [None, "0.0.0.0", "::"])
def test_any_address_becomes_localhost(host_ip: str | None) -> None:
    stack = stack_of(svc("web", ports=[port(8080, host_ip=host_ip)]))
    assert app_url(stack, NO_CONFIG) == "http://localhost:8080"


def test_first_published_port_of_the_service() -> None:
    stack = stack_of(svc("web", ports=[port(8080), port(8443, 443)]))
    assert app_url(stack, NO_CONFIG) == "http://localhost:8080"


def test_redis_published_port_never_chosen() -> None:
    stack = stack_of(
        svc("redis", image="redis:7", ports=[port(6379, 6379)]),
        svc("postgres", ports=[port(5432, 5432)]),
        svc("worker", command=["rq", "worker"]),
    )
    assert app_url(stack, NO_CONFIG) is None


def test_host_network_healthcheck_url() -> None:
    check = {"test": ["CMD", "curl", "-f", "http://127.0.0.1:9000/health"]}
    stack = stack_of(
        svc("redis", network_mode="host", ports=[]),
        svc("backend", network_mode="host", healthcheck=check),
    )
    assert app_url(stack, NO_CONFIG) == "http://127.0.0.1:9000"


def test_bridge_network_healthcheck_url_not_used() -> None:
    # Inside a bridge network 127.0.0.1 is the container's own: not reachable from the host.
    check = {"test": ["CMD", "curl", "-f", "http://127.0.0.1:9000/health"]}
    assert app_url(stack_of(svc("backend", healthcheck=check)), NO_CONFIG) is None


def test_no_url() -> None:
    assert app_url(stack_of(svc("worker", command=["celery", "worker"])), NO_CONFIG) is None
    assert app_url(stack_of(), NO_CONFIG) is None


def test_the_proxy_in_front_is_the_url_users_open() -> None:
    # CaseStrainer's production shape: an nginx frontend image, an nginx proxy in front
    # (behind `sh -c`) publishing 80 and 443, a backend that publishes its own port too.
    wrapped = ["sh", "-c", "rm -f /etc/nginx/sites-enabled/default && nginx -g 'daemon off;'"]
    stack = stack_of(
        svc("backend", ports=[port(5001, 5000)]),
        svc("frontend-prod", command=["nginx", "-g", "daemon off;"], ports=[port(8080)]),
        svc(
            "nginx",
            command=wrapped,
            depends_on={"backend": {"condition": "service_healthy"}},
            ports=[port(8443, 443, host_ip="127.0.0.1"), port(8000, 80, host_ip="127.0.0.1")],
        ),
        svc("app", ports=[port(9000, 9000)]),
    )
    assert app_url(stack, NO_CONFIG) == "http://127.0.0.1:8000"


def test_a_proxy_publishing_only_443_is_https() -> None:
    stack = stack_of(
        svc("web", image="nginx:1.27", depends_on={"api": {}}, ports=[port(8443, 443)]),
        svc("api", ports=[port(8000, 8000)]),
    )
    assert app_url(stack, NO_CONFIG) == "https://localhost:8443"


def test_ipv6_host_ip_is_bracketed() -> None:
    stack = stack_of(svc("web", ports=[port(8000, host_ip="::1")]))
    assert app_url(stack, NO_CONFIG) == "http://[::1]:8000"


# --- parse_service details -----------------------------------------------------------------


def test_ports_skip_udp_and_unpublished() -> None:
    service = svc(
        ports=[
            {"target": 53, "published": "53", "protocol": "udp"},
            {"target": 443, "protocol": "tcp"},
            {"target": 80, "published": "8080"},  # protocol defaults to tcp
        ]
    )
    assert [(p.published, p.target) for p in service.ports] == [(8080, 80)]


def test_published_port_range_does_not_crash() -> None:
    service = svc("web", ports=[{"target": 90, "published": "9000-9001", "protocol": "tcp"}])
    # Either reading of the range is fine (its first port, or no single URL-able port).
    assert [p.published for p in service.ports] in ([], [9000])


def test_minimal_service() -> None:
    service = svc("x")
    assert service.image is None
    assert not service.buildable
    assert service.command == service.entrypoint == service.words == ()
    assert service.binds == ()
    assert service.ports == ()
    assert service.healthcheck is None
    assert service.stop_grace is None


def test_stack_without_services() -> None:
    assert parse_stack({"name": "empty"}) == Stack("empty", {})
    assert parse_stack({"services": None}).services == {}


def test_depends_on_list_or_mapping() -> None:
    assert svc(depends_on=["b", "a"]).depends_on == ("a", "b")
    assert svc(depends_on={"db": {"condition": "service_healthy"}}).depends_on == ("db",)


# --- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90.0),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("250us", 250e-6),
        ("12", 12.0),
        (5, 5.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("dockerfile", "target"),
    [
        ('FROM debian:12\nCOPY . /srv\nCMD ["uvicorn", "app.main:app"]\n', None),
        ("FROM debian:12\nCMD gunicorn -b :8000 app:app\n", None),
        ('FROM debian:12\nENTRYPOINT ["/usr/local/bin/celery"]\n', None),
        ('FROM debian:12 AS base\nCMD ["hypercorn", "app:app"]\nFROM base AS dev\n', "dev"),
        (
            'FROM debian AS dev\nCMD ["daphne", "asgi:app"]\nFROM debian AS prod\nCMD ["nginx"]\n',
            "dev",
        ),
        ('FROM debian\nCMD ["sh", "-c", "flask db upgrade && exec flask run"]\n', None),
    ],
)
def test_python_from_the_programs_a_dockerfile_runs(dockerfile: str, target: str | None) -> None:
    service = svc(image="proj-app", build={"context": "/p/app", "target": target})
    assert runs_python(service, dockerfile, NO_CONFIG)


def test_the_stage_compose_builds_decides_not_the_last() -> None:
    dockerfile = 'FROM debian AS web\nCMD ["nginx"]\nFROM debian AS api\nCMD ["uvicorn", "a:b"]\n'
    assert not runs_python(svc(build={"context": "/p", "target": "web"}), dockerfile, NO_CONFIG)


def test_a_service_command_replaces_the_dockerfile_cmd() -> None:
    dockerfile = 'FROM debian\nCMD ["uvicorn", "a:b"]\n'
    service = svc(build={"context": "/p"}, command=["nginx", "-g", "daemon off;"])
    assert not runs_python(service, dockerfile, NO_CONFIG)


@pytest.mark.parametrize(
    "image_config",
    [
        {"Cmd": ["uvicorn", "main:app"]},
        {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["gunicorn", "app"]},
        {"Cmd": ["/start.sh"], "Env": ["PATH=/usr/bin", "PYTHON_VERSION=3.12.4"]},
    ],
)
def test_python_from_the_image_config(image_config: dict[str, Any]) -> None:
    assert runs_python(svc(image="acme/api:1"), None, NO_CONFIG, image_config)


def test_image_config_not_python() -> None:
    config = {"Cmd": ["redis-server"], "Env": ["REDIS_VERSION=7.2"]}
    assert not runs_python(svc(image="redis:7"), None, NO_CONFIG, config)


@pytest.mark.parametrize(
    ("fields", "redis"),
    [
        ({"image": "redis:7-alpine"}, True),
        ({"image": "docker.io/library/redis@sha256:abc"}, True),
        ({"image": "bitnami/redis:7.2"}, True),
        ({"image": "valkey/valkey:8"}, True),  # netbox-docker, plane
        ({"image": "eqalpha/keydb"}, True),
        ({"image": "redis/redis-stack-server:latest"}, True),
        ({"image": "app", "command": ["sh", "-c", "exec valkey-server --save ''"]}, True),
        ({"image": "app", "command": ["/usr/local/bin/redis-server", "/etc/redis.conf"]}, True),
        ({"image": "rediscommander/redis-commander"}, False),
        ({"image": "redisinsight/redisinsight"}, False),
        ({"image": "app", "command": ["rq", "worker", "--url", "redis://redis:6379"]}, False),
    ],
)
def test_a_redis_server_is_told_by_its_image_or_command(
    fields: dict[str, Any], redis: bool
) -> None:
    from cslaunch.model import is_redis, parse_service

    assert is_redis(parse_service("x", fields)) is redis


@pytest.mark.parametrize(
    ("command", "installs"),
    [
        (["sh", "-c", "npm install && npm run dev"], True),
        (["bash", "-c", "npm ci; exec npm run dev -- --host"], True),
        (["sh", "-c", "yarn && yarn dev"], True),
        (["sh", "-c", "pip install -r requirements.txt && flask run --reload"], True),
        (["sh", "-c", "uv sync && uv run app.py"], True),
        (["sh", "-c", "npm ci&&npm run dev"], True),  # operators need no spaces
        (["sh", "-c", "cd /app;yarn install;yarn dev"], True),
        (["npm", "run", "dev"], False),
        (["yarn", "dev"], False),
        (["python", "-m", "app"], False),
    ],
)
def test_a_command_that_installs_its_dependencies_at_start(
    command: list[str], installs: bool
) -> None:
    from cslaunch.model import installs_at_start, parse_service

    assert installs_at_start(parse_service("x", {"image": "node", "command": command})) is installs


@pytest.mark.parametrize(
    ("command", "watches"),
    [
        (["npm", "run", "dev", "--", "--host", "0.0.0.0"], True),
        (["yarn", "dev"], True),
        (["pnpm", "run", "serve"], True),
        (["sh", "-c", "npm install && npm run dev"], True),
        (["sh", "-c", "npm ci&&npm run dev"], True),
        (["npx", "vite", "--host"], True),
        (["nodemon", "server.js"], True),
        (["ng", "serve"], True),
        (["node", "--watch", "server.js"], True),
        (["react-scripts", "start"], True),
        (["npx", "gatsby", "develop"], True),
        (["npm", "run", "develop"], True),
        (["node", "server.js"], False),
        (["npm", "start"], False),  # unsure: a production server as often as not
        (["npx", "vite", "build"], False),
        (["npx", "next", "start"], False),
        (["sh", "-c", "until nc -z -w 1 db 5432; do sleep 1; done; node server.js"], False),
        (["/usr/local/bin/server"], False),
        (["nginx", "-g", "daemon off;"], False),
    ],
)
def test_a_command_that_serves_its_sources_as_they_change(
    command: list[str], watches: bool
) -> None:
    from cslaunch.model import parse_service, watches_its_files

    assert watches_its_files(parse_service("x", {"image": "node", "command": command})) is watches


@pytest.mark.parametrize(
    ("fields", "proxy"),
    [
        ({"image": "nginx:1.25-alpine"}, True),
        ({"image": "docker.io/library/nginx@sha256:abc"}, True),
        ({"image": "nginxinc/nginx-unprivileged:stable"}, True),
        ({"image": "app", "command": ["sh", "-c", "nginx -t && nginx -g 'daemon off;'"]}, True),
        ({"image": "app", "command": ["nginx", "-g", "daemon off;"]}, True),
        ({"image": "frappe/erpnext:v15", "command": ["nginx-entrypoint.sh"]}, True),
        ({"image": "app", "command": ["nginx-prometheus-exporter", "-nginx.scrape-uri=x"]}, False),
        ({"image": "nginx/nginx-prometheus-exporter:1.1"}, False),
        (
            {"image": "nginxproxy/docker-gen", "command": ["-notify-sighup", "nginx", "-watch"]},
            False,
        ),
        ({"image": "app", "command": ["python", "-m", "app"]}, False),
    ],
)
def test_an_nginx_is_told_by_its_image_or_the_program_it_runs(
    fields: dict[str, Any], proxy: bool
) -> None:
    from cslaunch.model import is_proxy, parse_service

    assert is_proxy(parse_service("x", fields)) is proxy


def test_a_dev_server_started_by_the_dockerfile_is_seen() -> None:
    from cslaunch.model import parse_service, watches_its_files

    service = parse_service("web", {"build": {"context": "/p"}})
    assert watches_its_files(service, 'FROM node:20\nCMD ["npm", "run", "dev"]\n')
    assert not watches_its_files(service, 'FROM node:20\nCMD ["node", "server.js"]\n')
    overridden = parse_service("web", {"build": {"context": "/p"}, "command": ["node", "a.js"]})
    assert not watches_its_files(overridden, 'FROM node:20\nCMD ["npm", "run", "dev"]\n')


def test_a_dollar_left_to_the_containers_shell_is_one_dollar() -> None:
    """`$${REDIS_PASSWORD}` in a healthcheck: Compose's JSON keeps it escaped; run as it
    stands, `$$` is the shell's PID and the check fails until Docker's own passes."""
    from cslaunch.model import parse_service

    s = parse_service(
        "x",
        {
            "command": ["sh", "-c", "rq worker --url $$REDIS_URL"],
            "healthcheck": {"test": ["CMD-SHELL", "redis-cli -a $${REDIS_PASSWORD} ping"]},
        },
    )
    assert s.healthcheck == ("CMD-SHELL", "redis-cli -a ${REDIS_PASSWORD} ping")
    assert s.command[-1] == "rq worker --url $REDIS_URL"


def test_config_and_secret_files_are_mounted_where_compose_puts_them() -> None:
    from pathlib import Path

    from cslaunch.model import parse_stack

    stack = parse_stack(
        {
            "services": {
                "a": {
                    "configs": [{"source": "ini"}, {"source": "ini", "target": "/etc/x.ini"}],
                    "secrets": [{"source": "pw", "target": "pw2"}, {"source": "ext"}],
                }
            },
            "configs": {"ini": {"file": "/p/settings.ini"}},
            "secrets": {"pw": {"file": "/p/pw.txt"}, "ext": {"external": True}},
        }
    )
    binds = [(b.source, b.target, b.read_only, b.config) for b in stack.services["a"].binds]
    assert binds == [
        (Path("/p/settings.ini"), "/ini", True, True),
        (Path("/p/settings.ini"), "/etc/x.ini", True, True),
        (Path("/p/pw.txt"), "/run/secrets/pw2", True, True),
    ]


def test_a_job_the_last_launch_saw_complete_is_a_one_shot_while_its_config_holds() -> None:
    from cslaunch.index import config_hash
    from cslaunch.model import parse_stack
    from cslaunch.stack import with_jobs_done

    raw = {"services": {"init": {"image": "x", "command": ["sh", "-c", "touch /d/site"]},
                        "web": {"image": "x"}}}  # fmt: skip
    stack = parse_stack(raw)
    last = {"completed": {"init": config_hash(raw["services"]["init"])}}
    assert with_jobs_done(stack, raw, last).services["init"].one_shot
    assert not with_jobs_done(stack, raw, last).services["web"].one_shot
    changed = {"services": {**raw["services"], "init": {"image": "x", "command": ["serve"]}}}
    assert not with_jobs_done(parse_stack(changed), changed, last).services["init"].one_shot
    assert not with_jobs_done(stack, raw, None).services["init"].one_shot


def test_a_compose_file_in_a_subdirectory_cleans_what_it_mounts_from_its_repository(
    tmp_path: Path,
) -> None:
    """`docker/compose.yml` mounting `../app`: the project is the repository, not only the
    Compose file's directory (the bytecode step skipped the code, every launch, with a
    warning, and the repair pass had to do its work)."""
    from cslaunch.model import python_roots

    (tmp_path / ".git").mkdir()
    (tmp_path / "docker").mkdir()
    (tmp_path / "app").mkdir()
    stack = parse_stack(
        {"services": {"web": {"command": ["python", "app.py"], "volumes": [
            {"type": "bind", "source": str(tmp_path / "app"), "target": "/app"},
            {"type": "bind", "source": "/srv/elsewhere", "target": "/data"}]}}}
    )  # fmt: skip
    roots = python_roots(stack, tmp_path / "docker", lambda s: True, NO_CONFIG)
    assert roots.roots == (tmp_path / "app",)
    assert roots.outside == (Path("/srv/elsewhere"),)
