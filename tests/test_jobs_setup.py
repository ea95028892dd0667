"""The RQ setup of a stack from the Compose model alone (cslaunch.jobs.setup): which services
run workers, the Redis URL each uses, the service that runs Redis.
"""

from __future__ import annotations

from typing import Any

import pytest

from cslaunch import jobs, model
from cslaunch.jobs import find_rq
from cslaunch.rqconfig import RQConfig


def compose_json(**services: dict[str, Any]) -> dict[str, Any]:
    return {"name": "demo", "services": services}


def stack_of(raw: dict[str, Any]) -> model.Stack:
    return model.parse_stack(raw)


EXAMPLE = compose_json(
    redis={
        "image": "redis:7-alpine",
        "command": ["redis-server", "--port", "6390"],
    },
    backend={
        "image": "app",
        "command": ["python3", "-m", "app.server"],
        "environment": {"REDIS_URL": "redis://127.0.0.1:6390/0"},
    },
    worker1={
        "image": "app",
        "command": ["rq", "worker", "--url", "redis://127.0.0.1:6390/0", "default"],
        "environment": {"REDIS_URL": "redis://ignored:1/0"},
    },
    worker2={
        "image": "app",
        "command": ["rq", "worker", "-u", "redis://127.0.0.1:6390/0", "high", "low"],
    },
)


def test_find_rq_example_stack() -> None:
    setup = find_rq(stack_of(EXAMPLE), RQConfig(), EXAMPLE)
    assert setup is not None
    assert setup.worker_services == ("worker1", "worker2")
    w1, w2 = setup.workers
    assert (w1.redis_url, w1.url_source, w1.queues) == (
        "redis://127.0.0.1:6390/0",
        "command",
        ("default",),
    )
    assert w2.queues == ("high", "low")
    assert setup.queues == ("default", "high", "low")
    assert setup.redis_service == "redis"
    assert w1.python == "python3"
    assert len(setup.targets()) == 1  # both use the same Redis


@pytest.mark.parametrize(
    ("command", "python", "queues", "options"),
    [
        (["rq", "worker"], "python3", ("default",), {}),
        (["rqworker", "-u", "redis://r/1", "a"], "python3", ("a",), {"url": "redis://r/1"}),
        (
            ["python", "-m", "rq.cli", "worker", "--url=redis://r:1/2", "-b", "q1"],
            "python",
            ("q1",),
            {"url": "redis://r:1/2"},
        ),
        (
            ["/venv/bin/rq", "worker", "--with-scheduler", "-S", "rq.serializers.JSONSerializer"],
            "/venv/bin/python",
            ("default",),
            {"serializer": "rq.serializers.JSONSerializer"},
        ),
        (
            ["rq", "worker-pool", "-n", "3", "--url", "redis://x/0", "emails"],
            "python3",
            ("emails",),
            {"num-workers": "3", "url": "redis://x/0"},
        ),
        (
            ["sh", "-c", "rq worker high default 2>&1 | tee /var/log/worker.log"],
            "python3",
            ("high", "default"),
            {},
        ),
        (["sh", "-c", "rq worker low 1>/dev/null"], "python3", ("low",), {}),
        (
            ["/opt/venv/bin/python", "/opt/app/manage.py", "rqworker", "default"],
            "/opt/venv/bin/python",
            ("default",),
            {},
        ),
        (["sh", "-c", "python3.12 w.py && rqworker"], "python3", ("default",), {}),
        (
            ["sh", "-c", "python wait.py && rq worker --url $REDIS_URL high; echo done"],
            "python3",
            ("high",),
            {"url": "$REDIS_URL"},
        ),
    ],
)
def test_parse_worker_command(
    command: list[str], python: str, queues: tuple[str, ...], options: dict[str, str]
) -> None:
    svc = model.parse_service("w", {"command": command})
    parsed = jobs.parse_worker_command(svc.words)
    assert parsed is not None
    assert parsed == (python, options, queues)


@pytest.mark.parametrize(
    "command",
    [
        ["rq", "info"],
        ["python3", "-m", "app.server"],
        ["python", "src/rq_worker.py"],
        ["redis-server"],
        ["python", "rq.cli", "worker"],  # a script argument, not `-m rq.cli`
    ],
)
def test_not_a_worker(command: list[str]) -> None:
    assert jobs.parse_worker_command(model.parse_service("x", {"command": command}).words) is None


def test_worker_entrypoint_and_command_combined() -> None:
    svc = model.parse_service("w", {"entrypoint": ["rq"], "command": ["worker", "jobs"]})
    assert jobs.parse_worker_command(svc.words) == ("python3", {}, ("jobs",))


def test_url_from_environment_then_config_then_container() -> None:
    worker = ["rq", "worker"]
    raw = compose_json(
        a={"image": "app", "command": worker, "environment": {"RQ_REDIS_URL": "redis://a/1"}},
        b={"image": "app", "command": worker, "environment": {"REDIS_URL": "redis://b/2"}},
        c={"image": "app", "command": worker},
        # Compose turns `$$MY_URL` into `$MY_URL`, for the shell to expand.
        d={
            "image": "app",
            "command": ["sh", "-c", "rq worker --url $MY_URL"],
            "environment": {"MY_URL": "redis://d/3"},
        },
    )
    with_config = find_rq(stack_of(raw), RQConfig(redis_url="redis://conf/4"), raw)
    assert with_config is not None
    urls = {w.service: (w.redis_url, w.url_source) for w in with_config.workers}
    assert urls == {
        "a": ("redis://a/1", "environment"),
        "b": ("redis://b/2", "environment"),
        "c": ("redis://conf/4", "config"),
        "d": ("redis://d/3", "command"),
    }
    bare = find_rq(stack_of(raw), RQConfig(), raw)
    assert bare is not None
    assert {w.service: w.url_source for w in bare.workers}["c"] == "container"
    assert len(bare.targets()) == 4


def test_configured_worker_service_with_custom_script() -> None:
    raw = compose_json(
        rqworker1={"image": "app", "command": ["python", "src/rq_worker.py"]},
        redis={"image": "bitnami/redis:7.2"},
    )
    assert find_rq(stack_of(raw), RQConfig(), raw) is None
    setup = find_rq(stack_of(raw), RQConfig(worker_services=("rqworker1",)), raw)
    assert setup is not None
    assert setup.workers[0].queues == ()  # the helper discovers queues from Redis
    assert setup.redis_service == "redis"


def test_find_rq_disabled_or_absent() -> None:
    assert find_rq(stack_of(EXAMPLE), RQConfig(enabled=False), EXAMPLE) is None
    raw = compose_json(web={"image": "nginx"})
    assert find_rq(stack_of(raw), RQConfig(), raw) is None


def test_redis_service_matches_url_host() -> None:
    raw = compose_json(
        cache={"image": "redis:7"},
        queue={"image": "redis:7"},
        worker={"image": "app", "command": ["rq", "worker", "--url", "redis://queue:6379/0"]},
    )
    setup = find_rq(stack_of(raw), RQConfig(), raw)
    assert setup is not None and setup.redis_service == "queue"


def test_a_worker_whose_url_the_model_does_not_show_gets_the_stacks_redis_by_name() -> None:
    stack = model.parse_stack(
        {
            "name": "p",
            "services": {
                "cache": {"image": "redis:7", "command": ["redis-server", "--requirepass", "p@s"]},
                "rqworker": {"image": "app", "command": ["python", "manage.py", "rqworker"]},
                "hostnet": {"image": "app", "command": ["rqworker"], "network_mode": "host"},
                "named": {"image": "app", "command": ["rq", "worker", "-u", "redis://x:1/0"]},
            },
        }
    )
    setup = jobs.find_rq(stack, RQConfig())
    assert setup is not None
    urls = {w.service: w.fallback_url for w in setup.workers}
    assert urls == {"rqworker": "redis://:p%40s@cache:6379/0", "hostnet": None, "named": None}
