"""The `cslaunch` command line. Every failure ends as one line and a documented exit code;
a traceback only with --debug.

Each command imports what it uses when it runs: imports are a third of a no-op launch, and
`up` starts `docker compose config` before it imports the launch, so that both run at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from cslaunch import __version__, errors, output
from cslaunch.options import Globals
from cslaunch.ui import UI

F = TypeVar("F", bound=Callable[..., Any])


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
    from cslaunch.commands.up import up

    up(g)


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
    from cslaunch.commands.watch import watch  # watchfiles loads a native module: only here

    watch(_globals(ctx, **opts), poll=poll, poll_interval=poll_interval, recheck=recheck)


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
    from cslaunch.commands.clean import clean

    clean(_globals(ctx, **opts), paths, dry_run=dry_run, stale_only=mode == "stale")


@cli.command(context_settings=CONTEXT)
@common_options
@up_options
@click.pass_context
def plan(ctx: click.Context, /, **opts: Any) -> None:
    """Show what `cslaunch up` would do to each service and why. Changes nothing."""
    from cslaunch.commands.plan import plan

    plan(_globals(ctx, **opts))


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def verify(ctx: click.Context, /, **opts: Any) -> None:
    """Check that every Python container runs the code on disk. Changes nothing.

    Hashes the sources each service runs inside its container against the host's files,
    checks every pyc beside them, and that each process started after its code last changed.
    Exits 8 when anything is stale.
    """
    from cslaunch.commands.verify import verify

    verify(_globals(ctx, **opts))


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def doctor(ctx: click.Context, /, **opts: Any) -> None:
    """Find setups that make stale code or slow restarts likely, each with a fix.

    Reads the Compose model and the running containers; changes nothing. Exits 9 when a
    problem of severity "error" is found.
    """
    from cslaunch.commands.doctor import doctor  # loaded only for this command: start-up time

    doctor(_globals(ctx, **opts))


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
    from cslaunch.commands.logs import logs

    logs(_globals(ctx, **opts), services, tail=tail, follow=not no_follow)


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
    from cslaunch.commands.init import init

    init(_globals(ctx, **opts), to_stdout=to_stdout, pyproject=pyproject)


@cli.group(name="jobs", invoke_without_command=True, context_settings=CONTEXT)
@common_options
@click.pass_context
def jobs_group(ctx: click.Context, /, **opts: Any) -> None:
    """RQ jobs: queues, started jobs and their workers' liveness, failed jobs."""
    g = _globals(ctx, **opts)
    if ctx.invoked_subcommand is not None:
        return
    from cslaunch.commands.jobs import jobs_status

    jobs_status(g)


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
    from cslaunch.commands.jobs import recover

    recover(_globals(ctx, **opts), dry_run=dry_run, policy=policy)


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
    from cslaunch.commands.redis import redis

    redis(_globals(ctx, **opts), dry_run=dry_run, force=force_maintenance)


@cli.command(context_settings=CONTEXT)
@common_options
@click.pass_context
def status(ctx: click.Context, /, **opts: Any) -> None:
    """Show each service's state, health, uptime and image age. Changes nothing."""
    from cslaunch.commands.status import status

    status(_globals(ctx, **opts))


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


def run() -> NoReturn:
    """The console script and `python -m cslaunch`: `main`, then out at once when nothing
    else runs. What a launch built in memory is left to the OS rather than freed one object
    at a time (a 100k-file tree's index is a million objects: 0.1 s of a no-op's 0.7 s);
    the exit handlers and the buffered output go first, as at a normal exit. A thread still
    running (a readiness probe a failed wait left, watch's background work) gets the normal
    exit, which waits for it. Tests call `main`, which exits as usual."""
    try:
        main()
    except SystemExit as e:
        code = e.code
    others = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    if others:
        sys.exit(code)
    # Out from here whatever arrives: a second Ctrl-C must not turn into a traceback
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if isinstance(code, str):  # sys.exit("message"), as Python would print it
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None: started with that descriptor closed
            with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`)
                stream.flush()
    os._exit(code or 0)


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
