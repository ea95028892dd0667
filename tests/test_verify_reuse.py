"""Verification without needless looks: a look asks only what moved since the last proof
of the same containers, none when nothing moved, and containers that see the same files
share one look."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cslaunch import proof, proofrun, verify
from cslaunch.containers import Container
from cslaunch.errors import DockerError
from cslaunch.index import Changes, Entry, Index
from cslaunch.model import parse_stack
from cslaunch.proofrun import Looked
from cslaunch.scan import FileStat, Scan
from cslaunch.state import state_file
from cslaunch.track import service_files

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def container(
    cid: str,
    started: datetime = T0,
    status: str = "running",
    image: str = "img",
    mounts: tuple[tuple[str, str, str], ...] = (),
) -> Container:
    return Container(cid, cid, "web", status, None, "", 0, 0, started, started, image, 1, mounts)


def test_moved_dirs_and_proven_containers() -> None:
    assert proof.moved_dirs({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {"b", "c"}
    assert proof.moved_dirs({"a": "1"}, {}) == {"a"}
    kept = proof.record(1, {}, ["web"], {"web": [container("a"), container("b")]})
    assert proof.proven(kept, "web") == {"a", "b"}
    assert proof.proven(kept, "worker") == set()


def test_settled_services_are_the_containers_seen_ready() -> None:
    seen = {"redis": [container("r")], "web": [container("w")], "down": []}
    kept = proof.record(1, {}, [], seen)
    assert proof.settled(kept, seen) == {"redis", "web"}
    now = {"redis": [container("r", started=T0.replace(hour=2))], "web": [container("w")]}
    assert proof.settled(kept, now) == {"web"}  # redis restarted: ask it again
    assert proof.settled(None, seen) == set()


def test_any_pyc_stat_change_moves_its_directorys_digest(tmp_path: Path) -> None:
    cache = tmp_path / "app" / "__pycache__"
    cache.mkdir(parents=True)
    pyc, legacy = cache / "m.cpython-311.pyc", tmp_path / "lib" / "old.pyc"
    legacy.parent.mkdir()
    pyc.write_bytes(b"x" * 20)
    legacy.write_bytes(b"x")
    paths = [str(pyc), str(legacy)]
    before = proof.pyc_digests(paths)
    assert set(before) == {str(tmp_path / "app"), str(tmp_path / "lib")}  # the sources' dirs
    assert proof.pyc_digests(paths) == before
    st = pyc.stat()
    pyc.write_bytes(b"y" * 20)  # `cp -p` of another pyc: same size and mtime, new ctime
    os.utime(pyc, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert proof.moved_dirs(before, proof.pyc_digests(paths)) == {str(tmp_path / "app")}
    gone = proof.pyc_digests([*paths, str(tmp_path / "lib" / "gone.pyc")])
    assert proof.moved_dirs(before, gone) == {str(tmp_path / "app"), str(tmp_path / "lib")}


def test_a_proof_made_against_another_index_is_void(tmp_path: Path) -> None:
    proof.save(tmp_path, proof.record(5, {"/p": "d"}, ["web"], {"web": [container("a")]}))
    seen = [["a", T0.isoformat()]]
    assert proof.load(tmp_path, 5) == proof.Proof(5, {"/p": "d"}, {"web": seen}, {"web": seen})
    assert proof.load(tmp_path, 6) is None
    state_file(tmp_path, proof.PROOF_FILE).write_text("{not json")
    assert proof.load(tmp_path, 5) is None


def indexed(module: Path) -> dict[str, Entry]:
    """A one-module tree, as the index holds it (content digest "d1")."""
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text("x = 1\n")
    st = module.stat()
    return {str(module): Entry(FileStat(st.st_mtime_ns, st.st_ctime_ns, st.st_size,
                                        st.st_ino), "d1", 0)}  # fmt: skip


def test_containers_with_the_same_image_and_mounts_share_one_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    entries = indexed(src / "app" / "m.py")
    bind = ("bind", str(src), "/app/src")
    names = ["api", "w1", "w2", "other"]
    volume = {"type": "bind", "source": str(src), "target": "/app/src"}
    stack = parse_stack({"name": "t", "services": {n: {"volumes": [volume]} for n in names}})
    services = stack.services
    files = {
        n: service_files(n, runs_code=True, bind_dirs=[str(src)], bind_files=[], context=None,
                         dockerfile=None, dockerfile_text=None, dockerignore_text=None)
        for n in names
    }  # fmt: skip
    running = {
        "api": [container("a", mounts=(bind,))],
        "w1": [container("b", mounts=(bind,))],
        "w2": [container("c", mounts=(bind,)), container("c2", mounts=(bind,))],  # replicas
        "other": [container("d", image="img2", mounts=(bind,))],  # another interpreter
    }
    looked: list[str] = []

    def fake_look(container_id: str, asked: str) -> Looked:
        looked.append(container_id)
        checked = len(json.loads(asked)["files"])
        return {"python": "3.11.2", "problems": [], "checked": checked, "pycs": 0}

    monkeypatch.setattr(verify, "look", fake_look)
    result = verify.verify(services, names, files, entries, running)
    assert sorted(looked) == ["a", "d"]
    assert [v.state for v in result.verdicts] == ["fresh"] * 5
    assert {v.service: v.detail for v in result.verdicts}["w1"].endswith(
        "through api: same image and mounts"
    )
    # A volume over part of the tree in one container: it sees other files, looks itself.
    running["w1"] = [container("b", mounts=(bind, ("volume", "v", "/app/src/app")))]
    looked.clear()
    verify.verify(services, names, files, entries, running)
    assert sorted(looked) == ["a", "b", "d"]


def baked_web(tmp_path: Path) -> tuple[Any, dict[str, Any], dict[str, Entry]]:
    """A service whose code is COPYed into its image: looked at on every launch."""
    ctx = tmp_path / "web"
    entries = indexed(ctx / "app" / "m.py")
    stack = parse_stack({"name": "t", "services": {"web": {"build": {"context": str(ctx)}}}})
    files = {
        "web": service_files("web", runs_code=True, bind_dirs=[], bind_files=[],
                             context=str(ctx), dockerfile=str(ctx / "Dockerfile"),
                             dockerfile_text="FROM python\nCOPY app /srv/app\n",
                             dockerignore_text=None)
    }  # fmt: skip
    return stack.services, files, entries


FOUND = {"python": "3.11.2", "problems": [], "checked": 1, "pycs": 0}


def test_a_baked_containers_question_is_kept_and_asked_ahead_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, files, entries = baked_web(tmp_path)
    looked: list[tuple[str, str]] = []

    def fake_look(container_id: str, asked: str) -> Looked:
        looked.append((container_id, asked))
        return FOUND

    monkeypatch.setattr(verify, "look", fake_look)
    monkeypatch.setattr(proofrun, "look", fake_look)
    running = {"web": [container("a")]}
    first = verify.verify(services, ["web"], files, entries, running)
    assert first.proof is not None
    stat = list(entries[str(tmp_path / "web" / "app" / "m.py")].stat)
    assert json.loads(first.proof.looks["a"]) == {"files": [["/srv/app/m.py", "d1", stat]]}
    proof.save(tmp_path, first.proof)
    assert proofrun.ahead(tmp_path).questions == first.proof.looks  # whatever index it belongs to

    # The same question of the same container, asked ahead: its answer, no second look.
    asked = first.proof.looks["a"]
    looked.clear()
    again = verify.verify(
        services, ["web"], files, entries, running, ahead=proofrun.Ahead({"a": asked})
    )
    assert looked == [("a", asked)]
    assert [v.state for v in again.verdicts] == ["fresh"]
    assert again.verdicts[0].detail.endswith(verify.AHEAD)

    # Another container, or another question (the file changed since): verify looks itself.
    for questions in ({"b": asked}, {"a": proofrun.question([("/srv/app/m.py", "d0", stat)])}):
        looked.clear()
        ahead = proofrun.Ahead(questions)
        result = verify.verify(services, ["web"], files, entries, running, ahead=ahead)
        assert ("a", asked) in looked and len(looked) == 2
        assert not result.verdicts[0].detail.endswith(verify.AHEAD)

    # A question too big to keep (a huge baked tree): not kept, the look is made anyway.
    monkeypatch.setattr(verify, "KEPT_QUESTION_MAX", len(asked) - 1)
    kept = verify.verify(services, ["web"], files, entries, running).proof
    assert kept is not None and kept.looks == {}


def test_a_look_ahead_that_fails_leaves_the_look_to_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone(container_id: str, asked: str) -> Looked:
        raise DockerError("the Docker daemon is not reachable")

    monkeypatch.setattr(proofrun, "look", gone)
    ahead = proofrun.Ahead({"a": "q"})
    assert ahead.answer("a", "q") is None
    assert ahead.answer("b", "q") is None


def test_recorded_questions_survive_save_and_load(tmp_path: Path) -> None:
    assert proof.recorded_looks(tmp_path) == {}
    kept = proof.record(
        5, {}, ["web"], {"web": [container("a")]}, {"a": "q"}, {"web": [["/s", "/t"]], "x": []}
    )
    assert kept.binds == {"web": [["/s", "/t"]]}  # only services proven fresh
    proof.save(tmp_path, kept)
    assert proof.load(tmp_path, 5) == kept
    assert proof.recorded_looks(tmp_path) == {"a": "q"}
    state_file(tmp_path, proof.PROOF_FILE).write_text('{"version": 3, "looks": [1]}')
    assert proof.recorded_looks(tmp_path) == {}


def bound_api(src: Path) -> tuple[Any, dict[str, Any]]:
    """A service "api" that runs the code bind-mounted from `src` at /app/src."""
    volume = {"type": "bind", "source": str(src), "target": "/app/src"}
    stack = parse_stack({"name": "t", "services": {"api": {"volumes": [volume]}}})
    files = {
        "api": service_files("api", runs_code=True, bind_dirs=[str(src)], bind_files=[],
                             context=None, dockerfile=None, dockerfile_text=None,
                             dockerignore_text=None)
    }  # fmt: skip
    return stack.services, files


def test_problems_with_files_edited_during_the_launch_are_left_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the files behind a problem are stat'ed again: edited since the scan, they are
    pending, not stale; a problem with a file that did not move stands."""
    src = tmp_path / "src"
    entries = indexed(src / "app" / "m.py")
    entries.update(indexed(src / "app" / "n.py"))
    services, files = bound_api(src)
    problems = [
        ["/app/src/app/m.py", "differs from the host's file"],
        ["/app/src/app/__pycache__/m.cpython-311.pyc", "stale pyc: ..."],
        ["/app/src/app/__pycache__/n.cpython-311.pyc", "stale pyc: ..."],
    ]
    found = {"python": "3.11.2", "problems": problems, "checked": 2, "pycs": 2}
    monkeypatch.setattr(verify, "look", lambda container_id, asked: found)
    running = {"api": [container("a", mounts=(("bind", str(src), "/app/src"),))]}

    (src / "app" / "m.py").write_text("x = 2\n")  # saved while the launch ran
    [v] = verify.verify(services, ["api"], files, entries, running).verdicts
    assert v.pending == (str(src / "app" / "m.py"),)
    assert v.state == "stale"
    assert v.problems == (("/app/src/app/__pycache__/n.cpython-311.pyc", "stale pyc: ..."),)

    found["problems"] = problems[:2]
    [v] = verify.verify(services, ["api"], files, entries, running).verdicts
    assert (v.state, v.problems, v.pending) == ("fresh", (), (str(src / "app" / "m.py"),))


def test_looks_ahead_run_at_most_eight_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    running, most = 0, 0
    lock = threading.Lock()

    def slow(container_id: str, asked: str) -> Looked:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return FOUND

    monkeypatch.setattr(proofrun, "look", slow)
    ahead = proofrun.Ahead({f"c{i}": "q" for i in range(20)})
    assert all(ahead.answer(f"c{i}", "q") == FOUND for i in range(20))
    assert most == proofrun.MAX_AT_ONCE


def test_sources_under_directories_are_counted_once() -> None:
    sep = os.sep
    paths = [f"{sep}p{sep}a{sep}m.py", f"{sep}p{sep}a{sep}b{sep}n.py", f"{sep}p{sep}ab{sep}o.py",
             f"{sep}q{sep}x.py", f"{sep}p{sep}a{sep}data.txt"]  # fmt: skip
    entries = {p: Entry(FileStat(0, 0, 0, 0), "d", 0) for p in paths}
    sources = verify.Sources(entries)
    a, ab = f"{sep}p{sep}a", f"{sep}p{sep}a{sep}b"
    assert sources.count_under([a]) == 2  # not /p/ab, not the .txt
    assert sources.count_under([a, ab, a]) == 2  # nested and repeated: once
    assert sources.count_under([f"{sep}p", f"{sep}q"]) == 4
    assert sources.count_under([f"{sep}none"]) == 0
    assert sources.count_under([a]) == len(list(sources.under(a)))


def test_a_standing_proof_of_bind_mounted_code_needs_no_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    entries = indexed(src / "app" / "m.py")
    services, files = bound_api(src)
    looked: list[str] = []

    def fake_look(container_id: str, asked: str) -> Looked:
        looked.append(container_id)
        return FOUND

    monkeypatch.setattr(verify, "look", fake_look)
    running = {"api": [container("a", mounts=(("bind", str(src), "/app/src"),))]}
    first = verify.verify(services, ["api"], files, entries, running)
    assert looked == ["a"] and first.proof is not None

    baseline = verify.Baseline(first.proof, entries, frozenset())
    listing = Scan(0, tops=[str(tmp_path)])
    [v] = verify.verify(services, ["api"], files, entries, running, baseline=baseline,
                        listing=listing).verdicts  # fmt: skip
    assert (v.state, v.detail, v.checked, looked) == ("fresh", verify.STANDS, 1, ["a"])

    recreated = {"api": [container("b", mounts=(("bind", str(src), "/app/src"),))]}
    [v] = verify.verify(services, ["api"], files, entries, recreated, baseline=baseline,
                        listing=listing).verdicts  # fmt: skip
    assert v.detail != verify.STANDS and looked == ["a", "b"]


def test_a_relaunch_asks_only_what_moved_since_the_last_proof(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    entries = {**indexed(src / "app" / "m.py"), **indexed(src / "app" / "n.py")}
    entries.update(indexed(src / "lib" / "o.py"))
    pycs = []
    for rel in ("app/__pycache__/m.cpython-311.pyc", "lib/__pycache__/o.cpython-311.pyc"):
        (src / rel).parent.mkdir(exist_ok=True)
        (src / rel).write_bytes(b"x" * 20)
        pycs.append(str(src / rel))
    services, files = bound_api(src)
    asked: list[tuple[str, dict[str, Any]]] = []

    def fake_look(container_id: str, question: str) -> Looked:
        q = json.loads(question)
        asked.append((container_id, {**q, "files": [f[0] for f in q["files"]]}))
        return {**FOUND, "checked": len(q["files"])}

    monkeypatch.setattr(verify, "look", fake_look)
    bind = ("bind", str(src), "/app/src")
    running = {"api": [container("a", mounts=(bind,))]}
    every = ["/app/src/app/m.py", "/app/src/app/n.py", "/app/src/lib/o.py"]
    listing = Scan(0, bytecode=pycs, tops=[str(tmp_path)])
    first = verify.verify(services, ["api"], files, entries, running, listing=listing)
    assert first.proof is not None and asked[0][1]["files"] == every

    def again(
        now: dict[str, Entry] = entries,
        gone: frozenset[str] = frozenset(),
        containers: dict[str, list[Container]] | None = None,
        listed: Scan = listing,
    ) -> tuple[verify.Verdict, dict[str, Any] | None]:
        assert first.proof is not None
        asked.clear()
        baseline = verify.Baseline(first.proof, entries, gone)
        [v] = verify.verify(services, ["api"], files, now, containers or restarted,
                            listing=listed, baseline=baseline).verdicts  # fmt: skip
        assert v.state == "fresh"
        return v, asked[0][1] if asked else None

    # The same container, restarted: nothing moved, no look.
    restarted = {"api": [container("a", started=T0.replace(hour=1), mounts=(bind,))]}
    v, q = again()
    assert (v.detail, v.checked, q) == (verify.STANDS, 3, None)

    # One source edited (or touched: other stat data): it alone is asked.
    n = str(src / "app" / "n.py")
    edited = {**entries, n: entries[n]._replace(stat=FileStat(1, 2, 3, 4))}
    v, q = again(edited)
    assert q is not None and q["files"] == ["/app/src/app/n.py"] and "dirs" not in q
    assert verify.SINCE in v.detail

    # A pyc copied in beside lib/o.py (its ctime moves): the sources beside it are asked.
    st = os.stat(pycs[1])
    Path(pycs[1]).write_bytes(b"y" * 20)
    os.utime(pycs[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    v, q = again()
    assert q is not None and (q["files"], q["dirs"]) == (["/app/src/lib/o.py"], ["/app/src/lib"])
    Path(pycs[1]).write_bytes(b"x" * 20)
    first = verify.verify(services, ["api"], files, entries, running, listing=listing)

    # A source deleted: its directory is searched for a sourceless pyc standing in for it.
    kept = {p: e for p, e in entries.items() if p != n}
    v, q = again(kept, frozenset({n}))
    assert q is not None and (q["files"], q["dirs"]) == ([], ["/app/src/app"])

    # Each of these gets the whole look: a recreated container; a volume or a tmpfs inside
    # the bind mount (its sources or pycs move with no trace on the host); a bind mount
    # below no directory the bytecode listing entered; a __pycache__ it could not read.
    recreated = {"api": [container("b", mounts=(bind,))]}
    cases: list[dict[str, Any]] = [{"containers": recreated}]
    for inner in (("volume", "v", "/app/src/lib"), ("tmpfs", "", "/app/src/app/__pycache__")):
        cases.append({"containers": {"api": [container("a", mounts=(bind, inner))]}})
    cases.append({"listed": Scan(0, bytecode=pycs, tops=[str(tmp_path / "elsewhere")])})
    for unreadable in (
        str(src / "app" / "__pycache__"),
        str(src / "lib" / "__pycache__" / "o.pyc"),
    ):
        listed = Scan(0, bytecode=pycs, tops=[str(tmp_path)], unreadable=[unreadable])
        cases.append({"listed": listed})
    for case in cases:
        v, q = again(edited, **case)
        assert q is not None and q["files"] == every and verify.SINCE not in v.detail, case
    # A mount that hides no source nor pyc (a venv the host does not have, node_modules, a
    # config file) changes nothing.
    for inner in (("volume", "v", "/app/src/.venv"), ("bind", "/etc/x", "/app/src/app/x.yaml")):
        aside = {"api": [container("a", mounts=(bind, inner))]}
        v, q = again(edited, containers=aside)
        assert q is not None and q["files"] == ["/app/src/app/n.py"], inner


def test_a_service_is_proven_only_when_each_of_its_containers_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas that need a look each (other images): one cannot be looked at. Not
    proven, so the next launch looks at both again."""
    src = tmp_path / "src"
    entries = indexed(src / "app" / "m.py")
    services, files = bound_api(src)
    bind = ("bind", str(src), "/app/src")
    running = {
        "api": [container("a", mounts=(bind,)), container("b", image="img2", mounts=(bind,))]
    }
    answers: dict[str, Looked] = {"a": FOUND, "b": "cannot run Python in it: no python"}
    monkeypatch.setattr(verify, "look", lambda cid, asked: answers[cid])
    listing = Scan(0, tops=[str(tmp_path)])
    first = verify.verify(services, ["api"], files, entries, running, listing=listing)
    assert first.proof is not None and "api" not in first.proof.containers
    baseline = verify.Baseline(first.proof, entries, frozenset())
    again = verify.verify(
        services, ["api"], files, entries, running, listing=listing, baseline=baseline
    )
    assert [v.detail for v in again.verdicts if v.state == "fresh"] == ["Python 3.11.2"]


def test_a_batch_of_saved_files_alone_gets_the_whole_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """watch's batches ask only the saved files: an edit no file event told of keeps its old
    index entry, so only a whole look still sees it. The last proof counts after a walk."""
    baselines: list[verify.Baseline | None] = []

    def fake_verify(*args: Any, baseline: verify.Baseline | None, **kwargs: Any) -> Any:
        baselines.append(baseline)
        return verify.Verification()

    monkeypatch.setattr(verify, "verify", fake_verify)
    found = SimpleNamespace(
        stack=SimpleNamespace(services={}), python=frozenset(), roots=SimpleNamespace(roots=())
    )
    last = proof.record(1, {}, [], {})
    for walked in (True, False):
        cs = SimpleNamespace(
            files={}, entries={}, index_ns=1, old=Index(1), changes=Changes(), walked=walked
        )
        verify.verify_stack(found, cs, None, {}, previous=last)  # type: ignore[arg-type]
    assert baselines[0] is not None and baselines[0].proof is last
    assert baselines[1] is None


def test_a_file_mounted_alone_is_looked_at_and_asked_again_when_it_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`./settings.py` mounted inside the tree's bind mount: a target of its own (its pyc is
    in the container's layer), not a mount that hides the tree."""
    src = tmp_path / "src"
    entries = {**indexed(src / "app" / "m.py"), **indexed(tmp_path / "settings.py")}
    # The tree's own copy, which the file mounted over it hides in the container.
    entries.update(indexed(src / "app" / "settings.py"))
    settings = str(tmp_path / "settings.py")
    volumes = [
        {"type": "bind", "source": str(src), "target": "/app/src"},
        {"type": "bind", "source": settings, "target": "/app/src/app/settings.py"},
    ]
    stack = parse_stack({"name": "t", "services": {"api": {"volumes": volumes}}})
    files = {
        "api": service_files("api", runs_code=True, bind_dirs=[str(src)], bind_files=[settings],
                             context=None, dockerfile=None, dockerfile_text=None,
                             dockerignore_text=None)
    }  # fmt: skip
    asked: list[list[str]] = []
    stats: list[list[int]] = []

    def fake_look(container_id: str, question: str) -> Looked:
        found = json.loads(question)["files"]
        asked.append([f[0] for f in found])
        stats.extend(f[2] for f in found if f[0] == "/app/src/app/settings.py")
        return {**FOUND, "checked": len(asked[-1])}

    monkeypatch.setattr(verify, "look", fake_look)
    mounts = (("bind", str(src), "/app/src"), ("bind", settings, "/app/src/app/settings.py"))
    running = {"api": [container("a", mounts=mounts)]}
    listing = Scan(0, tops=[str(tmp_path)])
    first = verify.verify(stack.services, ["api"], files, entries, running, listing=listing)
    assert first.proof is not None
    assert asked == [["/app/src/app/m.py", "/app/src/app/settings.py"]]
    assert stats == [list(entries[settings].stat)]  # the file mounted alone, not the copy
    moved = {**entries, settings: entries[settings]._replace(stat=FileStat(1, 2, 3, 4))}
    hidden = str(src / "app" / "settings.py")
    covered = {**entries, hidden: entries[hidden]._replace(stat=FileStat(1, 2, 3, 4))}
    cases = [(entries, []), (moved, [["/app/src/app/settings.py"]]), (covered, [])]
    for now, expected in cases:
        asked.clear()
        baseline = verify.Baseline(first.proof, entries, frozenset())
        verify.verify(stack.services, ["api"], files, now, running, listing=listing,
                      baseline=baseline)  # fmt: skip
        assert asked == expected


def test_a_hidden_venv_is_asked_about_only_where_the_container_has_that_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's venv at src/.venv, hidden by the service's /app/src/.venv volume: its
    files, pycs and deletions are never asked about, unless a running container lacks that
    volume (made before Compose declared it) and so does run the host's venv."""
    src = tmp_path / "src"
    entries = {**indexed(src / "app" / "m.py"), **indexed(src / ".venv" / "lib" / "dep.py")}
    (src / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    services, files = bound_api(src)
    files["api"] = dataclasses.replace(files["api"], hidden=(str(src / ".venv"),))
    asked: list[dict[str, Any]] = []

    def fake_look(container_id: str, question: str) -> Looked:
        q = json.loads(question)
        asked.append({**q, "files": [f[0] for f in q["files"]]})
        return {**FOUND, "checked": len(q["files"])}

    monkeypatch.setattr(verify, "look", fake_look)
    bind = ("bind", str(src), "/app/src")
    with_volume = {"api": [container("a", mounts=(bind, ("volume", "v", "/app/src/.venv")))]}
    listing = Scan(0, tops=[str(tmp_path)])
    first = verify.verify(services, ["api"], files, entries, with_volume, listing=listing)
    assert [q["files"] for q in asked] == [["/app/src/app/m.py"]] and first.proof is not None

    cache = src / ".venv" / "lib" / "__pycache__"
    cache.mkdir()
    (cache / "dep.cpython-311.pyc").write_bytes(b"x")  # pip or a host run wrote it
    dep = str(src / ".venv" / "lib" / "dep.py")
    gone = {p: e for p, e in entries.items() if p != dep}
    asked.clear()
    listed = Scan(0, bytecode=[str(cache / "dep.cpython-311.pyc")], tops=[str(tmp_path)])
    baseline = verify.Baseline(first.proof, entries, frozenset({dep}))
    [v] = verify.verify(services, ["api"], files, gone, with_volume, listing=listed,
                        baseline=baseline).verdicts  # fmt: skip
    assert (v.detail, asked) == (verify.STANDS, [])

    without = {"api": [container("b", mounts=(bind,))]}
    asked.clear()
    verify.verify(services, ["api"], files, entries, without, listing=listing)
    assert asked[0]["files"] == ["/app/src/.venv/lib/dep.py", "/app/src/app/m.py"]
