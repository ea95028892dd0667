"""Paths as strings: where one lies in a container (under another, overlapping it), and a
COPY source as the Dockerfile writes it, made comparable."""

from __future__ import annotations

import posixpath


def norm(path: str) -> str:
    """A COPY source as a key: `./src/`, `src/` and `src` are one source, `.` and `./` are ""."""
    while path.startswith("./"):
        path = path[2:]
    return "" if path in (".", "") else path.rstrip("/")


def is_under(path: str, parent: str) -> bool:
    return parent == "/" or path.startswith(parent.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    a, b = posixpath.normpath(a), posixpath.normpath(b)
    return a == b or is_under(a, b) or is_under(b, a)
