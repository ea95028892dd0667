"""Benchmark selective bytecode invalidation (what a launch does after one source changed)
against the full clean (every .pyc removed), and what each costs the next cold import.

    .venv/bin/python benchmarks/bench_selective_clean.py [--reps N] [--min-files N]

Builds (once per run, in a temp dir removed at the end) a tree of the host Python's stdlib plus
this venv's site-packages, compiled with compileall (optimization level 0, as an importing
interpreter writes it), copied until it holds --min-files files. Before every timed run an
untimed restore (what the previous clean removed is copied back from a saved copy of the
bytecode, then `sync`) is made and one module (json/decoder.py of copy 0) is edited with its size
and mtime kept, so its .pyc is stale but looks valid to Python. Then:

  full      = cslaunch.bytecode.clean([tree])
  selective = scan.scan (the walk a launch makes for change detection, which also collects the
              bytecode) + bytecode.stale(..., changed={the edited file}) + bytecode.remove
              (src/cslaunch/stack.py `invalidate_bytecode`, formerly `_clean_bytecode`)

Reported: the time of each, the bytecode it leaves (valid .pyc kept; stale .pyc kept must be 0),
and the downstream cost: a fresh `python -c "import <many modules>"` with PYTHONPATH at the
tree's copy 0 (PYTHONDONTWRITEBYTECODE=1, so every run sees what the clean left).
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _benchutil import (  # noqa: E402
    REPO,
    TIMING_HEADERS,
    compile_tree,
    copy_sources,
    count_files,
    fmt_s,
    med,
    print_footer,
    print_header,
    ratio,
    replicate,
    table,
    temp_dir,
    timing_row,
)

sys.path.insert(0, str(REPO / "src"))

from cslaunch import bytecode, scan  # noqa: E402

EDITED = Path("0/stdlib/json/decoder.py")


def _words(text: str) -> list[str]:
    return text.split()


STDLIB_MODULES = _words(
    "argparse asyncio ast calendar concurrent.futures configparser csv dataclasses decimal "
    "difflib email.message email.parser email.policy fractions ftplib gettext http.client "
    "http.cookiejar http.server imaplib inspect json logging.handlers mailbox multiprocessing "
    "pathlib pickle pprint pydoc shutil smtplib socketserver sqlite3 ssl statistics "
    "subprocess tarfile tempfile textwrap tomllib typing unittest unittest.mock urllib.request "
    "uuid xml.dom.minidom xml.etree.ElementTree xmlrpc.client zipfile"
)
SITE_MODULES = _words(
    "click pygments.lexers.python redis rq dateutil.parser filelock hypothesis packaging.version "
    "pluggy sortedcontainers typing_extensions _pytest.python"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs per variant (default 5)")
    parser.add_argument("--min-files", type=int, default=50_000, help="tree size (default 50000)")
    args = parser.parse_args()
    print_header("bench_selective_clean: selective vs full bytecode invalidation", docker=False)
    with temp_dir("bench-selective") as tmp:
        return run(tmp, args.reps, args.min_files)


def run(tmp: Path, reps: int, min_files: int) -> int:
    work, saved = tmp / "tree", tmp / "saved"
    t0 = time.perf_counter()
    copy_sources(work / "0")
    compile_tree(work / "0")
    # Every copy is a `cp -a` of copy 0, so copy 0's bytecode (and the edited source) is what
    # any removed file is restored from.
    for dirpath, _dirs, files in os.walk(work / "0"):
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                src = Path(dirpath, name)
                dst = saved / src.relative_to(work / "0")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    shutil.copy2(work / EDITED, saved / EDITED.relative_to("0"))
    copies = replicate(work / "0", work, min_files)
    total = count_files(work)
    pycs, valid, _ = pyc_census(work, edited=None)
    print(f"tree    : {work}")
    print(
        f"files   : {total:,} ({copies} copies of stdlib + site-packages), "
        f"{pycs:,} .pyc ({valid:,} valid)"
    )
    print(f"built in {time.perf_counter() - t0:.1f}s; edited module: {EDITED.as_posix()}")

    modules = STDLIB_MODULES + SITE_MODULES
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(work / "0" / "stdlib"), str(work / "0" / "site-packages")]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    env.pop("PYTHONPYCACHEPREFIX", None)
    probe = "import sys\nimport " + ", ".join(modules)
    check = probe + "\nprint(sys.modules['json.decoder'].__file__, sys.modules['click'].__file__)"

    def cold_import() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", probe], env=env, check=True)
        return time.perf_counter() - start

    def edit() -> Path:
        """Put the edited module back as it was, then edit it keeping size and mtime."""
        edited = work / EDITED
        shutil.copy2(saved / EDITED.relative_to("0"), edited)
        st = edited.stat()
        data = edited.read_bytes()
        pos = data.index(b"JSON")
        edited.write_bytes(data[:pos] + b"JSOX" + data[pos + 4 :])
        os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
        return edited

    def restore(removed: list[Path]) -> Path:
        """Untimed: copy back what the last clean removed, re-edit, and flush dirty pages so
        no writeback of ours runs during the next timing."""
        t = time.perf_counter()
        if len(removed) > 1000:  # everything went: one `cp -a` per copy merges it all back
            for k in range(copies):
                subprocess.run(["cp", "-a", f"{saved}/.", str(work / str(k))], check=True)
        else:
            for path in removed:
                src = saved / Path(*path.relative_to(work).parts[1:])
                if src.is_dir():
                    path.mkdir(exist_ok=True)
                else:
                    path.parent.mkdir(exist_ok=True)
                    shutil.copy2(src, path)
        edited = edit()
        overhead["restore"] += time.perf_counter() - t
        t = time.perf_counter()
        os.sync()
        overhead["sync"] += time.perf_counter() - t
        return edited

    overhead = {"restore": 0.0, "sync": 0.0, "census": 0.0}
    restore([])

    # Where the probe's modules come from: the tree, not the host's stdlib.
    where = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(w.startswith(str(work)) for w in where), where
    print(f"import probe: {len(modules)} modules ({len(STDLIB_MODULES)} stdlib, "
          f"{len(SITE_MODULES)} site-packages) imported from the tree\n", flush=True)  # fmt: skip

    times: dict[str, list[float]] = {"full": [], "selective": []}
    parts: dict[str, list[float]] = {"scan": [], "stale": [], "remove": []}
    imports: dict[str, list[float]] = {"pristine": [], "full": [], "selective": []}
    left: dict[str, tuple[int, int, int]] = {}
    removed: dict[str, int] = {}
    last: list[Path] = []
    for i in range(reps):
        for variant in ("full", "selective") if i % 2 == 0 else ("selective", "full"):
            edited = restore(last)
            if variant == "full":
                imports["pristine"].append(cold_import())  # untimed state check: all bytecode
                start = time.perf_counter()
                result = bytecode.clean([work])
                times["full"].append(time.perf_counter() - start)
            else:
                start = time.perf_counter()
                found = scan.scan([scan.Tree(str(work), lambda rel: rel.endswith(".py"))])
                t1 = time.perf_counter()
                doomed = bytecode.stale(
                    found.bytecode,
                    sources={p for p in found.files if p.endswith(".py")},
                    changed={str(edited)},
                    roots=[str(work)],
                )
                t2 = time.perf_counter()
                result = bytecode.remove(doomed, roots=[work])
                t3 = time.perf_counter()
                times["selective"].append(t3 - start)
                parts["scan"].append(t1 - start)
                parts["stale"].append(t2 - t1)
                parts["remove"].append(t3 - t2)
            removed[variant] = result.files
            last = sorted(result.removed, key=lambda p: len(p.parts))  # dirs before their files
            t_c = time.perf_counter()
            left[variant] = pyc_census(work, edited=edited)
            overhead["census"] += time.perf_counter() - t_c
            imports[variant].append(cold_import())
    rows = [
        timing_row("full: bytecode.clean", times["full"], removed["full"],
                   left["full"][0], left["full"][1], left["full"][2]),
        timing_row("selective: scan+stale+remove", times["selective"], removed["selective"],
                   left["selective"][0], left["selective"][1], left["selective"][2]),
    ]  # fmt: skip
    print(table([*TIMING_HEADERS, "pyc removed", "pyc kept", "valid kept", "STALE kept"], rows))
    print(
        "selective breakdown, medians: "
        + ", ".join(f"{k} {fmt_s(med(v))}" for k, v in parts.items())
        + "  (in a launch the scan is shared with change detection)"
    )
    print()
    irows = [
        timing_row("cold import, all bytecode (before any clean)", imports["pristine"]),
        timing_row("cold import after full clean", imports["full"]),
        timing_row("cold import after selective clean", imports["selective"]),
    ]
    print(table(TIMING_HEADERS, irows))
    print()
    sel_total = [a + b for a, b in zip(times["selective"], imports["selective"], strict=True)]
    full_total = [a + b for a, b in zip(times["full"], imports["full"], strict=True)]
    sel_no_scan = [a + b for a, b in zip(parts["stale"], parts["remove"], strict=True)]
    for label, full, sel in [
        ("clean time", times["full"], times["selective"]),
        ("clean time excl. scan", times["full"], sel_no_scan),
        ("next cold import", imports["full"], imports["selective"]),
        ("clean + cold import", full_total, sel_total),
    ]:
        print(f"RATIO full/selective, {label:<22}: {ratio(full, sel)}")
    print("untimed overhead: " + ", ".join(f"{k} {v:.1f}s" for k, v in overhead.items()))
    print_footer()
    ok = left["full"][0] == 0 and left["selective"][2] == 0 and left["full"][2] == 0
    if not ok:
        print("FAIL: a clean left stale bytecode behind")
    return 0 if ok else 1


def pyc_census(root: Path, *, edited: Path | None) -> tuple[int, int, int]:
    """(.pyc files, valid ones, stale ones) under root. Valid: the header matches the source's
    mtime and size (what Python checks) and the source is not the edited one; stale: the
    header matches but the source content changed, so Python would run the old code."""
    magic = importlib.util.MAGIC_NUMBER
    total = valid = stale = 0
    for dirpath, _dirs, files in os.walk(root):
        in_cache = os.path.basename(dirpath) == "__pycache__"
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                continue
            total += 1
            if not in_cache:
                continue
            source = os.path.join(os.path.dirname(dirpath), name.split(".", 1)[0] + ".py")
            try:
                st = os.stat(source)
                with open(os.path.join(dirpath, name), "rb") as f:
                    head = f.read(16)
            except OSError:
                continue
            if len(head) < 16 or head[:4] != magic:
                continue
            flags, mtime, size = struct.unpack("<III", head[4:16])
            if flags != 0 or mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size:
                continue
            if edited is not None and source == str(edited):
                stale += 1
            else:
                valid += 1
    return total, valid, stale


if __name__ == "__main__":
    sys.exit(main())
