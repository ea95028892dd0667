"""Terminal output: step lines with timings, a live progress line while waiting, colour only
where it belongs (a TTY, and NO_COLOR unset).

With --json the human output goes to stderr so stdout carries only the JSON document.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from cslaunch.hostos import ansi_console
from cslaunch.redact import scrub


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 file`, `2 files`: a count and its noun, agreeing."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def human_bytes(n: int) -> str:
    """`512 B`, `1.5 KB`, `3.2 MB`: a size for people."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class UI:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False, verbose: bool = False):
        self.stream: TextIO = sys.stderr if json_mode else sys.stdout
        self.quiet = quiet
        self.verbose = verbose
        self.tty = self.stream.isatty()
        # Colour goes through click, which translates it for any Windows console; the
        # progress line's own erase escape needs a terminal that reads ANSI escapes.
        self.color = self.tty and "NO_COLOR" not in os.environ
        self.ansi = self.tty and ansi_console(self.stream)
        self._progress_shown = False
        self.ok_mark, self.fail_mark, self.arrow = self._marks()

    def _marks(self) -> tuple[str, str, str]:
        # A Windows console with a legacy code page cannot print these; fall back to ASCII.
        try:
            "✔✘▸".encode(self.stream.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            return "+", "x", ">"
        return "✔", "✘", "▸"

    def style(self, text: str, **kwargs: object) -> str:
        return click.style(text, **kwargs) if self.color else text  # type: ignore[arg-type]

    def echo(self, text: str = "", *, err: bool = False) -> None:
        self._clear_progress()
        click.echo(scrub(text), file=sys.stderr if err else self.stream, color=self.color)

    def line(self, text: str = "") -> None:
        if not self.quiet:
            self.echo(text)

    def detail(self, text: str) -> None:
        if self.verbose:
            self.echo(self.style("  " + text, dim=True))

    def warn(self, text: str) -> None:
        self.echo(self.style("warning: ", fg="yellow", bold=True) + text, err=True)

    def error(self, text: str) -> None:
        self.echo(self.style("error: ", fg="red", bold=True) + text, err=True)

    def hint(self, text: str) -> None:
        self.echo(self.style("  hint: ", fg="cyan") + text, err=True)

    @contextmanager
    def step(self, name: str) -> Iterator[StepResult]:
        """A pipeline step: a header line while it runs, then its outcome and duration."""
        result = StepResult(name)
        start = time.monotonic()
        if not self.quiet and not self.tty:
            self.echo(f"{self.arrow} {name}...")
        elif not self.quiet:
            self.progress(f"{name}...")
        try:
            yield result
        except BaseException:
            result.seconds = time.monotonic() - start
            if not self.quiet:
                self.echo(
                    self.style(f"{self.fail_mark} {name}", fg="red") + f"  ({result.seconds:.1f} s)"
                )
            raise
        result.seconds = time.monotonic() - start
        if not self.quiet:
            summary = f"  {result.summary}" if result.summary else ""
            self.echo(
                self.style(f"{self.ok_mark} {name}", fg="green")
                + self.style(f"  {result.seconds:.1f} s", dim=True)
                + summary
            )

    def progress(self, text: str) -> None:
        """A transient status line, rewritten in place on a TTY; nothing elsewhere (the step
        lines say enough in a log)."""
        if self.quiet or not self.tty:
            return
        width = max(20, _terminal_width() - 1)
        self.stream.write(self._erase(width) + scrub(text)[:width])
        self.stream.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.stream.write(self._erase(max(20, _terminal_width() - 1)))
            self.stream.flush()
            self._progress_shown = False

    def _erase(self, width: int) -> str:
        """Back to the start of an empty line: one escape where the terminal reads them,
        else spaces over the old text (a legacy Windows console would print the escape)."""
        return "\r\x1b[2K" if self.ansi else "\r" + " " * width + "\r"


class StepResult:
    def __init__(self, name: str):
        self.name = name
        self.summary = ""
        self.seconds = 0.0


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 80
