"""Runs INSIDE a service's container, with the container's own Python (any 3.x): checks that
the source files it runs are the host's and that no bytecode there can run older code.

Reads JSON from stdin: {"files": [[container_path, blake2b_16_hex, host_stat], ...], "dirs":
[container_dir, ...]}, where host_stat is [mtime_ns, ctime_ns, size, inode] as the host's
index saw the file (optional), and "dirs" (optional) are more directories to search for
sourceless pycs (those of deleted sources).
Prints JSON: {"python": "3.11.2", "problems": [[path, reason], ...], "checked": N, "pycs": M,
"hashed": K}; a problem with a pyc names its source third: [pyc, reason, source].

A file whose lstat here is the host's to the nanosecond, inode included, is the host's file
seen through a bind mount, unwritten since the index hashed it (any write moves ctime): it
is not read again. That keeps the look over a 100k-file tree to a walk; a copy in an image
layer has its own inode and ctime, so baked code is always hashed.
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


def indexed_bytes(path: str) -> tuple[list[bytes], bytes | None]:
    """(what the host's index may have hashed, the source Python reads). A link: its
    target's content where it resolves, as on the host, or its target's name, which the
    host hashed where it dangles there (an absolute link into the container's own tree).
    A link that dangles here has nothing for Python to import: nothing to check."""
    if not os.path.islink(path):
        with open(path, "rb") as f:
            data = f.read()
        return [data], data
    if not os.path.isfile(path):
        return [], None
    with open(path, "rb") as f:
        data = f.read()
    return [data, b"link:" + os.fsencode(os.readlink(path))], data


def listing(directory: str, cache: dict[str, list[str]]) -> list[str]:
    if directory not in cache:
        try:
            cache[directory] = os.listdir(directory)
        except OSError:
            cache[directory] = []
    return cache[directory]


def legacy_pycs(dirs: set[str], listed: dict[str, list[str]]) -> list[list[str]]:
    """Sourceless .pyc/.pyo files beside the sources: Python imports them as the module."""
    found = []
    for directory in sorted(dirs):
        names = listing(directory, listed)
        for name in names:
            # `m.pyc` is imported as module m; `m.cpython-311.pyc` (a mirror under a
            # PYTHONPYCACHEPREFIX inside the tree) and a directory `.pyc` name no module: a
            # dot in a module's name is a package's, so they are never imported.
            stem = name[:-4]
            if (
                name.endswith((".pyc", ".pyo"))
                and stem
                and "." not in stem
                and stem + ".py" not in names
            ):
                found.append(
                    [
                        os.path.join(directory, name),
                        "sourceless legacy pyc: imported although its source is gone",
                    ]
                )
    return found


def cache_dir(directory: str) -> str:
    """Where this Python keeps the pycs of a directory's modules: its __pycache__, or with
    PYTHONPYCACHEPREFIX (which `docker exec` passes on from the container's environment)
    only the directory's mirror under the prefix, as importlib.util.cache_from_source. The
    mirror is in the container's own layer, which a restart keeps."""
    prefix = getattr(sys, "pycache_prefix", None)  # Python 3.8+
    if prefix:
        return os.path.join(prefix, directory.lstrip("/"))
    return os.path.join(directory, "__pycache__")


def cached_pycs(directory: str, listed: dict[str, list[str]]) -> dict[str, list[str]]:
    """The pycs of a directory's modules by the first dotted part of their name, as a
    module's stem starts: each file is matched against its few, not the whole listing (a
    package of 500 modules would be 250,000 comparisons)."""
    found: dict[str, list[str]] = {}
    for name in listing(cache_dir(directory), listed):
        if name.endswith(".pyc"):
            found.setdefault(name.split(".", 1)[0], []).append(name)
    return found


def main() -> None:
    request = json.load(sys.stdin)
    problems: list[list[str]] = []
    pycs = hashed = 0
    listed: dict[str, list[str]] = {}
    by_dir: dict[str, dict[str, list[str]]] = {}  # directory -> cached_pycs
    for item in request["files"]:
        path, expected = item[0], item[1]
        host_stat = item[2] if len(item) > 2 else None
        # os.path.split, without its Python-level calls per file (a fifth of a 100k look).
        directory, _, base = path.rpartition("/")
        if not directory and path.startswith("/"):
            directory = "/"
        if directory not in by_dir:
            by_dir[directory] = cached_pycs(directory, listed)
        source: bytes | None = None
        try:
            st = os.lstat(path)
            same = [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino] == host_stat
            if not same:
                hashed += 1
                forms, source = indexed_bytes(path)
                if not forms:
                    continue  # a link that dangles here: nothing to import
                digests = [hashlib.blake2b(d, digest_size=16).hexdigest() for d in forms]
                if expected not in digests:
                    problems.append([path, "differs from the host's file"])
                    continue
        except FileNotFoundError:
            problems.append([path, "missing in the container"])
            continue
        except OSError as e:
            problems.append([path, f"unreadable in the container: {e.strerror}"])
            continue
        stem = base[:-3] + "."
        candidates = by_dir[directory].get(stem.split(".", 1)[0], ())
        names = [n for n in candidates if n.startswith(stem)]
        if names:
            cache = cache_dir(directory)
        for name in names:
            pyc = os.path.join(cache, name)
            pycs += 1
            try:
                if source is None:
                    with open(path, "rb") as f:
                        source = f.read()
                why = pyc_problem(pyc, path, source)
            except OSError as e:
                why = f"unreadable in the container: {e.strerror}"
            if why:
                problems.append([pyc, why, path])  # the source: the host knows no prefix
    problems += legacy_pycs(set(by_dir) | set(request.get("dirs", ())), listed)
    json.dump(
        {
            "python": ".".join(str(n) for n in sys.version_info[:3]),
            "problems": problems,
            "checked": len(request["files"]),
            "pycs": pycs,
            "hashed": hashed,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
