"""Freshness verification against a real engine: found when stale, fresh after cslaunch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cslaunch import bytecode, proof, state
from cslaunch.verify import AHEAD, SINCE, STANDS
from tests.stackutil import ProdStack, TestStack, edit_keeping_stat

pytestmark = pytest.mark.engine

GREETING = Path("backend/src/app/greeting.py")
PROD_PYTHON = ("backend", "rqworker", "rqworker2", "rqworker3")


def verdicts(stack: TestStack, *args: str) -> tuple[int, dict[str, dict]]:
    result = stack.cslaunch("verify", "--json", *args)
    data = json.loads(result.stdout)
    return result.returncode, {v["name"]: v for v in data["services"]}


def test_every_launch_verifies_and_verify_alone_agrees(stack: TestStack) -> None:
    report = stack.launched()
    states = {v["name"]: v["state"] for v in report["verify"]}
    assert states == dict.fromkeys(["backend", "frontend", "worker1", "worker2"], "fresh")
    code, found = verdicts(stack)
    assert code == 0
    assert found["backend"]["checked"] >= 4 and found["backend"]["pycs"] >= 1
    # Through the bind mount the container sees the host's very files (same inode, ctime):
    # none is read again. The frontend's code is a copy in an image layer: every file hashed.
    assert found["backend"]["hashed"] == 0
    assert found["frontend"]["hashed"] == found["frontend"]["checked"] >= 1


def test_stale_pyc_and_old_process_are_found_then_fixed(stack: TestStack) -> None:
    stack.launched()
    edit_keeping_stat(stack.dir / GREETING, "hello from v1", "hello from v7")

    code, found = verdicts(stack)
    assert code == 8
    backend = found["backend"]
    assert backend["state"] == "stale"
    reasons = " | ".join(p["reason"] for p in backend["problems"])
    assert "stale pyc" in reasons  # its header still matches mtime and size
    assert "after the container started" in reasons  # the process predates the edit
    assert any(p["path"].endswith("greeting.cpython-311.pyc") for p in backend["problems"])

    stack.launched()
    code, found = verdicts(stack)
    assert code == 0, found
    assert stack.greet() == "hello from v7, t"


def test_old_file_copied_into_a_baked_container_is_stale_until_cslaunch(
    stack: TestStack, tmp_path: Path
) -> None:
    files = stack.add_baked_service()
    stack.launched(*files)
    # A no-op asks the baked container what the last launch asked, while cslaunch loads.
    report = stack.launched(*files)
    assert {v["name"]: v["detail"] for v in report["verify"]}["baked"].endswith(AHEAD)

    old = tmp_path / "greeting.py"
    old.write_text((stack.dir / "baked/src/app/greeting.py").read_text().replace("v1", "v0"))
    cid = stack.compose("ps", "-q", "baked").stdout.split()[0]
    subprocess.run(["docker", "cp", str(old), f"{cid}:/app/src/app/greeting.py"], check=True)

    code, found = verdicts(stack, *files)
    assert code == 8
    assert found["baked"]["state"] == "stale"
    assert {p["path"]: p["reason"] for p in found["baked"]["problems"]}[
        "/app/src/app/greeting.py"
    ] == "differs from the host's file"

    # Nothing changed on disk, so it is asked ahead again: the answer finds it, and repairs.
    report = stack.launched(*files)
    assert any(s["name"] == "repair" for s in report["steps"])
    assert {v["name"]: v["state"] for v in report["verify"]}["baked"] == "fresh"
    assert stack.get("/api/greet?name=b", "BAKED_PORT")["message"] == "hello from v1, b"
    assert verdicts(stack, *files)[0] == 0


PLANT = """
import os, py_compile
src = "/app/src/app/greeting.py"
st = os.stat(src)
fake = "/tmp/greeting.py"
with open(src) as f, open(fake, "w") as out:
    out.write(f.read().replace("hello from v1", "hello from v9"))
os.utime(fake, ns=(st.st_atime_ns, st.st_mtime_ns))
cfile = "/app/src/app/__pycache__/greeting.cpython-%d%d.pyc" % __import__("sys").version_info[:2]
py_compile.compile(fake, cfile=cfile, dfile=src, doraise=True)
"""


def test_a_noop_keeps_the_proof_until_a_pyc_moves(stack: TestStack) -> None:
    stack.launched()
    report = stack.launched()
    assert report["up_to_date"]
    detail = {v["name"]: v["detail"] for v in report["verify"]}
    # Bind-mounted code, same containers, same pycs: the proof stands. The frontend's code
    # is baked into its image, where `docker cp` could change it: looked at again.
    assert detail["backend"] == detail["worker1"] == detail["worker2"] == STANDS
    assert detail["frontend"] != STANDS and detail["frontend"].endswith(AHEAD)

    # A pyc whose header matches the source but whose code is another's, written into the
    # bind-mounted __pycache__: no source changed, yet the next launch looks and repairs.
    stack.compose("exec", "-T", "backend", "python3", "-c", PLANT)
    report = stack.launched()
    verdict = {v["name"]: v for v in report["verify"]}["backend"]
    assert any(s["name"] == "repair" for s in report["steps"]), report["steps"]
    assert verdict["state"] == "fresh" and verdict["detail"] != STANDS
    assert verdicts(stack)[0] == 0
    assert stack.greet() == "hello from v1, t"


def test_a_relaunch_asks_only_what_moved_and_still_finds_a_planted_pyc(
    stack: TestStack,
) -> None:
    """The restarted containers are the ones the last launch proved: a relaunch asks them
    about the edited file only, and about the sources beside a pyc that moved."""
    stack.launched()
    (stack.dir / "backend/src/app/extra.py").write_text("VALUE = 1\n")
    report = stack.launched()
    by_name = {v["name"]: v for v in report["verify"]}
    assert all(SINCE in by_name[n]["detail"] for n in ("backend", "worker1", "worker2"))
    assert by_name["backend"]["checked"] == 1 and by_name["backend"]["state"] == "fresh"
    assert verdicts(stack)[0] == 0  # the whole look agrees

    # A stale pyc beside greeting.py, whose source did not move; another edit relaunches.
    stack.compose("exec", "-T", "backend", "python3", "-c", PLANT)
    (stack.dir / "backend/src/app/extra.py").write_text("VALUE = 2\n")
    report = stack.launched()
    assert any(s["name"] == "repair" for s in report["steps"]), report["steps"]
    assert verdicts(stack)[0] == 0
    assert stack.greet() == "hello from v1, t"


def test_on_the_production_shape_a_noop_proof_counts_the_pycs_the_containers_wrote(
    prod_stack: ProdStack,
) -> None:
    """Production shape: the bind-mounted code lies inside the backend's build context, the
    workers start through `sh -c`, Redis has a password, nginx in front. A no-op's proof
    takes the pycs its walk of the context found instead of listing them again: its digest
    must be the one of every pyc under the root now, and move when a pyc moves."""
    prod_stack.launched()
    root = prod_stack.dir / "src"
    pycs = sorted(root.rglob("__pycache__/*.pyc"))
    assert pycs, "the containers wrote no pyc into the bind mount"
    recorded = []
    for _ in range(2):
        report = prod_stack.launched()
        assert report["up_to_date"], report["steps"]
        states = {v["name"]: v["state"] for v in report["verify"]}
        assert all(states[n] == "fresh" for n in PROD_PYTHON), states
        saved = state.read_json(prod_stack.dir.resolve(), proof.PROOF_FILE)
        recorded.append(saved["pycs"])
        assert recorded[-1] == proof.pyc_digests(bytecode.present([root]))
        pycs[0].write_bytes(pycs[0].read_bytes())  # the same bytes, a new change time
    assert recorded[0] != recorded[1]
