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
    prometheus prometheus-alertmanager python3-venv postgresql chromium \
    buildah debootstrap >/dev/null

# PostgreSQL: Debian's server, started by us on 127.0.0.1:5432 (user postgres, trust on loopback).
bash tests/tools/postgres.sh

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
