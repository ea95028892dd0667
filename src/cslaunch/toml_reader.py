"""Typed reads of a TOML table, for both config tables (`[tool.cslaunch]` and its `rq` table):
a value of the wrong type, an unknown key or a number out of range is an error that names the
key in full, never a setting silently ignored.

A module of its own, not part of config.py: rqconfig.py uses it too, and the jobs machinery,
which imports rqconfig, must not import config (tests/test_jobs.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Fail = Callable[[str, str], Exception]  # (key in full, problem) -> the error to raise

_KIND_NAMES: dict[type, str] = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(_KIND_NAMES.get(k, k.__name__) for k in kinds))


class Reader:
    """One table's values, checked as they are read. `path` is the table's place in the
    config ("services.web."), put before each key in errors."""

    def __init__(self, table: Mapping[str, Any], fail: Fail, path: str = "") -> None:
        self.table, self.fail, self.path = table, fail, path

    def error(self, key: str, problem: str) -> Exception:
        return self.fail(self.path + key, problem)

    def only(self, known: frozenset[str]) -> None:
        """A key outside `known` is a typo, not a setting to ignore."""
        for key in self.table:
            if key not in known:
                raise self.error(key, f"unknown key (known: {', '.join(sorted(known))})")

    def get(self, key: str, kind: type | tuple[type, ...], what: str = "") -> Any:
        """The value, None when absent; `what` names the kind in the error if kind_name does
        not say enough ("a whole number")."""
        value = self.table.get(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a number setting given `true` is still a type error.
        if value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            raise self.error(key, f"expected {what or kind_name(kind)}, got {type(value).__name__}")
        return value

    def strings(
        self, key: str, *, what: str = "a list", blank_ok: bool = True
    ) -> tuple[str, ...] | None:
        """A list of non-empty strings, None when absent. `blank_ok`: a string of spaces
        counts as non-empty (the top-level lists have always accepted one; the rq table's
        have not)."""
        value = self.get(key, list, what)
        if value is None:
            return None
        for item in value:
            if not isinstance(item, str) or not (item if blank_ok else item.strip()):
                raise self.error(key, "expected a list of non-empty strings")
        return tuple(value)

    def number(
        self,
        key: str,
        *,
        low: float,
        low_ok: bool,
        high: float | None = None,
        problem: str = "",
    ) -> float | None:
        """A finite number above `low` (or equal to it, `low_ok`) and at most `high`, None when
        absent. `problem` says what is wrong in words of the setting; by default, the bounds."""
        value = self.get(key, (int, float))
        if value is None:
            return None
        ok = math.isfinite(value) and (value >= low if low_ok else value > low)
        if high is not None:
            ok = ok and value <= high
        if not ok:
            if not problem:
                bound = f"{'at least' if low_ok else 'more than'} {low:g}"
                if high is not None:
                    bound += f" and at most {high:g}"
                problem = f"must be {bound}, got {value!r}"
            raise self.error(key, problem)
        return float(value)
