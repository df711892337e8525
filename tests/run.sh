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

# Real Jaeger v2, Prometheus 3, Alertmanager 0.3x and helm 4, built from the Go module proxy at the
# versions tests/tools/*/go.mod pin; cached by version, so only a machine's first run builds
# (in the background, while pip installs). Without Go, or if a build fails, build.sh says so
# and the tests of that tool use Debian's.
started=$(date +%s)
tools_out="$(mktemp)"
bash tests/tools/build.sh >"$tools_out" &
tools_pid=$!

# The image test's image, built meanwhile on a debootstrapped Debian base (the base is cached
# once made) on a full run: the build takes a minute of a core that pip, the linters and the
# tests leave mostly idle. The image test waits for it (tests/tools/image.py).
if [ "$#" -eq 0 ]; then
    image_dir="$HOME/.cache/correlator-image/$(pwd | sha256sum | cut -c1-12)"  # per checkout
    python3 tests/tools/image.py "$HOME/.cache/correlator-rootfs" "$image_dir" >/dev/null 2>&1 &
    CORRELATOR_TEST_IMAGE="$image_dir/image.json"
    export CORRELATOR_TEST_IMAGE
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# checkov (the chart's manifests) pins its own dependencies: it gets a virtualenv of its own.
[ -x .venv/checkov/bin/checkov ] || {
    python3 -m venv .venv/checkov
    .venv/checkov/bin/python -m pip install -q --disable-pip-version-check 'checkov==3.3.30'
}

wait "$tools_pid" || true
CORRELATOR_TEST_BIN="$(tail -n 1 "$tools_out")"
export CORRELATOR_TEST_BIN
echo "tools: ready in $(( $(date +%s) - started )) s"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports  # the layers of docs/architecture.md (contracts in pyproject.toml)
# The documentation site: a broken link, a missing page or one left out of the nav fails here.
site_out="$(mktemp -d)"  # not --quiet: it hides the warnings that --strict fails on
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site_out" && rm -rf "$site_out"
# Compatibility: the tests that drive Prometheus and Alertmanager themselves, again against
# Debian's Prometheus 2.42 and Alertmanager 0.25, so older platforms stay supported.
if [ "$#" -eq 0 ]; then
    echo "compatibility run: $(prometheus --version 2>&1 | head -n 1);" \
        "$(prometheus-alertmanager --version 2>&1 | head -n 1)"
    CORRELATOR_TEST_BIN=debian .venv/bin/pytest -q -m "not prometheus3" \
        tests/provisioning/test_rules_in_prometheus.py tests/e2e/test_alertmanager.py \
        tests/backends/test_prometheus.py tests/test_signals.py
fi
# Two processes (the CI machine's cores): every test makes its own databases, ports and
# directories, so they run side by side. CORRELATOR_TEST_WORKERS=0 runs them in this one.
exec .venv/bin/pytest -n "${CORRELATOR_TEST_WORKERS:-2}" "$@"
