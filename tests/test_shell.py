"""Shell strings read as the shell reads them: which program runs last, and where an `exec`
would go, or why none is safe."""

from __future__ import annotations

import pytest

from cslaunch import shell


@pytest.mark.parametrize(
    ("script", "fixed"),
    [
        (
            "envsubst < /t > /etc/nginx/conf.d/default.conf && nginx -g 'daemon off;'",
            "envsubst < /t > /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'",
        ),
        ("cd /app && rq worker default", "cd /app && exec rq worker default"),
        (
            "echo \"$(date; echo ')')\"; prog 'a;b' # x; y",
            "echo \"$(date; echo ')')\"; exec prog 'a;b' # x; y",
        ),
        ("migrate\nFOO=1 gunicorn app", "migrate\nFOO=1 exec gunicorn app"),
        ("a || b 2>&1", "a || exec b 2>&1"),
        (
            "wait-for db:5432 -- true; celery -A p worker &> /dev/stdout",
            "wait-for db:5432 -- true; exec celery -A p worker &> /dev/stdout",
        ),
        ('echo "fi"; fi-server', 'echo "fi"; exec fi-server'),  # quoted, not the keyword
    ],
)
def test_exec_goes_before_the_last_program(script: str, fixed: str) -> None:
    last = shell.last_command(script)
    assert last is not None and last.exec_at is not None, last
    assert shell.with_exec(script, last.exec_at) == fixed


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("python manage.py migrate || exit 1", "builtin `exit`"),
        ("python app.py; return 111", "builtin `return`"),
        ('if [ -n "$D" ]; then python a.py; else gunicorn a; fi', "`fi`"),
        ("until nc -z db 5432; do sleep 1; done", "`done`"),
        ("( cd x && prog )", "subshell"),
        ("{ prog; }", "`}`"),
        ("prog | tee log", "pipeline"),
        ("prog &", "background"),
        ("setup; time prog", "`time`"),
        ("setup; wait", "builtin `wait`"),
    ],
)
def test_no_exec_where_it_would_not_run_or_not_replace_the_shell(script: str, why: str) -> None:
    last = shell.last_command(script)
    assert last is not None and last.exec_at is None and not last.execs
    assert why in last.why_not


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("gunicorn app:app", ("gunicorn", "app:app")),  # a lone command: the shell execs it
        ("cd /app; exec rq worker", ("rq", "worker")),
        ("X=1 exec python -m app", ("python", "-m", "app")),
    ],
)
def test_already_exec(script: str, words: tuple[str, ...]) -> None:
    last = shell.last_command(script)
    assert last is not None and last.execs and last.words == words


@pytest.mark.parametrize(
    "script", ["cat <<EOF\nx\nEOF", "echo 'open", 'echo "open', "echo $(x", ""]
)
def test_what_it_does_not_follow_is_none(script: str) -> None:
    assert shell.last_command(script) is None
