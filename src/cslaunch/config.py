"""User configuration: `[tool.cslaunch]` in pyproject.toml, or a cslaunch.toml beside it.

Everything here is optional: the Compose model supplies the defaults. Validation is strict
so a typo is an error that names the key, not a setting silently ignored.
"""

from __future__ import annotations

import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cslaunch.errors import ConfigError
from cslaunch.rqconfig import RQConfig, parse_rq_config

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

    def get(tbl: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
        value = tbl.get(key)
        # bool is an int in Python; a number setting given `true` is still a type error.
        if value is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind))
        ):
            raise fail(path, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def str_list(tbl: dict[str, Any], key: str, path: str) -> tuple[str, ...] | None:
        value = get(tbl, key, list, path)
        if value is None:
            return None
        for item in value:
            if not isinstance(item, str) or not item:
                raise fail(path, "expected a list of non-empty strings")
        return tuple(value)

    _reject_unknown(table, TOP_KEYS, fail, "")
    roots = str_list(table, "python_roots", "python_roots")
    url = get(table, "url", str, "url")
    if url is not None:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            _ = parts.port  # raises on a bad port
        except ValueError:
            valid = False
        if not valid:
            raise fail("url", f"not an http(s) URL: {url!r}")
    timeout = get(table, "timeout", (int, float), "timeout")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise fail("timeout", "must be a positive number of seconds")
    project_name = get(table, "project_name", str, "project_name")

    services: dict[str, ServiceConfig] = {}
    for name, svc in (get(table, "services", dict, "services") or {}).items():
        path = f"services.{name}"
        if not isinstance(svc, dict):
            raise fail(path, "expected a table")
        _reject_unknown(svc, SERVICE_KEYS, fail, path + ".")
        stop = get(svc, "stop", str, path + ".stop") or "auto"
        if stop not in STOP_MODES:
            raise fail(path + ".stop", f"expected one of {', '.join(STOP_MODES)}, got {stop!r}")
        grace = get(svc, "grace", (int, float), path + ".grace")
        if grace is not None and not (math.isfinite(grace) and grace >= 0):
            raise fail(path + ".grace", "must be zero or more seconds")
        health = get(svc, "health", str, path + ".health")
        if health is not None:
            try:
                parts = urlsplit(health)
                valid = parts.scheme in ("http", "https", "tcp") and bool(parts.hostname)
                valid = valid and (parts.scheme != "tcp" or parts.port is not None)
            except ValueError:
                valid = False
            if not valid:
                raise fail(
                    path + ".health", f"expected http(s)://... or tcp://host:port, got {health!r}"
                )
        status = get(svc, "health_status", int, path + ".health_status")
        if status is not None and not 100 <= status <= 599:
            raise fail(path + ".health_status", f"not an HTTP status: {status}")
        services[name] = ServiceConfig(
            python=get(svc, "python", bool, path + ".python"),
            stop=stop,
            grace=float(grace) if grace is not None else None,
            health=health,
            health_status=status,
        )

    return Config(
        source=source,
        compose_files=str_list(table, "compose_files", "compose_files") or (),
        project_name=project_name,
        profiles=str_list(table, "profiles", "profiles") or (),
        python_roots=tuple((base / r) for r in roots) if roots is not None else None,
        url=url,
        timeout=float(timeout) if timeout is not None else Config.timeout,
        source_patterns=str_list(table, "source_patterns", "source_patterns") or (),
        frontend=_frontend(get(table, "frontend", dict, "frontend"), base, fail),
        rq=parse_rq_config(get(table, "rq", dict, "rq") or {}, fail),
        services=services,
    )


def _frontend(table: dict[str, Any] | None, base: Path, fail: Any) -> FrontendConfig | None:
    if table is None:
        return None
    _reject_unknown(table, FRONTEND_KEYS, fail, "frontend.")
    build = table.get("build")
    if isinstance(build, str) and build.strip():
        try:
            words = tuple(shlex.split(build))
        except ValueError as e:
            raise fail("frontend.build", f"cannot split into arguments: {e}") from None
    elif isinstance(build, list) and build and all(isinstance(w, str) and w for w in build):
        words = tuple(build)
    else:
        raise fail("frontend.build", "expected a command: a string or a list of arguments")
    sources = table.get("sources")
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(s, str) and s for s in sources)
    ):
        raise fail("frontend.sources", "expected a list of paths whose changes need a build")
    cwd, output = table.get("cwd", "."), table.get("output")
    if not isinstance(cwd, str):
        raise fail("frontend.cwd", "expected a path")
    if output is not None and not isinstance(output, str):
        raise fail("frontend.output", "expected a path")
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


def _reject_unknown(table: dict[str, Any], known: frozenset[str], fail: Any, path: str) -> None:
    for key in table:
        if key not in known:
            raise fail(path + key, f"unknown key (known: {', '.join(sorted(known))})")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))
