"""The chart through the helm CLI itself (v4, built by tests/tools/build.sh): what users run.

`helm lint --strict` and `helm template` over the same values matrix as the SDK checks in
test_chart.py, and the CLI's rendering equal to the SDK's object for object (the generated
token and the checksums that hash it aside)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.test_chart import CHART, MATRIX, NAMESPACE, RELEASE, render
from tests.support import tools


@pytest.fixture(scope="module")
def helm_cli() -> str:
    path = tools.binary("helm")
    assert tools.major_minor("helm") >= (4, 0), tools.version("helm")
    return path


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def comparable(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Objects by kind and name, without what differs between two renders by design."""
    out = {}
    for obj in copy.deepcopy(objects):
        if obj["kind"] == "Secret":
            obj.pop("data", None)
            obj.pop("stringData", None)
        annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations")
        if annotations:
            for key in [k for k in annotations if k.startswith("checksum/")]:
                del annotations[key]
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_helm_lint_strict_passes(helm_cli: str, tmp_path: Path, case: str) -> None:
    linted = subprocess.run(
        [helm_cli, "lint", "--strict", str(CHART), "-f", str(values_file(tmp_path, MATRIX[case]))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_helm_template_renders_what_the_sdk_renders(
    helm_cli: str, tmp_path: Path, case: str
) -> None:
    rendered = subprocess.run(
        [
            helm_cli,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "-f",
            str(values_file(tmp_path, MATRIX[case])),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    cli = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    sdk = render(helm.Chart.load(CHART), MATRIX[case])
    assert comparable(cli) == comparable(sdk)


def test_helm_lint_fails_on_values_the_schema_refuses(helm_cli: str, tmp_path: Path) -> None:
    linted = subprocess.run(
        [
            helm_cli,
            "lint",
            "--strict",
            str(CHART),
            "-f",
            str(values_file(tmp_path, {"replicaCount": "three"})),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode != 0
    assert "replicaCount" in linted.stdout + linted.stderr
