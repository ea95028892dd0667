"""Secrets never reach the output: URL credentials and secret-looking environment values."""

from __future__ import annotations

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
