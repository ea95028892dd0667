"""Background jobs survive every relaunch: find the RQ workers in the Compose model, recover
the jobs a restart interrupted, and show the queues.

Restarting an RQ worker interrupts the job it runs. RQ itself only notices after the job's
started-registry entry expires (about 90 s) *and* a worker's maintenance pass runs (every
600 s), and then moves the job to Failed. cslaunch recovers such jobs right after the
restart: requeued at the front of their queue (policy "requeue", the default) or moved to
Failed with a clear reason (policy "fail"). It never deletes a job.

The work happens inside a worker container, with the app's own rq and redis-py (see
cslaunch.rqscript): the app's Redis is often not published to the host, and RQ 1.x, 2.x and
3.x keep their registries differently.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from cslaunch import docker
from cslaunch.containers import Container, by_hostname, project_containers
from cslaunch.errors import LAUNCH_FAILED, CslaunchError
from cslaunch.output import envelope
from cslaunch.rqconfig import POLICIES, RQConfig
from cslaunch.ui import UI

if TYPE_CHECKING:  # for annotations only
    from cslaunch import model

DEFAULT_QUEUE = "default"


class JobsError(CslaunchError):
    """The RQ helper could not run in any worker container (none running, no Python, no rq)."""

    exit_code = LAUNCH_FAILED


# --- the RQ setup of a stack --------------------------------------------------------------
@dataclass(frozen=True)
class RQWorkerService:
    service: str
    redis_url: str | None  # None: the container's own environment decides
    url_source: str  # command / environment / config / container
    queues: tuple[str, ...]  # () when cslaunch cannot tell (a custom worker script)
    python: str  # the interpreter to run the helper with, inside the container
    serializer: str | None = None  # --serializer, import path
    job_class: str | None = None  # --job-class, import path
    config_module: str | None = None  # --config: a settings module with REDIS_URL / QUEUES
    name: str | None = None  # --name: a fixed worker name, which a dead registration blocks


@dataclass(frozen=True)
class RQSetup:
    workers: tuple[RQWorkerService, ...]
    redis_service: str | None  # the Compose service that runs Redis, if any
    config: RQConfig = field(default_factory=RQConfig)
    # Other services the helper can run in (the app that enqueues) when no worker runs.
    others: tuple[RQWorkerService, ...] = ()

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for w in self.workers for q in w.queues))

    @property
    def worker_services(self) -> tuple[str, ...]:
        return tuple(w.service for w in self.workers)

    def targets(self) -> list[list[RQWorkerService]]:
        """Worker services grouped by the Redis they use: one helper run per Redis, in a
        worker's container, else in another service's using the same Redis."""
        groups: dict[str | None, list[RQWorkerService]] = {}
        for w in self.workers:
            groups.setdefault(w.redis_url, []).append(w)
        for url, group in groups.items():
            group += [o for o in self.others if o.redis_url == url]
        return list(groups.values())


# rq worker options that take no value; every other option takes one.
_RQ_FLAGS = frozenset(
    {
        "-b",
        "--burst",
        "-s",
        "--with-scheduler",
        "-v",
        "--verbose",
        "-q",
        "--quiet",
        "--disable-job-desc-logging",
        "--disable-default-exception-handler",
        "--sentry-debug",
        "--random-workers",
        "--help",
    }
)
_SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ">", ">>", "<", "2>&1"})
_RQ_PROGRAMS = frozenset({"rq", "rqworker", "rq.cli"})


def find_rq(
    stack: model.Stack, rq: RQConfig, raw: Mapping[str, Any] | None = None
) -> RQSetup | None:
    """The stack's RQ workers and Redis, from the Compose model (pure).

    Workers: services whose command runs `rq worker` / `rq worker-pool` / `rqworker` /
    `python -m rq.cli worker`, plus the configured worker_services. `raw` is Compose's JSON
    model (`docker compose config --format json`); the workers' environment comes from it.
    None when the stack has no RQ worker, or RQ handling is disabled.
    """
    if not rq.enabled:
        return None
    raw_services: Mapping[str, Any] = (raw or {}).get("services") or {}
    workers: list[RQWorkerService] = []
    for name in stack.names():
        service = stack.services[name]
        parsed = parse_worker_command(service.words)
        if parsed is None and name not in rq.worker_services:
            continue
        env = _environment(raw_services.get(name) or {})
        options: dict[str, str] = parsed[1] if parsed else {}
        queues = parsed[2] if parsed else ()
        url, source = _redis_url(options.get("url"), env, rq)
        workers.append(
            RQWorkerService(
                service=name,
                redis_url=url,
                url_source=source,
                queues=queues,
                python=parsed[0] if parsed else "python3",
                serializer=options.get("serializer"),
                job_class=options.get("job-class"),
                config_module=options.get("config"),
                name=options.get("name"),
            )
        )
    if not workers:
        return None
    return RQSetup(
        workers=tuple(workers),
        redis_service=_redis_service(stack, {w.service for w in workers}, workers),
        config=rq,
    )


def parse_worker_command(
    words: Sequence[str],
) -> tuple[str, dict[str, str], tuple[str, ...]] | None:
    """(python, options, queues) of an RQ worker command, or None if it runs no RQ worker.

    Handles `rq worker [opts] q1 q2`, `rq worker-pool`, `rqworker`, `python -m rq.cli worker`
    and a worker started inside a shell string (`sh -c "... && rq worker ..."`).
    """
    words = list(words)
    for i, word in enumerate(words):
        program = PurePath(word).name
        prev = words[i - 1] if i else ""
        if program not in _RQ_PROGRAMS:
            continue
        if program == "rq.cli" and prev != "-m":
            continue
        args = words[i + 1 :]
        if program != "rqworker":
            if not args or args[0] not in ("worker", "worker-pool"):
                continue
            args = args[1:]
        return _python_for(words, i), *_worker_args(args)
    return None


def _python_for(words: list[str], index: int) -> str:
    """The interpreter that runs the worker: `X -m rq.cli` runs X; `/venv/bin/rq` has
    /venv/bin/python beside it; else python3."""
    word = words[index]
    if index >= 2 and words[index - 1] == "-m":
        candidate = words[index - 2]
        if PurePath(candidate).name.startswith("python"):
            return candidate
    if "/" in word:
        return str(PurePath(word).parent / "python")
    return "python3"


def _worker_args(args: list[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    options: dict[str, str] = {}
    queues: list[str] = []
    short = {"-u": "url", "-S": "serializer", "-j": "job-class", "-c": "config", "-n": "name"}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _SHELL_OPERATORS or arg.endswith(";"):
            if arg.endswith(";") and arg != ";" and not arg.startswith("-"):
                queues.append(arg.rstrip(";"))
            break
        if arg.startswith("--") and "=" in arg:
            key, val = arg[2:].split("=", 1)
            options[key] = val
        elif arg.startswith("-") and arg not in _RQ_FLAGS:
            key = short.get(arg, arg.lstrip("-"))
            if i + 1 < len(args):
                options[key] = args[i + 1]
            i += 1
        elif not arg.startswith("-"):
            queues.append(arg)
        i += 1
    return options, tuple(queues) or (DEFAULT_QUEUE,)


def _environment(raw_service: Mapping[str, Any]) -> dict[str, str]:
    env = raw_service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE items (Compose prints a mapping, but be lenient)
        pairs = (str(item).split("=", 1) for item in env)
        return {p[0]: p[1] for p in pairs if len(p) == 2}
    return {str(k): str(v) for k, v in env.items() if v is not None}


def _redis_url(
    from_command: str | None, env: Mapping[str, str], rq: RQConfig
) -> tuple[str | None, str]:
    """The URL the worker uses: its --url, else RQ_REDIS_URL / REDIS_URL from its environment
    (what `rq worker` reads), else the configured redis_url, else whatever the container's
    environment says when the helper runs."""
    if from_command:
        resolved = _expand(from_command, env)
        if resolved:
            return resolved, "command"
    for key in ("RQ_REDIS_URL", "REDIS_URL"):
        if env.get(key):
            return env[key], "environment"
    if rq.redis_url:
        return rq.redis_url, "config"
    return None, "container"


def _expand(word: str, env: Mapping[str, str]) -> str | None:
    """`$VAR` / `${VAR}` left for a shell to expand (Compose `$$VAR`): from the service's
    environment, or None when it is not there."""
    if not word.startswith("$"):
        return word
    name = word[1:].strip("{}")
    return env.get(name) or None


def _redis_service(
    stack: model.Stack, workers: set[str], found: list[RQWorkerService]
) -> str | None:
    candidates = []
    for name in stack.names():
        if name in workers:
            continue
        service = stack.services[name]
        image = (service.image or "").lower().rsplit("/", 1)[-1]
        runs_server = any(PurePath(w).name == "redis-server" for w in service.words)
        if image.startswith("redis") or runs_server:
            candidates.append(name)
    hosts = {_url_host(w.redis_url) for w in found if w.redis_url}
    for name in candidates:
        if name in hosts:
            return name
    return candidates[0] if candidates else None


def _url_host(url: str) -> str:
    rest = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].rsplit(":", 1)[0]


# --- running the helper in a worker container ---------------------------------------------
def script_text() -> str:
    """The in-container helper, as shipped in the package."""
    return resources.files("cslaunch").joinpath("rqscript.py").read_text(encoding="utf-8")


MARKER = "CSLAUNCH-RQ-JSON:"


def parse_output(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def run_helper(
    project: docker.ComposeProject,
    workers: Sequence[RQWorkerService],
    request: Mapping[str, Any],
    *,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run the helper with `request` in the first worker container that can run it.

    Raises JobsError when none can (no container running, no Python, the helper crashed);
    Redis trouble comes back in the document ("state": unreachable / auth / loading).
    """
    script = script_text()
    problems: list[str] = []
    for worker in workers:
        body = {
            "url": worker.redis_url,
            "queues": list(dict.fromkeys(q for w in workers for q in w.queues)),
            "serializer": worker.serializer,
            "job_class": worker.job_class,
            "config_module": worker.config_module,
            **request,
        }
        pythons = list(dict.fromkeys([worker.python, "python3", "python"]))
        for python in pythons:
            # The request goes on stdin: its Redis URL may hold a password, which `ps` shows
            # for arguments.
            result = docker.exec_service(
                project,
                worker.service,
                [python, "-B", "-c", script],
                input=json.dumps(body),
                timeout=timeout,
            )
            doc = parse_output(result.stdout)
            if doc is not None:
                doc["service"] = worker.service
                return doc
            problem = docker.first_error_line(result.stderr or result.stdout)
            if _missing_program(result.returncode, result.stderr):
                problems.append(f"{worker.service}: no {python}")
                continue
            if "Traceback" in result.stderr:
                raise JobsError(
                    f"the RQ helper failed in {worker.service}: {problem}",
                    detail=result.stderr[-4000:],
                )
            problems.append(f"{worker.service}: {problem}")
            break  # not running, or exec refused: try the next worker service
    raise JobsError(
        "could not reach RQ through any worker container ("
        + "; ".join(problems or ["no worker service"])
        + ")",
        hint="start the stack (cslaunch up) and check that the worker image has rq installed",
    )


def _missing_program(code: int, stderr: str) -> bool:
    lowered = stderr.lower()
    return (
        code in (126, 127)
        or "executable file not found" in lowered
        or ("no such file or directory" in lowered and "exec" in lowered)
    )


def _ran(
    project: docker.ComposeProject, setup: RQSetup, request: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Run the helper once per Redis the workers use."""
    return [run_helper(project, group, request, timeout=timeout) for group in setup.targets()]


# --- workers found from what runs ---------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """One RQ worker as Redis knows it: where it runs (hostname, pid) and what it does."""

    name: str
    hostname: str
    pid: str
    state: str
    queues: tuple[str, ...]
    current_job: str
    alive: bool
    birth: float | None  # epoch seconds


def helper_services(
    stack: model.Stack,
    rq: RQConfig,
    raw: Mapping[str, Any] | None,
    python: Collection[str],
) -> list[RQWorkerService]:
    """Where the RQ helper can ask Redis: the workers the command lines show first, then
    every Python service whose environment names a Redis (the app that enqueues, workers
    started by a script)."""
    guess = find_rq(stack, rq, raw)
    found = list(guess.workers) if guess else []
    raw_services: Mapping[str, Any] = (raw or {}).get("services") or {}
    for name in stack.names():
        if name in {w.service for w in found} or name not in python:
            continue
        env = _environment(raw_services.get(name) or {})
        if not rq.redis_url and not any("REDIS" in key.upper() for key in env):
            continue
        url, source = _redis_url(None, env, rq)
        found.append(RQWorkerService(name, url, source, (), "python3"))
    return found


def registrations(
    project: docker.ComposeProject, helpers: Sequence[RQWorkerService], timeout: float = 60
) -> list[Registration]:
    """Every worker registration in the Redis the helpers use. Raises JobsError when no
    helper can run or Redis cannot be read."""
    found: list[Registration] = []
    groups: dict[str | None, list[RQWorkerService]] = {}
    for w in helpers:
        groups.setdefault(w.redis_url, []).append(w)
    for group in groups.values():
        doc = run_helper(project, group, {"action": "workers"}, timeout=timeout)
        if not doc.get("ok"):
            raise JobsError(str(doc.get("message") or "cannot read RQ's workers"))
        for w in doc.get("workers") or []:
            found.append(
                Registration(
                    name=str(w.get("name", "")),
                    hostname=str(w.get("hostname") or ""),
                    pid=str(w.get("pid") or ""),
                    state=str(w.get("state") or ""),
                    queues=tuple(w.get("queues") or ()),
                    current_job=str(w.get("current_job") or ""),
                    alive=bool(w.get("alive")),
                    birth=float(w["birth"]) if w.get("birth") is not None else None,
                )
            )
    return found


@dataclass(frozen=True)
class Discovered:
    setup: RQSetup | None
    busy: dict[str, str] = field(default_factory=dict)  # container id -> job its worker runs
    problem: str = ""  # why the registrations could not be read
    # Registrations of workers whose process is gone. Until they expire (RQ's worker TTL,
    # minutes) a new worker of the same name refuses to start.
    dead: tuple[Registration, ...] = ()
    named: dict[str, str] = field(default_factory=dict)  # container id -> its fixed worker name


def discover(
    project: docker.ComposeProject,
    stack: model.Stack,
    rq: RQConfig,
    raw: Mapping[str, Any] | None,
    python: Collection[str],
    containers: Mapping[str, Sequence[Container]],
) -> Discovered:
    """The stack's RQ workers from what runs: every service whose container hosts a live
    worker registration (its hostname is the container's), whatever starts the worker (a
    Worker subclass in a script, `sh -c` wrappers, a pool), plus those the command lines
    and the configuration name. Asked before anything is stopped, so a worker is stopped
    as a worker and its interrupted job recovered."""
    guess = find_rq(stack, rq, raw)
    if not rq.enabled:
        return Discovered(None)
    running = {name for name, cs in containers.items() if any(c.running for c in cs)}
    every = helper_services(stack, rq, raw, python)
    helpers = [w for w in every if w.service in running]
    owners = by_hostname(c for cs in containers.values() for c in cs)
    mappable = any(
        len(owners[c.hostname]) == 1
        for name in python
        for c in containers.get(name, [])
        if c.running and c.hostname
    )
    fixed = any(w.name for w in (guess.workers if guess else ()))
    if not helpers or not (mappable or fixed):
        # Containers on the host's network all have its hostname: a registration cannot say
        # which of them runs it, so asking Redis would tell nothing the command lines do not
        # (unless a worker's fixed name may be blocked by its dead registration).
        return Discovered(guess)
    try:
        found = registrations(project, helpers)
    except JobsError as e:
        return Discovered(guess, problem=e.message)
    queues, busy, named = _by_container(found, owners)
    workers = _workers(guess, helpers, queues, rq)
    dead = tuple(r for r in found if not r.alive)
    if not workers:
        return Discovered(None, dead=dead)
    names = {w.service for w in workers}
    others = tuple(h for h in every if h.service not in names)
    setup = RQSetup(tuple(workers), _redis_service(stack, names, workers), rq, others)
    return Discovered(setup, busy, dead=dead, named=named)


def _by_container(
    found: Sequence[Registration], owners: Mapping[str, Sequence[Container]]
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """From the live registrations whose container can be told: the queues each service's
    workers take, the job each container's worker runs, each container's fixed worker name."""
    queues: dict[str, list[str]] = {}
    busy: dict[str, str] = {}
    named: dict[str, str] = {}
    for r in found:
        hosts = owners.get(r.hostname, [])
        # Containers on the host's network share its hostname: which one runs the worker
        # cannot be told, and the command lines have to say.
        if not r.alive or len(hosts) != 1:
            continue
        c = hosts[0]
        queues.setdefault(c.service, []).extend(r.queues)
        if r.state == "busy" and r.current_job:
            busy[c.id] = r.current_job
        if not _generated_name(r.name):
            named[c.id] = r.name
    return queues, busy, named


def _workers(
    guess: RQSetup | None,
    helpers: Sequence[RQWorkerService],
    queues: Mapping[str, list[str]],
    rq: RQConfig,
) -> list[RQWorkerService]:
    """The workers the command lines show, then the services only Redis showed to run one."""
    known = {w.service: w for w in (guess.workers if guess else ())}
    by_helper = {w.service: w for w in helpers}
    workers = list(known.values())
    for name in sorted(set(queues) - set(known)):
        base = by_helper.get(name) or RQWorkerService(name, rq.redis_url, "config", (), "python3")
        workers.append(
            RQWorkerService(
                name, base.redis_url, base.url_source, tuple(dict.fromkeys(queues[name])), "python3"
            )
        )
    return workers


def _generated_name(name: str) -> bool:
    """RQ names a worker uuid4().hex unless told otherwise."""
    return len(name) == 32 and all(ch in "0123456789abcdef" for ch in name)


# --- recovery -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RecoveredJob:
    id: str
    func: str
    queue: str
    action: str  # requeue / fail / clear / left / skipped / error
    reason: str
    worker: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.error:
            del data["error"]
        return data


@dataclass(frozen=True)
class CleanedWorker:
    name: str
    reason: str


@dataclass
class RecoveryReport:
    """What `recover` did (or, with dry_run, would do)."""

    policy: str
    dry_run: bool
    ok: bool = True
    state: str = "ok"  # ok / loading / unreachable / auth / error / no-rq
    message: str = ""
    jobs: list[RecoveredJob] = field(default_factory=list)
    workers_cleaned: list[CleanedWorker] = field(default_factory=list)
    live_started: int = 0  # started jobs a live worker still runs (left alone)
    liveness: str = ""  # connection / heartbeat: how worker liveness was judged
    rq_version: str = ""
    service: str = ""  # the container the helper ran in
    seconds: float = 0.0

    def count(self, action: str) -> int:
        return sum(1 for j in self.jobs if j.action == action)

    @property
    def warning(self) -> str | None:
        """One line for the caller when recovery could not look at the jobs."""
        return None if self.ok else self.message

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "jobs recover",
            self.ok,
            state=self.state,
            message=self.message,
            policy=self.policy,
            dry_run=self.dry_run,
            jobs=[j.to_json() for j in self.jobs],
            workers_cleaned=[asdict(w) for w in self.workers_cleaned],
            live_started=self.live_started,
            liveness=self.liveness,
            rq_version=self.rq_version,
            service=self.service,
            seconds=round(self.seconds, 3),
        )


def recover(
    project: docker.ComposeProject,
    setup: RQSetup,
    *,
    policy: str | None = None,
    dry_run: bool = False,
    reason: str | None = None,
    grace: float | None = None,
    workers_only: bool = False,
) -> RecoveryReport:
    """Recover every job whose worker is gone, at once, after workers were restarted
    (`workers_only`: only remove the registrations of dead workers, before they restart).

    Each job in a started registry whose worker no longer runs is requeued at the front of
    its queue (policy "requeue") or moved to Failed with `reason` (policy "fail"); a job a
    dead worker had taken off its queue but not started is requeued whatever the policy.
    Registry entries of jobs that already ended are cleared. Registrations of dead workers
    are removed. Nothing a live worker owns is touched, no job is deleted, and racing
    cslaunch runs recover each job once. `policy` defaults to the configured one.
    """
    policy = policy or setup.config.policy
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    request: dict[str, Any] = {"action": "recover", "policy": policy, "dry_run": dry_run}
    if reason:
        request["reason"] = reason
    if grace is not None:
        request["grace"] = grace
    if workers_only:
        request["workers_only"] = True
    start = time.monotonic()
    report = RecoveryReport(policy=policy, dry_run=dry_run)
    for doc in _ran(project, setup, request, timeout=180):
        _merge_recovery(report, doc)
    report.seconds = time.monotonic() - start
    return report


def _merge_recovery(report: RecoveryReport, doc: Mapping[str, Any]) -> None:
    report.service = report.service or str(doc.get("service", ""))
    report.rq_version = report.rq_version or str(doc.get("rq_version") or "")
    if not doc.get("ok"):
        report.ok = False
        report.state = str(doc.get("state") or "error")
        report.message = str(doc.get("message") or "RQ recovery failed")
        return
    report.liveness = report.liveness or str(doc.get("liveness") or "")
    report.live_started += int(doc.get("live_started") or 0)
    for j in doc.get("jobs") or []:
        report.jobs.append(
            RecoveredJob(
                id=str(j.get("id", "")),
                func=str(j.get("func") or "?"),
                queue=str(j.get("queue") or ""),
                action=str(j.get("action") or ""),
                reason=str(j.get("reason") or ""),
                worker=str(j.get("worker") or ""),
                error=str(j.get("error") or ""),
            )
        )
    for w in doc.get("workers_cleaned") or []:
        report.workers_cleaned.append(CleanedWorker(str(w.get("name")), str(w.get("reason"))))


def recovery_summary(report: RecoveryReport) -> str:
    """One line, for the launch step: "requeued 2 interrupted jobs; removed 2 stale workers"."""
    if not report.ok:
        return f"skipped: {report.message}"
    would = "would " if report.dry_run else ""
    parts = []
    verbs = {"requeue": "requeued", "fail": "failed", "clear": "cleared"}
    if report.dry_run:
        verbs = {"requeue": "requeue", "fail": "fail", "clear": "clear"}
    for action, noun in (("requeue", "interrupted"), ("fail", "interrupted"), ("clear", "stale")):
        n = report.count(action)
        if n:
            jobs = "job" if n == 1 else "jobs"
            entries = "entry" if n == 1 else "entries"
            what = f"{noun} {jobs}" if action != "clear" else f"stale registry {entries}"
            parts.append(f"{would}{verbs[action]} {n} {what}")
    if report.workers_cleaned:
        n = len(report.workers_cleaned)
        verb = "would remove" if report.dry_run else "removed"
        names = [w.name[:8] if _generated_name(w.name) else w.name for w in report.workers_cleaned]
        whose = f" of {', '.join(names)}" if n <= 4 else ""
        why = "; ".join(sorted({w.reason.split(" (", 1)[0] for w in report.workers_cleaned}))
        parts.append(f"{verb} {n} dead worker registration{'s' if n != 1 else ''}{whose} ({why})")
    errors = report.count("error")
    if errors:
        parts.append(f"{errors} could not be recovered")
    return "; ".join(parts) if parts else "no interrupted jobs"


def render_recovery(ui: UI, report: RecoveryReport) -> None:
    if not report.ok:
        ui.warn(f"jobs not recovered: {report.message}")
        return
    heading = "Dry run: " if report.dry_run else ""
    ui.echo(heading + recovery_summary(report))
    verbs = {
        "requeue": "requeued at the front of its queue",
        "fail": "moved to Failed",
        "clear": "registry entry cleared",
        "left": "left to RQ",
        "skipped": "already recovered by another run",
        "error": "NOT recovered",
    }
    if report.dry_run:
        verbs.update(
            requeue="would be requeued at the front of its queue",
            fail="would be moved to Failed",
            clear="registry entry would be cleared",
        )
    width = max((len(j.func) for j in report.jobs), default=4)
    for j in report.jobs:
        verb = verbs.get(j.action, j.action)
        colour = {"error": "red", "fail": "yellow"}.get(j.action)
        line = f"  {j.func:<{width}}  {j.queue:<10} {j.id}  {verb}"
        ui.echo(ui.style(line, fg=colour) if colour else line)
        ui.detail(f"    {j.reason}" + (f": {j.error}" if j.error else ""))
    for w in report.workers_cleaned:
        ui.detail(f"  worker {w.name}: {w.reason}")


# --- status -------------------------------------------------------------------------------
QUEUE_COUNT_FIELDS = (
    "queued",
    "started",
    "failed",
    "finished",
    "deferred",
    "scheduled",
    "canceled",
)


@dataclass(frozen=True)
class QueueCounts:
    name: str
    queued: int = 0
    started: int = 0
    failed: int = 0
    finished: int = 0
    deferred: int = 0
    scheduled: int = 0
    canceled: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StartedJob:
    id: str
    func: str
    queue: str
    worker: str
    worker_alive: bool
    orphaned: bool  # its worker is gone: `cslaunch jobs recover` would recover it
    age: float | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailedJob:
    id: str
    func: str
    queue: str
    ended_at: str | None
    error: str  # the last line of the exception

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    state: str
    queues: tuple[str, ...]
    alive: bool
    heartbeat_age: float | None
    current_job: str = ""
    hostname: str = ""
    service: str = ""  # the Compose service whose container runs it, when one does

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["queues"] = list(self.queues)
        return data


@dataclass
class JobsStatus:
    ok: bool = True
    state: str = "ok"
    message: str = ""
    queues: list[QueueCounts] = field(default_factory=list)
    started: list[StartedJob] = field(default_factory=list)
    failed: list[FailedJob] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    liveness: str = ""
    rq_version: str = ""
    redis_version: str = ""
    service: str = ""

    @property
    def orphaned(self) -> list[StartedJob]:
        return [s for s in self.started if s.orphaned]

    def to_json(self) -> dict[str, Any]:
        return envelope(
            "jobs",
            self.ok,
            state=self.state,
            message=self.message,
            rq_version=self.rq_version,
            redis_version=self.redis_version,
            liveness=self.liveness,
            queues=[q.to_json() for q in self.queues],
            started=[s.to_json() for s in self.started],
            failed=[f.to_json() for f in self.failed],
            workers=[w.to_json() for w in self.workers],
            service=self.service,
        )


def status(
    project: docker.ComposeProject,
    setup: RQSetup,
    *,
    failed_limit: int = 10,
    containers: Mapping[str, Sequence[Container]] | None = None,
) -> JobsStatus:
    """Queues with their counts, started jobs with their worker's liveness, the newest
    failed jobs with the last line of their exception, and the workers (with the service
    whose container runs each, from `containers`). Changes nothing."""
    result = JobsStatus()
    hosts = by_hostname(c for cs in (containers or {}).values() for c in cs)
    for doc in _ran(project, setup, {"action": "status", "failed_limit": failed_limit}, 60):
        _merge_status(result, doc, hosts)
    result.failed.sort(key=lambda f: f.ended_at or "", reverse=True)
    return result


def _merge_status(
    result: JobsStatus, doc: Mapping[str, Any], hosts: Mapping[str, Sequence[Container]]
) -> None:
    """Add one Redis's answer (one helper run) to `result`."""
    result.service = result.service or str(doc.get("service", ""))
    result.rq_version = result.rq_version or str(doc.get("rq_version") or "")
    result.redis_version = result.redis_version or str(doc.get("redis_version") or "")
    if not doc.get("ok"):
        result.ok = False
        result.state = str(doc.get("state") or "error")
        result.message = str(doc.get("message") or "")
        return
    result.liveness = result.liveness or str(doc.get("liveness") or "")
    for q in doc.get("queues") or []:
        result.queues.append(
            QueueCounts(name=str(q["name"]), **{k: int(q.get(k) or 0) for k in QUEUE_COUNT_FIELDS})
        )
    for s in doc.get("started") or []:
        result.started.append(
            StartedJob(
                id=str(s["id"]),
                func=str(s.get("func") or "?"),
                queue=str(s.get("queue") or ""),
                worker=str(s.get("worker") or ""),
                worker_alive=bool(s.get("worker_alive")),
                orphaned=bool(s.get("orphaned")),
                age=s.get("age"),
                reason=str(s.get("reason") or ""),
            )
        )
    for f in doc.get("failed") or []:
        result.failed.append(
            FailedJob(
                id=str(f["id"]),
                func=str(f.get("func") or "?"),
                queue=str(f.get("queue") or ""),
                ended_at=f.get("ended_at"),
                error=str(f.get("error") or ""),
            )
        )
    result.workers += [_worker_info(w, hosts) for w in doc.get("workers") or []]


def _worker_info(w: Mapping[str, Any], hosts: Mapping[str, Sequence[Container]]) -> WorkerInfo:
    host = str(w.get("hostname") or "")
    # One running container has that hostname: it runs the worker (on the host's network
    # they all have the host's, and nothing tells them apart).
    owners = hosts.get(host, [])
    return WorkerInfo(
        name=str(w["name"]),
        state=str(w.get("state") or ""),
        queues=tuple(w.get("queues") or ()),
        alive=bool(w.get("alive")),
        heartbeat_age=w.get("heartbeat_age"),
        current_job=str(w.get("current_job") or ""),
        hostname=host,
        service=owners[0].service if len(owners) == 1 else "",
    )


def render_status(ui: UI, st: JobsStatus) -> None:
    if not st.ok:
        ui.warn(f"cannot show jobs: {st.message}")
        return
    ui.echo(f"RQ {st.rq_version} on Redis {st.redis_version}")
    if not st.queues:
        ui.echo("  no queues yet")
    else:
        width = max(len(q.name) for q in st.queues)
        head = f"  {'queue':<{width}}  " + "  ".join(f"{f:>9}" for f in QUEUE_COUNT_FIELDS)
        ui.echo(ui.style(head, bold=True))
        for q in st.queues:
            counts = "  ".join(f"{getattr(q, f):>9}" for f in QUEUE_COUNT_FIELDS)
            ui.echo(f"  {q.name:<{width}}  {counts}")
    if st.workers:
        ui.echo("Workers:")
        for w in st.workers:
            mark = ui.ok_mark if w.alive else ui.fail_mark
            beat = f"heartbeat {w.heartbeat_age:.0f} s ago" if w.heartbeat_age is not None else ""
            state = w.state if w.alive else "gone"
            job = f"  job {w.current_job}" if w.current_job and w.alive else ""
            width = max(len(x.service) for x in st.workers)
            where = f"{w.service:<{width}}  " if width else ""
            line = f"  {mark} {where}{w.name}  {state:<9} {','.join(w.queues)}  {beat}{job}"
            ui.echo(line if w.alive else ui.style(line, fg="yellow"))
    if st.started:
        ui.echo("Started jobs:")
        for s in st.started:
            age = f"{s.age:.0f} s" if s.age is not None else "?"
            if s.orphaned:
                line = f"  {s.func}  {s.id}  {age}  INTERRUPTED ({s.reason})"
                ui.echo(ui.style(line, fg="yellow"))
            else:
                ui.echo(f"  {s.func}  {s.id}  {age}  on {s.worker}")
    if st.failed:
        ui.echo("Failed jobs, newest first:")
        for f in st.failed:
            ui.echo(f"  {f.ended_at or '?':<20} {f.func}  {f.id}")
            if f.error:
                ui.echo(ui.style(f"      {f.error}", fg="red"))
    if st.orphaned:
        ui.hint(
            f"{len(st.orphaned)} started job(s) lost their worker: "
            "`cslaunch jobs recover` puts them back on their queue"
        )


class LiveWorkers:
    """Readiness of RQ worker containers: a container is ready once Redis holds a live
    registration of a worker running in it (its hostname), born after the container
    started. That is the worker's own signal, sooner and surer than a healthcheck on
    Docker's schedule or a fixed stable window. One read of Redis serves every container
    that asks within `every` seconds."""

    def __init__(
        self,
        project: docker.ComposeProject,
        helpers: Sequence[RQWorkerService],
        workers: Collection[str],
        every: float = 0.25,
    ):
        self.project, self.helpers, self.workers, self.every = project, helpers, workers, every
        self.lock = threading.Lock()
        self.read_at = -math.inf
        self.seen: list[Registration] | None = None  # None: Redis could not be read
        self.problem = ""
        # hostname -> start times of the running worker containers that have it
        self.sharing: dict[str, list[float]] = {}

    def probe(self, container: Container) -> str | None:
        seen = self._fresh()
        if seen is None:
            # Cannot look (no rq in the image, Redis refuses us): not a fault of this worker;
            # the recovery step says why.
            return None if self.problem else "reading RQ's workers"
        started = container.started_at.timestamp() if container.started_at else 0.0
        have = sum(
            1
            for r in seen
            if r.alive and r.hostname == container.hostname and (r.birth or 0.0) >= started - 1
        )
        # On the host's network worker containers share a hostname and nothing tells their
        # registrations apart: every one started since this one must have registered since.
        need = max(1, sum(1 for t in self.sharing.get(container.hostname, ()) if t >= started))
        if have >= need:
            return None
        if need > 1:
            return (
                f"{have} live RQ worker registration(s) for {need} worker containers "
                f"sharing the hostname {container.hostname}"
            )
        return "no live RQ worker registration yet"

    def _fresh(self) -> list[Registration] | None:
        with self.lock:
            if time.monotonic() - self.read_at < self.every:
                return self.seen
            current = [c for c in project_containers(self.project) if c.running]
            self.sharing = {
                host: [c.started_at.timestamp() if c.started_at else 0.0 for c in group]
                for host, group in by_hostname(
                    c for c in current if c.service in self.workers
                ).items()
            }
            running = {c.service for c in current}
            helpers = [w for w in self.helpers if w.service in running]
            self.seen, self.problem = None, ""
            try:
                if helpers:
                    self.seen = registrations(self.project, helpers, timeout=30)
            except JobsError as e:
                # Loading its dataset: Redis will answer soon. Anything else: cannot look.
                self.problem = "" if "loading" in e.message.lower() else e.message
            self.read_at = time.monotonic()
            return self.seen
