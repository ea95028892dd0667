"""Which files of a build context can change an image: not .dockerignored, and named by a COPY
or ADD of the Dockerfile. Pure functions over the texts of .dockerignore and the Dockerfile.

When the Dockerfile does something this cannot follow (variables in paths, heredocs), the
whole context counts: a needless rebuild is cheap, a missed one serves old code.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

_CONTEXT_MOUNT = re.compile(r"--mount=[^\s]*type=bind", re.IGNORECASE)


@dataclass(frozen=True)
class DockerIgnore:
    # (pattern, excluded): each line as Docker's patternmatcher compiles it, in order
    rules: tuple[tuple[re.Pattern[str], bool], ...]
    has_exceptions: bool

    def ignored(self, rel: str) -> bool:
        """`rel` is a context-relative path with forward slashes. The last line that matches
        it or a directory it is in decides, as Docker's MatchesOrParentMatches."""
        verdict = False
        for pattern, excluded in self.rules:
            if verdict != excluded and pattern.match(rel):
                verdict = excluded
        return verdict

    def prunes(self, rel_dir: str) -> bool:
        """A directory can be skipped whole only if no `!` pattern could bring back a file."""
        return not self.has_exceptions and self.ignored(rel_dir)


def parse_dockerignore(text: str | None) -> DockerIgnore:
    """Docker's rules, not .gitignore's: patterns are anchored at the context root, `*`
    stays within a directory, a matching directory takes its contents with it, and a later
    `!` pattern brings back what it names even under an excluded directory (`*` then `!app`,
    an allowlist)."""
    rules = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        body = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
        if body in ("", "."):
            continue
        rules.append((_ignore_regex(body), not negate))
    return DockerIgnore(tuple(rules), any(not excluded for _, excluded in rules))


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as moby's patternmatcher compiles it (Go's filepath.Match,
    plus `**` for any number of directories), matching a path or anything below it."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*" and pattern[i + 1 : i + 2] == "*":
            i += 1
            if pattern[i + 1 : i + 2] == "/":
                i += 1
            out += ".*" if i + 1 >= len(pattern) else "(?:.*/)?"
        elif ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch in ".+()|{}$^":
            out += "\\" + ch
        else:
            out += ch  # `[a-z]` classes pass through, as in Go
        i += 1
    try:
        return re.compile(f"^{out}(?:/.*)?$")
    except re.error:
        return re.compile(f"^{re.escape(pattern)}(?:/.*)?$")


@dataclass(frozen=True)
class CopyRule:
    src: str  # context-relative, normalised ("." for the whole context)
    dest: str  # absolute path in the image (WORKDIR applied); ends with "/" for a directory
    stage: int  # build stage (FROM) it belongs to: the last one is the image
    # A RUN follows it in its stage: what it copies may be an input of a build step
    # (`COPY requirements.txt .` then `RUN pip install -r requirements.txt`)
    before_run: bool = False
    # Not a copy: a RUN's `--mount=type=bind,source=requirements.txt` (`docker init`'s
    # Dockerfiles, uv's): an input of that step, absent from the image
    mounted: bool = False


def copy_rules(dockerfile: str | None) -> list[CopyRule] | None:
    """COPY/ADD instructions that take files from the build context, or None when the
    Dockerfile does something that makes the whole context matter. A stage that starts FROM
    an earlier one starts in its WORKDIR."""
    if dockerfile is None:
        return None
    all_stages = stages(dockerfile)
    workdirs: dict[int, str] = {}  # each stage's WORKDIR at its end
    rules: list[CopyRule] = []
    at: list[int] = []  # each rule's instruction: its index in its stage's body
    for stage in all_stages:
        chain = lineage(all_stages, stage)
        workdir = workdirs.get(chain[-2].index, "/") if len(chain) > 1 else "/"
        for position, (keyword, args) in enumerate(stage.body):
            if keyword == "WORKDIR":
                target = args or "/"
                if "$" in target:
                    return None
                workdir = posixpath.normpath(posixpath.join(workdir, target))
            if keyword == "RUN" and _CONTEXT_MOUNT.search(args):
                mounts = _context_mounts(args, workdir)
                if mounts is None:
                    return None
                rules += [CopyRule(src, dest, stage.index, mounted=True) for src, dest in mounts]
                at += [position] * len(mounts)
            if keyword not in ("COPY", "ADD"):
                continue
            if args.startswith("<<"):
                return None  # heredoc: cannot tell what it copies
            words = arguments(args)
            if words is None:
                return None
            flags = [w for w in words if w.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue  # copies from another stage or image, not from the context
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) < 2:
                continue
            dest = paths[-1]
            if "$" in dest:
                return None
            # Normalised: `COPY . .` under WORKDIR /app puts main.py at /app/main.py, never
            # at /app/./main.py, a path no container shows.
            absolute = posixpath.normpath(posixpath.join(workdir, dest))
            # The WORKDIR is a directory: `COPY app.py /app` under WORKDIR /app puts /app/app.py.
            directory = absolute in (workdir, "/")
            if directory or dest.endswith(("/", "/.")) or dest in (".", "./") or len(paths) > 2:
                absolute = absolute.rstrip("/") + "/"
            for src in paths[:-1]:
                if "$" in src:
                    return None
                if re.match(r"^[a-z]+://", src) or src.startswith("git@"):
                    continue  # ADD of a URL
                rules.append(CopyRule(_normalise(src), absolute, stage.index))
                at.append(position)
        workdirs[stage.index] = workdir
    return [
        replace(r, before_run=r.mounted or _run_after(all_stages, r.stage, i))
        for r, i in zip(rules, at, strict=True)
    ]


def _context_mounts(args: str, workdir: str) -> list[tuple[str, str]] | None:
    """(context-relative source, absolute target) of each bind mount of the build context a
    RUN makes (`--mount=type=bind,source=uv.lock,target=uv.lock`); one `from=` another stage
    or image is not the context. None when a path is a variable."""
    found = []
    for option in re.findall(r"--mount=(\S+)", args):
        fields = dict(f.split("=", 1) if "=" in f else (f, "") for f in option.split(","))
        if fields.get("type") != "bind" or "from" in fields:
            continue
        source = fields.get("source") or fields.get("src") or "."
        target = fields.get("target") or fields.get("dst") or fields.get("destination") or "/"
        if "$" in source or "$" in target:
            return None
        found.append((_normalise(source), posixpath.normpath(posixpath.join(workdir, target))))
    return found


def _run_after(all_stages: Sequence[Stage], index: int, position: int) -> bool:
    """Whether a RUN comes after an instruction: later in its stage, or in a stage built
    FROM that one."""
    stage = all_stages[index]
    if any(k == "RUN" for k, _ in stage.body[position + 1 :]):
        return True
    later = (s for s in all_stages if stage in lineage(all_stages, s)[:-1])
    return any(k == "RUN" for s in later for k, _ in s.body)


def build_stages(dockerfile: str | None, target: str | None = None) -> frozenset[int]:
    """The stages a build of `target` (else the last stage) runs: its lineage and the stages
    it copies from (`COPY --from=builder`), and theirs. A stage nothing uses is skipped by
    BuildKit, so what it takes from the context changes nothing."""
    all_stages = stages(dockerfile or "")
    stage = built_stage(all_stages, target)
    todo, used = ([stage] if stage else []), set[int]()
    while todo:
        for s in lineage(all_stages, todo.pop()):
            if s.index in used:
                continue
            used.add(s.index)
            for keyword, args in s.body:
                source = re.search(r"--from=(\S+)", args) if keyword == "COPY" else None
                named = source.group(1).lower() if source else None
                todo += [t for t in all_stages if named in (t.name, str(t.index))]
    return frozenset(used)


def image_stages(dockerfile: str | None, target: str | None = None) -> frozenset[int]:
    """The stages whose COPYs the image holds: the one Compose builds (`target`, else the
    last) and those it starts FROM."""
    all_stages = stages(dockerfile or "")
    stage = built_stage(all_stages, target)
    return frozenset(s.index for s in lineage(all_stages, stage)) if stage else frozenset()


def copy_sources(dockerfile: str | None) -> list[str] | None:
    """Context-relative sources of COPY/ADD, or None when the whole context may matter."""
    rules = copy_rules(dockerfile)
    return None if rules is None else [r.src for r in rules]


def image_path(
    rules: list[CopyRule], rel: str, in_stages: Collection[int] | None = None
) -> str | None:
    """Where the image holds a context file (context-relative `rel`), if a plain COPY of one
    of its stages (`in_stages`, see image_stages; default: the last) put it there. Globs are
    not followed: None."""
    if in_stages is None:
        in_stages = {max((r.stage for r in rules), default=0)}
    found = None
    for rule in rules:
        if rule.stage not in in_stages or _has_glob(rule.src) or rule.mounted:
            continue
        found = placed(rule, rel) or found
    return found  # a later COPY of the same file wins, as in the image


def under(path: str, directory: str) -> bool:
    """Whether a container (POSIX) path is `directory` or lies below it."""
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def placed(rule: CopyRule, rel: str) -> str | None:
    """Where this COPY/ADD puts context file `rel` (context-relative), None when it does not
    take it. A source that names a directory, or a pattern that matches one, puts the
    directory's contents at the destination, as Docker does."""
    if rule.src == ".":
        return posixpath.join(rule.dest, rel)
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        head = "/".join(parts[:depth])
        if head != rule.src and not (_has_glob(rule.src) and glob_match(head, rule.src)):
            continue
        if depth < len(parts):
            return posixpath.join(rule.dest, *parts[depth:])
        return posixpath.join(rule.dest, parts[-1]) if rule.dest.endswith("/") else rule.dest
    return None


def names_itself(rule: CopyRule, rel: str) -> bool:
    """Whether the COPY/ADD names this very file (or a pattern matches the file, not a
    directory it is in): a dependency manifest copied on its own, not a tree of code."""
    return rel == rule.src or (_has_glob(rule.src) and glob_match(rel, rule.src))


def glob_match(path: str, pattern: str) -> bool:
    """Docker's (Go's filepath.Match) pattern match: `*` and `?` never cross a `/`."""
    parts, pieces = path.split("/"), pattern.split("/")
    return len(parts) == len(pieces) and all(map(fnmatch.fnmatchcase, parts, pieces))


# Files a build step installs from (pip, poetry, uv, npm...): what a RUN after their COPY
# makes of them is in the image, whatever a bind mount shows of them later
_MANIFESTS = (
    "requirements*.txt",
    "constraints*.txt",
    "requirements*.in",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
)


def is_manifest(rel: str) -> bool:
    """A dependency manifest, by name, or a list in a `requirements/` directory
    (cookiecutter-django's requirements/base.txt, local.txt)."""
    parts = rel.split("/")
    if _MANIFEST_NAMES.match(parts[-1]):
        return True
    return "requirements" in parts[:-1] and parts[-1].endswith((".txt", ".in"))


_MANIFEST_NAMES = re.compile("|".join(fnmatch.translate(p) for p in _MANIFESTS))


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction: lines joined across backslash
    continuations, comments dropped."""
    lines: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    out = []
    for joined in lines:
        if not joined.strip():
            continue  # a lone continuation at the end
        keyword, *args = joined.split(None, 1)
        out.append((keyword.upper(), args[0].strip() if args else ""))
    return out


@dataclass(frozen=True)
class Stage:
    """One build stage of a Dockerfile: what it starts from and its instructions."""

    index: int
    name: str | None  # `FROM base AS name`, lower-cased as Docker compares it
    base: str  # the image or earlier stage it starts from
    body: tuple[tuple[str, str], ...]  # (KEYWORD, arguments) after its FROM


@lru_cache(maxsize=64)  # a launch asks it of each Dockerfile several times
def stages(text: str) -> tuple[Stage, ...]:
    found: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            found.append(Stage(len(found), name, words[0] if words else "", ()))
        elif found:
            last = found[-1]
            found[-1] = Stage(last.index, last.name, last.base, (*last.body, (keyword, args)))
    return tuple(found)


def base_image(dockerfile: str | None, target: str | None = None) -> str | None:
    """The image a build starts FROM: the built stage's first ancestor's base."""
    all_stages = stages(dockerfile or "")
    stage = built_stage(all_stages, target)
    return lineage(all_stages, stage)[0].base or None if stage else None


def built_stage(all_stages: Sequence[Stage], target: str | None) -> Stage | None:
    """The stage an image is built from: the `build.target` one, else the last."""
    if target:
        return next((s for s in all_stages if s.name == target.lower()), None)
    return all_stages[-1] if all_stages else None


def lineage(all_stages: Sequence[Stage], stage: Stage) -> list[Stage]:
    """A stage and the earlier stages it starts FROM, oldest first: it inherits their files,
    ENV, CMD and ENTRYPOINT."""
    chain = [stage]
    while True:
        base = chain[0].base.lower()
        parent = next(
            (s for s in all_stages[: chain[0].index] if s.name == base or str(s.index) == base),
            None,
        )
        if parent is None or parent in chain:
            return chain
        chain.insert(0, parent)


def image_command(text: str, target: str | None = None) -> tuple[list[str], list[str]]:
    """The ENTRYPOINT and CMD an image built from this Dockerfile runs, as words (a shell
    form split on whitespace): the last of each in the built stage and those it starts
    from. A later ENTRYPOINT resets an inherited CMD, as Docker does."""
    all_stages = stages(text)
    stage = built_stage(all_stages, target)
    entrypoint: list[str] = []
    cmd: list[str] = []
    for s in lineage(all_stages, stage) if stage else []:
        for keyword, args in s.body:
            if keyword == "ENTRYPOINT":
                entrypoint, cmd = _exec_words(args), []
            elif keyword == "CMD":
                cmd = _exec_words(args)
    return entrypoint, cmd


def _exec_words(args: str) -> list[str]:
    if args.startswith("["):
        try:
            words = json.loads(args)
        except json.JSONDecodeError:
            return args.split()
        if isinstance(words, list):
            return [str(w) for w in words]
    return args.split()


def arguments(args: str) -> list[str] | None:
    """The words of a COPY/ADD: leading flags, then the JSON form's items or whitespace-split
    words (Docker does no shell quoting there); None for a JSON form that does not parse."""
    flags = []
    while args.startswith("--"):
        flag, _, args = args.partition(" ")
        flags.append(flag)
        args = args.strip()
    if args.startswith("["):
        try:
            words = json.loads(args)
        except json.JSONDecodeError:
            return None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            return None
        return [*flags, *words]
    return [*flags, *args.split()]


def _normalise(src: str) -> str:
    src = src.replace("\\", "/")
    while src.startswith("./"):
        src = src[2:]
    src = src.lstrip("/").rstrip("/")
    return src or "."


def copied_filter(sources: list[str] | None) -> Callable[[str], bool]:
    """A predicate over context-relative paths: does some COPY/ADD source take this file?"""
    if sources is None or "." in sources:
        return lambda rel: True
    plain = tuple(s for s in sources if not _has_glob(s))
    globs = [s for s in sources if _has_glob(s)]

    def copied(rel: str) -> bool:
        for src in plain:
            if rel == src or rel.startswith(src + "/"):
                return True
        for pattern in globs:
            # A pattern matches a file, or a directory whose whole content is then copied.
            parts = rel.split("/")
            for depth in range(1, len(parts) + 1):
                if glob_match("/".join(parts[:depth]), pattern):
                    return True
        return False

    return copied


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")
