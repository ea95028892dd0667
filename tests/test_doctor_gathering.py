"""doctor's gathering helpers, without an engine: mounts, environment, what volumes lie over
on the host, COPY sources on disk, WSL, and the Redis parsers (tests/test_engine_doctor.py
gathers from a real stack)."""

from __future__ import annotations

from pathlib import Path

from cslaunch import doctor
from cslaunch.doctor import Mount, dockerfile, gathering
from cslaunch.model import parse_service
from tests.doctorutil import anon


def test_mounts_merge_the_model_with_the_container() -> None:
    raw = {
        "volumes": [anon("/app/src"), {"type": "volume", "source": "data", "target": "/data"}],
        "tmpfs": ["/run/x:size=1m"],
    }
    inspected = {
        "Mounts": [
            {"Type": "volume", "Name": "a" * 64, "Destination": "/app/src"},
            {"Type": "volume", "Name": "f" * 64, "Destination": "/var/lib/img"},
            {"Type": "bind", "Source": "/proj/app", "Destination": "/app"},
        ],
        "HostConfig": {"Tmpfs": {"/scratch": ""}},
    }
    assert gathering._mounts(raw, inspected) == (
        Mount("volume", "/app/src"),
        Mount("volume", "/data", "data"),
        Mount("tmpfs", "/run/x"),
        Mount("tmpfs", "/scratch", "", False),
        Mount("volume", "/var/lib/img", "", False),
    )


def test_environment_overlays_the_container_env_on_the_model() -> None:
    raw = {"environment": {"A": "1", "UNSET": None, "B": "model"}}
    inspected = {"Config": {"Env": ["B=container", "PYTHONDONTWRITEBYTECODE=1"]}}
    assert gathering._environment(raw, inspected) == {
        "A": "1",
        "B": "container",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def test_host_paths_record_whether_a_volume_hides_anything(tmp_path: Path) -> None:
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "src" / "m.py").write_text("")
    (tmp_path / "app" / "empty").mkdir()
    s = parse_service(
        "web",
        {
            "volumes": [
                {"type": "bind", "source": str(tmp_path / "app"), "target": "/app"},
                anon("/app/src"),
                anon("/app/empty"),
                anon("/app/missing"),
                anon("/elsewhere"),
            ]
        },
    )
    assert gathering._host_paths({"web": s}, {}) == {
        str(tmp_path / "app" / "src"): True,
        str(tmp_path / "app" / "empty"): False,
        str(tmp_path / "app" / "missing"): False,
    }


def test_wsl_is_detected_from_proc_version(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("Linux version 5.15.153.1-microsoft-standard-WSL2 (gcc ...)")
    assert gathering._under_wsl(version)
    version.write_text("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)")
    assert not gathering._under_wsl(version)
    assert not gathering._under_wsl(tmp_path / "missing")


def test_context_sources_are_looked_at_on_disk(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("server {}\n")
    (tmp_path / "app" / "pkg").mkdir(parents=True)
    (tmp_path / "app" / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "app" / "static").mkdir()
    (tmp_path / "app" / "static" / "s.txt").write_text("")
    (tmp_path / "app" / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / "app" / ".venv" / "lib" / "site.py").write_text("")
    copies = dockerfile.dockerfile_copies(
        "FROM x\nCOPY conf /etc/c\nCOPY app/ /srv/\nCOPY *.py /\n"
    )
    assert gathering._context_sources(tmp_path, copies) == {
        "conf": doctor.SourceInfo("file", False),
        "app": doctor.SourceInfo("dir", True, ("pkg",)),
    }


def test_redis_parsers() -> None:
    words = ["redis-server", "--port", "6390", "--appendonly", "yes", "--protected-mode", "no"]
    assert gathering.redis_flags(words) == {
        "port": "6390",
        "appendonly": "yes",
        "protected-mode": "no",
    }
    assert gathering.parse_config_get("appendonly\nyes\nreplicaof\n\nport\n6390\n") == {
        "appendonly": "yes",
        "replicaof": "",
        "port": "6390",
    }
    assert gathering.parse_config_get("NOAUTH Authentication required.\n") == {}
    info = "# Persistence\r\naof_enabled:1\r\naof_current_size:1419\r\n"
    assert gathering.parse_info(info)["aof_current_size"] == "1419"
