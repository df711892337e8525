"""The container image, built for real: Debian's buildah (chroot isolation, no daemon) on a base
made here with debootstrap from Debian's packages, since no image registry is reachable.

The session builds once (about 40 s for the base, 50 s for the image on two cores); both tests
use that image. `CORRELATOR_TEST_ROOTFS=/path` reuses a debootstrapped directory instead:
tests/run.sh makes one in the background (tests/tools/rootfs.py) while pip installs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from correlator import __version__
from tests.tools.rootfs import debian_mirror_and_suite, debootstrap

REPO = Path(__file__).resolve().parent.parent
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's; pip in the build needs it
pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Buildah:
    """buildah on storage of its own (vfs, in a temporary directory)."""

    root: Path

    def __call__(self, *args: str, timeout_s: float = 600) -> str:
        command = [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout.strip()

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


@dataclass(frozen=True)
class Image:
    buildah: Buildah
    container: str
    size: str
    build_s: float


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: tests/run.sh installs it (apt-get install)")
    with tempfile.TemporaryDirectory(prefix="correlator-image-") as scratch:
        work = Path(scratch)
        rootfs = os.environ.get("CORRELATOR_TEST_ROOTFS")
        started = time.monotonic()
        if rootfs is None:
            rootfs = str(work / "rootfs")
            debootstrap(Path(rootfs), *debian_mirror_and_suite())
        buildah = Buildah(work / "buildah")
        base = buildah("from", "scratch")
        buildah("copy", "--quiet", base, rootfs, "/")
        buildah("config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", base)
        buildah("commit", "--quiet", base, "localhost/debian-python:test")
        buildah("rm", base)
        built = time.monotonic()
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
            "localhost/correlator:test",
            str(REPO),
        )
        build_s = time.monotonic() - built
        listed = json.loads(buildah("images", "--json", "localhost/correlator:test"))
        size = str(listed[0]["size"])
        container = buildah("from", "localhost/correlator:test")
        print(f"\nimage: base {built - started:.0f} s, build {build_s:.0f} s, size {size}")
        try:
            yield Image(buildah, container, size, build_s)
        finally:
            subprocess.run(buildah.command("rm", "--all"), capture_output=True, check=False)


def run_in(image: Image, *command: str, env: dict[str, str] | None = None) -> str:
    options = [f"--env={key}={value}" for key, value in (env or {}).items()]
    return image.buildah("run", "--isolation", "chroot", *options, image.container, "--", *command)


def test_the_image_runs_correlator_as_a_non_root_user_without_build_tools(image: Image) -> None:
    assert run_in(image, "correlator", "version") == f"correlator {__version__}"
    assert run_in(image, "id", "-u") == "10001"
    found = run_in(image, "sh", "-c", "command -v pip pip3 gcc cc; ls -d /src 2>/dev/null; true")
    assert found == ""  # no installer, no compiler, no sources: they stayed in the build stage
    assert run_in(image, "python3", "-c", "import correlator.assets, pandas; print('ok')") == "ok"
    inspected = json.loads(image.buildah("inspect", "--type", "image", "localhost/correlator:test"))
    config = inspected["OCIv1"]["config"]
    assert config["Entrypoint"] == ["correlator"]
    assert config["Cmd"] == ["serve"]
    assert config["User"] == "10001:10001"
    assert "Healthcheck" not in inspected["Docker"]["config"] or not inspected["Docker"][
        "config"
    ].get("Healthcheck")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_in_the_image_answers_readyz(image: Image) -> None:
    port = free_port()
    env = {
        "CORRELATOR_SERVER_PORT": str(port),
        "CORRELATOR_AUTH_BEARER_TOKEN": "image-test-token",
    }
    options = [f"--env={key}={value}" for key, value in env.items()]
    # chroot isolation shares the host's network: the server is on 127.0.0.1:port.
    server = subprocess.Popen(
        image.buildah.command(
            "run", "--isolation", "chroot", *options, image.container, "--", "correlator", "serve"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answer = None
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as got:
                    answer = (got.status, got.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert answer is not None, "serve never answered /readyz"
        assert answer[0] == 200
        assert b"ready" in answer[1]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert b'"listening"' in output
    # The default store is a SQLite file in the image's working directory, writable by its user.
    assert "correlator.db" in run_in(image, "ls", "/var/lib/correlator")
