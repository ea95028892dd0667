"""The code you edit: the backend serves it and the workers run it."""

MESSAGE = "hello from v1"


def greet(name: str) -> str:
    return f"{MESSAGE}, {name}"
