"""Keep secrets out of everything cslaunch prints: credentials in URLs, and the values of
environment variables whose names look secret (PASSWORD, SECRET, TOKEN, KEY, ...), wherever
they turn up (a Compose error, a container's last log lines, a JSON report).

Values are registered when the Compose model is read; every line of output passes `scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(
    r"PASS(WORD|WD)?|SECRET|TOKEN|(^|_)KEYS?($|_)|APIKEY|CREDENTIAL|AUTH|DSN",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:***@host (also scheme://:password@host)
URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)@", re.I)
MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words

_values: set[str] = set()


def register(values: Iterable[str]) -> None:
    for value in values:
        if len(value) >= MIN_LENGTH:
            _values.add(value)


def secret_values(environment: Mapping[str, Any]) -> list[str]:
    """Values of secret-looking variables, and passwords inside URL-valued variables."""
    found = []
    for name, value in environment.items():
        if not isinstance(value, str) or not value:
            continue
        if SECRET_NAME.search(name):
            found.append(value)
        for match in URL_CREDENTIALS.finditer(value):
            found.append(match.group("pw"))
    return found


def register_model(raw: Mapping[str, Any]) -> None:
    for service in (raw.get("services") or {}).values():
        register(secret_values(service.get("environment") or {}))


def scrub(text: str) -> str:
    text = URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", text)
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text
