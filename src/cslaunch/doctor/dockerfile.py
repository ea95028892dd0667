"""Where a build puts the context's files, read from the Dockerfile alone: what the stage
Compose builds copies (:func:`dockerfile_copies`), what its RUN steps make that the program
needs (:func:`image_builds`), and which COPY sources are code."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from cslaunch import context
from cslaunch.doctor.facts import SourceInfo
from cslaunch.doctor.paths import is_under, norm


@dataclass(frozen=True)
class Copy:
    """Files of the build context in the image: a COPY/ADD of the stage Compose builds (or
    of a stage it starts from), or one it takes `--from` an earlier stage that copied them."""

    sources: tuple[str, ...]  # context-relative, as the Dockerfile writes them
    dest: str  # absolute path in the image; "" when it holds a variable
    dest_is_dir: bool  # the destination is a directory (ends in /, or several sources)
    consumed: bool  # a later RUN names one of the sources: the build makes something of it


def dockerfile_copies(text: str, target: str | None = None) -> list[Copy]:
    """The files of the build context the image Compose builds holds (the `target` stage,
    else the last), with destinations resolved against WORKDIR: what that stage and the
    stages it starts FROM copy from the context, and what it copies `--from` an earlier
    stage that took them from the context."""
    all_stages = context.stages(text)
    stage = context.built_stage(all_stages, target)
    return _stage_copies(all_stages, stage, frozenset()) if stage else []


def _stage_copies(
    all_stages: Sequence[context.Stage], stage: context.Stage, seen: frozenset[int]
) -> list[Copy]:
    # A stage inherits the files (and the WORKDIR) of the stages it starts from.
    body = [step for s in context.lineage(all_stages, stage) for step in s.body]
    workdir = "/"
    found: list[tuple[int, Copy]] = []
    for i, (keyword, rest) in enumerate(body):
        if keyword == "WORKDIR":
            value = rest.strip().strip("\"'")
            if "$" not in value:
                workdir = posixpath.normpath(posixpath.join(workdir, value))
        elif keyword in ("COPY", "ADD"):
            args = context.arguments(rest) or rest.split()
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            if len(paths) < 2:
                continue
            sources, dest = tuple(paths[:-1]), paths[-1]
            resolved = "" if "$" in dest else posixpath.normpath(posixpath.join(workdir, dest))
            is_dir = dest.endswith("/") or dest in (".", "..") or len(sources) > 1
            source_stage = next(
                (f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None
            )
            if source_stage is not None:
                earlier = _stage_named(all_stages, source_stage, before=stage.index)
                if earlier is not None and earlier.index not in seen and resolved:
                    copied = _stage_copies(all_stages, earlier, seen | {stage.index})
                    ran = any(k == "RUN" for k, _ in earlier.body)
                    for path in sources:
                        found += [(i, c) for c in _taken(copied, path, resolved, is_dir, ran)]
                continue
            if keyword == "ADD" and any("://" in src for src in sources):
                continue
            found.append((i, Copy(sources, resolved, is_dir, False)))
    copies = []
    for i, c in found:
        later = " ".join(rest for k, rest in body[i + 1 :] if k == "RUN")
        tokens = {norm(t) for t in re.split(r"[\s;&|=()'\"]+", later) if t}
        names = {norm(src) for src in c.sources} - {""}
        copies.append(Copy(c.sources, c.dest, c.dest_is_dir, c.consumed or bool(names & tokens)))
    return copies


def _stage_named(
    all_stages: Sequence[context.Stage], name: str, before: int
) -> context.Stage | None:
    """An earlier build stage by name or number; None for an image (`--from=nginx:1`)."""
    name = name.lower()
    return next((s for s in all_stages[:before] if s.name == name or str(s.index) == name), None)


def _taken(copied: list[Copy], path: str, dest: str, dest_is_dir: bool, ran: bool) -> list[Copy]:
    """What `COPY --from=STAGE path dest` takes of the context files that stage holds: what
    lies under `path` lands under `dest`, and a part of a copied directory lands at `dest`
    itself. A stage that ran a build step made something of them: a rebuild is expected."""
    path = posixpath.normpath(posixpath.join("/", path))
    taken = []
    for c in copied:
        if not c.dest:
            continue
        for source in c.sources:
            # Where this source is in that stage: a file copied into a directory keeps its name.
            at = c.dest
            if c.dest_is_dir and not is_dir_source(source):
                at = posixpath.join(c.dest, PurePath(norm(source)).name)
            consumed = c.consumed or ran
            if at == path or is_under(at, path):
                rel = posixpath.relpath(at, path)
                landed = dest if rel == "." else posixpath.join(dest, rel)
                taken.append(Copy((source,), landed, is_dir_source(source), consumed))
            elif is_under(path, at) and is_dir_source(source):
                part = posixpath.join(norm(source) or ".", posixpath.relpath(path, at))
                taken.append(Copy((posixpath.normpath(part),), dest, dest_is_dir, consumed))
    return taken


_VENV = re.compile(
    r"(?:\bpython[\d.]*\s+-m\s+venv|\bvirtualenv|\buv\s+venv)((?:\s+-\S+)*)(?:\s+([^\s;&|-]\S*))?"
)
# Tools that build into the working directory: (pattern, what they make there).
_IN_WORKDIR = (
    (re.compile(r"\buv\s+sync\b|\bpoetry\s+install\b|\bpipenv\s+(?:install|sync)\b"), ".venv"),
    (
        re.compile(r"\b(?:npm\s+(?:ci|install|i)|pnpm\s+(?:install|i)|yarn(?:\s+install)?)\b"),
        "node_modules",
    ),
    (re.compile(r"\bpip\d*(?:\.\d+)?\s+install\s+(?:\S+\s+)*(?:-e|--editable)\b"), "*.egg-info"),
)


def image_builds(text: str, target: str | None = None) -> list[str]:
    """Paths the image's RUN steps make that the program needs at run time: virtualenvs,
    node_modules, an editable install's metadata (`DIR/*.egg-info`); and VIRTUAL_ENV."""
    all_stages = context.stages(text)
    stage = context.built_stage(all_stages, target)
    found: list[str] = []
    workdir = "/"
    for s in context.lineage(all_stages, stage) if stage else []:
        for keyword, rest in s.body:
            if keyword == "WORKDIR" and "$" not in rest:
                workdir = posixpath.normpath(posixpath.join(workdir, rest.strip().strip("\"'")))
            elif keyword == "ENV":
                venv = re.search(r"\bVIRTUAL_ENV[= ]\s*[\"']?([^\s\"']+)", rest)
                if venv and "$" not in venv.group(1):
                    found.append(posixpath.normpath(posixpath.join(workdir, venv.group(1))))
            elif keyword == "RUN":
                for m in _VENV.finditer(rest):
                    path = m.group(2) or ".venv"
                    if "$" not in path:
                        found.append(posixpath.normpath(posixpath.join(workdir, path)))
                for pattern, made in _IN_WORKDIR:
                    if pattern.search(rest):
                        found.append(posixpath.join(workdir, made))
    return sorted(set(found))


# Volumes over these directories of bind-mounted code are the usual, deliberate pattern
# (dependencies and caches built inside the container), not code hidden by mistake; nor is
# what they hold code when the build context is looked at.
DEPENDENCY_DIRS = frozenset(
    {
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".cache",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".next",
        ".nuxt",
    }
)

_MANIFESTS = (
    "requirements*.txt",
    "constraints*.txt",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "uv.lock",
    "*.lock",
    "package.json",
    "package-lock.json",
    "pnpm-lock.yaml",
    "Makefile",
    "Dockerfile",
    "README*",
    "LICENSE*",
    ".dockerignore",
)
_CODE_SUFFIXES = frozenset(
    {".py", ".pyx", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".vue", ".svelte", ".html"}
    | {".css", ".scss", ".jinja", ".j2"}
)


def is_dir_source(source: str, sources: Mapping[str, SourceInfo] | None = None) -> bool:
    """Whether a COPY source is a directory: as the build context has it, else as written."""
    info = (sources or {}).get(norm(source) or ".")
    if info is not None and info.kind != "missing":
        return info.kind == "dir"
    return source in (".", "./") or source.endswith("/") or PurePath(source).suffix == ""


def is_code(source: str, sources: Mapping[str, SourceInfo] | None = None) -> bool:
    """Whether a COPY source is (or likely holds) code: a code file or a directory holding
    code, as the build context has it; where it cannot be looked at, a directory or a file
    with a code suffix, not a dependency manifest or a config file."""
    info = (sources or {}).get(norm(source) or ".")
    if info is not None and info.kind != "missing":
        return info.code
    if source in (".", "./") or source.endswith("/"):
        return True
    name = PurePath(source).name
    if any(fnmatch.fnmatch(name, pattern) for pattern in _MANIFESTS):
        return False
    suffix = PurePath(name).suffix
    return suffix in _CODE_SUFFIXES or suffix == ""  # no suffix: most likely a directory


def is_code_file(name: str) -> bool:
    """A file name that is code, for a file on disk (where `is_code` must guess)."""
    if any(fnmatch.fnmatch(name, pattern) for pattern in _MANIFESTS):
        return False
    return PurePath(name).suffix in _CODE_SUFFIXES
