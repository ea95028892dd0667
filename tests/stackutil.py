"""Drive a private copy of the example stack: the CLI, Compose, HTTP and RQ jobs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_PREFIX = "cslt-"


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range. A port from that range
    (what binding port 0 gives) can be taken by any outgoing connection before the
    container binds it: seen once, "Address already in use" for one of 30 services."""
    low = _ephemeral_low()
    for _ in range(500):
        port = 10000 + secrets.randbelow(low - 10000)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between 10000 and {low}")


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return max(20000, int(text.split()[0]))
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; macOS and Windows start theirs at 49152


def remove_leftovers(prefix: str) -> None:
    """Containers and volumes of test projects an earlier, killed run left behind."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    doomed = []
    for cid in out:
        label = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                '{{index .Config.Labels "com.docker.compose.project"}}',
                cid,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if label.startswith(prefix) and not _owner_alive(label[len(prefix) :]):
            doomed.append(cid)
    if doomed:
        subprocess.run(["docker", "rm", "-f", "-v", *doomed], capture_output=True, check=False)
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=False
    ).stdout.split()
    stale = [v for v in volumes if v.startswith(prefix) and not _owner_alive(v[len(prefix) :])]
    if stale:
        subprocess.run(["docker", "volume", "rm", "-f", *stale], capture_output=True, check=False)


def _owner_alive(rest: str) -> bool:
    pid = rest.split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class TestStack:
    __test__ = False  # not a pytest test class

    dir: Path
    name: str
    ports: dict[str, int]
    files: tuple[str, ...] = ()  # compose files beyond the default, once a test adds some

    @classmethod
    def create(cls, source: Path, dest: Path, *, base_image: str) -> TestStack:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", ".cslaunch"))
        # The pid tells leftovers of a dead run from stacks of a run still going.
        name = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        ports = {
            "BACKEND_PORT": free_port(),
            "FRONTEND_PORT": free_port(),
            "REDIS_PORT": free_port(),
        }
        env = {
            "COMPOSE_PROJECT_NAME": name,
            "BASE_IMAGE": base_image,
            "REDIS_IMAGE": base_image,
            **{k: str(v) for k, v in ports.items()},
        }
        (dest / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return cls(dest, name, ports)

    @classmethod
    def from_files(
        cls,
        dest: Path,
        files: dict[str, str],
        *,
        base_image: str,
        env: dict[str, str] | None = None,
    ) -> TestStack:
        """A small stack made of `files` (path -> text), its project name and BASE_IMAGE in
        `.env` beside `env`."""
        for rel, text in files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        name = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        stack = cls(dest, name, {})
        stack.set_env({"COMPOSE_PROJECT_NAME": name, "BASE_IMAGE": base_image, **(env or {})})
        return stack

    def set_env(self, values: dict[str, str]) -> None:
        """Set variables in the project's `.env`, keeping the others."""
        path = self.dir / ".env"
        lines = path.read_text().splitlines() if path.exists() else []
        kept = [ln for ln in lines if ln.split("=", 1)[0] not in values]
        path.write_text(
            "".join(f"{ln}\n" for ln in kept) + "".join(f"{k}={v}\n" for k, v in values.items())
        )

    def container_env(self, service: str) -> dict[str, str]:
        env = self.inspect(service)["Config"]["Env"]
        return dict(item.split("=", 1) for item in env)

    # --- commands ---------------------------------------------------------------------
    def cslaunch(
        self,
        *args: str,
        timeout: float = 300,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "cslaunch", *args],
            cwd=cwd or self.dir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        file_args = [a for f in self.files for a in ("-f", f)]
        result = subprocess.run(
            ["docker", "compose", *file_args, *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stderr}")
        return result

    def launched(self, *args: str) -> dict[str, Any]:
        """`cslaunch --json ARGS`, which must succeed: its report."""
        result = self.cslaunch("--json", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        assert report["ok"] is True
        return report

    def add_baked_service(self, context: str = "baked") -> tuple[str, ...]:
        """A Python service whose code is COPYed into its image, with no bind mount (by default
        its own copy of the backend in ./baked). Returns the -f arguments that include it."""
        if context == "baked":
            shutil.copytree(
                self.dir / "backend",
                self.dir / "baked",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        self.ports["BAKED_PORT"] = port = free_port()
        (self.dir / "baked.yml").write_text(
            "services:\n"
            "  baked:\n"
            f"    build: {{context: ./{context}, network: host,"
            " args: {BASE_IMAGE: '${BASE_IMAGE}'}}\n"
            "    network_mode: host\n"
            "    command: [python3, -m, app.server]\n"
            "    environment:\n"
            f"      BACKEND_PORT: '{port}'\n"
            "      REDIS_URL: redis://127.0.0.1:${REDIS_PORT}/0\n"
        )
        self.files = ("docker-compose.yml", "baked.yml")
        return ("-f", "docker-compose.yml", "-f", "baked.yml")

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "0", check=False)
        # Every image this project built: Compose labels them with the project, including
        # builds a later build left untagged. The imported base image carries no such label.
        built = subprocess.run(
            ["docker", "image", "ls", "-aq", "--no-trunc", "--filter",
             f"label=com.docker.compose.project={self.name}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if built:
            subprocess.run(
                ["docker", "image", "rm", "-f", *built], capture_output=True, check=False
            )

    def inspect(self, service: str) -> dict[str, Any]:
        cid = self.compose("ps", "-q", service).stdout.split()[0]
        out = subprocess.run(
            ["docker", "inspect", cid], capture_output=True, text=True, check=True
        ).stdout
        data: dict[str, Any] = json.loads(out)[0]
        return data

    def started_at(self, service: str) -> str:
        return str(self.inspect(service)["State"]["StartedAt"])

    # --- the app ----------------------------------------------------------------------
    def url(self, path: str, port: str = "BACKEND_PORT") -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def get(self, path: str, port: str = "BACKEND_PORT") -> Any:
        with urllib.request.urlopen(self.url(path, port), timeout=10) as r:
            body = r.read().decode()
        return json.loads(body) if path.startswith("/api") else body

    def greet(self) -> str:
        return str(self.get("/api/greet?name=t")["message"])

    def greet_on(self, port: str) -> str:
        return str(self.get("/api/greet?name=t", port)["message"])

    def enqueue(self, query: str) -> str:
        """POST /api/jobs?QUERY on the backend: the new job's id."""
        req = urllib.request.Request(self.url(f"/api/jobs?{query}"), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return str(json.loads(r.read())["id"])

    def start_job(self, seconds: float, name: str, timeout: float = 15) -> str:
        """Enqueue a slow job and wait until a worker runs it: its id."""
        job_id = self.enqueue(f"seconds={seconds}&name={name}")
        deadline = time.monotonic() + timeout
        while self.get(f"/api/jobs/{job_id}")["status"] != "started":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        return job_id

    def run_job(self, name: str = "t", timeout: float = 30) -> str:
        job_id = self.enqueue(f"name={name}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/api/jobs/{job_id}")
            if state["status"] == "finished":
                return str(state["result"])
            if state["status"] == "failed":
                raise AssertionError(f"job {job_id} failed")
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def wait_http(self, path: str, port: str = "BACKEND_PORT", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get(path, port)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def edit_keeping_stat(path: Path, old: str, new: str) -> None:
    """Replace text with text of the same length and put mtime back: what `cp -p`, rsync -a
    and unzip do, and what timestamp-based pycs cannot see."""
    assert len(old.encode()) == len(new.encode()), "same size is the point"
    st = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


SCALE_SERVER = '''"""One service of a generated stack: answers GET / with its version and name."""
import http.server
import os

from app.version import VERSION


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{VERSION} {os.environ['SERVICE']}".encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''


def scale_stack(dest: Path, *, services: int, files: int, base_image: str) -> TestStack:
    """A generated stack of `services` Python HTTP services sharing one bind-mounted tree of
    about `files` source files (`app/` plus generated packages under `bulk/`), each on its own
    loopback port (ports["S0"], ...). Every service imports app.version: an edit there is an
    edit every service must serve."""
    src = dest / "src"
    (src / "app").mkdir(parents=True)
    (src / "app" / "__init__.py").write_text("")
    (src / "app" / "version.py").write_text('VERSION = "v1"\n')
    (src / "app" / "server.py").write_text(SCALE_SERVER)
    per_package = 500
    for n in range(max(0, files - 3)):
        package = src / "bulk" / f"p{n // per_package:04d}"
        if n % per_package == 0:
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
        (package / f"m{n % per_package:04d}.py").write_text(
            f"VALUE = {n}\n\n\ndef f():\n    return VALUE\n"
        )
    name = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    ports = {f"S{i}": free_port() for i in range(services)}
    lines = [f"name: {name}", "services:"]
    for i in range(services):
        lines += [
            f"  s{i}:",
            f"    image: {base_image}",
            "    network_mode: host",
            "    working_dir: /app",
            "    command: [python3, -m, app.server]",
            f"    environment: {{SERVICE: s{i}, PORT: '{ports[f'S{i}']}', PYTHONPATH: /app/src}}",
            "    volumes: [./src:/app/src]",
        ]
    (dest / "compose.yaml").write_text("\n".join(lines) + "\n")
    return TestStack(dest, name, ports)


def get_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


PRODLIKE = Path(__file__).resolve().parent / "stacks" / "prodlike"
PROD_FILE = "docker-compose.prod.yml"
PROD_API = "/casestrainer/api"
PROD_WORKERS = ("rqworker", "rqworker2", "rqworker3")


@dataclass
class ProdStack(TestStack):
    """A private copy of tests/stacks/prodlike, the stack shaped like a production compose
    file: used with `-f docker-compose.prod.yml`, on a bridge network, its nginx entry point
    on ports["HTTP_PORT"], its backend on ports["BACKEND_PORT"]. Not started."""

    __test__ = False

    @classmethod
    def create_prod(cls, dest: Path, *, base_image: str) -> ProdStack:
        shutil.copytree(
            PRODLIKE,
            dest,
            ignore=shutil.ignore_patterns("__pycache__", ".cslaunch", ".env", "conf.d"),
        )
        name = f"{PROJECT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        ports = {
            key: free_port() for key in ("BACKEND_PORT", "FRONTEND_PORT", "HTTP_PORT", "HTTPS_PORT")
        }
        env = {
            "COMPOSE_PROJECT_NAME": name,
            "BASE_IMAGE": base_image,
            "REDIS_PASSWORD": secrets.token_hex(16),
            **{k: str(v) for k, v in ports.items()},
        }
        (dest / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        # nginx proxies to the backend by container name, and container names carry the project.
        conf = (dest / "nginx" / "casestrainer.conf.template").read_text()
        (dest / "nginx" / "conf.d").mkdir()
        (dest / "nginx" / "conf.d" / "casestrainer.conf").write_text(
            conf.replace("@PROJECT@", name)
        )
        return cls(dest, name, ports, files=(PROD_FILE,))

    def cslaunch(
        self,
        *args: str,
        timeout: float = 600,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`cslaunch ARGS -f docker-compose.prod.yml`, as that project runs it."""
        return super().cslaunch(*args, "-f", PROD_FILE, timeout=timeout, cwd=cwd, env=env)

    def container(self, service: str) -> str:
        """The container_name the compose file gives the service."""
        return f"{self.name}-{service.removesuffix('-prod')}-prod"

    # --- the app, directly and through nginx ----------------------------------------------
    def api(self, path: str, *, via: str = "BACKEND_PORT", method: str = "GET") -> Any:
        req = urllib.request.Request(self.url(PROD_API + path, via), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def greet(self, via: str = "BACKEND_PORT") -> str:
        return str(self.api("/greet?name=t", via=via)["message"])

    def greet_nginx(self) -> str:
        return self.greet(via="HTTP_PORT")

    def enqueue(self, query: str) -> str:
        return str(self.api(f"/jobs?{query}", method="POST")["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.api(f"/jobs/{job_id}")
        return data

    def workers(self) -> list[dict[str, Any]]:
        """The RQ workers registered in Redis (name, hostname, pid, state, current_job)."""
        return list(self.api("/workers")["workers"])

    def start_job(self, seconds: float, name: str, timeout: float = 30) -> str:
        job_id = self.enqueue(f"seconds={seconds}&name={name}")
        deadline = time.monotonic() + timeout
        while self.job(job_id)["status"] != "started":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        return job_id

    def run_job(self, name: str = "t", timeout: float = 60) -> str:
        job_id = self.enqueue(f"name={name}")
        return str(self.wait_job(job_id, timeout)["result"])

    def wait_job(self, job_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the job finished: its state. Fails on a failed job, and on a job still
        "started" at the deadline whose worker is no longer registered (lost)."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            state = self.job(job_id)
            if not seen or seen[-1] != state["status"]:
                seen.append(state["status"])
            if state["status"] == "finished":
                state["history"] = seen
                return state
            if state["status"] == "failed":
                raise AssertionError(
                    f"job {job_id} failed: {state.get('error')} (states seen: {seen})"
                )
            if time.monotonic() > deadline:
                live = {w["name"] for w in self.workers()}
                lost = state["status"] == "started" and state.get("worker") not in live
                raise AssertionError(
                    f"job {job_id} not finished after {timeout} s: {state}"
                    + (" -- LOST: started on a worker that is gone" if lost else "")
                    + f" (states seen: {seen})"
                )
            time.sleep(0.25)

    def wait_ready(self, timeout: float = 400) -> None:
        """Until every container is healthy (Docker's own schedule: minutes on this stack)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.not_healthy()
            if not pending:
                return
            assert time.monotonic() < deadline, f"not healthy after {timeout} s: {pending}"
            time.sleep(1)

    def not_healthy(self) -> list[str]:
        ids = self.compose("ps", "-aq").stdout.split()
        if not ids:
            return ["no containers"]
        out = subprocess.run(
            ["docker", "inspect", "-f",
             '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} '
             "{{if .State.Health}}{{.State.Health.Status}}{{end}}", *ids],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        pending = []
        for line in out.splitlines():
            service, status, *health = line.split()
            if status != "running" or (health and health[0] != "healthy"):
                pending.append(f"{service}:{health[0] if health else status}")
        return pending if len(out.splitlines()) >= 7 else [*pending, "fewer than 7 containers"]
