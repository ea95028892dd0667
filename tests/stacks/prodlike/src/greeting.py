"""The text the backend serves and the jobs return: the tests edit MESSAGE."""

MESSAGE = "hello from v1.0"


def greet(name: str) -> str:
    return f"{MESSAGE}, {name}"
