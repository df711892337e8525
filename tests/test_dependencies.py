"""The dependencies the image installs: requirements.lock pins every one, with hashes, at or
above the floors in pyproject.toml (versions with known vulnerabilities are below them), and
the Dockerfile installs exactly that lock before correlator without dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# Fixed versions of known vulnerabilities: the floor each must at least be.
FIXED = {"aiohttp": "3.13.3", "h11": "0.16", "jinja2": "3.1.6", "httpx": "0.28.1"}


def _locked() -> dict[str, tuple[Version, list[str]]]:
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", block)
        if match:
            name = canonicalize_name(match.group(1).split("[")[0])
            pins[name] = (Version(match.group(2)), re.findall(r"--hash=sha256:\w+", block))
    return pins


def test_every_locked_package_has_hashes_and_meets_the_floors() -> None:
    pins = _locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name][0]), (name, pins[name][0])
    assert all(hashes for _, hashes in pins.values())
    for name, fixed in FIXED.items():
        floors = [Requirement(d) for d in project["dependencies"]]
        (floor,) = [r for r in floors if canonicalize_name(r.name) == name]
        assert all(Version(s.version) >= Version(fixed) for s in floor.specifier), (name, floor)
        assert pins[name][0] >= Version(fixed)


def test_the_image_installs_the_lock_with_hashes_then_correlator_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-compile --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-compile --no-deps ." in dockerfile
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text()
