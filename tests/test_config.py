"""config.parse_config / load_config: strict validation that names the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cslaunch.config import Config, ServiceConfig, load_config, parse_config
from cslaunch.errors import CONFIG, ConfigError

PREFIX = "tool.cslaunch."


def parse(table: dict[str, Any], base: Path = Path("/proj")) -> Config:
    return parse_config(table, source=Path("/proj/pyproject.toml"), base=base, prefix=PREFIX)


def error_of(table: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(table)
    assert info.value.exit_code == CONFIG
    return info.value.message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- parse_config ------------------------------------------------------------------------


def test_full_valid_config() -> None:
    config = parse(
        {
            "compose_files": ["compose.yml", "compose.dev.yml"],
            "project_name": "shop",
            "profiles": ["dev", "workers"],
            "python_roots": ["backend/src", "/abs/lib", "../shared/./lib"],
            "url": "http://localhost:8000/app",
            "timeout": 30,
            "source_patterns": ["*.html", "*.jinja"],
            "services": {
                "worker": {"python": True, "stop": "graceful", "grace": 25},
                "redis": {"python": False, "stop": "kill"},
                "web": {},
            },
        }
    )
    assert config.source == Path("/proj/pyproject.toml")
    assert config.compose_files == ("compose.yml", "compose.dev.yml")
    assert config.project_name == "shop"
    assert config.profiles == ("dev", "workers")
    # `..` folded, as Compose spells bind sources and the walk names files.
    roots = (Path("/proj/backend/src"), Path("/abs/lib"), Path("/shared/lib"))
    assert config.python_roots == roots
    assert config.url == "http://localhost:8000/app"
    assert config.timeout == 30.0
    assert isinstance(config.timeout, float)
    assert config.source_patterns == ("*.html", "*.jinja")
    assert config.services["worker"] == ServiceConfig(python=True, stop="graceful", grace=25.0)
    assert config.services["redis"] == ServiceConfig(python=False, stop="kill", grace=None)
    assert config.service("web") == ServiceConfig()
    assert config.service("not-configured") == ServiceConfig()


def test_empty_table_gives_defaults() -> None:
    config = parse({})
    assert config.compose_files == ()
    assert config.project_name is None
    assert config.profiles == ()
    assert config.python_roots is None
    assert config.url is None
    assert config.timeout == 120.0
    assert config.source_patterns == ()
    assert config.services == {}


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"timeout": "10"}, "tool.cslaunch.timeout"),
        ({"url": 8000}, "tool.cslaunch.url"),
        ({"project_name": ["a"]}, "tool.cslaunch.project_name"),
        ({"compose_files": "compose.yml"}, "tool.cslaunch.compose_files"),
        ({"profiles": "dev"}, "tool.cslaunch.profiles"),
        ({"python_roots": "src"}, "tool.cslaunch.python_roots"),
        ({"source_patterns": "*.html"}, "tool.cslaunch.source_patterns"),
        ({"services": ["web"]}, "tool.cslaunch.services"),
        ({"services": {"web": "python"}}, "tool.cslaunch.services.web"),
        ({"services": {"web": {"python": "yes"}}}, "tool.cslaunch.services.web.python"),
        ({"services": {"web": {"stop": 1}}}, "tool.cslaunch.services.web.stop"),
        ({"services": {"web": {"grace": "5s"}}}, "tool.cslaunch.services.web.grace"),
    ],
)
def test_wrong_type_names_the_key(table: dict[str, Any], key: str) -> None:
    message = error_of(table)
    assert f"{key}:" in message
    assert message.startswith("pyproject.toml: ")


def test_wrong_type_says_what_was_expected() -> None:
    assert "expected a number, got str" in error_of({"timeout": "10"})
    assert "expected true/false, got str" in error_of({"services": {"w": {"python": "no"}}})


@pytest.mark.parametrize("key", ["compose_files", "profiles", "python_roots", "source_patterns"])
@pytest.mark.parametrize("bad_item", [1, ""])
def test_string_lists_reject_bad_items(key: str, bad_item: object) -> None:
    message = error_of({key: ["ok", bad_item]})
    assert f"tool.cslaunch.{key}:" in message
    assert "non-empty strings" in message


def test_unknown_top_level_key_is_named() -> None:
    message = error_of({"timeout": 5, "timout": 5})
    assert "tool.cslaunch.timout: unknown key" in message
    assert "timeout" in message  # the known keys are listed


def test_unknown_service_key_is_named() -> None:
    message = error_of({"services": {"web": {"python": True, "xyz": 1}}})
    assert "tool.cslaunch.services.web.xyz: unknown key" in message
    assert "grace, health, health_status, python, stop" in message


@pytest.mark.parametrize(
    "url",
    ["localhost:8000", "ftp://example.com/", "http://", "https:///path", "not a url", ""],
)
def test_bad_url(url: str) -> None:
    message = error_of({"url": url})
    assert "tool.cslaunch.url:" in message
    assert "not an http(s) URL" in message


@pytest.mark.parametrize("url", ["http://localhost:8000", "https://app.example.com/x?y=1"])
def test_good_url(url: str) -> None:
    assert parse({"url": url}).url == url


@pytest.mark.parametrize("timeout", [-1, -0.5, 0])
def test_timeout_must_be_positive(timeout: float) -> None:
    assert "tool.cslaunch.timeout: must be a positive" in error_of({"timeout": timeout})


def test_float_timeout_accepted() -> None:
    assert parse({"timeout": 2.5}).timeout == 2.5


def test_negative_grace_rejected_zero_allowed() -> None:
    assert "services.w.grace: must be zero or more" in error_of({"services": {"w": {"grace": -1}}})
    assert parse({"services": {"w": {"grace": 0}}}).service("w").grace == 0.0


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"timeout": True}, "tool.cslaunch.timeout"),
        ({"services": {"w": {"grace": False}}}, "tool.cslaunch.services.w.grace"),
    ],
)
def test_bool_is_not_a_number(table: dict[str, Any], key: str) -> None:
    message = error_of(table)
    assert f"{key}: expected a number, got bool" in message


def test_int_is_not_a_bool() -> None:
    assert "services.w.python: expected true/false, got int" in error_of(
        {"services": {"w": {"python": 1}}}
    )


@pytest.mark.parametrize("mode", ["auto", "graceful", "kill"])
def test_stop_modes_accepted(mode: str) -> None:
    assert parse({"services": {"w": {"stop": mode}}}).service("w").stop == mode


@pytest.mark.parametrize("mode", ["sigkill", "Kill", "term", "none"])
def test_stop_mode_outside_the_set(mode: str) -> None:
    message = error_of({"services": {"w": {"stop": mode}}})
    assert "tool.cslaunch.services.w.stop:" in message
    assert "auto, graceful, kill" in message
    assert repr(mode) in message


def test_python_roots_resolved_against_base(tmp_path: Path) -> None:
    config = parse({"python_roots": ["src", "lib/pkg", "/opt/abs"]}, base=tmp_path)
    assert config.python_roots == (tmp_path / "src", tmp_path / "lib" / "pkg", Path("/opt/abs"))


def test_empty_python_roots_list_is_not_none() -> None:
    # An explicit empty list means "clean nothing", not "derive from the bind mounts".
    assert parse({"python_roots": []}).python_roots == ()


def test_messages_without_source_or_prefix() -> None:
    with pytest.raises(ConfigError, match=r"^config: timeout: "):
        parse_config({"timeout": "x"}, base=Path("/"))


def test_malformed_ipv6_url_is_a_config_error() -> None:
    assert "tool.cslaunch.url:" in error_of({"url": "http://[::1:8000/"})


def test_nan_timeout_rejected() -> None:
    assert "tool.cslaunch.timeout:" in error_of({"timeout": float("nan")})


# --- load_config: which file, which table ------------------------------------------------


def test_pyproject_tool_cslaunch(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.cslaunch]\ntimeout = 42\n')
    config = load_config(tmp_path)
    assert config.timeout == 42.0
    assert config.source == tmp_path / "pyproject.toml"


def test_pyproject_without_tool_cslaunch_gives_defaults(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 99\n')
    assert load_config(tmp_path) == Config()


def test_no_config_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == Config()


def test_cslaunch_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.cslaunch]\ntimeout = 1\n")
    write(tmp_path / "cslaunch.toml", "timeout = 2\n")
    config = load_config(tmp_path)
    assert config.timeout == 2.0
    assert config.source == tmp_path / "cslaunch.toml"


def test_cslaunch_toml_wins_even_over_an_invalid_pyproject_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.cslaunch]\nbogus = 1\n")
    write(tmp_path / "cslaunch.toml", "timeout = 2\n")
    assert load_config(tmp_path).timeout == 2.0


def test_cslaunch_toml_top_level_keys(tmp_path: Path) -> None:
    write(
        tmp_path / "cslaunch.toml",
        'url = "http://localhost:1234"\npython_roots = ["app"]\n\n'
        '[services.worker]\nstop = "kill"\n',
    )
    config = load_config(tmp_path)
    assert config.url == "http://localhost:1234"
    assert config.python_roots == (tmp_path / "app",)
    assert config.service("worker").stop == "kill"


def test_cslaunch_toml_tool_cslaunch_table(tmp_path: Path) -> None:
    write(tmp_path / "cslaunch.toml", '[tool.cslaunch]\nprofiles = ["dev"]\ntimeout = 9\n')
    config = load_config(tmp_path)
    assert config.profiles == ("dev",)
    assert config.timeout == 9.0


def test_error_in_pyproject_names_full_key(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.cslaunch.services.web]\nxyz = 1\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: tool\.cslaunch\.services\.web\.xyz"):
        load_config(tmp_path)


def test_error_in_cslaunch_toml_names_key_without_tool_prefix(tmp_path: Path) -> None:
    write(tmp_path / "cslaunch.toml", 'timeout = "soon"\n')
    with pytest.raises(ConfigError, match=r"^cslaunch\.toml: timeout: expected a number"):
        load_config(tmp_path)


@pytest.mark.parametrize("name", ["pyproject.toml", "cslaunch.toml"])
def test_invalid_toml_is_a_config_error(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, "[tool.cslaunch\ntimeout = = 3\n")
    with pytest.raises(ConfigError, match=rf"^{name}: invalid TOML"):
        load_config(tmp_path)


def test_directory_named_cslaunch_toml_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "cslaunch.toml").mkdir()  # is_file() is False: not a config file at all
    write(tmp_path / "pyproject.toml", "[tool.cslaunch]\ntimeout = 3\n")
    assert load_config(tmp_path).timeout == 3.0


def test_tool_cslaunch_not_a_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool]\ncslaunch = 1\n")
    with pytest.raises(ConfigError, match=r"tool\.cslaunch"):
        load_config(tmp_path)
