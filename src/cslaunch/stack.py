"""The stack as it is: Compose's model, its containers, which services run Python from
where, and what changed since the last launch. Read-only: the launch pipeline and the
read-only commands (plan, verify, status, doctor, jobs) all start here.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cslaunch import bytecode, changes, compose_config, docker, index, model
from cslaunch.containers import Container, by_service, project_containers
from cslaunch.context import base_image
from cslaunch.errors import CslaunchError
from cslaunch.plan import Flags, Plan, make_plan
from cslaunch.project import Project, check_services
from cslaunch.state import LAST_LAUNCH, read_json

if TYPE_CHECKING:
    from cslaunch.jobs import Discovered


@dataclass(frozen=True)
class LaunchOptions:
    timeout: float | None = None  # None: the config's (default 120 s)
    build: bool = True
    force: bool = False
    rebuild: bool = False
    full: bool = False  # ignore the index: everything counts as changed
    verify: bool = True  # prove the result (one exec per Python container)
    # Restarted RQ workers start once the restarted web servers answer (or 2 s passed):
    # watch's user reloads a page rather than waiting for the whole stack (act.restart).
    web_first: bool = False
    # Recover RQ jobs whatever this launch stops: the last one may have cut some short and
    # ended, newer saves in, before its recovery was done (watch).
    recover_jobs: bool = False
    # Containers the last launch stopped and held back (watch: see act.restart): this one
    # starts them, or holds them back again.
    held: frozenset[str] = frozenset()
    # Saves keep coming (watch: less than 1.5 s apart, each cutting the last launch short):
    # with `web_first`, the workers wait for a pause in them too (launch.checks.head_start).
    typing: bool = False


@dataclass(frozen=True)
class Detected:
    project: Project  # with the project name Compose resolved: later steps ask the engine
    stack: model.Stack
    raw: dict[str, Any]  # Compose's JSON model
    python: frozenset[str]  # services that run Python
    roots: model.Roots
    containers: dict[str, list[Container]]


def detect(
    project: Project, *, containers: bool = True, started: docker.Pending | None = None
) -> Detected:
    """The Compose model as Compose resolves it, the containers, and which services run
    Python from where. With the project name known (-p, config), config and the container
    lookup run at once; without, the lookup needs the name config resolves. `started`: the
    `docker compose config` of this project, begun earlier (compose_config.config_later)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        config = pool.submit(compose_config.config, project.compose, started)
        early = (
            pool.submit(project_containers, project.compose)
            if containers and project.compose.name
            else None
        )
        try:
            raw = config.result()
            named = replace(
                project, compose=replace(project.compose, name=str(raw.get("name") or "") or None)
            )
            found = early.result() if early else None
            if containers and found is None:
                found = project_containers(named.compose)
        except CslaunchError:
            # Say why precisely: no CLI, no Compose v2, daemon down, or the project itself.
            docker.check_engine(project.compose)
            raise
    current = by_service(found or [])
    stack = with_jobs_done(model.parse_stack(raw), raw, read_json(project.root, LAST_LAUNCH))
    check_services(project, stack.services)
    texts = {name: dockerfile_text(s) for name, s in stack.services.items()}  # each read once
    stack = with_base_images(stack, texts)
    python = {
        s.name
        for s in stack.services.values()
        if model.runs_python(s, texts[s.name], project.config)
    }
    # The rest: what their images (pulled, or built by an earlier launch) say they run.
    unsure: dict[str, list[model.Service]] = {}
    for s in stack.services.values():
        if s.name not in python and project.config.service(s.name).python is None:
            unsure.setdefault(model.image_name(s, stack.name), []).append(s)
    for image, image_config in docker.image_configs(sorted(unsure)).items():
        python |= {
            s.name
            for s in unsure[image]
            if model.runs_python(s, None, project.config, image_config)
        }
    roots = model.python_roots(stack, project.root, lambda s: s.name in python, project.config)
    return Detected(named, stack, raw, frozenset(python), roots, current)


def with_jobs_done(stack: model.Stack, raw: Mapping[str, Any], last: Any) -> model.Stack:
    """The model with services the last launch saw finish of their own (exit 0) as
    one-shots, while their config is the one they ran with: a bootstrap job nothing waits
    for (`create-site`, `createbuckets`, a migration behind a plain depends_on) is then left
    done, not run again each launch (where it may fail: the site exists)."""
    done = last.get("completed") if isinstance(last, Mapping) else None
    if not isinstance(done, Mapping):
        return stack
    services = raw.get("services") or {}
    jobs = {
        name
        for name, digest in done.items()
        if name in stack.services and digest == index.config_hash(services.get(name) or {})
    }
    return replace(
        stack,
        services={
            n: replace(s, one_shot=True) if n in jobs else s for n, s in stack.services.items()
        },
    )


def with_base_images(stack: model.Stack, texts: Mapping[str, str | None]) -> model.Stack:
    """The model with each built service's base image, from its Dockerfile (`texts`)."""
    services = {
        name: replace(s, base_image=base_image(texts[name], s.target)) if s.buildable else s
        for name, s in stack.services.items()
    }
    return replace(stack, services=services)


def dockerfile_text(service: model.Service) -> str | None:
    if service.dockerfile_inline is not None:
        return service.dockerfile_inline
    if service.build_context is None:
        return None
    path = service.build_context / (service.dockerfile or "Dockerfile")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def runs_code(found: Detected, service: model.Service) -> bool:
    return service.name in found.python


def compute(
    project: Project, found: Detected, options: LaunchOptions, focus: changes.Focus | None = None
) -> tuple[changes.ChangeSet, Plan]:
    """Changes since the last launch and the plan they call for. Only reads."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The image check is a docker call, the scan Python's own I/O: at once.
        images = pool.submit(_missing_images, found) if options.build else None
        cs = change_set(project, found, full=options.full, focus=focus)
        missing = images.result() if images and cs.old is not None else set()
    plan = make_plan(
        found.stack,
        found.containers,
        lambda s: runs_code(found, s),
        cs.files,
        cs.changed,
        cs.config_changed,
        missing,
        Flags(build=options.build, force=options.force, rebuild=options.rebuild),
        options.held,
    )
    return cs, plan


def change_set(
    project: Project, found: Detected, *, full: bool = False, focus: changes.Focus | None = None
) -> changes.ChangeSet:
    return changes.detect(
        project.root,
        found.stack,
        found.raw.get("services", {}),
        found.python,
        found.roots.roots,
        source_patterns=project.config.source_patterns,
        extra_sources=project.config.frontend.sources if project.config.frontend else (),
        use_index=not full,
        focus=focus,
    )


def built_images(stack: model.Stack) -> dict[str, str]:
    """The image each buildable service builds: its `image:`, else Compose's
    `PROJECT-SERVICE`."""
    return {
        s.name: s.image or f"{stack.name}-{s.name}" for s in stack.services.values() if s.buildable
    }


def _missing_images(found: Detected) -> set[str]:
    """Buildable services whose image is gone (pruned): they need a build whatever changed."""
    names = built_images(found.stack)
    present = docker.existing_images(sorted(set(names.values())))
    return {service for service, image in names.items() if image not in present}


@dataclass(frozen=True)
class Prepared:
    """detect and compute, done ahead by a caller that had to look first (watch deciding
    whether a batch of saves matters): the launch takes them instead of doing them again."""

    found: Detected
    changes: changes.ChangeSet
    plan: Plan
    # The stack's RQ workers as Redis told them since the last launch (watch asks while
    # it waits for saves): the launch need not ask again before it stops anything.
    workers: Future[Discovered] | None = None


def prepare(
    project: Project,
    options: LaunchOptions,
    known: Detected | None = None,
    focus: changes.Focus | None = None,
) -> Prepared:
    """detect and compute; with `known` (the caller knows the Compose model cannot have
    changed since it was detected), only the containers are looked up again; with `focus`,
    only the files it names are asked again."""
    found = refreshed(known) if known else detect(project)
    return Prepared(found, *compute(project, found, options, focus))


def refreshed(found: Detected) -> Detected:
    """The same Compose model, with the containers as they are now."""
    return replace(found, containers=by_service(project_containers(found.project.compose)))


def invalidate_bytecode(
    python_roots: tuple[Path, ...], cs: changes.ChangeSet, *, dry_run: bool = False
) -> bytecode.CleanResult:
    """Selective with an index (only what can be stale goes), everything without one."""
    roots = tuple(r for r in python_roots if r.is_dir())
    if cs.old is None:
        return bytecode.clean(roots, dry_run=dry_run)
    doomed = bytecode.stale(
        cs.scan.bytecode,
        sources=cs.scan.files.keys(),  # asked only of `.py` paths: no set of them made
        changed=cs.changes.all,
        roots=[str(r) for r in roots],
    )
    return bytecode.remove(doomed, roots=roots, dry_run=dry_run)
