"""The Docker Engine API over its local Unix socket, for the calls a launch makes many times.

Starting the docker CLI costs 25-35 ms before it does anything (100 ms for `kill` or
`start`); the same request over the socket takes a millisecond or two. So the container
calls on the hot paths (list, inspect, exec, kill, stop, start) go here when the engine is a
local socket, and through the CLI otherwise (Windows' named pipe, tcp://, ssh://, a context
this module cannot read): `cslaunch.docker` decides, and behaves the same either way.

This is a small HTTP/1.1 client on purpose: one request per connection, read to EOF.
http.client costs 30 ms to import (the email package) and the Docker SDK 200 ms, a third of a
no-op launch; neither is needed for a dozen endpoints that answer JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from cslaunch import hostos

DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(Exception):
    """The daemon answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Engine:
    """One local Docker daemon, addressed by its socket path."""

    def __init__(self, path: str):
        self.path = path

    def ping(self, timeout: float = 10) -> bool:
        """Does the daemon answer at all?"""
        try:
            with self._connect(timeout) as sock:
                sock.sendall(_request("GET", "/_ping", b""))
                status, _, _ = _read_head(sock)
        except OSError:
            return False
        return status == 200

    def get(self, path: str, query: Mapping[str, str] | None = None, timeout: float = 30) -> Any:
        return _parsed(self._raw("GET", path, query, None, timeout))

    def post(
        self,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float = 30,
    ) -> Any:
        return _parsed(self._raw("POST", path, query, body, timeout))

    def exec(
        self,
        container: str,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        user: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a running container, as `docker exec [-i] [-u USER]` does: its
        stdout, stderr and exit code."""
        spec: dict[str, Any] = {
            "Cmd": list(argv),
            "AttachStdin": input is not None,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
        }
        if user is not None:
            spec["User"] = user
        created = self.post(f"/containers/{quote(container, safe='')}/exec", body=spec)
        exec_id = str(created["Id"])
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        with self._connect(timeout) as sock:
            # Upgrade, as the CLI does: the connection becomes a raw stream both ways, so the
            # input can be sent after the headers and its end signalled by a half-close.
            sock.sendall(
                _request("POST", f"/exec/{exec_id}/start", body, upgrade=input is not None)
            )
            status, headers, rest = _read_head(sock)
            if status >= 400:
                raise EngineError(status, _message(_body(headers, rest + _read_all(sock))))
            writer = None
            if input is not None:
                # Only after the engine's answer: bytes sent before it took the connection
                # over are lost. From a thread: a command that answers while it still reads
                # would otherwise fill both socket buffers and wait on us forever.
                writer = threading.Thread(target=_send_and_close, args=(sock, input.encode()))
                writer.start()
            stream = rest + _read_all(sock)
            if writer:
                writer.join()
        out, err = demux(stream)
        ran = self.get(f"/exec/{exec_id}/json")
        code = ran.get("ExitCode")
        if code is None or not ran.get("Pid"):
            # The command never started (no such program): the engine wrote why into the
            # stream, where the CLI would print it on stderr.
            code, err, out = code or 126, err + out, b""
        return subprocess.CompletedProcess(
            list(argv),
            int(code),
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    def get_bytes(
        self, path: str, query: Mapping[str, str] | None = None, timeout: float = 30
    ) -> bytes:
        """A GET whose answer is not JSON (a container's logs)."""
        return self._raw("GET", path, query, None, timeout)

    def _raw(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        timeout: float | None,
    ) -> bytes:
        target = path + ("?" + urlencode(query) if query else "")
        payload = json.dumps(body).encode() if body is not None else b""
        with self._connect(timeout) as sock:
            sock.sendall(_request(method, target, payload, json_body=body is not None))
            status, headers, rest = _read_head(sock)
            data = _body(headers, rest + _read_all(sock))
        if status >= 400:
            raise EngineError(status, _message(data))
        return data

    def _connect(self, timeout: float | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        return sock


def local() -> Engine | None:
    """The engine the docker CLI would talk to, when that is a Unix socket that exists;
    None means: use the CLI. CSLAUNCH_DOCKER_API=0 always uses the CLI."""
    if os.environ.get("CSLAUNCH_DOCKER_API", "").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not hostos.engine_socket_usable():
        return None  # Docker Desktop's named pipe on Windows: the CLI speaks it
    host = docker_host()
    if host is None or not host.startswith("unix://"):
        return None
    path = host.removeprefix("unix://")
    return Engine(path) if Path(path).exists() else None


def docker_host() -> str | None:
    """The daemon address, resolved the way the docker CLI resolves it: DOCKER_HOST, else the
    current context's endpoint (DOCKER_CONTEXT, else the CLI config's currentContext), else
    the default socket. None when the context's endpoint cannot be read here."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    config_dir, settings = cli_config()
    name = os.environ.get("DOCKER_CONTEXT") or str(settings.get("currentContext") or "")
    if not name or name == "default":
        return "unix://" + DEFAULT_SOCKET
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads(
            (config_dir / "contexts" / "meta" / digest / "meta.json").read_text(encoding="utf-8")
        )
        host = meta["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(host) if host else None


def cli_config() -> tuple[Path, dict[str, Any]]:
    """The docker CLI's config directory and its config.json ({} when there is none)."""
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        settings = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = {}
    return config_dir, settings if isinstance(settings, dict) else {}


def demux(stream: bytes) -> tuple[bytes, bytes]:
    """Split the engine's multiplexed stream into stdout and stderr (a stream that is not
    multiplexed, a TTY's, is all stdout)."""
    framed, _ = _framed(stream)
    if framed is None:
        return stream, b""
    out = b"".join(chunk for kind, chunk in framed if kind != STDERR)
    return out, b"".join(chunk for kind, chunk in framed if kind == STDERR)


def _parsed(data: bytes) -> Any:
    return json.loads(data) if data.strip() else None


def frames(stream: bytes) -> list[bytes]:
    """The chunks of a multiplexed stream in the order written, stdout and stderr together
    (the order says which line came last); a TTY container's stream, not multiplexed, as
    it is."""
    framed, whole = _framed(stream)
    return [chunk for _, chunk in framed] if framed is not None and whole else [stream]


STDERR = 2


def _framed(stream: bytes) -> tuple[list[tuple[int, bytes]] | None, bool]:
    """The frames of the engine's multiplexed stream (8-byte headers: the stream, 0 stdin,
    1 stdout, 2 stderr, three zero bytes, then a big-endian length), in order, and whether
    they are the whole stream (not cut short); None when it is not multiplexed."""
    found = []
    pos = 0
    while pos + 8 <= len(stream):
        kind, size = stream[pos], int.from_bytes(stream[pos + 4 : pos + 8], "big")
        if kind not in (0, 1, STDERR) or stream[pos + 1 : pos + 4] != b"\0\0\0":
            return None, False
        found.append((kind, stream[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    return found, pos == len(stream)


def _request(
    method: str, target: str, body: bytes, *, json_body: bool = True, upgrade: bool = False
) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: docker", "User-Agent: cslaunch"]
    if body or method == "POST":
        head.append(f"Content-Length: {len(body)}")
    if body and json_body:
        head.append("Content-Type: application/json")
    head += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the command's stdin ends here
    except OSError:
        pass  # the command exited without reading all of it, as `docker exec -i` allows


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status and headers of a response, and whatever of the body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the Docker daemon closed the connection mid-answer")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, rest


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _body(headers: Mapping[str, str], data: bytes) -> bytes:
    if headers.get("transfer-encoding", "").lower() != "chunked":
        length = headers.get("content-length")
        return data[: int(length)] if length is not None else data
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out.extend(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message") or data.decode(errors="replace").strip())
    except (ValueError, AttributeError):
        return data.decode(errors="replace").strip() or "(no message)"
