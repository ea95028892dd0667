"""Keep secrets out of everything cslaunch prints.

Secrets are found where they live, when the Compose model is read: the values of environment
variables whose names look secret (PASSWORD, SECRET, TOKEN, KEY, ...), passwords inside URLs,
and the arguments of secret-looking flags and assignments in commands (`--requirepass X`,
`PGPASSWORD=X psql`). Output then masks those values as whole words of free text (a
container's log lines, a Compose error, a finding), and JSON is masked value by value before
it is serialised, never after: keys, booleans, numbers and `null` are left alone, and so are
names. A secret that is also the name of a service, a project or a volume is printed as that
name anyway; masking it would hide nothing and garble every line that names it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

SECRET_NAME = re.compile(
    r"PASS(WORD|WD)?|SECRET|TOKEN|(^|_)KEYS?($|_)|APIKEY|CREDENTIAL|AUTH|DSN",
    re.IGNORECASE,
)
# Flags whose argument is a secret: --password, --db-password, --requirepass, --api-key,
# --token, --masterauth. Matched on the flag's name, so --authSource or --bypass-cache are not.
SECRET_FLAG = re.compile(
    r"^(.*[-_])?(pass(word|wd)?|secret|token|api[-_]?key|key|credentials?|auth)$"
    r"|^requirepass$|^masterauth$",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:***@host (also scheme://:password@host)
URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)@", re.I)
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.+)$")
MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words
# Values that are words of every output (`true`, a count): never masked as free text.
PLAIN = re.compile(r"^(true|false|yes|no|on|off|null|none|[-+]?\d+(\.\d+)?)$", re.IGNORECASE)

_values: set[str] = set()
_names: set[str] = set()


def register(values: Iterable[str]) -> None:
    for value in values:
        if len(value) >= MIN_LENGTH and not PLAIN.match(value):
            _values.add(value)


def register_names(names: Iterable[str]) -> None:
    """Names the output prints as names: never masked."""
    _names.update(n for n in names if n)


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


def command_secrets(words: Iterable[str]) -> list[str]:
    """Secrets a command carries: the argument of a secret flag (`--requirepass X`,
    `--password=X`), `NAME=value` with a secret-looking name (shell strings included), and
    passwords inside URLs."""
    tokens = _tokens(words)
    found = []
    for i, token in enumerate(tokens):
        found += [m.group("pw") for m in URL_CREDENTIALS.finditer(token)]
        if token.startswith("-"):
            flag, eq, value = token.lstrip("-").partition("=")
            if SECRET_FLAG.match(flag):
                if eq:
                    found.append(value)
                elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                    found.append(tokens[i + 1])
            continue
        assignment = ASSIGNMENT.match(token)
        if assignment and SECRET_NAME.search(assignment.group("name")):
            found.append(assignment.group("value"))
    return found


def _tokens(words: Iterable[str], depth: int = 3) -> list[str]:
    """Words, with shell strings (`sh -c "..."`, a quoted script in a string command) split
    into their own words."""
    tokens: list[str] = []
    for word in words:
        if " " not in word or depth == 0:
            tokens.append(word)
            continue
        try:
            inner = shlex.split(word)
        except ValueError:
            inner = word.split()
        tokens += _tokens(inner, depth - 1)
    return tokens


def register_model(raw: Mapping[str, Any]) -> None:
    """The secrets of a Compose model, and the names it gives things."""
    names = [str(raw.get("name") or "")]
    for kind in ("networks", "volumes", "secrets", "configs"):
        for key, value in (raw.get(kind) or {}).items():
            names.append(str(key))
            if isinstance(value, Mapping) and value.get("name"):
                names.append(str(value["name"]))
    for service_name, service in (raw.get("services") or {}).items():
        names += [str(service_name), *(str(k) for k in service.get("environment") or {})]
        names += [str(service.get(k) or "") for k in ("container_name", "hostname", "image")]
        register(secret_values(service.get("environment") or {}))
        words = [*(_list(service.get("entrypoint"))), *(_list(service.get("command")))]
        words += _list((service.get("healthcheck") or {}).get("test"))
        register(command_secrets(words))
    register_names(names)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


@cache
def _pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """Any of the values as a whole word: not inside a longer name (`gitea` in
    `gitea-postgres`, a path, a host name), which is not the secret."""
    if not values:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![\w\-/\\])(?<!\w\.)(?:{alternatives})(?![\w\-/\\])(?!\.\w)")


def scrub(text: str) -> str:
    """Free text with the registered secrets and URL passwords masked."""
    text = URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", text)
    pattern = _pattern(frozenset(_values - _names))
    return pattern.sub(MASK, text) if pattern else text


def mask(data: Any) -> Any:
    """A JSON document with every string value scrubbed, before it is serialised: keys,
    booleans, numbers and null as they are."""
    if isinstance(data, str):
        return scrub(data)
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, Mapping):
        return {key: mask(value) for key, value in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [mask(item) for item in data]
    return scrub(str(data))
