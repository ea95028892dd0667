"""What the command line said that every command shares: the Compose project, the output
mode, and the launch flags (which may come before or after the subcommand)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cslaunch.project import Project, resolve
from cslaunch.ui import UI

if TYPE_CHECKING:
    from cslaunch.stack import LaunchOptions

FLAGS = (
    "json",
    "debug",
    "quiet",
    "verbose",
    "no_build",
    "no_wait",
    "force",
    "rebuild",
    "full",
    "no_verify",
    "watch",
)


@dataclass
class Globals:
    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_directory: Path | None = None
    profiles: list[str] = field(default_factory=list)
    json: bool = False
    debug: bool = False
    quiet: bool = False
    verbose: bool = False
    timeout: float | None = None
    no_build: bool = False
    no_wait: bool = False
    force: bool = False
    rebuild: bool = False
    full: bool = False
    no_verify: bool = False
    watch: bool = False
    command: str = "up"  # the command run, as failure JSON names it ("jobs recover")

    def merge(self, **opts: Any) -> None:
        """Options may come before or after the subcommand; later ones add or override."""
        self.files += opts.get("files") or []
        self.profiles += opts.get("profiles") or []
        for key in ("project_name", "project_directory", "timeout"):
            if opts.get(key) is not None:
                setattr(self, key, opts[key])
        for key in FLAGS:
            if opts.get(key):
                setattr(self, key, True)

    @property
    def may_be_noop(self) -> bool:
        """A launch that verifies and may find nothing to do (flags that force work rule it
        out): worth asking its looks ahead."""
        return not (self.no_verify or self.force or self.rebuild or self.full)

    def launch_options(self) -> LaunchOptions:
        from cslaunch.stack import LaunchOptions

        return LaunchOptions(
            timeout=self.timeout,
            build=not self.no_build,
            force=self.force,
            rebuild=self.rebuild,
            full=self.full,
            verify=not self.no_verify,
        )

    def ui(self) -> UI:
        return UI(json_mode=self.json, quiet=self.quiet, verbose=self.verbose)

    def project(self) -> Project:
        return resolve(
            files=self.files,
            name=self.project_name,
            project_directory=self.project_directory,
            profiles=self.profiles,
        )
