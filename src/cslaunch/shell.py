"""The commands of a shell string (`sh -c "..."`), read as the shell reads them: quotes,
escapes, comments, command substitutions, operators and compound commands. Only as much as
doctor needs to say which program a wrapper runs last and where an `exec` would go; where
the string does something this does not follow, it says so (None) rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that open or close compound commands, where a command starts.
KEYWORDS = frozenset(
    {"if", "then", "elif", "else", "fi", "while", "until", "for", "do", "done", "case", "esac"}
    | {"select", "function", "{", "}", "!", "[[", "]]", "in", "time", "coproc"}
)
# Builtins of sh and bash: `exec` cannot run them, and none is a long-running program.
BUILTINS = frozenset(
    {":", ".", "break", "continue", "eval", "exec", "exit", "export", "readonly", "return"}
    | {"set", "shift", "times", "trap", "unset", "alias", "bg", "cd", "command", "false"}
    | {"fg", "getopts", "hash", "jobs", "kill", "read", "true", "type", "ulimit", "umask"}
    | {"unalias", "wait", "echo", "printf", "test", "[", "pwd", "source", "local"}
    | {"declare", "typeset", "let", "shopt", "enable", "builtin", "caller", "disown"}
    | {"history", "logout", "mapfile", "readarray", "popd", "pushd", "dirs", "suspend"}
)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Operators, longest first. `;;` ends a case branch; `|&` is bash's pipe of both streams.
OPERATORS = ("&&", "||", ";;", "|&", ";", "&", "|", "(", ")", "\n")


@dataclass(frozen=True)
class Command:
    """A simple command: its words, unquoted, and where each starts in the string."""

    words: tuple[str, ...]
    starts: tuple[int, ...]
    before: str  # the operator before it ("" at the start)
    after: str  # the operator after it ("" at the end)
    depth: int  # inside how many compound commands (if, while, { }, ( )...) it starts


class Unreadable(ValueError):
    """A shell string this reader does not follow (an unclosed quote, a here-document)."""


def commands(script: str) -> list[Command]:
    """The simple commands of a shell string, in order. Raises Unreadable."""
    tokens = _tokens(script)
    found: list[Command] = []
    words: list[str] = []
    starts: list[int] = []
    before = ""
    depth = 0

    def close(op: str) -> None:
        nonlocal words, starts, before, depth
        if words:
            found.append(Command(tuple(words), tuple(starts), before, op, depth))
        words, starts = [], []
        before = op or before

    for kind, text, start in tokens:
        if kind == "op":
            close(text)
            if text == "(":
                depth += 1
            elif text == ")":
                depth = max(0, depth - 1)
            continue
        if not words and text in KEYWORDS and kind == "word":
            # A keyword where a command starts: it opens or closes a compound command,
            # and what follows it (the condition, the body) is a command of its own.
            if text in ("if", "while", "until", "for", "case", "select", "{", "function"):
                depth += 1
            elif text in ("fi", "done", "esac", "}"):
                depth = max(0, depth - 1)
                found.append(Command((text,), (start,), before, "", depth))
            before = text
            continue
        words.append(text)
        starts.append(start)
    close("")
    return found


def _tokens(script: str) -> list[tuple[str, str, int]]:
    """("word" | "quoted" | "op", text, start offset). A word that had quotes in it is
    "quoted": `"fi"` is not the keyword fi."""
    # One loop over the characters, as the shell's own lexer is: the cases share the
    # position and the token being built, and split apart they would only pass them around.
    tokens: list[tuple[str, str, int]] = []
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if c in " \t":
            i += 1
            continue
        if c == "\\" and script[i + 1 : i + 2] == "\n":
            i += 2  # a line continuation
            continue
        if c == "#":
            while i < n and script[i] != "\n":
                i += 1
            continue
        op = next((o for o in OPERATORS if script.startswith(o, i)), None)
        if op is not None and not script.startswith("&>", i):  # &>file: a redirection
            tokens.append(("op", op, i))
            i += len(op)
            continue
        start, quoted = i, False
        text: list[str] = []
        while i < n:
            c = script[i]
            if c in " \t\n" or (c in ";|()" and not _in_redirection(text)):
                break
            if c == "&" and not _in_redirection(text) and script[i + 1 : i + 2] != ">":
                break
            if c == "<" and script.startswith("<<", i):
                raise Unreadable("a here-document")
            if c == "\\":
                text.append(script[i + 1 : i + 2])
                i += 2
                quoted = True
            elif c == "'":
                end = script.find("'", i + 1)
                if end < 0:
                    raise Unreadable("an unclosed single quote")
                text.append(script[i + 1 : end])
                i, quoted = end + 1, True
            elif c == '"':
                i, inner = _double_quoted(script, i)
                text.append(inner)
                quoted = True
            elif c == "$" and script.startswith("$(", i):
                end = _closing(script, i + 1)
                text.append(script[i:end])
                i = end
            elif c == "`":
                end = script.find("`", i + 1)
                if end < 0:
                    raise Unreadable("an unclosed backquote")
                text.append(script[i : end + 1])
                i = end + 1
            else:
                text.append(c)
                i += 1
        tokens.append(("quoted" if quoted else "word", "".join(text), start))
    return tokens


def _in_redirection(text: list[str]) -> bool:
    """`2>&1`, `>&2`, `&>file`: an & or | right after > or < belongs to the redirection."""
    last = "".join(text[-1:])[-1:] if text else ""
    return last in (">", "<")


def _double_quoted(script: str, i: int) -> tuple[int, str]:
    """The end of a double-quoted string starting at i, and its text."""
    out: list[str] = []
    j = i + 1
    while j < len(script):
        c = script[j]
        if c == '"':
            return j + 1, "".join(out)
        if c == "\\" and j + 1 < len(script):
            nxt = script[j + 1]
            out.append(nxt if nxt in '"\\$`\n' else c + nxt)
            j += 2
        elif script.startswith("$(", j):
            end = _closing(script, j + 1)
            out.append(script[j:end])
            j = end
        else:
            out.append(c)
            j += 1
    raise Unreadable("an unclosed double quote")


def _closing(script: str, i: int) -> int:
    """Just past the parenthesis that closes the one at i (quotes inside skipped)."""
    depth, j = 0, i
    while j < len(script):
        c = script[j]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        elif c == "'":
            end = script.find("'", j + 1)
            j = end if end >= 0 else len(script)
        elif c == '"':
            j, _ = _double_quoted(script, j)
            continue
        elif c == "\\":
            j += 1
        j += 1
    raise Unreadable("an unclosed command substitution")


@dataclass(frozen=True)
class Last:
    """What a shell string runs last, and whether an `exec` can be put before it."""

    words: tuple[str, ...]  # the program and its arguments, assignments and `exec` off
    execs: bool  # it already runs with `exec` (or is the string's only command)
    exec_at: int | None  # where to insert "exec " for the program to replace the shell; None:
    # no exec would help or run (a builtin, a keyword, a pipeline, a compound command, ...)
    why_not: str = ""  # why there is no exec fix, for people


def last_command(script: str) -> Last | None:
    """The long-running command of a shell string, or None when the string cannot be read."""
    try:
        found = commands(script)
    except Unreadable:
        return None
    if not found:
        return None
    last = found[-1]
    words, starts = list(last.words), list(last.starts)
    while len(words) > 1 and ASSIGNMENT.match(words[0]):
        words.pop(0)
        starts.pop(0)
    if words[0] == "exec":
        return Last(tuple(words[1:]), True, None)
    if len(found) == 1 and not last.before and last.after != "&":
        # `sh -c "prog args"`: sh, dash, bash and busybox exec a lone command themselves.
        return Last(tuple(words), True, None)
    program = words[0]
    if program in KEYWORDS:
        why = f"it ends with `{program}`, the end of a compound command"
        return Last(tuple(words), False, None, why)
    if last.depth > 0:
        why = "it ends inside a compound command or a subshell"
        return Last(tuple(words), False, None, why)
    if last.before in ("!", "time", "coproc"):
        return Last(tuple(words), False, None, f"it ends under `{last.before}`")
    if program in BUILTINS:
        return Last(tuple(words), False, None, f"it ends with the shell builtin `{program}`")
    if last.before in ("|", "|&") or last.after in ("&",):
        return Last(tuple(words), False, None, "it ends in a pipeline or a background job")
    return Last(tuple(words), False, starts[0])


def with_exec(script: str, at: int) -> str:
    return script[:at] + "exec " + script[at:]
