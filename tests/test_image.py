"""The container image, built for real: Debian's buildah (chroot isolation, no daemon) on a base
made here with debootstrap from Debian's packages, since no image registry is reachable.

Built once (about 40 s for the base, 50 s for the image on two cores) by tests/tools/image.py:
tests/run.sh starts it in the background before pip installs, and the tests wait for it; a
session that was not started so builds it here (`CORRELATOR_TEST_ROOTFS=/path` reuses a
debootstrapped base). Both tests use that image.
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
from tests.tools.image import TAG, Buildah, build, remove
from tests.tools.rootfs import debian_mirror_and_suite, debootstrap

BUILD_WAIT_S = 600
pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Image:
    buildah: Buildah
    container: str
    size: str
    build_s: float


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    """The image tests/run.sh is building in the background (CORRELATOR_TEST_IMAGE names the
    result it writes), else one built here the same way."""
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: tests/run.sh installs it (apt-get install)")
    started = os.environ.get("CORRELATOR_TEST_IMAGE")
    if started:
        result = Path(started)
        deadline = time.monotonic() + BUILD_WAIT_S
        while not result.exists():
            if time.monotonic() > deadline:
                pytest.fail(f"the image build tests/run.sh started wrote no {result}")
            time.sleep(1)
        built = json.loads(result.read_text())
        scratch = result.parent
    else:
        scratch = Path(tempfile.mkdtemp(prefix="correlator-image-"))
        rootfs = os.environ.get("CORRELATOR_TEST_ROOTFS")
        try:
            if rootfs is None:
                rootfs = str(scratch / "rootfs")
                debootstrap(Path(rootfs), *debian_mirror_and_suite())
            built = build(Path(rootfs), scratch / "buildah")
        except (OSError, subprocess.SubprocessError, AssertionError) as exc:
            built = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        if "error" in built:
            pytest.fail(f"the image did not build: {built['error']}")
        print(
            f"\nimage: base {built['base_s']} s, build {built['build_s']} s, size {built['size']}"
        )
        yield Image(
            Buildah(Path(str(built["root"]))),
            str(built["container"]),
            str(built["size"]),
            float(str(built["build_s"])),
        )
    finally:
        remove(scratch)


def run_in(image: Image, *command: str, env: dict[str, str] | None = None) -> str:
    options = [f"--env={key}={value}" for key, value in (env or {}).items()]
    return image.buildah("run", "--isolation", "chroot", *options, image.container, "--", *command)


def test_the_image_runs_correlator_as_a_non_root_user_without_build_tools(image: Image) -> None:
    assert run_in(image, "correlator", "version") == f"correlator {__version__}"
    assert run_in(image, "id", "-u") == "10001"
    found = run_in(image, "sh", "-c", "command -v pip pip3 gcc cc; ls -d /src 2>/dev/null; true")
    assert found == ""  # no installer, no compiler, no sources: they stayed in the build stage
    assert run_in(image, "python3", "-c", "import correlator.assets, pandas; print('ok')") == "ok"
    inspected = json.loads(image.buildah("inspect", "--type", "image", TAG))
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
