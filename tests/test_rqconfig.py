"""`[tool.cslaunch.rq]`, validated strictly (cslaunch.rqconfig)."""

from __future__ import annotations

from typing import Any

import pytest

from cslaunch.errors import ConfigError
from cslaunch.rqconfig import RQConfig, parse_rq_config


def fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"pyproject.toml: tool.cslaunch.{key}: {problem}")


def test_rq_config_defaults_and_full_table() -> None:
    assert parse_rq_config({}, fail) == RQConfig()
    cfg = parse_rq_config(
        {
            "enabled": True,
            "policy": "fail",
            "redis_url": "redis://:pw@redis:6379/1",
            "worker_services": ["rqworker1", "rqworker2"],
            "max_job_keys": 5000,
            "max_memory_percent": 90,
            "max_memory_mb": 256.5,
            "aof_growth": 3,
            "aof_min_mb": 0,
            "retention_days": 1.5,
            "cache_patterns": ["citation_cache:*"],
            "cache_dbs": [2, 3, 2],
        },
        fail,
    )
    assert cfg.policy == "fail"
    assert cfg.worker_services == ("rqworker1", "rqworker2")
    assert cfg.max_job_keys == 5000 and cfg.aof_growth == 3.0 and cfg.retention_days == 1.5
    assert cfg.cache_patterns == ("citation_cache:*",) and cfg.cache_dbs == (2, 3)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"polcy": "fail"}, "rq.polcy: unknown key"),
        ({"policy": "delete"}, "rq.policy: expected one of requeue, fail"),
        ({"policy": 1}, "rq.policy: expected a string, got int"),
        ({"enabled": "yes"}, "rq.enabled: expected true/false"),
        ({"redis_url": "http://x"}, "rq.redis_url: not a Redis URL"),
        ({"worker_services": "w1"}, "rq.worker_services: expected a list"),
        ({"worker_services": ["w1", ""]}, "rq.worker_services: expected a list of non-empty"),
        ({"max_job_keys": True}, "rq.max_job_keys: expected a whole number, got bool"),
        ({"max_job_keys": 1.5}, "rq.max_job_keys: expected a whole number, got float"),
        ({"max_job_keys": 0}, "rq.max_job_keys: must be at least 1"),
        ({"max_memory_percent": 120}, "rq.max_memory_percent: must be more than 0 and at most"),
        ({"aof_growth": 0.5}, "rq.aof_growth: must be at least 1"),
        ({"retention_days": -1}, "rq.retention_days: must be at least 0"),
        ({"retention_days": float("nan")}, "rq.retention_days: must be"),
        ({"cache_patterns": ["*"]}, "rq.cache_patterns: '*' would match"),
        ({"cache_patterns": ["rq:*"]}, "rq.cache_patterns: 'rq:*' would match"),
        ({"cache_dbs": [0, "1"]}, "rq.cache_dbs: expected database numbers"),
        ({"cache_dbs": [-1]}, "rq.cache_dbs: expected database numbers"),
    ],
)
def test_rq_config_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rq_config(table, fail)
    assert message in info.value.message
    assert info.value.message.startswith("pyproject.toml: tool.cslaunch.rq")


def test_rq_config_not_a_table() -> None:
    with pytest.raises(ConfigError, match="expected a table"):
        parse_rq_config(["policy"], fail)  # type: ignore[arg-type]
