"""Runs INSIDE a service's container, with the container's own Python (any 3.x): checks that
the source files it runs are the host's and that no bytecode there can run older code.

Reads JSON from stdin: {"files": [[container_path, blake2b_16_hex], ...]}.
Prints JSON: {"python": "3.11.2", "problems": [[path, reason], ...], "checked": N, "pycs": M}.
Self-contained on purpose: it must not import cslaunch, which the container does not have,
and written for Python 3.7+.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import sys


def pyc_problem(pyc: str, source: str, data: bytes) -> str | None:
    """Why this pyc would run code other than `source`'s, or None."""
    with open(pyc, "rb") as f:
        header = f.read(16)
        body = f.read()
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return None  # another interpreter's: this one ignores it
    flags = int.from_bytes(header[4:8], "little")
    if flags & 0b1:  # hash-based (PEP 552)
        if importlib.util.source_hash(data) == header[8:16]:
            return None
        if flags & 0b10:
            return None  # checked-hash: Python sees the mismatch and recompiles
        return "unchecked-hash pyc of other source content: Python runs it without checking"
    st = os.stat(source)
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    if mtime != (int(st.st_mtime) & 0xFFFFFFFF) or size != (st.st_size & 0xFFFFFFFF):
        return None  # Python sees the timestamp mismatch and recompiles
    # The header says "valid". Is the code the source's? Compare code objects: equal code
    # means equal behaviour, whatever the comments say.
    name = os.path.basename(pyc)
    optimize = 0
    if ".opt-" in name:
        optimize = int(name.split(".opt-", 1)[1].split(".", 1)[0])
    try:
        fresh = compile(data, source, "exec", dont_inherit=True, optimize=optimize)
        cached = marshal.loads(body)
    except (SyntaxError, ValueError, EOFError, TypeError):
        return "pyc of a source that no longer compiles"
    if fresh != cached:
        return "stale pyc: its header matches the source's mtime and size, its code does not"
    return None


def main() -> None:
    request = json.load(sys.stdin)
    problems: list[list[str]] = []
    pycs = 0
    dirs = set()
    for path, expected in request["files"]:
        dirs.add(os.path.dirname(path))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            problems.append([path, "missing in the container"])
            continue
        except OSError as e:
            problems.append([path, f"unreadable in the container: {e.strerror}"])
            continue
        if hashlib.blake2b(data, digest_size=16).hexdigest() != expected:
            problems.append([path, "differs from the host's file"])
            continue
        cache = os.path.join(os.path.dirname(path), "__pycache__")
        stem = os.path.basename(path)[:-3] + "."
        try:
            names = [n for n in os.listdir(cache) if n.startswith(stem) and n.endswith(".pyc")]
        except OSError:
            names = []
        for name in names:
            pycs += 1
            why = pyc_problem(os.path.join(cache, name), path, data)
            if why:
                problems.append([os.path.join(cache, name), why])
    for directory in sorted(dirs):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith((".pyc", ".pyo")) and name[:-4] + ".py" not in names:
                problems.append(
                    [
                        os.path.join(directory, name),
                        "sourceless legacy pyc: imported although its source is gone",
                    ]
                )
    json.dump(
        {
            "python": ".".join(str(n) for n in sys.version_info[:3]),
            "problems": problems,
            "checked": len(request["files"]),
            "pycs": pycs,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
