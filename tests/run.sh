#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh Debian machine, then runs lint, types and tests.
# The README's test command and .ci/run both call exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Real Prometheus, promtool, Alertmanager and amtool are test dependencies, not mocks; Chromium
# renders the incident page headless; buildah and debootstrap build the container image.
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    prometheus prometheus-alertmanager python3-venv postgresql-client chromium \
    buildah debootstrap >/dev/null

# PostgreSQL is expected on 127.0.0.1:5432 (trust auth); start the local cluster if it is down.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -h 127.0.0.1 -p 5432 || {
        echo "PostgreSQL is not reachable on 127.0.0.1:5432 (user postgres, trust auth)" >&2
        exit 1
    }
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# checkov (the chart's manifests) pins its own dependencies: it gets a virtualenv of its own.
[ -x .venv/checkov/bin/checkov ] || {
    python3 -m venv .venv/checkov
    .venv/checkov/bin/python -m pip install -q --disable-pip-version-check 'checkov==3.3.30'
}

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
