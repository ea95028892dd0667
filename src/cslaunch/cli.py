"""The `cslaunch` command line. Every failure ends as one line and a documented exit code;
a traceback only with --debug.

Each command imports what it uses when it runs: imports are a third of a no-op launch, and
`up` starts `docker compose config` before it imports the launch, so that both run at once.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from cslaunch import __version__, errors, output
from cslaunch.project import Project, resolve
from cslaunch.redact import scrub
from cslaunch.ui import UI

if TYPE_CHECKING:
    from cslaunch.containers import Container
    from cslaunch.jobs import RQSetup
    from cslaunch.stack import LaunchOptions

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Globals:
    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_directory: Path | None = None
    profiles: list[str] = field(default_factory=list)
    json: bool = False
    debug: bool = False
    quiet: bool = False
    verbose: bool = False
    timeout: float | None = None
    no_build: bool = False
    no_wait: bool = False
    force: bool = False
    rebuild: bool = False
    full: bool = False
    no_verify: bool = False
    watch: bool = False
    command: str = "up"  # the command run, as failure JSON names it ("jobs recover")

    def merge(self, **opts: Any) -> None:
        """Options may come before or after the subcommand; later ones add or override."""
        self.files += opts.get("files") or []
        self.profiles += opts.get("profiles") or []
        for key in ("project_name", "project_directory", "timeout"):
            if opts.get(key) is not None:
                setattr(self, key, opts[key])
        for key in FLAGS:
            if opts.get(key):
                setattr(self, key, True)

    @property
    def may_be_noop(self) -> bool:
        """A launch that verifies and may find nothing to do (flags that force work rule it
        out): worth asking its looks ahead."""
        return not (self.no_verify or self.force or self.rebuild or self.full)

    def launch_options(self) -> LaunchOptions:
        from cslaunch.stack import LaunchOptions

        return LaunchOptions(
            timeout=self.timeout,
            build=not self.no_build,
            force=self.force,
            rebuild=self.rebuild,
            full=self.full,
            verify=not self.no_verify,
        )

    def ui(self) -> UI:
        return UI(json_mode=self.json, quiet=self.quiet, verbose=self.verbose)

    def project(self) -> Project:
        return resolve(
            files=self.files,
            name=self.project_name,
            project_directory=self.project_directory,
            profiles=self.profiles,
        )


FLAGS = (
    "json",
    "debug",
    "quiet",
    "verbose",
    "no_build",
    "no_wait",
    "force",
    "rebuild",
    "full",
    "no_verify",
    "watch",
)


def _with(options: Sequence[Callable[[Any], Any]], f: F) -> F:
    """Apply click options so they show in --help in the order listed."""
    for option in reversed(options):
        f = option(f)
    return f


def common_options(f: F) -> F:
    options = [
        click.option(
            "-f",
            "--file",
            "files",
            multiple=True,
            metavar="FILE",
            help="Compose file (repeatable), as for docker compose.",
        ),
        click.option("-p", "--project-name", help="Compose project name."),
        click.option(
            "--project-directory",
            type=click.Path(path_type=Path),
            help="Compose project directory.",
        ),
        click.option(
            "--profile",
            "profiles",
            multiple=True,
            metavar="NAME",
            help="Compose profile to enable (repeatable).",
        ),
        click.option("--json", "json", is_flag=True, help="Print one JSON object on stdout."),
        click.option("-q", "--quiet", is_flag=True, help="Only errors and the result."),
        click.option("-v", "--verbose", is_flag=True, help="Say more about each step."),
        click.option("--debug", is_flag=True, help="Show tracebacks of failures."),
    ]
    return _with(options, f)


def _globals(ctx: click.Context, /, **opts: Any) -> Globals:
    g: Globals = ctx.ensure_object(Globals)
    g.merge(**opts)
    if getattr(ctx, "invoked_subcommand", None) is None:  # a group passing on names no command
        g.command = " ".join(ctx.command_path.split()[1:]) or "up"
    return g


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def up_options(f: F) -> F:
    options = [
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            metavar="SECONDS",
            help="How long to wait for services to become ready (default 120).",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Restart every service that runs project code, changed or not.",
        ),
        click.option("--rebuild", is_flag=True, help="Rebuild every buildable service."),
        click.option("--no-build", is_flag=True, help="Never build images."),
        click.option(
            "--full", is_flag=True, help="Ignore the change index: everything counts as changed."
        ),
        click.option(
            "--no-verify",
            is_flag=True,
            help="Skip the final proof that containers run the code on disk.",
        ),
        click.option(
            "--no-wait", is_flag=True, help="Exit at once if another cslaunch runs on this project."
        ),
    ]
    return _with(options, f)


WATCH_FLAG = click.option(
    "--watch", is_flag=True, help="Keep watching and relaunch on every save (`cslaunch watch`)."
)


@click.group(invoke_without_command=True, context_settings=CONTEXT)
@common_options
@up_options
@WATCH_FLAG
@click.version_option(__version__, prog_name="cslaunch")
@click.pass_context
def cli(ctx: click.Context, /, **opts: Any) -> None:
    """Relaunch a Docker Compose stack so it runs exactly the code on disk.

    With no command, runs `cslaunch up`: clear stale Python bytecode, rebuild images, restart
    every service that runs your code, wait until all are ready, and report.
    """
    _globals(ctx, **opts)
    if ctx.invoked_subcommand is None:
        ctx.invoke(up)


@cli.command(context_settings=CONTEXT)
@common_options
@up_options
@WATCH_FLAG
@click.pass_context
def up(ctx: click.Context, /, **opts: Any) -> None:
    """Start or relaunch the stack so every service runs the code on disk."""
    g = _globals(ctx, **opts)
    if g.watch:
        ctx.invoke(watch)
        return
    from cslaunch import docker

    ui = g.ui()
    project = g.project()
    started = docker.config_later(project.compose)  # runs while the launch loads
    waited = []

    def on_wait(message: str) -> None:
        waited.append(message)
        ui.warn(message)

    from cslaunch.lock import project_lock

    with project_lock(project.root, wait=not g.no_wait, on_wait=on_wait):
        if waited:  # another launch ran meanwhile: the files may have moved since
            started.cancel()
            started = docker.config_later(project.compose)
        from cslaunch import look

        # Under the lock (no other launch moves the stack), before the launch machinery
        # loads: the looks run while it does.
        ahead = look.ahead(project.root) if g.may_be_noop else None
        from cslaunch.launch import launch
        from cslaunch.report import render

        report = launch(project, g.launch_options(), ui, started=started, ahead=ahead)
    if g.json:
        output.emit(report.to_json())
    render(ui, report)
    if not report.ok:
        if report.verification and report.verification.stale:
            raise errors.StaleCode(report.error or "stale code", reported=True)
        raise errors.LaunchFailed(report.error or "launch failed", reported=True)


def watch_options(f: F) -> F:
    options = [
        click.option(
            "--poll",
            is_flag=True,
            help="Poll for changes instead of file events (WSL2 /mnt, shares).",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.05),
            default=0.5,
            show_default=True,
            metavar="SECONDS",
            help="Time between polls.",
        ),
        click.option(
            "--recheck",
            type=click.FloatRange(min=1),
            default=30,
            show_default=True,
            metavar="SECONDS",
            help="Re-check file contents this often even without events.",
        ),
    ]
    return _with(options, f)


@cli.command(context_settings=CONTEXT)
@common_options
@up_options
@watch_options
@click.pass_context
def watch(
    ctx: click.Context, /, poll: bool, poll_interval: float, recheck: float, **opts: Any
) -> None:
    """Launch, then relaunch what each batch of saves changed, until Ctrl-C.

    Never two launches at once: saves made during a launch go into the next one. A failed
    launch says why and keeps watching. Ctrl-C stops watching and leaves the stack running.
    """
    g = _globals(ctx, **opts)
    from cslaunch import watch as watch_mod  # watchfiles loads a native module: only here

    watch_mod.run(
        g.project(),
        g.launch_options(),
        watch_mod.WatchOptions(poll=poll, poll_interval=poll_interval, recheck=recheck),
        g.ui(),
    )


@cli.command(context_settings=CONTEXT)
@common_options
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--stale",
    "mode",
    flag_value="stale",
    help="Only bytecode that can be stale: of sources changed or deleted since the "
    "last launch, orphans, legacy .pyc. Valid bytecode stays.",
)
@click.option(
    "--all",
    "mode",
    flag_value="all",
    default=True,
    help="All bytecode under the roots (the default).",
)
@click.pass_context
def clean(
    ctx: click.Context, /, paths: tuple[Path, ...], dry_run: bool, mode: str, **opts: Any
) -> None:
    """Remove Python bytecode (__pycache__, *.pyc, *.pyo) and nothing else.

    Without PATHs, cleans the host directories that Python services bind-mount (from the
    Compose model, or python_roots in the config). Never follows symlinks, never touches
    anything but bytecode; files it may not delete are reported and skipped.
    """
    from cslaunch import bytecode
    from cslaunch.report import clean_json, clean_summary, relative, show_skipped
    from cslaunch.stack import change_set, detect, invalidate_bytecode

    g = _globals(ctx, **opts)
    ui = g.ui()
    if paths:
        roots = [p.absolute() for p in paths]
        base = Path.cwd()
        if mode == "stale":
            # No launch history for arbitrary paths: orphans and legacy files only.
            result = bytecode.remove(bytecode.stale_in(roots), roots=roots, dry_run=dry_run)
        else:
            result = bytecode.clean(roots, dry_run=dry_run, sizes=g.json or dry_run, paths=dry_run)
    else:
        project = g.project()
        found = detect(project, containers=False)
        roots = list(found.roots.roots)
        base = project.root
        if not roots:
            ui.line("No bind-mounted Python code found in the Compose model; nothing to clean.")
        if mode == "stale":
            cs = change_set(project, found)
            if cs.old is None:
                ui.warn("no change index yet (no launch so far): removing all bytecode")
            result = invalidate_bytecode(found.roots.roots, cs, dry_run=dry_run)
        else:
            result = bytecode.clean(roots, dry_run=dry_run, sizes=g.json or dry_run, paths=dry_run)
    if g.json:
        output.emit(
            {"schema": 1, "command": "clean", "ok": True, **clean_json(result, listing=dry_run)}
        )
    elif dry_run:
        for path in result.removed:
            ui.line(relative(path, base))
    show_skipped(ui, result)
    ui.line(
        clean_summary(result)
        + (f" in {', '.join(relative(r, base) for r in roots)}" if roots else "")
    )


@cli.command(context_settings=CONTEXT)
@common_options
@up_options
@click.pass_context
def plan(ctx: click.Context, /, **opts: Any) -> None:
    """Show what `cslaunch up` would do to each service and why. Changes nothing."""
    from cslaunch.report import plan_json, render_plan
    from cslaunch.stack import compute, detect

    g = _globals(ctx, **opts)
    project = g.project()
    found = detect(project)
    cs, the_plan = compute(project, found, g.launch_options())
    if g.json:
        output.emit(plan_json(found.stack.name, cs, the_plan))
    else:
        render_plan(g.ui(), found.stack.name, cs, the_plan)


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def verify(ctx: click.Context, /, **opts: Any) -> None:
    """Check that every Python container runs the code on disk. Changes nothing.

    Hashes the sources each service runs inside its container against the host's files,
    checks every pyc beside them, and that each process started after its code last changed.
    Exits 8 when anything is stale.
    """
    from cslaunch.report import render_verification
    from cslaunch.stack import change_set, detect
    from cslaunch.verify import verify_stack

    g = _globals(ctx, **opts)
    ui = g.ui()
    project = g.project()
    found = detect(project)
    cs = change_set(project, found)
    checked = verify_stack(found, cs, project.compose)
    if g.json:
        output.emit(
            {
                "schema": 1,
                "command": "verify",
                "ok": not checked.stale,
                "services": [v.to_json() for v in checked.verdicts],
            }
        )
    else:
        render_verification(ui, checked)
    if checked.stale:
        names = ", ".join(sorted({v.service for v in checked.stale}))
        raise errors.StaleCode(
            f"stale code in {names}", reported=True, hint="run cslaunch to relaunch what changed"
        )


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def doctor(ctx: click.Context, /, **opts: Any) -> None:
    """Find setups that make stale code or slow restarts likely, each with a fix.

    Reads the Compose model and the running containers; changes nothing. Exits 9 when a
    problem of severity "error" is found.
    """
    from cslaunch import doctor as doctor_mod  # loaded only for this command: start-up time

    g = _globals(ctx, **opts)
    facts = doctor_mod.gather(g.project())
    found = doctor_mod.diagnose(facts)
    if g.json:
        output.emit(doctor_mod.to_json(found, project=facts.project, notes=facts.notes))
    else:
        doctor_mod.render(g.ui(), found, project=facts.project, notes=facts.notes)
    code = doctor_mod.exit_code(found)
    if code:
        raise errors.CslaunchError("doctor found errors", reported=True).with_code(code)


@cli.command(context_settings=CONTEXT)
@common_options
@click.argument("services", nargs=-1)
@click.option("-n", "--tail", default=50, show_default=True, help="Lines of history first.")
@click.option("--no-follow", is_flag=True, help="Print and exit instead of following.")
@click.pass_context
def logs(
    ctx: click.Context, /, services: tuple[str, ...], tail: int, no_follow: bool, **opts: Any
) -> None:
    """Follow the logs of the services the last launch restarted (or of SERVICES)."""
    from cslaunch import docker
    from cslaunch.state import LAST_LAUNCH, read_json

    g = _globals(ctx, **opts)
    project = g.project()
    chosen = list(services)
    if chosen:
        known = docker.config(project.compose).get("services") or {}
        unknown = [s for s in chosen if s not in known]
        if unknown:
            raise click.BadParameter(
                f"no such service: {', '.join(unknown)} (services: {', '.join(sorted(known))})",
                param_hint="'SERVICES...'",
            )
    else:
        last = read_json(project.root, LAST_LAUNCH) or {}
        chosen = [s for s in last.get("services", []) if isinstance(s, str)]
        if chosen:
            g.ui().line(f"logs of what the last launch restarted: {', '.join(chosen)}")
    args = ["logs", "--tail", str(tail), *([] if no_follow else ["--follow"]), *chosen]
    # The user's terminal gets Compose's own output, colours and all; Ctrl-C ends it.
    try:
        code = docker.run(
            project.compose.argv(*args), cwd=project.compose.directory, capture=False
        ).returncode
    except KeyboardInterrupt:
        code = 0
    if code:
        # Compose said why on the terminal; the services were checked, so it is the project.
        raise errors.ComposeError("docker compose logs failed", reported=True)


@cli.command(name="init", context_settings=CONTEXT)
@common_options
@click.option("--print", "to_stdout", is_flag=True, help="Print it instead of writing a file.")
@click.option(
    "--pyproject",
    is_flag=True,
    help="Add a [tool.cslaunch] section to pyproject.toml instead of cslaunch.toml.",
)
@click.pass_context
def init_command(ctx: click.Context, /, to_stdout: bool, pyproject: bool, **opts: Any) -> None:
    """Write a commented configuration showing what cslaunch derived from the Compose model."""
    from cslaunch import init as init_mod
    from cslaunch import model
    from cslaunch.stack import detect

    g = _globals(ctx, **opts)
    project = g.project()
    found = detect(project, containers=False)
    text = init_mod.render(found, project.root, model.app_url(found.stack, project.config))
    path = None if to_stdout else init_mod.write(project.root, text, pyproject=pyproject)
    if g.json:
        output.emit(
            {
                "schema": 1,
                "command": "init",
                "ok": True,
                "project": found.stack.name,
                "path": str(path) if path else None,
                "text": text,
            }
        )
    if path is None:
        if not g.json:
            click.echo(scrub(text), nl=False)
        return
    g.ui().line(f"wrote {path}: every setting is commented out, uncomment to override")


def _rq_setup(g: Globals) -> tuple[Project, RQSetup, dict[str, list[Container]]]:
    from cslaunch import jobs
    from cslaunch.stack import detect

    found = detect(g.project())
    project = found.project  # named: the helper execs straight into a worker container
    # The command lines first, then Redis: every container holding a worker registration.
    discovered = jobs.discover(
        project.compose, found.stack, project.config.rq, found.raw, found.python, found.containers
    )
    if discovered.setup is None:
        raise errors.CslaunchError(
            "no RQ workers found: no command line runs `rq worker` and no running container "
            "holds a worker registration"
            + (f" ({discovered.problem})" if discovered.problem else ""),
            hint="start the stack (cslaunch), or name the worker services in "
            "[tool.cslaunch.rq] worker_services",
        )
    return project, discovered.setup, found.containers


@cli.group(name="jobs", invoke_without_command=True, context_settings=CONTEXT)
@common_options
@click.pass_context
def jobs_group(ctx: click.Context, /, **opts: Any) -> None:
    """RQ jobs: queues, started jobs and their workers' liveness, failed jobs."""
    from cslaunch import jobs

    g = _globals(ctx, **opts)
    if ctx.invoked_subcommand is not None:
        return
    project, setup, containers = _rq_setup(g)
    st = jobs.status(project.compose, setup, containers=containers)
    if g.json:
        output.emit(st.to_json())
    else:
        jobs.render_status(g.ui(), st)


@jobs_group.command(name="recover", context_settings=CONTEXT)
@common_options
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be recovered; change nothing.")
@click.option(
    "--policy",
    type=click.Choice(["requeue", "fail"]),
    help="Requeue at the front (default) or move to Failed with a reason.",
)
@click.pass_context
def jobs_recover(ctx: click.Context, /, dry_run: bool, policy: str | None, **opts: Any) -> None:
    """Recover jobs whose worker is gone (never deletes a job); clean dead worker keys."""
    from cslaunch import jobs
    from cslaunch.lock import project_lock

    g = _globals(ctx, **opts)
    project, setup, _ = _rq_setup(g)
    with project_lock(project.root, wait=not g.no_wait, on_wait=g.ui().warn):
        result = jobs.recover(project.compose, setup, policy=policy, dry_run=dry_run)
    if g.json:
        output.emit(result.to_json())
    else:
        jobs.render_recovery(g.ui(), result)
    if not result.ok:
        raise errors.CslaunchError(result.message, reported=True)


@cli.command(name="redis", context_settings=CONTEXT)
@common_options
@click.option("-n", "--dry-run", is_flag=True, help="Measure and say what would be done.")
@click.option(
    "--force", "force_maintenance", is_flag=True, help="Maintain even when no threshold is crossed."
)
@click.pass_context
def redis_command(
    ctx: click.Context, /, dry_run: bool, force_maintenance: bool, **opts: Any
) -> None:
    """Measure Redis (INFO) and, past a threshold, purge old ended jobs and rewrite the AOF.

    Never FLUSHDB/FLUSHALL; queued and started jobs are never touched; app caches only when
    configured ([tool.cslaunch.rq] cache_patterns / cache_dbs).
    """
    from cslaunch import redis_maint
    from cslaunch.lock import project_lock

    g = _globals(ctx, **opts)
    project, setup, _ = _rq_setup(g)
    with project_lock(project.root, wait=not g.no_wait, on_wait=g.ui().warn):
        result = redis_maint.maintain(
            project.compose, setup, dry_run=dry_run, force=force_maintenance
        )
    if g.json:
        output.emit(result.to_json())
    else:
        redis_maint.render_maintenance(g.ui(), result)
    if not result.ok:
        raise errors.CslaunchError(result.message, reported=True)


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def status(ctx: click.Context, /, **opts: Any) -> None:
    """Show each service's state, health, uptime and image age. Changes nothing."""
    from cslaunch import status as status_mod

    g = _globals(ctx, **opts)
    name, rows = status_mod.status(g.project())
    if g.json:
        output.emit(
            {
                "schema": 1,
                "command": "status",
                "project": name,
                "services": [r.to_json() for r in rows],
            }
        )
    else:
        status_mod.render(g.ui(), name, rows)


class Interrupted(BaseException):
    """SIGTERM, turned into an exception so locks and files are released on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted()


def main(argv: list[str] | None = None) -> NoReturn:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    json_mode = "--json" in args
    ui = UI(json_mode=json_mode)
    # Each command names itself when it runs; until then (a usage error), its name in argv.
    g = Globals(command=_command_in(args))

    def fail(message: str, hint: str | None, code: int) -> NoReturn:
        if json_mode:
            output.emit_failure(g.command, message, hint, code)
        ui.error(message)
        if hint:
            ui.hint(hint)
        sys.exit(code)

    try:
        cli.main(args=args, prog_name="cslaunch", standalone_mode=False, obj=g)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        if json_mode:
            output.emit_failure(g.command, e.format_message(), None, e.exit_code)
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        fail("interrupted", None, errors.INTERRUPTED)
    except (KeyboardInterrupt, Interrupted):
        if debug:
            raise
        fail(
            "interrupted; the stack is left as it was at this point, run cslaunch again",
            None,
            errors.INTERRUPTED,
        )
    except errors.CslaunchError as e:
        if debug:
            raise
        if json_mode and not e.reported:
            output.emit_failure(g.command, e.message, e.hint, e.exit_code)
        ui.error(e.message)
        if e.detail:
            ui.echo(e.detail, err=True)
        if e.hint:
            ui.hint(e.hint)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug of ours: still one line, the traceback on request
        if debug:
            raise
        fail(
            f"internal error: {type(e).__name__}: {e}",
            "run again with --debug for the traceback, and please report it",
            errors.INTERNAL,
        )
    sys.exit(errors.OK)


def _command_in(args: Sequence[str]) -> str:
    """The (sub)command named on a command line: its first words that name one."""
    group: click.Group = cli
    words: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            continue
        sub = group.commands.get(arg)
        if sub is None:
            if words:
                break
            continue  # an option's value
        words.append(arg)
        if not isinstance(sub, click.Group):
            break
        group = sub
    return " ".join(words) or "up"
