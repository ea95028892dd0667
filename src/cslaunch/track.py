"""Which files each service depends on, derived from the Compose model (pure).

- bind-mounted directories of a service that runs project code: its source files
  (`*.py` and the configured `source_patterns`); the container sees edits directly, so a
  change needs a restart;
- bind-mounted single files that look like configuration (nginx.conf, settings.toml): a
  restart too;
- the build context (minus .dockerignore, only what COPY/ADD take) and the Dockerfile: a
  change needs a rebuild, unless the changed file is also bind-mounted into the service, in
  which case the mount hides the baked copy and a restart is enough.

Directories that services bind for data (Redis's /data, uploads, logs) are never tracked:
their files change while the stack runs and say nothing about code.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from cslaunch.context import (
    CopyRule,
    DockerIgnore,
    build_stages,
    copied_filter,
    copy_rules,
    image_stages,
    is_manifest,
    names_itself,
    parse_dockerignore,
    placed,
    under,
)
from cslaunch.scan import Tree

DEFAULT_SOURCE_PATTERNS = ("*.py",)
CONFIG_SUFFIXES = frozenset(
    {
        ".conf",
        ".cfg",
        ".ini",
        ".toml",
        ".yaml",
        ".yml",
        ".json",
        ".py",
        ".sh",
        ".env",
        ".properties",
        ".xml",
        ".lua",
        ".js",
        ".template",
        ".tmpl",
        ".html",
    }
)


@dataclass(frozen=True)
class ServiceFiles:
    service: str
    bind_dirs: tuple[str, ...]  # tracked bind-mounted directories (absolute)
    bind_files: tuple[str, ...]  # tracked bind-mounted single files (absolute)
    context: str | None  # build context directory (absolute)
    dockerfile: str | None  # absolute path of the Dockerfile
    copied: Callable[[str], bool]  # context-relative path -> taken by COPY/ADD
    ignore: DockerIgnore
    source_patterns: tuple[str, ...]
    copies: tuple[CopyRule, ...] | None = None  # the Dockerfile's COPY/ADD; None: not followed
    image_stages: frozenset[int] = frozenset()  # stages whose COPYs the image holds
    build_stages: frozenset[int] = frozenset()  # stages its build runs (context.build_stages)
    # Directories below bind_dirs the container does not see: the host's venvs that a volume
    # of the service's own hides (changes.hidden_venvs)
    hidden: tuple[str, ...] = ()
    # (host directory, container target) of each bind-mounted directory, for any service
    bind_targets: tuple[tuple[str, str], ...] = ()
    installs_at_start: bool = False  # model.installs_at_start
    # Directories of configuration it reads at start (an nginx's `./nginx/conf.d:/etc/nginx/
    # conf.d`): any file changed there restarts it
    config_dirs: tuple[str, ...] = ()
    # The container sees its mounted sources as they are (Python restarted, a dev server's
    # own watcher): a baked copy a mount covers needs no rebuild. Not so for a service that
    # reads its code once (`node server.js`) or runs what a build made of it (`go build`).
    serves_mounts: bool = False

    def is_source(self, rel_name: str) -> bool:
        # Called for every file of every bind-mounted tree: one compiled pattern, not an
        # fnmatch call per pattern (a third of a 100k-file scan).
        return _names(self.source_patterns).match(rel_name.rsplit("/", 1)[-1]) is not None

    def restart_files(self, changed: Iterable[str]) -> list[str]:
        """Changed files the running container sees through a bind mount, or reads at its
        next start (a dependency manifest it installs from, its configuration directory)."""
        hits = []
        for path in changed:
            in_config = any(_under(path, d) for d in self.config_dirs)
            if path in self.bind_files or (in_config and is_config_file(os.path.basename(path))):
                hits.append(path)
                continue
            if any(_under(path, h) for h in self.hidden):
                continue
            if self.installs_at_start and any(
                _under(path, host) and is_manifest(_rel(path, host))
                for host, _ in self.bind_targets
            ):
                hits.append(path)  # installed from at the next start, not from the image
                continue
            for d in self.bind_dirs:
                if _under(path, d) and self.is_source(path):
                    hits.append(path)
                    break
        return sorted(hits)

    def rebuild_files(self, changed: Iterable[str]) -> list[str]:
        """Changed files baked into the image (and not hidden by a bind mount)."""
        hits = []
        for path in changed:
            if path == self.dockerfile:
                hits.append(path)
            elif self.context and _under(path, self.context):
                rel = _rel(path, self.context)
                if not self.copied(rel) or self.ignore.ignored(rel):
                    continue
                hosts = [*self.bind_dirs, *(h for h, _ in self.bind_targets if self.serves_mounts)]
                mounted = any(_under(path, host) for host in hosts)
                if mounted and self._mount_hides(path, rel):
                    continue  # the container sees this file through the mount, not the copy
                hits.append(path)
        return sorted(hits)

    def _mount_hides(self, path: str, rel: str) -> bool:
        """Whether the bind mount of a changed context file hides every use the image makes
        of it: no copy of it is an input of a build step (a dependency manifest, or a file
        other than code that a COPY names on its own, before a RUN: `COPY requirements.txt
        .` then `RUN pip install`: the mount shows the new list, the image holds the old
        packages), and no copy in the image lands where no mount covers it (`COPY start.sh
        /start`, which the container runs from the image)."""
        if self.copies is None:
            # A Dockerfile not followed: a manifest is what a build step installs from
            return not is_manifest(rel)
        targets = [t for _, t in self.bind_targets]
        for rule in self.copies:
            at = placed(rule, rel)
            if at is None or rule.stage not in self.build_stages:
                continue
            if rule.mounted:
                return False  # read by a build step: what it made of the file is in the image
            if rule.before_run and (
                is_manifest(rel) or (names_itself(rule, rel) and not self.is_source(rel))
            ):
                return False
            if rule.stage not in self.image_stages and rule.before_run:
                return False  # a builder stage's input (`COPY frontend/ .`, `npm run build`)
            if targets and not _covered(at, targets):
                return False
        return True


def _covered(inside: str, targets: Sequence[str]) -> bool:
    """Whether a container path lies under one of these mount targets (the mount, not the
    image, is what the container sees there)."""
    inside = posixpath.normpath(inside)
    return any(under(inside, posixpath.normpath(t)) for t in targets)


def service_files(
    name: str,
    *,
    runs_code: bool,
    bind_dirs: Sequence[str],
    bind_files: Sequence[str],
    context: str | None,
    dockerfile: str | None,
    dockerfile_text: str | None,
    dockerignore_text: str | None,
    source_patterns: Sequence[str] = DEFAULT_SOURCE_PATTERNS,
    target: str | None = None,
    hidden: Sequence[str] = (),
    bind_targets: Sequence[tuple[str, str]] = (),
    installs_at_start: bool = False,
    watches: bool = False,
    config_dirs: Sequence[str] = (),
    config_files: Sequence[str] = (),
) -> ServiceFiles:
    """`config_files`: those of bind_files that are configuration whatever their name (a
    `configs:` or `secrets:` file)."""
    rules = copy_rules(dockerfile_text)
    tracked_files = tuple(
        f
        for f in bind_files
        if os.path.splitext(f)[1].lower() in CONFIG_SUFFIXES or f in config_files
    )
    return ServiceFiles(
        service=name,
        bind_dirs=tuple(bind_dirs) if runs_code else (),
        bind_files=tracked_files,
        context=context,
        dockerfile=dockerfile,
        copied=copied_filter(None if rules is None else [r.src for r in rules]),
        ignore=parse_dockerignore(dockerignore_text),
        source_patterns=tuple(dict.fromkeys([*DEFAULT_SOURCE_PATTERNS, *source_patterns])),
        copies=tuple(rules) if rules is not None else None,
        image_stages=image_stages(dockerfile_text, target),
        build_stages=build_stages(dockerfile_text, target),
        hidden=tuple(hidden) if runs_code else (),
        # Every service's: a dev server's mount (`./frontend:/app`, Vite) shows its sources
        # too, which its own watcher serves; only Python services restart for them.
        bind_targets=tuple(bind_targets),
        installs_at_start=installs_at_start,
        serves_mounts=runs_code or watches,
        config_dirs=tuple(config_dirs),
    )


def trees(services: Iterable[ServiceFiles]) -> tuple[list[Tree], list[str]]:
    """The trees to walk and the single files to stat, for all services together."""
    out: list[Tree] = []
    singles: list[str] = []
    for sf in services:
        for d in sf.bind_dirs:
            out.append(Tree(d, sf.is_source, by_name=True, skip=skip_below(sf.hidden, d)))
        out += [Tree(d, is_config_file, by_name=True) for d in sf.config_dirs]
        if sf.installs_at_start:
            out += [
                Tree(host, is_manifest, skip=skip_below(sf.hidden, host))
                for host, _ in sf.bind_targets
            ]
        if sf.context:
            out.append(Tree(sf.context, sf.copied, sf.ignore))
        singles.extend(sf.bind_files)
        if sf.dockerfile:
            # Outside the context, or inside but .dockerignored: tracked all the same.
            singles.append(sf.dockerfile)
    return out, sorted(set(singles))


def is_config_file(name: str) -> bool:
    """A file a server may read as configuration in a directory of it (`site.conf`,
    `mime.types`, `fastcgi_params`, a certificate), not an editor's swap or backup file
    nor a log written there: those would restart it at every save or request."""
    if name.startswith(".") or name.endswith(("~", ".swp", ".log", ".pid")):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in CONFIG_SUFFIXES or suffix in ("", ".types", ".inc", ".crt", ".pem", ".key")


@cache
def _names(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for file-name patterns, as fnmatch.fnmatchcase reads them."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/\\") + os.sep) or path == directory


def skip_below(dirs: Iterable[str], directory: str) -> frozenset[str]:
    """Those of `dirs` inside `directory`, relative to it (a Tree's `skip`)."""
    return frozenset(_rel(d, directory) for d in dirs if _under(d, directory) and d != directory)


def _rel(path: str, directory: str) -> str:
    return os.path.relpath(path, directory).replace(os.sep, "/")
