"""doctor's Dockerfile reader: what the stage Compose builds copies from the context, and
where it lands."""

from __future__ import annotations

from cslaunch.doctor import dockerfile
from tests.doctorutil import MULTISTAGE


def test_dockerfile_copies_follow_workdir_continuations_and_the_last_stage() -> None:
    text = """\
# syntax=docker/dockerfile:1
FROM node AS assets
COPY web/ /web/
FROM python:3.12 AS final
WORKDIR /srv
WORKDIR app
COPY --chown=app:app \\
     ["pkg/", "extra.py", "./"]
COPY --from=assets /web/dist /srv/static
ADD https://example.com/x.tgz /tmp/
COPY $HOME/x /y
RUN python -m compileall pkg
"""
    copies = dockerfile.dockerfile_copies(text)
    assert [(c.sources, c.dest, c.dest_is_dir, c.consumed) for c in copies] == [
        (("pkg/", "extra.py"), "/srv/app", True, True),
        (("web/dist",), "/srv/static", False, False),  # the context's web/ went to /web
        (("$HOME/x",), "/y", False, False),
    ]


def test_the_stage_compose_builds_and_what_it_takes_from_earlier_stages() -> None:
    def copies(target: str | None) -> list[tuple[tuple[str, ...], str, bool]]:
        return [
            (c.sources, c.dest, c.consumed)
            for c in dockerfile.dockerfile_copies(MULTISTAGE, target)
        ]

    # dev inherits base's WORKDIR and files: its code lands at /srv/src, not /src.
    assert copies("dev") == [(("requirements.txt",), "/srv", True), (("src/",), "/srv/src", False)]
    assert (
        copies(None)
        == copies("prod")
        == [
            (("requirements.txt",), "/srv", True),
            (("web/dist",), "/srv/static", True),  # built by a RUN of its stage: expected
            (("src/",), "/srv/src", False),  # the context's code, by way of dev
        ]
    )
