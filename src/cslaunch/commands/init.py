"""`cslaunch init`: write a commented configuration showing what cslaunch derived from the
Compose model, so the user can see it and override what is wrong. Every setting is written
commented out: zero configuration stays the default.
"""

from __future__ import annotations

from pathlib import Path

import click

from cslaunch import model, output, readiness
from cslaunch.config import CONFIG_FILE
from cslaunch.errors import PathError
from cslaunch.model import is_proxy
from cslaunch.options import Globals
from cslaunch.redact import scrub
from cslaunch.report import relative
from cslaunch.stack import Detected, detect


def roles(service: model.Service, found: Detected, root: Path) -> list[str]:
    out = []
    if service.name in found.python:
        out.append("python")
    if any(w.rsplit("/", 1)[-1] in ("rq", "rqworker") for w in service.words):
        out.append("RQ worker")
    if model.is_redis(service):
        out.append(f"redis (PING probe on port {readiness.redis_port(service)})")
    if is_proxy(service):
        out.append("nginx proxy (reloaded when what it proxies restarts)")
    for bind in service.binds:
        if bind.source.is_dir() and service.name in found.python:
            out.append(f"code mounted {relative(bind.source, root)} -> {bind.target}")
    if service.build_context:
        out.append(f"image built from {relative(service.build_context, root)}")
    if service.healthcheck:
        out.append("healthcheck")
    if not out:
        out.append("runs none of the project's code: left alone unless its config changes")
    return out


def render(found: Detected, root: Path, url: str | None) -> str:
    lines = [
        f'# cslaunch configuration for the Compose project "{found.stack.name}".',
        "# Written by `cslaunch init` from the Compose model. Every value below is what",
        "# cslaunch derives on its own: uncomment a line only to override it.",
        "",
    ]
    roots = [relative(r, root) for r in found.roots.roots]
    lines.append(f"# python_roots = {_toml_list(roots)}  # bytecode is cleaned here")
    for outside in found.roots.outside:
        lines.append(f"#   (not cleaned: {outside} is outside the project; add it to include it)")
    lines.append('# source_patterns = ["*.py"]  # files of mounted code that need a restart')
    if url:
        lines.append(f'# url = "{url}"  # where the app is opened')
    else:
        lines.append("# url: none derived (no proxy, frontend or backend publishes a port);")
        lines.append('#   set it to where you open the app, e.g. url = "http://localhost:PORT"')
    lines.append("# timeout = 120  # seconds to wait for readiness")
    lines.append("")
    lines.append("# The services, as cslaunch sees them:")
    width = max((len(n) for n in found.stack.services), default=7)
    for name in found.stack.names():
        service = found.stack.services[name]
        lines.append(f"#   {name:<{width}}  {'; '.join(roles(service, found, root))}")
    for name in found.stack.names():
        if name not in found.python:
            continue
        lines += [
            "",
            f"# [services.{name}]",
            '# stop = "auto"  # auto: kill at once if PID 1 ignores SIGTERM | graceful | kill',
            "# grace = 10     # seconds a graceful stop may take",
            '# health = "http://127.0.0.1:PORT/health"  # must answer before it counts as ready',
        ]
    lines += [
        "",
        "# A bundle built on the host when its sources change:",
        "# [frontend]",
        '# build = "npm run build"',
        '# cwd = "frontend"',
        '# sources = ["frontend/src", "frontend/package.json"]',
        '# output = "frontend/dist"',
    ]
    return "\n".join(lines) + "\n"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def write(root: Path, text: str, *, pyproject: bool) -> Path:
    """cslaunch.toml (never overwritten), or a [tool.cslaunch] section added to pyproject.toml."""
    if not pyproject:
        path = root / CONFIG_FILE
        if path.exists():
            raise PathError(f"{path} exists already", hint="use --print to see the derived config")
        path.write_text(text, encoding="utf-8")
        return path
    path = root / "pyproject.toml"
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if "[tool.cslaunch" in existing:
        raise PathError(f"{path} has a [tool.cslaunch] section already")
    body = text.replace("# [services.", "# [tool.cslaunch.services.").replace(
        "# [frontend]", "# [tool.cslaunch.frontend]"
    )
    section = "\n[tool.cslaunch]\n" + body
    path.write_text(existing.rstrip("\n") + ("\n" if existing else "") + section, encoding="utf-8")
    return path


def init(g: Globals, *, to_stdout: bool, pyproject: bool) -> None:
    project = g.project()
    found = detect(project, containers=False)
    text = render(found, project.root, model.app_url(found.stack, project.config))
    path = None if to_stdout else write(project.root, text, pyproject=pyproject)
    if g.json:
        output.emit(
            output.envelope(
                "init", True, project=found.stack.name, path=str(path) if path else None, text=text
            )
        )
    if path is None:
        if not g.json:
            click.echo(scrub(text), nl=False)
        return
    g.ui().line(f"wrote {path}: every setting is commented out, uncomment to override")
