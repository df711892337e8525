"""Which build of each real server the tests run: the ones tests/tools/build.sh built from the Go
module proxy (Jaeger v2, Prometheus 3, Alertmanager 0.3x, helm 4), else Debian's packages.

tests/run.sh exports CORRELATOR_TEST_BIN, the directory build.sh printed. Without it (pytest run by
hand) the newest build in the default cache is used. CORRELATOR_TEST_BIN=debian runs Debian's
Prometheus 2.42 and Alertmanager 0.25 instead: the compatibility run.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

# Debian's package names for the tools it has; Jaeger and helm it does not package.
DEBIAN = {
    "prometheus": "prometheus",
    "promtool": "promtool",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "amtool",
}
CACHE = Path(
    os.environ.get("CORRELATOR_TOOLS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "correlator-tools"
)


def compatibility_run() -> bool:
    return os.environ.get("CORRELATOR_TEST_BIN") == "debian"


@functools.cache
def built_dir() -> Path | None:
    configured = os.environ.get("CORRELATOR_TEST_BIN")
    if configured == "debian":
        return None
    if configured:
        return Path(configured)
    candidates = sorted(CACHE.glob("bin-*"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def binary(name: str) -> str:
    """The path of `name`; raises naming how to get it (a test that needs it fails, not skips)."""
    built = built_dir()
    if built is not None and (built / name).exists():
        return str(built / name)
    found = shutil.which(DEBIAN.get(name, name))
    if found:
        return found
    raise RuntimeError(
        f"{name} is neither built nor installed: run `bash tests/tools/build.sh` "
        "(tests/run.sh does), or apt-get install prometheus prometheus-alertmanager"
    )


@functools.cache
def version(name: str) -> str:
    """`name`'s own word on its version, e.g. `prometheus 3.16.0 (built)`."""
    try:
        path = binary(name)
    except RuntimeError as exc:
        return f"{name}: missing ({exc})"
    argv = [path, "version"] if name in {"helm"} else [path, "--version"]
    answer = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    text = answer.stdout + answer.stderr
    match = re.search(r"version[ :]*v?(\d+\.\d+\.\d+[\w.+-]*)", text) or re.search(
        r"v?(\d+\.\d+\.\d+)", text
    )
    where = "built" if built_dir() is not None and path.startswith(str(built_dir())) else "debian"
    return f"{name} {match.group(1) if match else '?'} ({where}: {path})"


def major_minor(name: str) -> tuple[int, int]:
    match = re.search(r" (\d+)\.(\d+)\.", version(name))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
