"""doctor's checks of restarts (checks_restarts): each against hand-made facts, one fixture
that triggers it and one that does not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cslaunch import doctor
from cslaunch.config import Config, ServiceConfig
from cslaunch.doctor import Pid1, RedisFacts, checks_restarts
from tests.doctorutil import RQ, container, facts, only, run, svc

# --- PID 1 and SIGTERM ------------------------------------------------------------------------


def test_pid1_that_ignores_sigterm_is_told_to_use_init() -> None:
    s = svc("api", command=["python3", "-m", "app"], stop_grace_period="20s")
    f = facts(s, pid1={"api": Pid1("python3", False)})
    finding = only(run(checks_restarts.check_pid1, f))
    assert (finding.code, finding.severity) == (doctor.PID1_SIGTERM, doctor.WARNING)
    assert "20 s stop grace" in finding.message
    assert "add `init: true` to service api" in finding.fix


@pytest.mark.parametrize(
    "pid1",
    [Pid1("python3", True), Pid1("docker-init", False), Pid1(None, None)],
)
def test_pid1_that_handles_sigterm_is_an_init_or_is_unknown_is_fine(pid1: Pid1) -> None:
    s = svc("api", command=["python3", "-m", "app"])
    assert run(checks_restarts.check_pid1, facts(s, pid1={"api": pid1})) == []


def test_init_true_is_enough_for_a_plain_program() -> None:
    s = svc("api", command=["python3", "-m", "app"], init=True)
    assert run(checks_restarts.check_pid1, facts(s, pid1={"api": Pid1("docker-init", False)})) == []


def test_shell_as_pid1_names_the_program_and_the_exec_fix() -> None:
    s = svc("worker", command=["sh", "-c", "echo starting; " + " ".join(RQ)])
    f = facts(s, pid1={"worker": Pid1("sh", False)})
    finding = only(run(checks_restarts.check_pid1, f))  # one finding, not also pid1-ignores-sigterm
    assert (finding.code, finding.severity) == (doctor.PID1_SHELL, doctor.WARNING)
    assert "to rq" in finding.message and "RQ worker cannot finish its job" in finding.message
    assert '`command: ["sh", "-c", "echo starting; exec rq worker --url' in finding.fix
    assert '`command: ["rq", "worker", "--url", "..."]`' in finding.fix
    assert "`init: true` alone only ends the stall" in finding.fix


def test_shell_command_is_found_from_the_model_when_the_stack_is_down() -> None:
    s = svc("worker", entrypoint=["/bin/bash", "-ec"], command=["cd /app && " + " ".join(RQ)])
    assert only(run(checks_restarts.check_pid1, facts(s))).code == doctor.PID1_SHELL


def test_shell_under_init_loses_a_workers_shutdown_unless_it_execs() -> None:
    script = "echo starting; " + " ".join(RQ)
    s = svc("worker", command=["sh", "-c", script], init=True)
    finding = only(run(checks_restarts.check_pid1, facts(s)))
    assert finding.code == doctor.PID1_SHELL
    assert "never shuts down cleanly" in finding.message
    execs = svc("worker", command=["sh", "-c", "echo starting; exec " + " ".join(RQ)], init=True)
    assert run(checks_restarts.check_pid1, facts(execs)) == []
    # A non-worker behind a shell under init just dies at once: nothing to lose.
    server = svc("web", command=["sh", "-c", "cd /app; python3 -m http.server"], init=True)
    assert run(checks_restarts.check_pid1, facts(server)) == []


SHELL_WRAPPERS = [
    # (the wrapper, what the fix must say, what it must never say)
    (
        ["bash", "-c", "envsubst < /t > /etc/nginx/conf.d/default.conf && nginx -g 'daemon off;'"],
        "\"envsubst < /t > /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'\"",
        "daemon off; exec",
    ),
    (["sh", "-c", "python manage.py migrate || exit 1"], "builtin `exit`", "exec exit"),
    (["sh", "-c", "python app.py; return 111"], "builtin `return`", "exec return"),
    (
        ["sh", "-c", 'if [ -n "$D" ]; then python -m debugpy a.py\nelse gunicorn a\nfi'],
        "`fi`, the end of a compound command",
        "exec fi",
    ),
]


@pytest.mark.parametrize(("command", "says", "never"), SHELL_WRAPPERS)
def test_shell_wrappers_get_an_exec_fix_only_where_it_runs(
    command: list[str], says: str, never: str
) -> None:
    finding = only(run(checks_restarts.check_pid1, facts(svc("web", command=command))))
    assert finding.code == doctor.PID1_SHELL
    assert says in finding.fix
    assert never not in finding.fix
    assert "to exit" not in finding.message and "to fi" not in finding.message


def test_the_exec_fix_is_the_compose_key_that_holds_the_wrapper() -> None:
    s = svc("w", entrypoint=["/bin/sh", "-c"], command=["cd /app && rq worker --url $REDIS_URL"])
    finding = only(run(checks_restarts.check_pid1, facts(s)))
    # Compose interpolates `$`: the fix writes the literal as `$$`.
    assert '`command: ["cd /app && exec rq worker --url $$REDIS_URL"]`' in finding.fix


def test_a_lone_command_under_sh_c_is_execd_by_the_shell() -> None:
    assert (
        run(checks_restarts.check_pid1, facts(svc("w", command=["sh", "-c", "gunicorn app"]))) == []
    )


# --- stop grace -------------------------------------------------------------------------------


def test_rq_worker_with_the_default_stop_grace_is_warned() -> None:
    finding = only(run(checks_restarts.check_stop_grace, facts(svc("worker", command=RQ))))
    assert (finding.code, finding.severity) == (doctor.STOP_GRACE, doctor.WARNING)
    assert "10 s stop grace (Docker's default)" in finding.message
    assert "180 s" in finding.message
    assert "add `stop_grace_period: 3m` to service worker" in finding.fix


def test_rq_worker_with_a_long_grace_and_non_workers_are_fine() -> None:
    assert (
        run(checks_restarts.check_stop_grace, facts(svc("w", command=RQ, stop_grace_period="3m")))
        == []
    )
    assert (
        run(checks_restarts.check_stop_grace, facts(svc("api", command=["python3", "app.py"])))
        == []
    )


def test_a_short_cslaunch_grace_is_named_in_the_fix() -> None:
    s = svc("worker", command=["rqworker", "default"], stop_grace_period="5m")
    cfg = Config(services={"worker": ServiceConfig(grace=30)})
    finding = only(run(checks_restarts.check_stop_grace, facts(s, config=cfg)))
    assert "30 s cslaunch `grace`" in finding.message
    assert finding.fix.startswith("raise `grace` in [tool.cslaunch.services.worker] to 180")
    assert "stop_grace_period" not in finding.fix  # Compose's own grace is long enough


def test_gunicorn_needs_its_graceful_timeout() -> None:
    short = svc("api", command=["gunicorn", "--graceful-timeout", "60", "app:app"])
    finding = only(run(checks_restarts.check_stop_grace, facts(short)))
    assert "60 s" in finding.message and "stop_grace_period: 1m" in finding.fix
    ok = svc("api", command=["gunicorn", "app:app"], stop_grace_period="45s")
    assert run(checks_restarts.check_stop_grace, facts(ok)) == []


# --- Redis ------------------------------------------------------------------------------------


def test_aof_that_is_never_rewritten_is_warned() -> None:
    cfg = {"appendonly": "yes", "auto-aof-rewrite-percentage": "0"}
    f = facts(svc("redis"), redis={"redis": RedisFacts(6379, cfg)})
    finding = only(run(checks_restarts.check_redis, f))
    assert (finding.code, finding.severity) == (doctor.REDIS_AOF_NO_REWRITE, doctor.WARNING)
    assert "--auto-aof-rewrite-percentage 100" in finding.fix


@pytest.mark.parametrize(
    "cfg",
    [
        {"appendonly": "yes"},  # Redis' defaults rewrite at 100 % growth over 64 MB
        {"appendonly": "yes", "auto-aof-rewrite-percentage": "100"},
        {"appendonly": "no", "auto-aof-rewrite-percentage": "0"},
    ],
)
def test_aof_with_rewrites_or_off_is_fine(cfg: dict[str, str]) -> None:
    assert (
        run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": RedisFacts(1, cfg)}))
        == []
    )


def test_huge_aof_is_warned_with_the_rewrite_command() -> None:
    big = RedisFacts(6390, {"appendonly": "yes"}, aof_size=2 * 1024**3, live=True)
    finding = only(run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": big})))
    assert finding.code == doctor.REDIS_AOF_LARGE
    assert "2048 MB" in finding.message
    assert "redis-cli -p 6390 BGREWRITEAOF" in finding.fix
    small = replace(big, aof_size=10 * 1024**2)
    assert run(checks_restarts.check_redis, facts(svc("redis"), redis={"redis": small})) == []


# --- RQ healthcheck ---------------------------------------------------------------------------


def test_rq_worker_without_a_healthcheck_is_info() -> None:
    finding = only(run(checks_restarts.check_rq_health, facts(svc("worker", command=RQ))))
    assert (finding.code, finding.severity, finding.service) == (
        doctor.RQ_NO_HEALTHCHECK,
        doctor.INFO,
        "worker",
    )
    assert "--only-workers" in finding.fix


def test_rq_worker_with_a_healthcheck_in_compose_or_image_is_fine() -> None:
    checked = svc("worker", command=RQ, healthcheck={"test": ["CMD", "rq", "info"]})
    assert run(checks_restarts.check_rq_health, facts(checked)) == []
    plain = svc("worker", command=RQ)
    from_image = facts(plain, containers={"worker": [container("worker", health="healthy")]})
    assert run(checks_restarts.check_rq_health, from_image) == []
    assert run(checks_restarts.check_rq_health, facts(svc("api", command=["python3"]))) == []


# --- RQ worker names --------------------------------------------------------------------------


def test_a_fixed_worker_name_explains_the_ttl_trap() -> None:
    named = [*RQ[:2], "--name", "w1", *RQ[2:]]
    finding = only(
        run(checks_restarts.check_fixed_worker_names, facts(svc("worker", command=named)))
    )
    assert (finding.code, finding.severity) == (doctor.RQ_FIXED_NAME, doctor.WARNING)
    assert "'w1'" in finding.message and "420 s" in finding.message
    assert "There exists an active worker named" in finding.message
    assert "drop `--name`" in finding.fix and "stop_grace_period: 3m" in finding.fix
    # A grace as long as RQ's job timeout: the trap is left to kills, and said as info.
    long = svc("worker", command=named, stop_grace_period="3m")
    finding = only(run(checks_restarts.check_fixed_worker_names, facts(long)))
    assert finding.severity == doctor.INFO and "stop_grace_period" not in finding.fix
    # Workers RQ names itself are not concerned.
    assert run(checks_restarts.check_fixed_worker_names, facts(svc("worker", command=RQ))) == []
