"""Build-context rules (.dockerignore, COPY sources) and per-service file attribution."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cslaunch.context import (
    CopyRule,
    copied_filter,
    copy_rules,
    copy_sources,
    image_path,
    image_stages,
    instructions,
    parse_dockerignore,
    placed,
)
from cslaunch.scan import Tree, scan
from cslaunch.track import ServiceFiles, service_files, trees


def _unbuilt(
    name: str,
    *,
    runs_code: bool = False,
    bind_dirs: Sequence[str] = (),
    bind_files: Sequence[str] = (),
    **fields: Any,
) -> ServiceFiles:
    """A service run from an image it does not build: only its mounts count."""
    return service_files(
        name,
        runs_code=runs_code,
        bind_dirs=bind_dirs,
        bind_files=bind_files,
        context=None,
        dockerfile=None,
        dockerfile_text=None,
        dockerignore_text=None,
        **fields,
    )


def test_dockerignore_is_anchored_and_takes_directory_contents() -> None:
    ig = parse_dockerignore("# comment\nnode_modules\n*.log\n/build/\n!keep.log\n")
    assert ig.ignored("node_modules")
    assert ig.ignored("node_modules/x/y.js")
    assert ig.ignored("debug.log")
    assert not ig.ignored("sub/debug.log")  # anchored at the root, unlike .gitignore
    assert not ig.ignored("keep.log")
    assert ig.ignored("build/out.js")
    assert not ig.ignored("src/app.py")
    assert not ig.prunes("node_modules")  # an exception pattern exists: must look inside


def test_dockerignore_double_star_and_prune() -> None:
    ig = parse_dockerignore("**/__pycache__\n**/*.tmp\ndocs\n")
    assert ig.ignored("a/b/__pycache__/x.pyc")
    assert ig.ignored("x.tmp") and ig.ignored("a/x.tmp")
    assert ig.prunes("docs")
    assert not parse_dockerignore(None).ignored("anything")


def test_copy_sources_forms() -> None:
    dockerfile = """
    # syntax=docker/dockerfile:1
    FROM python:3.12-slim AS base
    COPY requirements.txt .
    COPY --chown=app:app ["src/", "/app/src/"]
    ADD https://example.invalid/x.tar.gz /tmp/
    COPY --from=base /etc/passwd /tmp/
    COPY conf/*.ini \\
         /etc/app/
    """
    assert copy_sources(dockerfile) == ["requirements.txt", "src", "conf/*.ini"]
    assert copy_sources("FROM x\nCOPY . /app\n") == ["."]
    assert copy_sources("FROM x\nARG D=src\nCOPY $D /app\n") is None  # cannot follow
    # A RUN's bind mount of the context is an input of that step: the whole context by default
    assert copy_sources("FROM x\nRUN --mount=type=bind,target=/s make\n") == ["."]
    uv = "RUN --mount=type=cache,target=/c --mount=type=bind,source=uv.lock,target=uv.lock uv sync"
    assert copy_sources(f"FROM x\n{uv}\n") == ["uv.lock"]
    assert copy_sources("FROM x\nRUN --mount=type=bind,from=b,source=/o,target=/i cp\n") == []
    assert copy_sources("FROM x\nRUN --mount=type=bind,source=$F,target=/f make\n") is None
    assert copy_sources(None) is None


def test_instructions_are_joined_and_keyed_the_way_docker_reads_them() -> None:
    """One reader for copy_rules and doctor: keywords are case-insensitive, tabs separate,
    a comment inside a continued instruction is dropped."""
    text = "from x\ncopy\tsrc /app\nRUN a \\\n# note\n    b\nWORKDIR\nCMD \\\n"
    assert instructions(text) == [
        ("FROM", "x"),
        ("COPY", "src /app"),
        ("RUN", "a  b"),
        ("WORKDIR", ""),
        ("CMD", ""),
    ]
    assert copy_sources("from x\ncopy\tsrc /app\n") == ["src"]


def test_copied_filter() -> None:
    copied = copied_filter(["requirements.txt", "src", "conf/*.ini"])
    assert copied("requirements.txt")
    assert copied("src/app/m.py")
    assert copied("conf/a.ini")
    assert not copied("README.md")
    assert not copied("srcs/x.py")
    assert copied_filter(None)("anything")
    assert copied_filter(["."])("anything")


def make_backend(tmp_path: Path) -> Path:
    ctx = tmp_path / "backend"
    (ctx / "src/app").mkdir(parents=True)
    (ctx / "src/app/m.py").write_text("x = 1\n")
    (ctx / "requirements.txt").write_text("rq\n")
    (ctx / "README.md").write_text("docs\n")
    (ctx / "Dockerfile").write_text("FROM python\nCOPY requirements.txt .\nCOPY src/ /app/src/\n")
    return ctx


def test_bind_mounted_source_needs_restart_baked_file_needs_rebuild(tmp_path: Path) -> None:
    ctx = make_backend(tmp_path)
    mounted = service_files(
        "backend",
        runs_code=True,
        bind_dirs=[str(ctx / "src")],
        bind_files=[],
        context=str(ctx),
        dockerfile=str(ctx / "Dockerfile"),
        dockerfile_text=(ctx / "Dockerfile").read_text(),
        dockerignore_text=None,
    )
    baked = service_files(
        "baked",
        runs_code=True,
        bind_dirs=[],
        bind_files=[],
        context=str(ctx),
        dockerfile=str(ctx / "Dockerfile"),
        dockerfile_text=(ctx / "Dockerfile").read_text(),
        dockerignore_text=None,
    )
    module = str(ctx / "src/app/m.py")
    reqs = str(ctx / "requirements.txt")
    readme = str(ctx / "README.md")
    # The mount hides the baked copy: a restart is enough.
    assert mounted.restart_files([module]) == [module]
    assert mounted.rebuild_files([module]) == []
    assert baked.rebuild_files([module]) == [module]
    assert baked.restart_files([module]) == []
    # Dependencies are baked for both; a file no COPY takes changes nothing.
    assert mounted.rebuild_files([reqs]) == [reqs]
    assert mounted.rebuild_files([readme]) == [] and baked.rebuild_files([readme]) == []
    assert baked.rebuild_files([str(ctx / "Dockerfile")]) == [str(ctx / "Dockerfile")]


def test_data_binds_of_non_code_services_are_not_tracked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conf = tmp_path / "redis.conf"
    conf.write_text("save 60 1\n")
    db = tmp_path / "dump.rdb"
    db.write_text("x")
    redis = _unbuilt("redis", bind_dirs=[str(data)], bind_files=[str(conf), str(db)])
    assert redis.bind_dirs == ()
    assert redis.bind_files == (str(conf),)  # configuration: a restart applies it
    assert redis.restart_files([str(conf), str(db)]) == [str(conf)]


def test_one_walk_tracks_union_of_trees(tmp_path: Path) -> None:
    ctx = make_backend(tmp_path)
    (ctx / "node_modules/x").mkdir(parents=True)
    (ctx / "node_modules/x/i.js").write_text("")
    (ctx / "src/app/__pycache__").mkdir()
    (ctx / "src/app/__pycache__/m.cpython-311.pyc").write_bytes(b"pyc")
    (ctx / "src/app/data.json").write_text("{}")
    sf = service_files(
        "backend",
        runs_code=True,
        bind_dirs=[str(ctx / "src")],
        bind_files=[],
        context=str(ctx),
        dockerfile=str(ctx / "Dockerfile"),
        dockerfile_text=(ctx / "Dockerfile").read_text(),
        dockerignore_text="*.md\n",
    )
    walk, singles = trees([sf])
    result = scan(walk, singles)
    rel = {os.path.relpath(p, ctx).replace(os.sep, "/") for p in result.files}
    # data.json is COPYed with src/, so the image changes with it.
    assert rel == {"Dockerfile", "requirements.txt", "src/app/m.py", "src/app/data.json"}
    assert [os.path.basename(p) for p in result.bytecode] == ["m.cpython-311.pyc"]


def test_scan_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "m.py").write_text("")
    result = scan([Tree(str(root), lambda rel: True)])
    # Links are tracked as links (COPY copies them as such), never entered.
    assert set(result.files) == {str(root / "m.py"), str(root / "link"), str(root / "loop")}


def test_source_patterns_match_file_names_as_fnmatch_does() -> None:
    sf = _unbuilt("web", runs_code=True, bind_dirs=["/src"],
                  source_patterns=["*.html", "[ab]?.jinja"])  # fmt: skip
    assert sf.is_source("app/m.py") and sf.is_source("templates/x.html")
    assert sf.is_source("a1.jinja") and not sf.is_source("c1.jinja")
    assert not sf.is_source("m.py.bak") and not sf.is_source("x.HTML")  # case counts
    assert not sf.is_source("py/readme")  # the name, not the directory


def test_a_stage_built_from_another_keeps_its_workdir() -> None:
    # CaseStrainer-like: WORKDIR in the base stage, `COPY . .` in the stage Compose builds.
    dockerfile = (
        "ARG BASE_IMAGE=python:3.12-slim\n"
        "FROM --platform=linux/amd64 ${BASE_IMAGE} AS base\n"
        "WORKDIR /app\n"
        "COPY requirements.txt .\n"
        "FROM base AS app\n"
        "COPY . .\n"
        "FROM python:3.12-slim AS other\n"
        "COPY src ./src\n"
    )
    rules = copy_rules(dockerfile)
    assert rules is not None
    assert [(r.src, r.dest, r.stage) for r in rules] == [
        ("requirements.txt", "/app/", 0),
        (".", "/app/", 1),
        ("src", "/src", 2),  # a stage from an image starts at /
    ]


@pytest.mark.parametrize(
    ("dockerfile", "rel", "inside"),
    [
        ("FROM x\nWORKDIR /app\nCOPY . .\n", "app/main.py", "/app/app/main.py"),
        ("FROM x\nWORKDIR /app/\nCOPY ./ ./\n", "main.py", "/app/main.py"),
        (
            "FROM x\nWORKDIR /srv\nWORKDIR ./code/.\nCOPY src/ ./src/\n",
            "src/a.py",
            "/srv/code/src/a.py",
        ),
        ("FROM x\nWORKDIR /app\nCOPY main.py .\n", "main.py", "/app/main.py"),
        ("FROM x\nWORKDIR /app\nCOPY main.py ./run.py\n", "main.py", "/app/run.py"),
    ],
)
def test_image_paths_are_normalised(dockerfile: str, rel: str, inside: str) -> None:
    rules = copy_rules(dockerfile)
    assert rules is not None
    assert image_path(rules, rel) == inside


MULTISTAGE = """\
FROM python:3.12 AS base
WORKDIR /srv
COPY requirements.txt .
FROM base AS dev
COPY src/ ./src/
FROM python:3.12 AS prod
WORKDIR /app
COPY src/ ./code/
"""


def test_a_stage_starts_in_the_workdir_of_the_stage_it_starts_from() -> None:
    rules = copy_rules(MULTISTAGE)
    assert rules is not None
    assert [(r.src, r.dest, r.stage) for r in rules] == [
        ("requirements.txt", "/srv/", 0),
        ("src", "/srv/src/", 1),  # not /src/: dev is base, in /srv
        ("src", "/app/code/", 2),
    ]


def test_image_paths_of_the_stage_compose_builds() -> None:
    rules = copy_rules(MULTISTAGE)
    assert rules is not None
    dev = image_stages(MULTISTAGE, "dev")
    assert dev == {0, 1}
    assert image_path(rules, "src/main.py", dev) == "/srv/src/main.py"
    assert image_path(rules, "requirements.txt", dev) == "/srv/requirements.txt"
    last = image_stages(MULTISTAGE)
    assert image_path(rules, "src/main.py", last) == "/app/code/main.py"
    assert image_path(rules, "requirements.txt", last) is None  # prod does not hold it


def _mounted_at_app(
    root: Path,
    dockerfile: str,
    *,
    runs_code: bool = True,
    target: str | None = None,
    watches: bool = False,
) -> ServiceFiles:
    """A service built from `root` with `dockerfile`, `root` bind-mounted at /app."""
    return service_files(
        "web",
        runs_code=runs_code,
        bind_dirs=[str(root)],
        bind_files=[],
        context=str(root),
        dockerfile=str(root / "Dockerfile"),
        dockerfile_text=dockerfile,
        dockerignore_text=None,
        target=target,
        bind_targets=[(str(root), "/app")],
        watches=watches,
    )


WHOLE_PROJECT_DOCKERFILE = """\
FROM python:3.12
WORKDIR /app
COPY requirements*.txt ./
RUN pip install -r requirements.txt
COPY ./compose/local/start /start
RUN sed -i 's/\\r$//g' /start && chmod +x /start
COPY . .
RUN python -m compileall -q .
"""


def test_the_whole_project_mounted_hides_its_code_not_what_the_build_ran(tmp_path: Path) -> None:
    """`.:/app` over an image built by `COPY requirements.txt .`, `RUN pip install`, `COPY .
    .` (cookiecutter-django, flask-redis-queue, redash): the mount shows the new code and the
    new requirements.txt, but the packages and the start script are the image's."""
    ctx = tmp_path / "project"
    for rel in ["requirements.txt", "requirements-dev.txt", "compose/local/start",
                "app/m.py", "README.md", "Dockerfile"]:  # fmt: skip
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text("x\n")
    files = _mounted_at_app(ctx, WHOLE_PROJECT_DOCKERFILE)
    module, readme = str(ctx / "app/m.py"), str(ctx / "README.md")
    reqs, dev, start = (str(ctx / r) for r in ["requirements.txt", "requirements-dev.txt",
                                                "compose/local/start"])  # fmt: skip
    assert files.rebuild_files([module, readme]) == []  # compiled by a RUN, but shown fresh
    assert files.restart_files([module]) == [module]
    assert files.rebuild_files([reqs]) == [reqs]  # a RUN installed from it
    assert files.rebuild_files([dev]) == [dev]  # taken by the pattern before that RUN
    assert files.rebuild_files([start]) == [start]  # run from /start, which no mount shows

    # Mounted elsewhere than the image put it: the container runs the mount's code, but the
    # image's /app copy is the one a `COPY . .` path would name; only the target matters.
    elsewhere = replace(files, bind_targets=((str(ctx), "/srv"),))
    assert elsewhere.rebuild_files([readme]) == [readme]


def test_where_a_copy_puts_a_file() -> None:
    rule = CopyRule
    assert placed(rule(".", "/app/", 0), "a/b.py") == "/app/a/b.py"
    assert placed(rule("src", "/app/src/", 0), "src/p/m.py") == "/app/src/p/m.py"
    assert placed(rule("src", "/app/", 0), "src/p/m.py") == "/app/p/m.py"  # the contents
    assert placed(rule("start.sh", "/start", 0), "start.sh") == "/start"
    assert placed(rule("start.sh", "/bin/", 0), "start.sh") == "/bin/start.sh"
    assert placed(rule("req*.txt", "/app/", 0), "req-dev.txt") == "/app/req-dev.txt"
    assert placed(rule("s*", "/app/", 0), "src/m.py") == "/app/m.py"  # a matched directory
    assert placed(rule("src", "/app/", 0), "srcs/m.py") is None


@pytest.mark.parametrize(
    ("dockerfile", "target", "changed", "rebuild"),
    [
        # cookiecutter-django: a directory of requirement lists, installed by a RUN
        ("COPY ./requirements ./requirements\nRUN pip install -r requirements/local.txt\n"
         "COPY . .\n", None, "requirements/local.txt", True),
        # the install in a stage built FROM the one that copied the list
        ("COPY requirements.txt .\nFROM base AS dev\nRUN pip install -r requirements.txt\n",
         "dev", "requirements.txt", True),
        # a stage the build does not run: nothing it takes matters
        ("COPY requirements.txt .\nFROM base AS test\nCOPY requirements-test.txt .\n"
         "RUN pip install -r requirements-test.txt\nFROM base AS dev\n",
         "dev", "requirements-test.txt", False),
        # an editable install of the whole tree: its manifest rebuilds, its code does not
        ("COPY . .\nRUN pip install -e .\n", None, "pyproject.toml", True),
        ("COPY . .\nRUN pip install -e .\n", None, "pkg/mod.py", False),
        # a pattern matches within one directory, as Docker's
        ("COPY *.py ./\nRUN python -m compileall .\n", None, "pkg/mod.py", False),
        # code named beside the list, or with flags, before an unrelated RUN
        ("COPY requirements.txt app.py ./\nRUN pip install -r requirements.txt\n", None,
         "app.py", False),
        ("COPY requirements.txt app.py ./\nRUN pip install -r requirements.txt\n", None,
         "requirements.txt", True),
        ("COPY --chown=app:app --chmod=644 app.py .\nRUN useradd app\n", None, "app.py", False),
        # the WORKDIR is a directory; a copy under the mount's target is hidden by it
        ("COPY app.py /app\n", None, "app.py", False),
        ("COPY src /app\n", None, "src/m.py", False),
        # a script run from where no mount covers it
        ("COPY ./compose/start /start\nRUN chmod +x /start\n", None, "compose/start", True),
        ("COPY ./compose/start /start\n", None, "compose/start", True),
        # `docker init`'s Dockerfile: the list mounted into the RUN that installs from it
        ("RUN --mount=type=cache,target=/root/.cache/pip \\\n"
         "    --mount=type=bind,source=requirements.txt,target=requirements.txt \\\n"
         "    pip install -r requirements.txt\nCOPY . .\n", None, "requirements.txt", True),
        ("RUN --mount=type=bind,source=requirements.txt,target=requirements.txt pip install"
         " -r requirements.txt\nCOPY . .\n", None, "app/main.py", False),
        # a builder stage's input: the image holds what its RUN made of it, elsewhere
        ("FROM node:20 AS web\nWORKDIR /src\nCOPY frontend/ .\nRUN npm run build\n"
         "FROM base\nCOPY . .\nCOPY --from=web /src/dist /srv/static\n", None,
         "frontend/src/App.jsx", True),
        # a Dockerfile not followed (a variable WORKDIR): its manifests still rebuild
        ("ARG HOME=/app\nWORKDIR $HOME\nCOPY . .\nRUN pip install -r requirements.txt\n",
         None, "requirements.txt", True),
        ("ARG HOME=/app\nWORKDIR $HOME\nCOPY . .\n", None, "app/main.py", False),
        # a builder stage that only gathers the code, no RUN: the final copy is the mount's
        ("FROM base AS gather\nCOPY . .\nFROM base\nCOPY --from=gather /app /app\n", None,
         "app/main.py", False),
    ],
)  # fmt: skip
def test_which_baked_files_a_mount_of_the_whole_project_hides(
    tmp_path: Path, dockerfile: str, target: str | None, changed: str, rebuild: bool
) -> None:
    files = _mounted_at_app(
        tmp_path, "FROM python:3.12 AS base\nWORKDIR /app\n" + dockerfile, target=target
    )
    path = str(tmp_path / changed)
    assert files.rebuild_files([path]) == ([path] if rebuild else [])


def test_a_dev_servers_mounted_sources_are_its_own_to_serve(tmp_path: Path) -> None:
    """full-stack-fastapi-template's frontend in dev: `./frontend:/app` beside
    `/app/node_modules`, `npm run dev` over an image whose build stage copies the sources
    and runs `npm run build`. A .tsx save is shown by the mount and served by Vite: no
    rebuild (it was one per save, a production build with tsc); package.json still is."""
    dockerfile = (
        "FROM node:20 AS build-stage\nWORKDIR /app\nCOPY package*.json /app/\n"
        "RUN npm install\nCOPY ./ /app/\nRUN npm run build\n"
        "FROM nginx:1\nCOPY --from=build-stage /app/dist/ /usr/share/nginx/html\n"
    )
    files = _mounted_at_app(
        tmp_path, dockerfile, runs_code=False, target="build-stage", watches=True
    )
    source, manifest = str(tmp_path / "src/main.tsx"), str(tmp_path / "package.json")
    assert files.rebuild_files([source]) == [] and files.restart_files([source]) == []
    assert files.rebuild_files([manifest]) == [manifest]
    # `node server.js`, or a binary `go build` made: it runs what the image holds.
    once = replace(files, serves_mounts=False)
    assert once.rebuild_files([source]) == [source]


def test_a_manifest_restarts_a_service_that_installs_at_start(tmp_path: Path) -> None:
    """`sh -c "npm install && npm run dev"` over `./frontend:/app` from a stock node image:
    a package.json change is installed at the next start, so it restarts; a source save is
    its watcher's."""
    files = _unbuilt("node", bind_targets=[(str(tmp_path), "/app")], installs_at_start=True)
    manifest, source = str(tmp_path / "package.json"), str(tmp_path / "src/App.vue")
    assert files.restart_files([manifest, source]) == [manifest]
    assert replace(files, installs_at_start=False).restart_files([manifest]) == []


def test_a_config_directory_change_restarts_the_service(tmp_path: Path) -> None:
    files = _unbuilt("nginx", config_dirs=[str(tmp_path / "conf.d")])
    conf = str(tmp_path / "conf.d" / "site.conf")
    others = [str(tmp_path / "other.conf")]
    others += [str(tmp_path / "conf.d" / n) for n in [".site.conf.swp", "site.conf~", "access.log"]]
    assert files.restart_files([conf, *others]) == [conf]
    walked = [t.root for t in trees([files])[0]]
    assert walked == [str(tmp_path / "conf.d")]


@pytest.mark.parametrize(
    ("lines", "path", "ignored"),
    [
        # an allowlist: `*` stays at the top, but takes what is below it with it
        ("*\n!app\n!requirements.txt\n", "tools/gen.py", True),
        ("*\n!app\n!requirements.txt\n", "app/pkg/m.py", False),
        ("*\n!app\n!requirements.txt\n", "requirements.txt", False),
        ("*.md\n!README.md\n", "docs/x.md", False),  # `*` never crosses a `/`
        ("**/*.md\n", "docs/x.md", True),
        ("**\n!src/**\n", "src/a/b.py", False),
        ("docs\n", "sub/docs", False),  # anchored at the root
        ("build/\n", "build/out.js", True),
        ("a?c\n", "abc/x", True),
        ("f[0-9].py\n", "f7.py", True),
    ],
)  # fmt: skip
def test_dockerignore_reads_as_docker_reads_it(lines: str, path: str, ignored: bool) -> None:
    assert parse_dockerignore(lines).ignored(path) is ignored


def test_nginx_started_with_its_own_config_path_restarts_for_it(tmp_path: Path) -> None:
    """`nginx -c /config/nginx.conf` with `./conf:/config` mounted (and copied by the build):
    the mount shows the change, so no rebuild, but nginx read it at start."""
    from cslaunch.changes import service_files as files_of
    from cslaunch.model import parse_service

    (tmp_path / "conf").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM nginx:1.27\nCOPY conf /config\n")
    proxy = parse_service(
        "proxy",
        {
            "build": {"context": str(tmp_path), "dockerfile": "Dockerfile"},
            "command": ["nginx", "-c", "/config/nginx.conf", "-g", "daemon off;"],
            "volumes": [{"type": "bind", "source": str(tmp_path / "conf"), "target": "/config"}],
        },
    )
    conf = str(tmp_path / "conf" / "nginx.conf")
    files = files_of(proxy, False, ())
    assert (files.rebuild_files([conf]), files.restart_files([conf])) == ([], [conf])


def test_another_commands_c_flag_names_no_nginx_config() -> None:
    """`sh -c "envsubst ... && nginx -g ..."`: the shell's `-c` is not nginx's (every mounted
    directory counted as configuration)."""
    from cslaunch.changes import _nginx_config
    from cslaunch.model import parse_service

    shell = ["sh", "-c", "envsubst < /t > /etc/nginx/conf.d/d.conf && nginx -g 'daemon off;'"]
    proxy = parse_service("x", {"image": "nginx", "command": shell})
    assert not _nginx_config("/usr/share/nginx/html", proxy)
    assert _nginx_config("/etc/nginx/conf.d", proxy)
    flags = ["nginx", "-g", "daemon off;", "-c", "/config/nginx.conf"]
    later = parse_service("x", {"image": "nginx", "command": flags})
    assert _nginx_config("/config", later)
