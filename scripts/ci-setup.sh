#!/usr/bin/env bash
# What the sandbox tests need, as root and idempotent: bubblewrap, a running Docker daemon and
# the image redraft-sandbox:latest (built from Debian packages, no registry). Quiet when all
# goes well; on a failure, says which step failed and shows its output.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG=$(mktemp /tmp/redraft-ci-setup.XXXXXX)
trap 'rm -f "$LOG"' EXIT
IMAGE=redraft-sandbox:latest

step() {
    local what=$1
    shift
    if ! "$@" >"$LOG" 2>&1; then
        echo "ci-setup: $what failed:" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "ci-setup: run as root (it installs packages and starts dockerd)" >&2
    exit 1
fi

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get update" apt-get update
    step "apt-get install ${missing[*]}" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "ci-setup: dockerd did not answer within 60 s; its log (/tmp/dockerd.log):" >&2
        tail -n 40 /tmp/dockerd.log >&2
        exit 1
    fi
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    step "pip install -e .[docker]" \
        python -m pip install --quiet --disable-pip-version-check -e ".[docker]"
    step "redraft sandbox build-image" \
        redraft sandbox build-image
fi
