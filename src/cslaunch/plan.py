"""Decide the least each service needs so that it runs the code on disk. Pure: the model, the
containers, the changes since the last launch and the user's flags in; a plan out.

From least to most:
- leave    nothing it uses changed (or it runs none of the project's code);
- restart  a bind-mounted source changed: the files are there, the process must reload them;
- recreate how it runs changed: its Compose config or environment (`up` recreates it), or
           the image it runs (`up` pulls a missing one);
- rebuild  what its image is built from changed: a file it bakes in (context, Dockerfile,
           dependency files) or its `build` settings (args, target, inline Dockerfile...);
- start    it is not running.
Without a change index (the first launch) everything counts as changed. A container the
last launch stopped and held back (watch: RQ workers while saves come in) counts as running
and restarts whatever changed: it is to be started as it was, not by `up`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from cslaunch.containers import Container
from cslaunch.index import UNKNOWN_KEY
from cslaunch.model import Service, Stack
from cslaunch.track import ServiceFiles

START, REBUILD, RECREATE, RESTART, LEAVE = "start", "rebuild", "recreate", "restart", "leave"
SHOWN_FILES = 3


@dataclass(frozen=True)
class Flags:
    build: bool = True  # False: --no-build
    force: bool = False  # restart everything that runs project code
    rebuild: bool = False  # rebuild every buildable service


@dataclass(frozen=True)
class ServicePlan:
    service: str
    action: str
    build: bool
    reason: str
    files: tuple[str, ...] = ()  # the changed files behind the action


@dataclass(frozen=True)
class Plan:
    running: bool  # relaunch of a running stack, or a full start
    services: tuple[ServicePlan, ...]
    build: tuple[str, ...]  # services to pass to `docker compose build`, one per shared image
    first: bool = False  # no change index: everything counted as changed

    def with_action(self, *actions: str) -> list[str]:
        return [p.service for p in self.services if p.action in actions]

    @property
    def noop(self) -> bool:
        return all(p.action == LEAVE for p in self.services)


def make_plan(
    stack: Stack,
    containers: Mapping[str, Sequence[Container]],
    runs_code: Callable[[Service], bool],
    files: Mapping[str, ServiceFiles],
    changed: Collection[str] | None,  # None: no index, everything counts as changed
    config_changed: Mapping[str, Collection[str]] | None = None,  # service -> changed keys
    images_missing: Collection[str] = (),
    flags: Flags = Flags(),
    held: Collection[str] = (),  # ids of containers the last launch held back stopped
) -> Plan:
    running = any(c.running for cs in containers.values() for c in cs)
    plans = [
        _plan_service(
            stack.services[name],
            containers.get(name, []),
            runs_code(stack.services[name]),
            files.get(name),
            changed,
            frozenset((config_changed or {}).get(name, ())),
            name in images_missing,
            flags,
            frozenset(held),
        )
        for name in stack.names()
    ]
    plans = _with_their_builders(stack, containers, files, changed, plans, flags)
    plans = _with_what_they_restart_with(stack, containers, plans)
    plans = _jobs_for_new_dependencies(stack, plans)
    return Plan(
        running=running,
        services=tuple(plans),
        build=_one_per_image(stack, plans),
        first=changed is None,
    )


def _plan_service(
    service: Service,
    containers: Sequence[Container],
    ours: bool,
    files: ServiceFiles | None,
    changed: Collection[str] | None,
    config_keys: frozenset[str],
    image_missing: bool,
    flags: Flags,
    held: frozenset[str] = frozenset(),
) -> ServicePlan:
    name = service.name
    if service.replicas == 0:
        return ServicePlan(name, LEAVE, False, "scaled to 0: no container runs")
    can_build = service.buildable and flags.build
    rebuild_files = files.rebuild_files(changed) if files and changed is not None else []
    restart_files = files.restart_files(changed) if files and changed is not None else []
    build_keys = _build_keys(config_keys) if service.buildable else []
    needs_build = can_build and (
        changed is None or flags.rebuild or image_missing or bool(rebuild_files or build_keys)
    )
    why_build = _build_reason(
        changed is None, flags.rebuild, image_missing, rebuild_files, build_keys
    )

    if not containers or not all(c.running or c.id in held for c in containers):
        if (
            service.one_shot
            and _completed(containers)
            and not (needs_build or rebuild_files or restart_files or config_keys or flags.force)
            and changed is not None
        ):
            # Started again it would run again (Compose starts any container not running):
            # migrations on every launch, never a no-op, and a bootstrap job that fails once
            # its work exists (changes.service_files tracks what a one-shot reads).
            return ServicePlan(name, LEAVE, False, "completed (exit 0); nothing it uses changed")
        reason = "not running" + (f"; build: {why_build}" if needs_build else "")
        return ServicePlan(name, START, needs_build, reason, tuple(rebuild_files))
    if needs_build:
        return ServicePlan(name, REBUILD, True, why_build, tuple(rebuild_files))
    recreated = _without_build(name, rebuild_files, build_keys, config_keys, flags)
    if recreated:
        return recreated
    if flags.force and (ours or service.buildable):
        return ServicePlan(name, RESTART, False, "--force")
    if changed is None and (ours or service.buildable):
        return ServicePlan(name, RESTART, False, "first launch: no change index yet")
    if restart_files:
        return ServicePlan(
            name, RESTART, False, f"changed: {_files(restart_files)}", tuple(restart_files)
        )
    if not all(c.running for c in containers):  # the others are held back
        return ServicePlan(name, RESTART, False, "held back stopped while saves came in")
    if not ours and not service.buildable:
        return ServicePlan(name, LEAVE, False, "runs none of the project's code")
    return ServicePlan(name, LEAVE, False, "nothing it uses changed")


def _with_their_builders(
    stack: Stack,
    containers: Mapping[str, Sequence[Container]],
    files: Mapping[str, ServiceFiles],
    changed: Collection[str] | None,
    plans: list[ServicePlan],
    flags: Flags,
) -> list[ServicePlan]:
    """Services that run an image another service builds (Stack.builder_of) move with it:
    a change baked into the image where they see it (their mounts are their own) builds
    it, and its build recreates them, or runs a completed one-shot again on the new code.
    An image built FROM one that is rebuilt (Stack.base_builder) is rebuilt after it."""
    by_name = {p.service: p for p in plans}
    builders = {
        p.service: built.name
        for p in plans
        if (built := stack.builder_of(stack.services[p.service]))
    }
    for user, builder in builders.items():
        seen = files[user].rebuild_files(changed) if user in files and changed else []
        current = by_name[builder]
        if seen and flags.build and not current.build:
            action = START if current.action == START else REBUILD
            why = f"image content changed for {user}: {_files(seen)}"
            by_name[builder] = ServicePlan(builder, action, True, why, tuple(seen))
    moved = True
    while moved:  # along chains: FROM an image built FROM another
        moved = False
        for p in list(by_name.values()):
            base = stack.base_builder(stack.services[p.service])
            if base and by_name[base.name].build and not p.build and flags.build:
                why = f"its base image is rebuilt (by {base.name})"
                action = START if p.action == START else REBUILD
                by_name[p.service] = ServicePlan(p.service, action, True, why, p.files)
                moved = True
    for user, builder in builders.items():
        p = by_name[user]
        if by_name[builder].build and p.action in (LEAVE, RESTART):
            running = any(c.running for c in containers.get(user, []))
            why = f"its image is rebuilt (by {builder})"
            by_name[user] = ServicePlan(user, RECREATE if running else START, False, why, p.files)
    return [by_name[p.service] for p in plans]


def _with_what_they_restart_with(
    stack: Stack, containers: Mapping[str, Sequence[Container]], plans: list[ServicePlan]
) -> list[ServicePlan]:
    """A running service left as it is restarts after what it restarts with (Service.
    restarts_with) is touched, as Compose does: a sidecar in another's network namespace
    loses its network when that container restarts."""
    by_name = {p.service: p for p in plans}
    moved = True
    while moved:  # along chains: a restart of a restarts b, then c
        moved = False
        for p in list(by_name.values()):
            service = stack.services[p.service]
            running = any(c.running for c in containers.get(p.service, []))
            if p.action != LEAVE or not running:
                continue
            touched = [d for d in service.restarts_with if by_name.get(d, p).action != LEAVE]
            if touched:
                why = f"restarts with {', '.join(touched)} (its network, or depends_on restart)"
                by_name[p.service] = ServicePlan(p.service, RESTART, False, why)
                moved = True
    return [by_name[p.service] for p in plans]


def _jobs_for_new_dependencies(stack: Stack, plans: list[ServicePlan]) -> list[ServicePlan]:
    """A completed job left as it is runs again when a service it depends on gets a new
    container (`createbuckets` after a recreated MinIO without a data volume: the buckets
    are gone), as Compose's `up` would."""
    by_name = {p.service: p for p in plans}
    for p in plans:
        service = stack.services[p.service]
        if not service.one_shot or p.action != LEAVE:
            continue
        new = [
            d
            for d in service.depends_on
            if d in by_name and by_name[d].action in (START, RECREATE, REBUILD)
        ]
        if new:
            why = f"completed; runs again for a new {', '.join(new)}"
            by_name[p.service] = ServicePlan(p.service, START, False, why)
    return [by_name[p.service] for p in plans]


def _completed(containers: Sequence[Container]) -> bool:
    return bool(containers) and all(c.status == "exited" and c.exit_code == 0 for c in containers)


def _without_build(
    name: str,
    rebuild_files: list[str],
    build_keys: list[str],
    config_keys: frozenset[str],
    flags: Flags,
) -> ServicePlan | None:
    """A running service whose image or Compose config moved, with no build to do: what
    `up` can do from the image it has."""
    if rebuild_files and not flags.build:
        return ServicePlan(
            name,
            RESTART,
            False,
            f"image content changed ({_files(rebuild_files)}) but --no-build: "
            "restarted on the old image",
            tuple(rebuild_files),
        )
    if build_keys:  # --no-build: `up` recreates it from the image it has
        return ServicePlan(
            name,
            RECREATE,
            False,
            f"{_keys(build_keys)} changed but --no-build: recreated from the old image",
        )
    if "image" in config_keys:
        return ServicePlan(
            name, RECREATE, False, "image changed: pulled if missing, then recreated"
        )
    if config_keys:
        return ServicePlan(
            name, RECREATE, False, f"Compose config changed: {_keys(sorted(config_keys))}"
        )
    return None


def _build_keys(config_keys: Collection[str]) -> list[str]:
    """The changed keys of a buildable service's config that change what its image is: how it
    is built, or the name it is built under (an index older than per-key hashes cannot say
    which key moved, so it counts too)."""
    return sorted(
        k for k in config_keys if k.startswith("build") or k in ("image", "platform", UNKNOWN_KEY)
    )


def _keys(keys: Sequence[str]) -> str:
    shown = [k if k != UNKNOWN_KEY else "its Compose config" for k in keys]
    return ", ".join(shown[:SHOWN_FILES]) + (
        f" and {len(shown) - SHOWN_FILES} more" if len(shown) > SHOWN_FILES else ""
    )


def _build_reason(
    first: bool, forced: bool, missing: bool, files: list[str], build_keys: list[str]
) -> str:
    if forced:
        return "--rebuild"
    if missing:
        return "image missing"
    if build_keys:
        return f"{_keys(build_keys)} changed: the image is built anew"
    if files:
        return f"image content changed: {_files(files)}"
    if first:
        return "first launch: no change index yet"
    return ""


def _files(paths: Sequence[str]) -> str:
    names = [p.replace("\\", "/").rsplit("/", 2) for p in paths[:SHOWN_FILES]]
    shown = ", ".join("/".join(n[-2:]) for n in names)
    more = len(paths) - SHOWN_FILES
    return shown + (f" and {more} more" if more > 0 else "")


def _one_per_image(stack: Stack, plans: Sequence[ServicePlan]) -> tuple[str, ...]:
    """Services that share one image name and build build it once (`build: .` four times)."""
    seen: set[tuple[object, ...]] = set()
    chosen = []
    for p in plans:
        if not p.build:
            continue
        s = stack.services[p.service]
        key = (s.image or f"service:{s.name}", s.build_context, s.dockerfile)
        if key not in seen:
            seen.add(key)
            chosen.append(p.service)
    return tuple(chosen)
