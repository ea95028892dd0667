"""The Compose model as cslaunch needs it, derived from `docker compose config --format json`.

Pure functions over the JSON Compose prints: no YAML parsing of our own, no I/O except
reading Dockerfiles, which the caller passes in.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from cslaunch.config import Config
from cslaunch.context import image_command

# Programs whose presence in a command means the container runs Python code.
PYTHON_PROGRAMS = frozenset(
    {
        "python",
        "python3",
        "pythonw",
        "gunicorn",
        "uvicorn",
        "hypercorn",
        "daphne",
        "waitress-serve",
        "celery",
        "rq",
        "rqworker",
        "rqscheduler",
        "dramatiq",
        "huey_consumer",
        "flask",
        "django-admin",
        "fastapi",
        "granian",
        "pytest",
        "streamlit",
    }
)
_PYTHON_VERSIONED = re.compile(r"^python\d+(\.\d+)?$")
_HTTP_URL = re.compile(r"https?://[^\s'\"/]+(?::\d+)?")
FRONT_NAMES = ("frontend", "web", "ui", "nginx", "proxy", "client")
# "app" is as often the backend behind a proxy as the whole app: a name of the second rank.
BACK_NAMES = ("backend", "api", "server", "app")
# What stands in front of the others when it is there: its port is the one people open.
PROXY_PROGRAMS = ("nginx", "traefik", "caddy", "haproxy", "envoy", "httpd")


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    read_only: bool = False
    # A `configs:` or `secrets:` entry of a file (Compose mounts it): read as configuration,
    # whatever its name
    config: bool = False


@dataclass(frozen=True)
class Port:
    published: int
    target: int
    host_ip: str | None = None


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    build_context: Path | None
    dockerfile: str | None
    command: tuple[str, ...]
    entrypoint: tuple[str, ...]
    binds: tuple[Bind, ...]
    volume_targets: tuple[str, ...]  # named/anonymous volume mount points in the container
    ports: tuple[Port, ...]
    network_mode: str | None
    depends_on: tuple[str, ...]
    healthcheck: tuple[str, ...] | None  # the test, or None when the service has none
    init: bool
    stop_grace: float | None
    stop_signal: str | None = None  # Compose's stop_signal ("SIGINT"); None: SIGTERM
    # (dependency, condition) of each depends_on: service_started / service_healthy /
    # service_completed_successfully
    conditions: tuple[tuple[str, str], ...] = ()
    anonymous_volumes: tuple[str, ...] = ()  # mount points of volumes with no name
    # mount points of named volumes that are a host directory (driver_opts device, o=bind)
    host_volumes: tuple[str, ...] = ()
    health_timeout: float = 30.0  # the healthcheck's timeout (Docker's default 30 s)
    target: str | None = None  # build.target: the stage Compose builds
    dockerfile_inline: str | None = None  # build.dockerfile_inline: the Dockerfile itself
    # Another service waits for it to finish (`condition: service_completed_successfully`):
    # a one-shot job (migrations, a prestart step), done once it exited 0
    one_shot: bool = False
    # The image its Dockerfile starts FROM (the built stage's first ancestor), for a service
    # built without `image:` (`build: ./nginx` over `FROM nginx:1.25`); set by stack.detect
    base_image: str | None = None
    replicas: int | None = None  # `scale` / `deploy.replicas`; 0: switched off, no container
    # Services it must restart after: `depends_on: {x: {restart: true}}`, and the one whose
    # network it shares (`network_mode: service:x`), which a restart of x takes away
    restarts_with: tuple[str, ...] = ()

    @property
    def buildable(self) -> bool:
        return self.build_context is not None

    @property
    def words(self) -> tuple[str, ...]:
        """Entrypoint and command split into words, shell strings included."""
        return split_words((*self.entrypoint, *self.command))


def split_words(parts: Iterable[str]) -> tuple[str, ...]:
    """Arguments split into words, shell strings (`sh -c "a && b"`) included."""
    words: list[str] = []
    for part in parts:
        if " " not in part:  # an exec-form argument: `&` in a URL is the URL's
            words.append(part)
            continue
        # Operators are words of their own, as the shell reads them: `npm ci&&npm run dev`
        lexer = shlex.shlex(part, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            words += list(lexer)
        except ValueError:
            words += part.split()
    return tuple(words)


@dataclass(frozen=True)
class Stack:
    name: str
    services: dict[str, Service]

    def names(self) -> list[str]:
        return sorted(self.services)

    def builder_of(self, service: Service) -> Service | None:
        """The service whose build makes the image this one runs with no `build:` of its
        own (`worker: {image: app}` beside `web: {build: ., image: app}`): what that build
        bakes in is this one's code too."""
        if service.buildable or not service.image:
            return None
        return self.built_as(service.image)

    def base_builder(self, service: Service) -> Service | None:
        """The service whose build makes the image this one's Dockerfile starts FROM
        (`FROM app:latest`, app built by `web`): its build makes this one's base anew."""
        if not service.buildable or not service.base_image:
            return None
        found = self.built_as(service.base_image)
        return found if found is not service else None

    def built_as(self, image: str) -> Service | None:
        """The service whose build makes this image: its `image:`, else Compose's name."""
        wanted = _tagged(image)
        return next(
            (
                s
                for s in sorted(self.services.values(), key=lambda s: s.name)
                if s.buildable and _tagged(image_name(s, self.name)) == wanted
            ),
            None,
        )


def _tagged(image: str) -> str:
    """An image name as the engine reads it: `app` is `app:latest`."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else image + ":latest"


def parse_stack(data: Mapping[str, Any]) -> Stack:
    host_backed = frozenset(
        name
        for name, vol in (data.get("volumes") or {}).items()
        if (vol or {}).get("driver_opts", {}).get("device")
    )
    files = {
        (kind, str(key)): str(value["file"])
        for kind in ("configs", "secrets")
        for key, value in (data.get(kind) or {}).items()
        if isinstance(value, Mapping) and value.get("file")
    }
    services = {
        name: parse_service(name, svc, host_backed, files)
        for name, svc in (data.get("services") or {}).items()
    }
    awaited = {
        dep
        for s in services.values()
        for dep, condition in s.conditions
        if condition == "service_completed_successfully"
    }
    services = {n: replace(s, one_shot=True) if n in awaited else s for n, s in services.items()}
    return Stack(name=str(data.get("name", "")), services=services)


def parse_service(
    name: str,
    svc: Mapping[str, Any],
    host_backed: Collection[str] = frozenset(),
    files: Mapping[tuple[str, str], str] | None = None,
) -> Service:
    """`files`: the host file of each top-level (`configs`|`secrets`, name) given by one."""
    build = svc.get("build") or None
    binds = _mounted_files(svc, files or {})
    volume_targets: list[str] = []
    anonymous: list[str] = []
    host_volumes: list[str] = []
    for vol in svc.get("volumes") or []:
        if vol.get("type") == "bind" and vol.get("source"):
            binds.append(
                Bind(Path(vol["source"]), vol.get("target", ""), bool(vol.get("read_only")))
            )
        elif vol.get("type") == "volume":
            volume_targets.append(vol.get("target", ""))
            if not vol.get("source"):
                anonymous.append(vol.get("target", ""))
            elif vol["source"] in host_backed:
                host_volumes.append(vol.get("target", ""))
    ports = [
        Port(_first_port(p["published"]), _first_port(p.get("target", 0)), p.get("host_ip") or None)
        for p in svc.get("ports") or []
        if p.get("published") and str(p.get("protocol", "tcp")) == "tcp"
    ]
    health = svc.get("healthcheck") or {}
    test = health.get("test")
    has_health = bool(test) and not health.get("disable") and list(test or [])[:1] != ["NONE"]
    return Service(
        name=name,
        image=svc.get("image"),
        build_context=Path(build["context"]) if build and build.get("context") else None,
        dockerfile=(build or {}).get("dockerfile"),
        command=_words(svc.get("command")),
        entrypoint=_words(svc.get("entrypoint")),
        binds=tuple(binds),
        volume_targets=tuple(volume_targets),
        ports=tuple(ports),
        network_mode=svc.get("network_mode"),
        depends_on=tuple(sorted(svc.get("depends_on") or {})),
        healthcheck=_words(test) if has_health else None,
        init=bool(svc.get("init")),
        stop_grace=parse_duration(svc["stop_grace_period"])
        if svc.get("stop_grace_period")
        else None,
        stop_signal=str(svc["stop_signal"]) if svc.get("stop_signal") else None,
        conditions=tuple(
            sorted(
                (str(dep), str((how or {}).get("condition") or "service_started"))
                for dep, how in _mapping(svc.get("depends_on")).items()
            )
        ),
        health_timeout=parse_duration(health["timeout"]) if health.get("timeout") else 30.0,
        anonymous_volumes=tuple(anonymous),
        host_volumes=tuple(host_volumes),
        target=(build or {}).get("target") or None,
        dockerfile_inline=(build or {}).get("dockerfile_inline") or None,
        replicas=_replicas(svc),
        restarts_with=_restarts_with(svc),
    )


def _restarts_with(svc: Mapping[str, Any]) -> tuple[str, ...]:
    found = {
        dep for dep, how in _mapping(svc.get("depends_on")).items() if (how or {}).get("restart")
    }
    mode = str(svc.get("network_mode") or "")
    if mode.startswith("service:"):
        found.add(mode.split(":", 1)[1])
    return tuple(sorted(found))


def _replicas(svc: Mapping[str, Any]) -> int | None:
    for value in (svc.get("scale"), (svc.get("deploy") or {}).get("replicas")):
        if value is not None and str(value).isdigit():
            return int(value)
    return None


def _mounted_files(svc: Mapping[str, Any], files: Mapping[tuple[str, str], str]) -> list[Bind]:
    """The service's configs and secrets that are host files, which Compose bind-mounts (at
    `/<name>` and `/run/secrets/<name>` unless told)."""
    found = []
    for kind, default_dir in (("configs", "/"), ("secrets", "/run/secrets/")):
        for entry in svc.get(kind) or []:
            name = str(entry.get("source") if isinstance(entry, Mapping) else entry)
            target = entry.get("target") if isinstance(entry, Mapping) else None
            if (kind, name) in files:
                at = posixpath.join(default_dir, target or name)  # a relative target too
                found.append(Bind(Path(files[kind, name]), at, read_only=True, config=True))
    return found


def _mapping(value: Any) -> dict[str, Any]:
    """depends_on as Compose prints it (a mapping), or the short list form."""
    if isinstance(value, dict):
        return value
    return {str(v): {} for v in value or ()}


def _first_port(value: Any) -> int:
    """A port, or the first of a range ("9000-9001")."""
    return int(str(value).split("-", 1)[0])


def _words(value: Any) -> tuple[str, ...]:
    """A command, entrypoint or healthcheck test as the container gets it: Compose's model
    keeps `$$` (a `$` left to the container's shell) escaped, the engine is given `$`."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.replace("$$", "$"),)
    return tuple(str(v).replace("$$", "$") for v in value)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def parse_duration(text: str | int | float) -> float:
    """Compose durations: '1m30s', '10s', '500ms'; a bare number is seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts:
        return float(text)
    return sum(float(n) * _UNIT[u] for n, u in parts)


def runs_python(
    service: Service,
    dockerfile_text: str | None,
    config: Config,
    image_config: Mapping[str, Any] | None = None,
) -> bool:
    """Whether a service runs Python code: configured, or seen in the programs it runs (its
    command, or the CMD/ENTRYPOINT of its Dockerfile or of its image's own config), its image
    or its Dockerfile."""
    override = config.service(service.name).python
    if override is not None:
        return override
    if any(is_python_program(w) for w in service.words):
        return True
    if service.image and "python" in service.image.lower() and not service.buildable:
        return True
    if dockerfile_text:
        entrypoint, cmd = image_command(dockerfile_text, service.target)
        if any(is_python_program(w) for w in _runs(service, entrypoint, cmd)):
            return True
        if any(
            "python" in line.lower()
            for line in dockerfile_text.splitlines()
            if line.strip().upper().startswith(("FROM", "ARG", "RUN", "CMD", "ENTRYPOINT"))
        ):
            return True
    if image_config:
        entrypoint = _strings(image_config.get("Entrypoint"))
        cmd = _strings(image_config.get("Cmd"))
        env = _strings(image_config.get("Env"))
        if any(is_python_program(w) for w in _runs(service, entrypoint, cmd)):
            return True
        # Set by the official Python images, and so by every image built on one.
        if any(e.startswith("PYTHON_VERSION=") for e in env):
            return True
    return False


def is_python_program(word: str) -> bool:
    program = PurePath(word).name.lower()
    return bool(
        program in PYTHON_PROGRAMS or _PYTHON_VERSIONED.match(program) or word.endswith(".py")
    )


def _runs(service: Service, entrypoint: list[str], cmd: list[str]) -> tuple[str, ...]:
    """The words an image's ENTRYPOINT and CMD add to what the service runs: a service's
    `entrypoint` replaces both (and the CMD with it), its `command` replaces the CMD."""
    if service.entrypoint:
        return ()
    return split_words([*entrypoint, *([] if service.command else cmd)])


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def image_name(service: Service, project: str) -> str:
    """The image a service runs: its `image:`, else the name Compose builds it under."""
    return service.image or f"{project}-{service.name}"


@dataclass(frozen=True)
class Roots:
    roots: tuple[Path, ...]
    outside: tuple[Path, ...]  # bind sources left out because they are outside the project


def python_roots(
    stack: Stack,
    project_dir: Path,
    is_python: Callable[[Service], bool],
    config: Config,
    is_file: Callable[[Path], bool] = lambda p: p.exists() and not p.is_dir(),
) -> Roots:
    """Host directories whose bytecode Python containers see: bind-mount sources of Python
    services. Sources outside the project are left out by default: walking someone's home
    directory or `/` is never what they meant. The project is the Compose file's directory,
    or the repository it is in (`docker/compose.yml` mounting `../app`)."""
    if config.python_roots is not None:
        return Roots(_outermost(config.python_roots), ())
    inside: list[Path] = []
    outside: list[Path] = []
    project = _repository_root(Path(project_dir))
    for service in stack.services.values():
        if not is_python(service):
            continue
        for bind in service.binds:
            # A single file or a socket has no bytecode tree of its own. A missing source is
            # a directory: Compose creates it as one.
            if _is_special(bind.source) or is_file(bind.source):
                continue
            (inside if _is_within(bind.source, project) else outside).append(bind.source)
    return Roots(_outermost(inside), tuple(dict.fromkeys(outside)))


def _repository_root(directory: Path) -> Path:
    """The work tree a directory is in (the nearest one holding `.git`), else itself; never a
    home directory kept in git (dotfiles) or `/`."""
    for candidate in (directory, *directory.parents):
        if (candidate / ".git").exists():
            home = candidate == Path.home() or candidate == Path(candidate.anchor)
            return directory if home else candidate
    return directory


SPECIAL_DIRS = (("dev",), ("proc",), ("sys",), ("run",), ("var", "run"))


def _is_special(path: Path) -> bool:
    """Kernel and runtime directories (the Docker socket lives there): never code."""
    parts = path.parts[1:] if path.is_absolute() else ()
    return any(parts[: len(d)] == d for d in SPECIAL_DIRS)


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


def _outermost(paths: tuple[Path, ...] | list[Path]) -> tuple[Path, ...]:
    """Drop paths nested in another one, so no tree is walked twice."""
    unique = sorted(dict.fromkeys(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(_is_within(path, k) for k in kept):
            kept.append(path)
    return tuple(sorted(kept))


def is_web_proxy(service: Service) -> bool:
    """nginx, Traefik, Caddy and the like, by image or by the program it runs."""
    images = [_repository(i) for i in (service.image, service.base_image) if i]
    programs = {PurePath(w).name for w in service.words[:1]}
    return any(i.startswith(p) for i in images for p in PROXY_PROGRAMS) or bool(
        programs & set(PROXY_PROGRAMS)
    )


# Programs that serve their sources as they change, alone or with the verb that does
_WATCHERS = frozenset({"nodemon", "webpack-dev-server", "watchmedo", "air"})
_WATCHING_VERBS = {
    "vite": {"", "dev", "serve", "--host", "--port"},
    "next": {"dev"},
    "nuxt": {"dev"},
    "nuxi": {"dev"},
    "astro": {"dev"},
    "ng": {"serve"},
    "react-scripts": {"start"},
    "vue-cli-service": {"serve"},
    "webpack": {"serve"},
    "gatsby": {"develop"},
    "tsx": {"watch"},
    "cargo": {"watch"},
    "dotnet": {"watch"},
}
_DEV_SCRIPTS = frozenset({"dev", "serve", "watch", "develop", "start:dev", "dev:server"})


def watches_its_files(service: Service, dockerfile_text: str | None = None) -> bool:
    """Whether what it runs serves its mounted sources as they change, by itself: a dev
    server (`npm run dev`, `vite`, `nodemon`, `ng serve`) or a `--watch` flag, in its
    command or its Dockerfile's CMD/ENTRYPOINT. A service that reads its code once at start
    (`node server.js`, `npm start`, a binary built by `go build`) is not: an image built
    from those sources must be rebuilt. Unsure means not: a rebuild is slow, never stale."""
    words = list(service.words)
    if dockerfile_text:
        words += _runs(service, *image_command(dockerfile_text, service.target))
    names = _programs(words)
    if any(w in _WATCHERS or w == "--watch" for w in names):
        return True
    runners = {"npm", "yarn", "pnpm", "bun"}
    padded = [*names, "", ""]
    return any(
        verb in _WATCHING_VERBS.get(tool, ())
        or (
            tool in runners and (verb in _DEV_SCRIPTS or (verb == "run" and script in _DEV_SCRIPTS))
        )
        for tool, verb, script in zip(padded, padded[1:], padded[2:], strict=False)
    )


def _programs(words: Iterable[str]) -> list[str]:
    """Words as a command line names programs: `/usr/bin/npm` -> `npm`, `ci;` -> `ci`."""
    return [w.rsplit("/", 1)[-1].rstrip(";") for w in words]


def serves_per_request(service: Service) -> bool:
    """A server that reads its files at each request (nginx serving a mounted directory,
    PHP): what a mount shows is what it serves."""
    images = [_repository(i) for i in (service.image, service.base_image) if i]
    return is_proxy(service) or any(i == "php" or i.startswith("php-") for i in images)


_INSTALLERS = {
    "npm": {"install", "i", "ci"},
    "yarn": {"install"},
    "pnpm": {"install", "i"},
    "pip": {"install"},
    "pip3": {"install"},
    "uv": {"sync"},
    "poetry": {"install"},
}


def installs_at_start(service: Service) -> bool:
    """Whether its command installs dependencies each time it starts (`sh -c "npm install
    && npm run dev"`, `pip install -r requirements.txt && flask run`): a changed manifest
    then needs a restart, whatever the image holds."""
    words = [*_programs(service.words), ""]
    return any(
        verb in _INSTALLERS.get(tool, ()) or (tool == "yarn" and verb in ("", "&&", ";"))
        for tool, verb in itertools.pairwise(words)
    )


# Redis and the servers that speak its protocol as drop-ins (Valkey, KeyDB): the same
# readiness (PING, LOADING) and the same role for RQ
REDIS_SERVERS = ("redis-server", "valkey-server", "keydb-server")
REDIS_IMAGES = ("redis", "redis-stack", "redis-stack-server", "valkey", "keydb")


def redis_flags(words: Iterable[str]) -> dict[str, str]:
    """`redis-server --appendonly yes --port 6390` -> {"appendonly": "yes", "port": "6390"}."""
    items = list(words)
    flags: dict[str, str] = {}
    for i, word in enumerate(items):
        if word.startswith("--") and i + 1 < len(items) and not items[i + 1].startswith("--"):
            flags[word[2:]] = items[i + 1]
    return flags


def is_redis(service: Service) -> bool:
    """A Redis server, by its command or its image (`redis:7`, `valkey/valkey:8`,
    `bitnami/redis`, `eqalpha/keydb`)."""
    if any(w in REDIS_SERVERS for w in _programs(service.words)):
        return True
    return _repository(service.image or "") in REDIS_IMAGES


def is_proxy(service: Service) -> bool:
    """nginx: a proxy in front of other services, which resolves upstream addresses when it
    (re)loads, or a server of static files."""
    images = [_repository(i) for i in (service.image, service.base_image) if i]
    if any(i in ("nginx", "nginx-unprivileged", "openresty") for i in images):
        return True
    # nginx run as a program: the first word, or after a shell's separator (`sh -c "nginx
    # -t && nginx -g ..."`), not an argument (`docker-gen -notify-sighup nginx`); or a start
    # script named for it (frappe's `nginx-entrypoint.sh`)
    words = [w.rsplit("/", 1)[-1] for w in service.words]
    return any(
        (w == "nginx" or (w.startswith("nginx") and w.endswith(".sh")))
        and (i == 0 or words[i - 1] in ("&&", "||", ";", "exec", "-c", "sh", "bash"))
        for i, w in enumerate(words)
    )


def _repository(image: str) -> str:
    """`docker.io/library/nginx:1.25-alpine@sha256:...` -> `nginx`."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower()


def app_url(stack: Stack, config: Config) -> str | None:
    """Where the user opens the app: configured, else the published HTTP port of the proxy
    in front (nginx, Traefik... depending on the app's services), else of another proxy or
    the frontend, else of the backend, else the HTTP origin of a host-network healthcheck."""
    if config.url:
        return config.url

    def rank(service: Service) -> tuple[int, str]:
        name = service.name.lower()
        words = set(re.split(r"[-_.\d]+", name))
        proxy = is_web_proxy(service) or is_proxy(service)
        if proxy and service.depends_on:
            return (0, name)  # in front of the app's services
        if proxy or words & set(FRONT_NAMES):
            return (1, name)
        if words & set(BACK_NAMES):
            return (2, name)
        return (3, name)

    for service in sorted(stack.services.values(), key=rank):
        # A published port of some other service (Redis, a database) is not the app.
        if service.ports and rank(service)[0] < 3:
            # A proxy publishing 80 and 443: users open the plain HTTP one.
            port = min(service.ports, key=lambda p: (p.target not in (80, 8080), p.target == 443))
            host = port.host_ip if port.host_ip not in (None, "0.0.0.0", "::") else "localhost"
            if ":" in host:
                host = f"[{host}]"  # an IPv6 literal in a URL
            scheme = "https" if port.target == 443 else "http"
            return f"{scheme}://{host}:{port.published}"
        if service.network_mode == "host" and service.healthcheck:
            match = _HTTP_URL.search(" ".join(service.healthcheck))
            if match:
                return match.group(0)
    return None
