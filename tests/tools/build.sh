#!/usr/bin/env bash
# Builds the real servers the tests run, from the Go module proxy at the versions pinned in
# tests/tools/*/go.mod (with their go.sum): Jaeger v2, Prometheus 3 with promtool, Alertmanager
# 0.3x with amtool, and the helm CLI. Each is cached under $CORRELATOR_TOOLS_CACHE (default
# ~/.cache/correlator-tools), keyed by its go.mod, go.sum and the Go version, so only the first
# run on a machine builds. Prints each tool's version and build time on stderr, and on stdout the
# directory that holds them all (symlinks), for CORRELATOR_TEST_BIN.
#
# A tool that cannot be built is reported, loudly, and left out of that directory: the tests then
# fall back to Debian's package for it (tests/support/tools.py says which one ran).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CORRELATOR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/correlator-tools}"
mkdir -p "$cache"
go_version="$(go env GOVERSION 2>/dev/null)" || { echo "build.sh: no Go toolchain" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

declare -A commands=(
    [jaeger]="github.com/jaegertracing/jaeger/cmd/jaeger"
    [prometheus]="github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool"
    [alertmanager]="github.com/prometheus/alertmanager/cmd/alertmanager github.com/prometheus/alertmanager/cmd/amtool"
    [helm]="helm.sh/helm/v4/cmd/helm"
)
# The module each tool's version is read from, and where its --version string is stamped.
declare -A modules=(
    [jaeger]="github.com/jaegertracing/jaeger"
    [prometheus]="github.com/prometheus/prometheus"
    [alertmanager]="github.com/prometheus/alertmanager"
    [helm]="helm.sh/helm/v4"
)

bin="$cache/bin-$(cat "$here"/*/go.sum "$here"/*/go.mod | sha256sum | cut -c1-12)"
mkdir -p "$bin"
for tool in jaeger prometheus alertmanager helm; do
    dir="$here/$tool"
    version="$(cd "$dir" && go list -m -f '{{.Version}}' "${modules[$tool]}")"
    key="$(cat "$dir/go.mod" "$dir/go.sum" <(echo "$go_version") | sha256sum | cut -c1-12)"
    out="$cache/$tool-$version-$key"
    if [ -f "$out/.built" ]; then
        echo "tools: $tool $version (cached, built in $(cat "$out/.built") s with $go_version)" >&2
    else
        rm -rf "$out" && mkdir -p "$out"
        started=$(date +%s)
        case "$tool" in
            # Prometheus 3.x is published as module v0.3XY.Z: release 3.XY.Z.
            prometheus) release="${version#v0.}" && release="${release:0:1}.${release:1}"
                stamp="-X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=module-proxy" ;;
            jaeger) stamp="-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" ;;
            alertmanager) stamp="-X github.com/prometheus/common/version.Version=${version#v} -X github.com/prometheus/common/version.Branch=module-proxy" ;;
            helm) stamp="-X helm.sh/helm/v4/internal/version.version=$version" ;;
        esac
        moddir="$dir"
        if [ "$tool" = alertmanager ]; then
            # Its module embeds the web UI from ui/app/dist, which upstream builds with npm and
            # leaves out of the module: build against a copy with a placeholder page instead.
            # The API the tests use is unchanged; only the browser UI is missing.
            moddir="$out/module" && src="$out/alertmanager-src"
            mkdir -p "$moddir" "$src"
            upstream="$(cd "$dir" && go mod download -json "${modules[$tool]}@$version" \
                | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
            cp -r "$upstream/." "$src/" && chmod -R u+w "$src"
            for ui in elm mantine; do
                mkdir -p "$src/ui/app/dist/$ui"
                echo "<!doctype html><title>Alertmanager</title>UI not built" \
                    > "$src/ui/app/dist/$ui/index.html"
            done
            cp "$dir/go.mod" "$dir/go.sum" "$moddir/"
            (cd "$moddir" && go mod edit -replace "${modules[$tool]}=$src")
        fi
        # shellcheck disable=SC2086
        if (cd "$moddir" && go build -trimpath -ldflags "-s -w $stamp" -o "$out/" ${commands[$tool]}) \
            >"$out/build.log" 2>&1; then
            echo $(( $(date +%s) - started )) > "$out/.built"
            echo "tools: $tool $version built in $(cat "$out/.built") s with $go_version" >&2
        else
            echo "tools: BUILD FAILED for $tool $version; its tests use Debian's package instead:" >&2
            tail -n 20 "$out/build.log" >&2
            continue
        fi
    fi
    for exe in "$out"/*; do
        [ -x "$exe" ] && [ -f "$exe" ] && ln -sfn "$exe" "$bin/$(basename "$exe")"
    done
done
echo "$bin"
