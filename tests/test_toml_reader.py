"""toml_reader.Reader: the typed reads both config tables share, and the errors they raise."""

from __future__ import annotations

from typing import Any

import pytest

from cslaunch.toml_reader import Reader, kind_name


class Problem(Exception):
    pass


def reader(table: dict[str, Any], path: str = "t.") -> Reader:
    return Reader(table, lambda key, problem: Problem(f"{key}: {problem}"), path)


def message(read: Any) -> str:
    with pytest.raises(Problem) as info:
        read()
    return str(info.value)


def test_kind_names() -> None:
    assert kind_name((int, float)) == "a number"
    assert kind_name(bool) == "true/false"
    assert kind_name((str, list)) == "a string or a list"


def test_get_absent_present_and_wrong_type() -> None:
    r = reader({"n": 3, "b": True, "s": "x"})
    assert r.get("missing", int) is None
    assert r.get("n", (int, float)) == 3
    assert r.get("b", bool) is True
    assert message(lambda: r.get("s", int)) == "t.s: expected a number, got str"
    assert message(lambda: r.get("s", int, "a whole number")) == (
        "t.s: expected a whole number, got str"
    )


def test_bool_is_not_a_number() -> None:
    r = reader({"b": True})
    assert message(lambda: r.get("b", (int, float))) == "t.b: expected a number, got bool"
    assert message(lambda: r.number("b", low=0, low_ok=True)) == (
        "t.b: expected a number, got bool"
    )


def test_unknown_key_names_the_known_ones() -> None:
    assert message(lambda: reader({"b": 1, "zz": 2}).only(frozenset({"a", "b"}))) == (
        "t.zz: unknown key (known: a, b)"
    )


def test_strings_and_blank_items() -> None:
    r = reader({"l": ["a", " "], "e": ["a", ""], "s": "a"})
    assert r.strings("missing") is None
    assert r.strings("l") == ("a", " ")
    assert message(lambda: r.strings("l", blank_ok=False)) == (
        "t.l: expected a list of non-empty strings"
    )
    assert message(lambda: r.strings("e")) == "t.e: expected a list of non-empty strings"
    assert message(lambda: r.strings("s", what="a list of strings")) == (
        "t.s: expected a list of strings, got str"
    )


def test_number_bounds() -> None:
    r = reader({"zero": 0, "big": 101, "nan": float("nan"), "ok": 5})
    assert r.number("ok", low=0, low_ok=False, high=100) == 5.0
    assert isinstance(r.number("ok", low=0, low_ok=True), float)
    assert r.number("missing", low=0, low_ok=True) is None
    assert message(lambda: r.number("zero", low=0, low_ok=False)) == (
        "t.zero: must be more than 0, got 0"
    )
    assert message(lambda: r.number("big", low=0, low_ok=False, high=100)) == (
        "t.big: must be more than 0 and at most 100, got 101"
    )
    assert message(lambda: r.number("nan", low=1, low_ok=True)) == (
        "t.nan: must be at least 1, got nan"
    )
    assert message(lambda: r.number("zero", low=0, low_ok=False, problem="must be positive")) == (
        "t.zero: must be positive"
    )
