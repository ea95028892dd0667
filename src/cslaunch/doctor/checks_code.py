"""The checks of code: does each container run the code on disk? A volume hiding a bind
mount, code baked into the image (or under an anonymous volume), bytecode that can go stale,
clocks apart, file sharing that loses edits. Pure functions of :class:`Facts`."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath

from cslaunch.doctor.dockerfile import (
    DEPENDENCY_DIRS,
    Copy,
    dockerfile_copies,
    image_builds,
    is_code,
    is_dir_source,
)
from cslaunch.doctor.facts import (
    ANON_OVER_CODE,
    BIND_HIDDEN,
    CLOCK_SKEW,
    CODE_BAKED,
    DESKTOP_SHARING,
    ERROR,
    INFO,
    PYC_DONTWRITE,
    PYC_PREFIX,
    PYC_TIMESTAMP,
    WARNING,
    WSL_DRIVE,
    Facts,
    Finding,
    Mount,
    SourceInfo,
)
from cslaunch.doctor.paths import is_under, norm, overlaps
from cslaunch.model import Bind, Service

CLOCK_TOLERANCE = 1.0  # seconds between host and container clocks before it matters


def check_anonymous_over_code(facts: Facts) -> Iterable[Finding]:
    """An anonymous volume over code the image copies in: Compose re-attaches the previous
    container's anonymous volumes when it recreates one (compose#9450), so after a rebuild
    the volume's old copy hides the new image's code. A volume over a dependency directory
    (node_modules, a virtualenv) is the usual, deliberate pattern, and not reported."""
    for name, service in sorted(facts.services.items()):
        text = facts.dockerfiles.get(name)
        if text is None or not service.anonymous_volumes:
            continue
        sources = facts.sources.get(name, {})
        copies = dockerfile_copies(text, service.target)
        for target in service.anonymous_volumes:
            if PurePath(target).name in DEPENDENCY_DIRS:
                continue
            over = [
                c
                for c in copies
                if c.dest
                and any(is_code(s, sources) for s in c.sources)
                and overlaps(c.dest, target)
            ]
            if not over:
                continue
            what = ", ".join(f"{' '.join(c.sources)} -> {c.dest}" for c in over)
            mount = _code_mount(facts, service, over[0], target, sources)
            yield Finding(
                ANON_OVER_CODE,
                WARNING,
                name,
                f"service {name}: the anonymous volume at {target} lies over code its image "
                f"copies there ({what}); Compose gives each new container the old one's "
                "anonymous volumes, so after a rebuild the old copy in the volume hides the new "
                "code. cslaunch renews the volume (`up --renew-anon-volumes`) when it holds "
                "only what the image put there, and otherwise fails with exit 8",
                f"remove `{target}` from the volumes of service {name}; to run the code on "
                f"disk instead, bind-mount it there (`volumes: [{mount}]`)",
            )


def _code_mount(
    facts: Facts, service: Service, copy: Copy, target: str, sources: Mapping[str, SourceInfo]
) -> str:
    """The bind mount that shows, at the volume's path, the host files the copy took."""
    source = next(s for s in copy.sources if is_code(s, sources))
    host = (service.build_context or facts.root) / norm(source)
    mount = copy.dest
    if is_dir_source(source, sources) and is_under(target, copy.dest):
        host, mount = host / posixpath.relpath(target, copy.dest), target
    return f'"{_show(host, facts.root)}:{mount}"'


def check_baked_code(facts: Facts) -> Iterable[Finding]:
    """Code COPYed into an image with no bind mount (or watch sync) over it: every edit needs
    a rebuild and a recreate to be seen. The mount suggested is one that is safe: never over
    `/` or a system directory, never over what the image builds there (a virtualenv,
    node_modules, an editable install's metadata); a narrower one where that is possible,
    and none where it is not."""
    for name, service in sorted(facts.services.items()):
        text = facts.dockerfiles.get(name)
        if service.build_context is None or text is None:
            continue
        sources = facts.sources.get(name, {})
        live = [b.target for b in service.binds] + list(facts.watch_targets.get(name, ()))
        baked = [
            c
            for c in dockerfile_copies(text, service.target)
            if c.dest
            and any(is_code(s, sources) for s in c.sources)
            and not any(overlaps(c.dest, t) for t in live)
        ]
        if not baked:
            continue
        what = ", ".join(f"{' '.join(c.sources)} -> {c.dest}" for c in baked)
        built = image_builds(text, service.target)
        mounts, unsafe = _safe_mounts(service.build_context, baked, sources, built)
        shown = ", ".join(f'"{_show(host, facts.root)}:{target}"' for host, target in mounts)
        mount = f"`volumes: [{shown}]`"
        consumed = all(c.consumed for c in baked)
        severity = WARNING if name in facts.python and not consumed else INFO
        message = (
            f"service {name}: its image bakes in code with no bind mount over it ({what}): "
            "every change needs an image rebuild and a new container to be seen"
        )
        if not mounts:
            fix = (
                f"no bind mount is safe here: {unsafe}; keep rebuilding (cslaunch rebuilds "
                "when these files change), or copy the code to its own directory in the image "
                "and mount that"
            )
        elif consumed:
            message += "; a later RUN step builds from it, so a rebuild is expected there"
            fix = (
                "nothing to do if the image must be built from this code: cslaunch rebuilds "
                f"when these files change; to skip rebuilds, do that build step at start-up and "
                f"add {mount} to service {name}"
            )
        else:
            fix = (
                f"bind-mount the code over it: add {mount} to service {name} (edits then need "
                "only a restart, which cslaunch does, not a rebuild)"
            )
            if unsafe:
                fix += f"; not the whole copy: {unsafe}"
        yield Finding(CODE_BAKED, severity, name, message, fix)


# Directories of the system: a bind mount over one hides what the image needs to run.
SYSTEM_DIRS = frozenset(
    {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root"}
    | {"/run", "/sbin", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local"}
    | {"/usr/local/bin", "/usr/local/lib", "/usr/sbin", "/usr/share", "/var", "/var/lib"}
)


def _safe_mounts(
    context: Path, baked: list[Copy], sources: Mapping[str, SourceInfo], built: list[str]
) -> tuple[list[tuple[Path, str]], str]:
    """The bind mounts that would show the baked code, none over a system directory or over
    what the image built there; and why the obvious one is not among them ("" if it is)."""
    candidates = sorted(
        ((s, c) for c in baked for s in c.sources if is_code(s, sources)),
        key=lambda sc: not is_dir_source(sc[0], sources),  # a directory of code first
    )
    source, copy = candidates[0]
    target = copy.dest
    if not is_dir_source(source, sources) and copy.dest_is_dir:
        target = posixpath.join(copy.dest, PurePath(norm(source)).name)
    problem = _mount_problem(target, built)
    if not problem:
        return [(context / norm(source), target)], ""
    # The copy holds more than code: its subdirectories of code may be mounted one by one.
    info = sources.get(norm(source) or ".")
    narrower = [
        (context / norm(source) / sub, posixpath.join(target, sub))
        for sub in (info.code_dirs if info and is_dir_source(source, sources) else ())
    ]
    safe = [(host, t) for host, t in narrower if not _mount_problem(t, built)]
    return safe, f"a mount at {target} {problem}"


def _mount_problem(target: str, built: list[str]) -> str:
    """Why a bind mount at `target` would break the container ("" when it would not)."""
    target = posixpath.normpath(target)
    if target in SYSTEM_DIRS:
        return "would lie over a system directory of the image"
    hidden = [b for b in built if b == target or is_under(b, target)]
    if hidden:
        return f"would hide {', '.join(sorted(hidden))}, which the image builds there"
    return ""


def check_hidden_binds(facts: Facts) -> Iterable[Finding]:
    """A volume on the path of bind-mounted code, or inside it, shows the volume's (old)
    copy instead of the host's files. A volume on a *parent* path hides nothing: Docker mounts
    the deeper path last, so the bind lies on top of it."""
    for name, service in sorted(facts.services.items()):
        for vol in _volumes(facts, name, service):
            target = posixpath.normpath(vol.target)
            covering = [
                b
                for b in service.binds
                if target == posixpath.normpath(b.target)
                or is_under(target, posixpath.normpath(b.target))
            ]
            if not covering:
                continue
            # The deepest bind over the volume is the one whose files it hides.
            bind = max(covering, key=lambda b: len(posixpath.normpath(b.target)))
            rel = posixpath.relpath(target, posixpath.normpath(bind.target))
            hidden = bind.source if rel == "." else bind.source / rel
            if rel != "." and PurePath(target).name in DEPENDENCY_DIRS:
                continue
            if not facts.host_paths.get(str(hidden), True):
                continue  # nothing there on the host: the volume holds the container's own
            yield _hidden_finding(facts, name, bind, vol, hidden)


def _hidden_finding(facts: Facts, name: str, bind: Bind, vol: Mount, hidden: Path) -> Finding:
    kind = "tmpfs" if vol.type == "tmpfs" else ("volume " + vol.name if vol.name else "")
    kind = kind or "anonymous volume"
    spec = f"{_show(bind.source, facts.root)}:{bind.target}"
    message = (
        f"service {name}: the {kind} at {vol.target} hides {_show(hidden, facts.root)} of the "
        f"bind mount {spec}: the container sees the volume's copy, not your edits"
    )
    if vol.declared:
        message += (
            " (Compose keeps anonymous volumes when it recreates a container, so that copy "
            "stays old across rebuilds: compose#9450)"
        )
        fix = f"remove the volume `{vol.target}` from service {name} (or mount it elsewhere)"
    else:
        message += (
            " (not in the Compose file: the image declares it with VOLUME, or Compose carried "
            "it over from an older container: compose#9450)"
        )
        fix = f"remove `VOLUME {vol.target}` from the image's Dockerfile, if it is there"
    fix += f", then `docker compose up -d --renew-anon-volumes {name}` to drop the old copy"
    return Finding(BIND_HIDDEN, ERROR, name, message, fix)


def _volumes(facts: Facts, name: str, service: Service) -> list[Mount]:
    found = {posixpath.normpath(m.target): m for m in facts.volumes.get(name, ())}
    for target in service.volume_targets:
        found.setdefault(posixpath.normpath(target), Mount("volume", target))
    return [found[t] for t in sorted(found)]


def check_bytecode(facts: Facts) -> Iterable[Finding]:
    """How each Python service with bind-mounted code handles bytecode, and the trade-off."""
    for name, service in sorted(facts.services.items()):
        if name not in facts.python or not service.binds:
            continue
        env = facts.env.get(name, {})
        prefix = env.get("PYTHONPYCACHEPREFIX")
        epoch = env.get("SOURCE_DATE_EPOCH")
        if env.get("PYTHONDONTWRITEBYTECODE"):
            yield Finding(
                PYC_DONTWRITE,
                INFO,
                name,
                f"service {name} sets PYTHONDONTWRITEBYTECODE: it writes no bytecode into the "
                "bind-mounted tree (no root-owned __pycache__ on the host), but compiles its "
                "modules afresh on every start, and still reads pycs already there, stale ones "
                "included",
                "keep it if start-up time is fine (cslaunch removes stale host pycs before each "
                f"launch); for faster starts unset it on service {name}, or set "
                "PYTHONPYCACHEPREFIX=/tmp/pycache with `tmpfs: [/tmp/pycache]`",
            )
        elif prefix:
            yield Finding(
                PYC_PREFIX,
                INFO,
                name,
                f"service {name} sets PYTHONPYCACHEPREFIX={prefix}: bytecode stays out of the "
                "bind-mounted tree and a new container starts clean, but a restarted one keeps "
                "its timestamp pycs, which an edit that keeps mtime and size does not invalidate "
                "and no host-side clean reaches: cslaunch's proof finds such a pyc stale and "
                "recreates the container, a repair each time",
                f"mount the prefix as tmpfs (`tmpfs: [{prefix}]` on service {name}) so every "
                "start compiles afresh, or precompile with "
                "`python -m compileall --invalidation-mode checked-hash`",
            )
        else:
            note = (
                " (SOURCE_DATE_EPOCH is set: compileall and py_compile default to checked-hash "
                "pycs, but modules the import system compiles itself still get timestamp pycs)"
                if epoch
                else ""
            )
            yield Finding(
                PYC_TIMESTAMP,
                INFO,
                name,
                f"service {name} writes timestamp pycs into the bind-mounted tree: they are "
                "trusted while the source's mtime and size match, so an edit that keeps both "
                "(cp -p, rsync -a, unzip, a same-size edit in the same second) runs old code "
                f"until the pyc goes; cslaunch removes such pycs before each launch{note}",
                "for bytecode that checks content, precompile the tree with "
                "`python -m compileall --invalidation-mode checked-hash DIR` (imports then verify "
                "a source hash and keep writing checked-hash pycs); or set PYTHONPYCACHEPREFIX "
                f"on service {name} to keep bytecode out of the tree",
            )


def check_clock(facts: Facts) -> Iterable[Finding]:
    """Host and container clocks apart: mtimes written on one side look wrong on the other."""
    sample = facts.clock
    if sample is None or abs(sample.skew) - sample.uncertainty <= CLOCK_TOLERANCE:
        return
    direction = "ahead of" if sample.skew > 0 else "behind"
    yield Finding(
        CLOCK_SKEW,
        WARNING,
        sample.service,
        f"the clock in service {sample.service}'s container is {abs(sample.skew):.1f} s "
        f"{direction} the host's: files edited on one side carry mtimes that look "
        "future or past on the other, which breaks 'newer than' checks (Compose watch's "
        "initial sync, make-style rebuilds); pycs compare mtimes for equality, so they are not "
        "affected",
        "sync the engine's clock with the host's: restart Docker Desktop (on Windows "
        "`wsl --shutdown`) after the machine slept (docker/for-win#4526), or run NTP "
        "(chrony, systemd-timesyncd) on the engine's host",
    )


_WINDOWS_DRIVE = re.compile(r"^(/mnt/[a-zA-Z]/|[a-zA-Z]:[\\/]|/run/desktop/mnt/host/[a-z]/)")


def check_file_sharing(facts: Facts) -> Iterable[Finding]:
    """File sharing that loses events or mtimes: WSL2 over a Windows drive, Docker Desktop."""
    on_windows_drive = facts.wsl or _is_desktop(facts)
    for name, service in sorted(facts.services.items()):
        for bind in service.binds:
            source = bind.source.as_posix()
            if on_windows_drive and _WINDOWS_DRIVE.match(source):
                yield Finding(
                    WSL_DRIVE,
                    WARNING,
                    name,
                    f"service {name}: the bind mount {source}:{bind.target} is on a Windows drive "
                    "shared into Linux: no file events cross it (microsoft/WSL#4739), so "
                    "`cslaunch watch` polls, and each stat over it costs about 1 ms "
                    "(microsoft/WSL#7038): a poll of 5,000 files takes seconds (an estimate from "
                    "that figure) instead of the 25 ms measured on a Linux file system, so saves "
                    "are seen late and polling keeps a core busy",
                    "move the project into the WSL filesystem (e.g. ~/src/<project>, reachable "
                    "from Windows editors as \\\\wsl$\\...) and run cslaunch from there; "
                    "otherwise raise `cslaunch watch --poll-interval`",
                )
                break
    if _is_desktop(facts) and any(s.binds for s in facts.services.values()):
        yield Finding(
            DESKTOP_SHARING,
            WARNING,
            None,
            "Docker Desktop shares bind-mounted files through its VM, so a container sees "
            "other stat data (inode, change time) than the host: cslaunch's proof cannot "
            "recognise a file as the host's by its stat data there and reads and hashes every "
            "file a service runs when it looks inside (27-36 µs a file natively, measured; "
            "several times that through the share, not measured here). What changed is "
            "still decided on the host, by content, so no edit is missed; only the proof is "
            "slower. File events and mtimes through the share are unreliable "
            "(docker/for-win#2411, docker/for-mac#7616, docker/desktop-feedback#341), so "
            "watchers and reloaders inside containers can miss edits",
            "a launch asks a container it proved before only about what moved since; keep the "
            "code inside the WSL2 filesystem (Windows) or use VirtioFS (macOS) to make looking "
            "cheaper, and let cslaunch rather than a reloader in the container decide what "
            "changed",
        )


def _show(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.as_posix()
    return "./" + rel.as_posix() if rel.parts else "."


def _is_desktop(facts: Facts) -> bool:
    return "docker desktop" in (facts.docker_os or "").lower()
