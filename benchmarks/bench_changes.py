"""Benchmark cslaunch's change detection against `git status --porcelain` on a 50k-file tree.

    .venv/bin/python benchmarks/bench_changes.py [--reps N] [--reps-first N] [--min-files N]

Builds (once per run, in a temp dir that is removed at the end) a tree of the host Python's
stdlib plus this venv's site-packages, copied until it holds --min-files files, commits it to
a fresh git repository, and then times on that same tree:

  (a) nothing changed:  cslaunch detection with the index of the previous scan, vs git status
  (b) one file changed: content edited with size kept and mtime put back (os.utime), which
      only ctime betrays; both tools must report exactly that file
  (c) no index yet:     cslaunch's first scan (hashes every file), for reference, next to
      `git add -A` into an empty index (git hashes every file; its objects already exist)

"cslaunch detection" is the real `cslaunch.changes.detect` on a Compose model whose one Python
service bind-mounts the tree (source_patterns=("*",) so every file is tracked, as git tracks
every file), with its index loaded from disk each time, as `cslaunch up` runs it. The tree is
a git work tree, as a project's is: after a launch that walked has left git's view beside
its index (cslaunch.gitview), detect stands on git's word (a `git status` of its own, run
while the index loads, and only what git names asked). Shown too: the walk it makes when
git's view does not stand (the first launch, and the one after a commit or checkout: a walk,
git's status alongside, git's index read), the bare walk+compare over one
`Tree(root, lambda rel: True)` without git, and in (a) the floor of any walk in Python on one
core: a bare scandir+lstat of every file into a dict, with no index and no rules. cslaunch
shares a walk this large with forked helpers (one per further CPU, as detect does; git stats
with threads). Page caches are warm for both tools.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # nothing may land in the repository

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _benchutil import (  # noqa: E402
    REPO,
    TIMING_HEADERS,
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
    timed,
    timing_row,
)

sys.path.insert(0, str(REPO / "src"))

from cslaunch import changes, forked, gitview, index, model, scan  # noqa: E402
from cslaunch.state import state_file  # noqa: E402

EDITED = Path("0/stdlib/json/decoder.py")  # relative to the tree


def git_env() -> dict[str, str]:
    # The user's and the system's git config stay out (fsmonitor, untracked cache, hooks...).
    env = dict(os.environ)
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")
    return env


def git(tree: Path, *args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        ["git", "-C", str(tree), *args],
        capture_output=True,
        text=True,
        env=env or git_env(),
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed runs per case (default 7)")
    parser.add_argument(
        "--reps-first", type=int, default=3, help="timed runs of case (c) (default 3)"
    )
    parser.add_argument("--min-files", type=int, default=50_000, help="tree size (default 50000)")
    args = parser.parse_args()

    print_header("bench_changes: cslaunch change detection vs git status", docker=False, git=True)
    with temp_dir("bench-changes") as tmp:
        return run(tmp, args.reps, args.reps_first, args.min_files)


def run(tmp: Path, reps: int, reps_first: int, min_files: int) -> int:
    tree = tmp / "tree"
    state = tmp / "state"  # the project root whose .cslaunch/ holds the index
    state.mkdir()

    t0 = time.perf_counter()
    copy_sources(tree / "0")
    copies = replicate(tree / "0", tree, min_files)
    edited = tree / EDITED
    assert edited.is_file(), edited
    git(tree, "init", "-q")
    # No background auto-gc after the commit: it would run during the timings.
    git(tree, "config", "gc.auto", "0")
    git(tree, "config", "maintenance.auto", "false")
    t_git_add_first, _ = timed(lambda: git(tree, "add", "-A"))
    git(tree, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q",
        "-m", "tree")  # fmt: skip
    n_files = count_files(tree) - count_files(tree / ".git")
    n_git = len(git(tree, "ls-files", "-z").split("\0")) - 1
    print(f"tree    : {tree}")
    print(
        f"files   : {n_files:,} ({copies} copies of stdlib + site-packages), git tracks {n_git:,}"
    )
    print(f"built in {time.perf_counter() - t0:.1f}s (first `git add -A` {t_git_add_first:.1f}s)")

    raw = {
        "name": "bench",
        "services": {
            "app": {
                "command": ["python3", "-m", "app"],
                "volumes": [{"type": "bind", "source": str(tree), "target": "/app"}],
            }
        },
    }
    stack = model.parse_stack(raw)

    def detect(use_index: bool = True) -> changes.ChangeSet:
        index.forget()  # read from disk, as `cslaunch up` does (watch keeps it in memory)
        return changes.detect(
            state,
            stack,
            raw["services"],
            {"app"},
            [tree],
            source_patterns=("*",),
            use_index=use_index,
        )

    def leave(cs: changes.ChangeSet) -> None:
        """What a launch that worked leaves: the index and git's view beside it."""
        new = cs.new_index()
        index.save(state, new)
        changes.leave_git_view(state, cs, new)

    def walk_launch() -> changes.ChangeSet:
        """detect when git's view does not stand (after a commit): walks, reads git's index."""
        state_file(state, gitview.STATE_FILE).unlink(missing_ok=True)
        return detect()

    def bare() -> index.Changes:
        index.forget()
        old = index.load(state)
        result = scan.scan([scan.Tree(str(tree), lambda rel: True)], helpers=forked.helpers())
        return index.compare(old, result)[0]

    def floor() -> int:
        """The least any Python walk does: scandir and lstat every file, into a dict; no
        index, no rules, no pruning but .git."""
        found = {}
        todo = [str(tree)]
        while todo:
            with os.scandir(todo.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != ".git":
                            todo.append(entry.path)
                    else:
                        st = entry.stat(follow_symlinks=False)
                        found[entry.path] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        return len(found)

    status = ["status", "--porcelain"]

    # (c) first: no index, everything hashed (cslaunch), everything hashed into an empty
    # index (git; the objects exist, so it writes none but the index).
    c_cs, c_git = [], []
    cs = None
    for i in range(reps_first):
        for which in ("cs", "git") if i % 2 == 0 else ("git", "cs"):
            if which == "cs":
                t, cs = timed(lambda: detect(use_index=False))
                c_cs.append(t)
            else:
                idx = tmp / "fresh-index"
                idx.unlink(missing_ok=True)
                env = {**git_env(), "GIT_INDEX_FILE": str(idx)}

                def add_all(env: dict[str, str] = env) -> str:
                    return git(tree, "add", "-A", env=env)

                t, _ = timed(add_all)
                c_git.append(t)
    assert cs is not None and cs.old is None
    n_tracked = len(cs.entries)
    index.save(state, cs.new_index())
    index_file = index.index_path(state)
    index_bytes = index_file.stat().st_size
    print(
        f"cslaunch tracks {n_tracked:,} files; {index_file.name} {index_bytes / 1e6:.1f} MB\n",
        flush=True,
    )

    # Warm-up, untimed: git refreshes its index once (racily clean entries), both read caches;
    # then a launch that walks leaves git's view, as `cslaunch up` does.
    git(tree, *status)
    leave(detect())
    assert detect().by_git, "git's view did not stand"

    # (a) nothing changed
    a_cs, a_bare, a_git, a_floor, a_walk = [], [], [], [], []
    steps: dict[str, list[float]] = {"index.load": [], "scan.scan": [], "index.compare": []}
    for i in range(reps):
        order = ("cs", "bare", "floor", "walk", "git")
        for which in order if i % 2 == 0 else reversed(order):
            if which == "walk":
                t, cs = timed(walk_launch)
                assert not cs.changes and not cs.by_git and cs.git is not None
                a_walk.append(t)
                leave(cs)  # git's view back for the others
                continue
            if which == "floor":
                t, _ = timed(floor)
                a_floor.append(t)
                continue
            if which == "cs":
                t, cs = timed(detect)
                assert not cs.changes and cs.old is not None, cs.changes
                assert cs.by_git, "git's view did not stand"
                a_cs.append(t)
            elif which == "bare":
                t, ch = timed(bare)
                assert not ch, ch
                a_bare.append(t)
            else:
                t, out = timed(lambda: git(tree, *status))
                assert out == "", out[:200]
                a_git.append(t)
        # Where cslaunch's time goes (separately timed, same calls as detect).
        index.forget()
        t1 = time.perf_counter()
        old = index.load(state)
        t2 = time.perf_counter()
        result = scan.scan([scan.Tree(str(tree), lambda rel: True)], helpers=forked.helpers())
        t3 = time.perf_counter()
        index.compare(old, result)
        t4 = time.perf_counter()
        steps["index.load"].append(t2 - t1)
        steps["scan.scan"].append(t3 - t2)
        steps["index.compare"].append(t4 - t3)

    # (b) one file changed: same size, mtime put back; only ctime (and content) differ.
    st = edited.stat()
    data = edited.read_bytes()
    pos = data.index(b"JSON")
    edited.write_bytes(data[:pos] + b"JSOX" + data[pos + 4 :])
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = edited.stat()
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert st2.st_ctime_ns != st.st_ctime_ns
    b_cs, b_bare, b_git = [], [], []
    for i in range(reps):
        order = ("cs", "bare", "git") if i % 2 == 0 else ("git", "bare", "cs")
        for which in order:
            if which == "cs":
                t, cs = timed(detect)
                assert cs.changes.all == {str(edited)} and cs.changes.modified, cs.changes
                assert cs.by_git and cs.git is not None and str(edited) in cs.git.named.files
                b_cs.append(t)
            elif which == "bare":
                t, ch = timed(bare)
                assert ch.modified == {str(edited)} and ch.all == ch.modified, ch
                b_bare.append(t)
            else:
                t, out = timed(lambda: git(tree, *status))
                assert out.splitlines() == [f" M {EDITED.as_posix()}"], out[:200]
                b_git.append(t)
    print("(b) check: both tools report exactly the edited file "
          f"({EDITED.as_posix()}: cslaunch 'modified', git ' M')\n")  # fmt: skip

    rows = [
        timing_row("(a) nothing changed: cslaunch changes.detect", a_cs, ratio(a_cs, a_git)),
        timing_row(
            "(a) nothing changed, git's view gone: cslaunch changes.detect (walk)",
            a_walk,
            ratio(a_walk, a_git),
        ),
        timing_row("(a) nothing changed: cslaunch bare walk+compare", a_bare, ratio(a_bare, a_git)),
        timing_row(
            "(a) floor: one-core Python scandir+lstat, every file", a_floor, ratio(a_floor, a_git)
        ),
        timing_row("(a) nothing changed: git status --porcelain", a_git, "1.00x"),
        timing_row("(b) one file changed: cslaunch changes.detect", b_cs, ratio(b_cs, b_git)),
        timing_row(
            "(b) one file changed: cslaunch bare walk+compare", b_bare, ratio(b_bare, b_git)
        ),
        timing_row("(b) one file changed: git status --porcelain", b_git, "1.00x"),
        timing_row("(c) no index: cslaunch changes.detect (hash all)", c_cs, ratio(c_cs, c_git)),
        timing_row("(c) no index: git add -A into empty index", c_git, "1.00x"),
    ]
    print(table([*TIMING_HEADERS, "vs git"], rows))
    print()
    print("cslaunch walk (a) breakdown, medians: "
          + ", ".join(f"{k} {fmt_s(med(v))}" for k, v in steps.items()))  # fmt: skip
    print()
    print(f"RATIO cslaunch/git (a) nothing changed : {ratio(a_cs, a_git)}")
    print(f"RATIO cslaunch walk/git (a), no view    : {ratio(a_walk, a_git)}")
    print(f"RATIO Python floor/git (a)             : {ratio(a_floor, a_git)}")
    print(f"RATIO cslaunch/git (b) one file changed: {ratio(b_cs, b_git)}")
    print(f"RATIO cslaunch/git (c) no index (ref.) : {ratio(c_cs, c_git)}")
    print("(git runs as a subprocess, ~1-2 ms of fork/exec included; cslaunch runs in process)")
    print_footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
