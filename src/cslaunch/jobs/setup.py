"""The RQ setup of a stack, read from the Compose model alone (pure): which services run
RQ workers (their command lines, or `worker_services` in the configuration), the Redis each
uses, and the service that runs Redis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cslaunch.rqconfig import RQConfig

if TYPE_CHECKING:  # for annotations only
    from cslaunch import model

DEFAULT_QUEUE = "default"


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
    # The stack's Redis by its service name, for a worker whose own settings name no Redis
    # but localhost (with_fallback)
    fallback_url: str | None = None


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
        env = service_environment(raw_services.get(name) or {})
        options: dict[str, str] = parsed[1] if parsed else {}
        queues = parsed[2] if parsed else ()
        url, source = worker_redis_url(options.get("url"), env, rq)
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
    redis_service = find_redis_service(stack, {w.service for w in workers}, workers)
    return RQSetup(
        workers=tuple(with_fallback(stack, workers, redis_service)),
        redis_service=redis_service,
        config=rq,
    )


def with_fallback(
    stack: model.Stack, workers: Sequence[RQWorkerService], redis_service: str | None
) -> list[RQWorkerService]:
    """Workers whose Redis URL the model does not show get the stack's Redis service by name
    (and the port and password its command gives it), on the network they share with it:
    django-rq keeps the address in Django's settings, other apps in their own config."""
    from cslaunch.model import redis_flags  # see find_redis_service

    if redis_service is None:
        return list(workers)
    flags = redis_flags(stack.services[redis_service].words)
    port = flags.get("port", "6379")
    password = flags.get("requirepass", "")
    if password.startswith("$"):
        password = ""  # expanded by the shell in the Redis container: not known here
    auth = f":{quote(password, safe='')}@" if password else ""
    url = f"redis://{auth}{redis_service}:{port if port.isdigit() else '6379'}/0"
    return [
        replace(w, fallback_url=url)
        if w.redis_url is None and _on_a_network(stack.services[w.service].network_mode)
        else w
        for w in workers
    ]


def _on_a_network(network_mode: str | None) -> bool:
    """Whether a container reaches other services by name (not the host's network, none, or
    another container's)."""
    mode = network_mode or "bridge"
    return mode not in ("host", "none") and not mode.startswith(("service:", "container:"))


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
            pool = args[0] == "worker-pool"
            args = args[1:]
        else:
            pool = False
        return _python_for(words, i), *_worker_args(args, pool=pool)
    return None


def _python_for(words: list[str], index: int) -> str:
    """The interpreter that runs the worker: `X -m rq.cli` or `X manage.py rqworker` runs X
    (`/opt/venv/bin/python`, whose packages the image's python3 may not have);
    `/venv/bin/rq` has /venv/bin/python beside it; else python3."""
    word = words[index]
    for candidate in reversed(words[max(0, index - 3) : index]):
        if PurePath(candidate).name.startswith("python"):
            return candidate
        if _is_operator(candidate):
            break  # another command's
    if "/" in word:
        return str(PurePath(word).parent / "python")
    return "python3"


def _is_operator(word: str) -> bool:
    """A shell operator or redirection, as model.split_words makes them words (`>&`)."""
    return bool(word) and all(c in "<>&|;" for c in word)


def _worker_args(args: list[str], *, pool: bool) -> tuple[dict[str, str], tuple[str, ...]]:
    options: dict[str, str] = {}
    queues: list[str] = []
    short = {"-u": "url", "-S": "serializer", "-j": "job-class", "-c": "config", "-n": "name"}
    if pool:  # `rq worker-pool -n 3`: how many workers, whose names RQ makes up
        short["-n"] = "num-workers"
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _SHELL_OPERATORS or arg.endswith(";") or _is_operator(arg):
            if arg.endswith(";") and arg != ";" and not arg.startswith("-"):
                queues.append(arg.rstrip(";"))
            if arg[0] in "<>" and queues and queues[-1].isdigit():
                queues.pop()  # the descriptor of a redirection (`2>&1`), not a queue
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


def service_environment(raw_service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment in Compose's JSON model, as a mapping."""
    env = raw_service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE items (Compose prints a mapping, but be lenient)
        pairs = (str(item).split("=", 1) for item in env)
        return {p[0]: p[1] for p in pairs if len(p) == 2}
    return {str(k): str(v) for k, v in env.items() if v is not None}


def worker_redis_url(
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


def find_redis_service(
    stack: model.Stack, workers: set[str], found: list[RQWorkerService]
) -> str | None:
    """The service that runs Redis (or Valkey, KeyDB): by its image or its server command,
    the one the workers' URLs name first."""
    # Here, not at the top: the jobs rooms load without the model (no import cycle).
    from cslaunch.model import is_redis

    candidates = []
    for name in stack.names():
        if name in workers:
            continue
        if is_redis(stack.services[name]):
            candidates.append(name)
    hosts = {_url_host(w.redis_url) for w in found if w.redis_url}
    for name in candidates:
        if name in hosts:
            return name
    return candidates[0] if candidates else None


def _url_host(url: str) -> str:
    rest = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].rsplit(":", 1)[0]


def generated_name(name: str) -> bool:
    """RQ names a worker uuid4().hex unless told otherwise."""
    return len(name) == 32 and all(ch in "0123456789abcdef" for ch in name)
