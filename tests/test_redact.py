"""Secrets never reach the output: URL credentials and secret-looking environment values."""

from __future__ import annotations

import json

import pytest

from cslaunch import redact


def test_url_credentials_are_masked() -> None:
    text = "connecting to redis://:s3cret-pw@redis:6379/0 and postgres://app:pa55word@db/app"
    out = redact.scrub(text)
    assert "s3cret-pw" not in out and "pa55word" not in out
    assert "redis://:***@redis:6379/0" in out and "postgres://app:***@db/app" in out
    assert redact.scrub("http://example.com/a:b@c") == "http://example.com/a:b@c"  # no userinfo


def test_secret_environment_values_are_masked_anywhere() -> None:
    env = {
        "DB_PASSWORD": "hunter2hunter2",
        "API_TOKEN": "tok-123456",
        "REDIS_URL": "redis://:urlpass99@redis/0",
        "DEBUG": "true",
        "SHORT_KEY": "ab",  # too short to mask without eating ordinary text
    }
    assert set(redact.secret_values(env)) == {"hunter2hunter2", "tok-123456", "urlpass99", "ab"}
    redact.register_model({"services": {"api": {"environment": env}}})
    out = redact.scrub("boot: password=hunter2hunter2 token tok-123456 pw urlpass99 debug true")
    assert "hunter2hunter2" not in out and "tok-123456" not in out and "urlpass99" not in out
    assert "debug true" in out and "ab" in "about"  # ordinary words survive


def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "_values", set())
    monkeypatch.setattr(redact, "_names", set())


GITEA = {
    "name": "gitea-postgres",
    "services": {
        "gitea": {
            "image": "gitea/gitea:1.21",
            "environment": {"DB_PASSWD": "gitea", "POSTGRES_PASSWORD": "true", "PORT": "3000"},
        },
        "db": {
            "image": "postgres:16",
            "environment": {"POSTGRES_PASSWORD": "hunter2hunter2", "PGPORT": "5432"},
            "command": ["postgres", "-c", "password_encryption=scram-sha-256"],
        },
    },
}


def test_names_booleans_and_numbers_are_never_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch)
    redact.register_model(GITEA)
    assert redact.scrub("project gitea-postgres: service gitea is up") == (
        "project gitea-postgres: service gitea is up"
    )
    assert (
        redact.scrub("db says: auth with hunter2hunter2 failed") == "db says: auth with *** failed"
    )
    assert redact.scrub("/srv/hunter2hunter2-data/x") == "/srv/hunter2hunter2-data/x"  # a path
    data = {"first": True, "project": "gitea-postgres", "count": 3000, "log": "pw=hunter2hunter2"}
    masked = redact.mask(data)
    assert masked == {**data, "log": "pw=***"}
    assert json.loads(json.dumps(masked)) == masked


def test_secrets_a_command_carries_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch)
    words = [
        "redis-server",
        "--requirepass",
        "s3cr3t-redis",
        "--masterauth=m4ster-pw",
        "--authSource",
        "admin",
        "--bypass-cache",
        "never",
        "sh -c 'PGPASSWORD=pg-pass-1 psql -h db; curl https://u:c0rlpw@host/'",
    ]
    assert set(redact.command_secrets(words)) == {
        "s3cr3t-redis",
        "m4ster-pw",
        "pg-pass-1",
        "c0rlpw",
    }
