"""The image test's base: a minimal Debian with python3, made with debootstrap from the mirror
this machine's apt uses (no image registry is reachable). Standard library only:
tests/tools/image.py makes it first, in the background while pip installs.

    python3 tests/tools/rootfs.py DIR    # prints DIR/<suite> once it holds a finished rootfs

A finished rootfs is marked and reused by later runs; a failed one is removed, and the image
test then makes its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def debian_mirror_and_suite() -> tuple[str, str]:
    """The Debian mirror and release this machine's apt is configured with."""
    suite = "bookworm"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        found = re.search(r"^VERSION_CODENAME=(\w+)", os_release.read_text(), re.M)
        suite = found.group(1) if found else suite
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        if not path.is_file():
            continue
        for url in re.findall(r"(?:^URIs:|^deb(?:\s+\[[^]]*])?)\s+(\S+)", path.read_text(), re.M):
            if "debian" in url and "security" not in url:
                return url, suite
    return "http://deb.debian.org/debian", suite


def debootstrap(rootfs: Path, mirror: str, suite: str) -> None:
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", suite,
         str(rootfs), mirror],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip


def make(cache: Path) -> Path:
    """The finished rootfs below `cache`, debootstrapped first unless an earlier run did."""
    mirror, suite = debian_mirror_and_suite()
    rootfs = cache / suite
    done = cache / f"{suite}.done"
    if not done.exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        try:
            debootstrap(rootfs, mirror, suite)
        except BaseException:
            shutil.rmtree(rootfs, ignore_errors=True)
            raise
        done.write_text(mirror + "\n")
    return rootfs


def main(cache: Path) -> int:
    try:
        print(make(cache))
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"rootfs: debootstrap failed ({exc}); the image test makes its own", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
