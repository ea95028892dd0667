"""User configuration: `[tool.cslaunch]` in pyproject.toml, or a cslaunch.toml beside it.

Everything here is optional: the Compose model supplies the defaults. Validation is strict
so a typo is an error that names the key, not a setting silently ignored.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cslaunch.errors import ConfigError
from cslaunch.rqconfig import RQConfig, parse_rq_config
from cslaunch.toml_reader import Fail, Reader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_FILE = "cslaunch.toml"
PYPROJECT = "pyproject.toml"
STOP_MODES = ("auto", "graceful", "kill")


@dataclass(frozen=True)
class ServiceConfig:
    python: bool | None = None  # None: decide from the Compose model
    stop: str = "auto"
    grace: float | None = None  # seconds a graceful stop may take; None: the service's own
    health: str | None = None  # http(s):// URL or tcp://host:port that must answer
    health_status: int | None = None  # the HTTP status health must answer (default: < 400)


@dataclass(frozen=True)
class FrontendConfig:
    """A bundle built on the host (`npm run build`) when its sources changed."""

    build: tuple[str, ...]  # the command, as a list of arguments (no shell)
    cwd: Path
    sources: tuple[Path, ...]
    output: Path | None = None


@dataclass(frozen=True)
class Config:
    source: Path | None = None  # the file it came from, for messages
    compose_files: tuple[str, ...] = ()
    project_name: str | None = None
    profiles: tuple[str, ...] = ()
    python_roots: tuple[Path, ...] | None = None  # None: derive from bind mounts
    url: str | None = None
    timeout: float = 120.0
    source_patterns: tuple[str, ...] = ()  # more than *.py in bind-mounted code trees
    frontend: FrontendConfig | None = None
    rq: RQConfig = field(default_factory=RQConfig)
    services: dict[str, ServiceConfig] = field(default_factory=dict)

    def service(self, name: str) -> ServiceConfig:
        return self.services.get(name, ServiceConfig())


def find_config_file(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The config table and its file: cslaunch.toml wins over pyproject.toml."""
    candidate = directory / CONFIG_FILE
    if candidate.is_file():
        data = _read_toml(candidate)
        # cslaunch.toml may hold the keys at top level or under [tool.cslaunch], like pyproject.
        tool = data.get("tool") if "tool" in data else None
        table = tool.get("cslaunch", data) if isinstance(tool, dict) else data
        return candidate, _table(table, candidate, "tool.cslaunch")
    candidate = directory / PYPROJECT
    if candidate.is_file():
        tool = _read_toml(candidate).get("tool", {})
        table = tool.get("cslaunch") if isinstance(tool, dict) else None
        if table is not None:
            return candidate, _table(table, candidate, "tool.cslaunch")
    return None


def _table(value: Any, path: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path.name}: {key}: expected a table, got {type(value).__name__}")
    return value


def load_config(directory: Path) -> Config:
    found = find_config_file(directory)
    if found is None:
        return Config()
    path, table = found
    prefix = "" if path.name == CONFIG_FILE else "tool.cslaunch."
    return parse_config(table, source=path, base=directory, prefix=prefix)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path.name}: cannot read: {e.strerror}") from None


def parse_config(
    table: dict[str, Any], *, source: Path | None = None, base: Path, prefix: str = ""
) -> Config:
    """Validate a config table; `base` resolves relative paths, `prefix` names keys in errors."""
    where = source.name if source else "config"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {prefix}{key}: {problem}")

    top = Reader(table, fail)
    top.only(TOP_KEYS)
    roots = top.strings("python_roots")
    url = _url(top)
    timeout = top.number(
        "timeout", low=0, low_ok=False, problem="must be a positive number of seconds"
    )
    project_name = top.get("project_name", str)
    services: dict[str, ServiceConfig] = {}
    for name, svc in (top.get("services", dict) or {}).items():
        if not isinstance(svc, dict):
            raise top.error(f"services.{name}", "expected a table")
        services[name] = _service(Reader(svc, fail, f"services.{name}."))
    return Config(
        source=source,
        compose_files=top.strings("compose_files") or (),
        project_name=project_name,
        profiles=top.strings("profiles") or (),
        # Spelled as Compose spells bind sources (`..` folded): the walk names files so.
        python_roots=tuple(Path(os.path.normpath(base / r)) for r in roots)
        if roots is not None
        else None,
        url=url,
        timeout=timeout if timeout is not None else Config.timeout,
        source_patterns=top.strings("source_patterns") or (),
        frontend=_frontend(top.get("frontend", dict), base, fail),
        rq=parse_rq_config(top.get("rq", dict) or {}, fail),
        services=services,
    )


def _url(top: Reader) -> str | None:
    url: str | None = top.get("url", str)
    if url is not None:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # raises on a bad port
        except ValueError:
            valid = False
        if not valid:
            raise top.error("url", f"not an http(s) URL: {url!r}")
    return url


def _service(svc: Reader) -> ServiceConfig:
    svc.only(SERVICE_KEYS)
    stop = svc.get("stop", str) or "auto"
    if stop not in STOP_MODES:
        raise svc.error("stop", f"expected one of {', '.join(STOP_MODES)}, got {stop!r}")
    grace = svc.number("grace", low=0, low_ok=True, problem="must be zero or more seconds")
    health = svc.get("health", str)
    if health is not None:
        try:
            parts = urlsplit(health)
            valid = parts.scheme in ("http", "https", "tcp") and bool(parts.hostname)
            valid = valid and (parts.scheme != "tcp" or parts.port is not None)
        except ValueError:
            valid = False
        if not valid:
            raise svc.error("health", f"expected http(s)://... or tcp://host:port, got {health!r}")
    status = svc.get("health_status", int)
    if status is not None and not 100 <= status <= 599:
        raise svc.error("health_status", f"not an HTTP status: {status}")
    return ServiceConfig(
        python=svc.get("python", bool),
        stop=stop,
        grace=grace,
        health=health,
        health_status=status,
    )


def _frontend(table: dict[str, Any] | None, base: Path, fail: Fail) -> FrontendConfig | None:
    if table is None:
        return None
    frontend = Reader(table, fail, "frontend.")
    frontend.only(FRONTEND_KEYS)
    build = table.get("build")
    if isinstance(build, str) and build.strip():
        try:
            words = tuple(shlex.split(build))
        except ValueError as e:
            raise frontend.error("build", f"cannot split into arguments: {e}") from None
    elif isinstance(build, list) and build and all(isinstance(w, str) and w for w in build):
        words = tuple(build)
    else:
        raise frontend.error("build", "expected a command: a string or a list of arguments")
    sources = table.get("sources")
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(s, str) and s for s in sources)
    ):
        raise frontend.error("sources", "expected a list of paths whose changes need a build")
    cwd, output = table.get("cwd", "."), table.get("output")
    if not isinstance(cwd, str):
        raise frontend.error("cwd", "expected a path")
    if output is not None and not isinstance(output, str):
        raise frontend.error("output", "expected a path")
    return FrontendConfig(
        build=words,
        cwd=base / cwd,
        sources=tuple(base / s for s in sources),
        output=base / output if output else None,
    )


TOP_KEYS = frozenset(
    {
        "compose_files",
        "project_name",
        "profiles",
        "python_roots",
        "url",
        "timeout",
        "source_patterns",
        "frontend",
        "rq",
        "services",
    }
)
FRONTEND_KEYS = frozenset({"build", "cwd", "sources", "output"})
SERVICE_KEYS = frozenset({"python", "stop", "grace", "health", "health_status"})
