"""The image test's image: Debian's buildah (chroot isolation, no daemon) builds the Dockerfile on
a base made with debootstrap (tests/tools/rootfs.py), since no image registry is reachable.
Standard library only: tests/run.sh runs it with the system python3 in the background, once the
base is made, while pip installs and the linters run, so the suite does not wait the minute a
build takes on two cores. The image test (tests/test_image.py) uses what it built, or builds
inline the same way when it was not started.

    python3 tests/tools/image.py CACHE DIR   # the base in CACHE (reused), the image in DIR

DIR/image.json holds {"root", "container", "size", "build_s", "base_s"} once built, or
{"error"} if the build failed; the test reads it when it has appeared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rootfs import make

REPO = Path(__file__).resolve().parents[2]
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's; pip in the build needs it
TAG = "localhost/correlator:test"


@dataclass(frozen=True)
class Buildah:
    """buildah on storage of its own (vfs, below `root`)."""

    root: Path

    def command(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]

    def __call__(self, *args: str, timeout_s: float = 600) -> str:
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout.strip()


def build(rootfs: Path, root: Path) -> dict[str, object]:
    """Build the image on `rootfs` into buildah storage below `root`; a working container of it
    is made for the test to run commands in."""
    buildah = Buildah(root)
    started = time.monotonic()
    base = buildah("from", "scratch")
    buildah("copy", "--quiet", base, str(rootfs), "/")
    buildah("config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", base)
    buildah("commit", "--quiet", base, "localhost/debian-python:test")
    buildah("rm", base)
    based = time.monotonic()
    buildah(
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "-v",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--build-arg",
        "BASE=localhost/debian-python:test",
        "-t",
        TAG,
        str(REPO),
    )
    build_s = time.monotonic() - based
    listed = json.loads(buildah("images", "--json", TAG))
    return {
        "root": str(root),
        "container": buildah("from", TAG),
        "size": str(listed[0]["size"]),
        "build_s": round(build_s, 1),
        "base_s": round(based - started, 1),
    }


def remove(root: Path) -> None:
    """Remove the containers and storage below `root`."""
    subprocess.run(Buildah(root).command("rm", "--all"), capture_output=True, check=False)
    subprocess.run(
        Buildah(root).command("rmi", "--all", "--force"), capture_output=True, check=False
    )
    shutil.rmtree(root, ignore_errors=True)


def main(cache: Path, directory: Path) -> int:
    if directory.exists():  # an earlier run's, which its test did not remove
        remove(directory)
    directory.mkdir(parents=True)
    result = directory / "image.json"
    try:
        built: dict[str, object] = build(make(cache), directory / "buildah")
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        built = {"error": f"{type(exc).__name__}: {exc}"}
    partial = result.with_suffix(".partial")
    partial.write_text(json.dumps(built))
    partial.rename(result)  # whole or absent: the test waits for it
    print(result)
    return 0 if "error" not in built else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
