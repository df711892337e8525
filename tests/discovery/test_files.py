"""WebApplication manifests from a directory: valid ones loaded, bad ones named precisely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from correlator.discovery.files import load_manifests

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
apiVersion: platform.correlator.dev/v1alpha1
kind: WebApplication
metadata: {name: checkout, namespace: shop}
spec: {image: "registry/checkout:1", team: payments, slo: {availability: 99.9}}
"""


def manifest(**spec_and_meta: str) -> str:
    name = spec_and_meta.pop("name", "app")
    spec = spec_and_meta.pop("spec", "{image: x, team: t}")
    return (
        "apiVersion: platform.correlator.dev/v1alpha1\nkind: WebApplication\n"
        f"metadata: {{name: {name}, namespace: ns}}\nspec: {spec}\n"
    )


BAD = [
    ("missing image", manifest(spec="{team: t}"), "spec.image", "Field required"),
    ("missing team", manifest(spec="{image: x}"), "spec.team", "Field required"),
    (
        "replicas a string",
        manifest(spec="{image: x, team: t, replicas: many}"),
        "spec.replicas",
        "integer",
    ),
    ("64-character name", manifest(name="a" * 64), "metadata.name", "at most 63"),
    ("uppercase name", manifest(name="Checkout"), "metadata.name", "DNS-1123"),
    ("unicode name", manifest(name="caf\u00e9"), "metadata.name", "DNS-1123"),
    (
        "SLO of 100%",
        manifest(spec="{image: x, team: t, slo: {availability: 100}}"),
        "spec.slo.availability",
        "strictly between 0 and 100",
    ),
    (
        "SLO of 0%",
        manifest(spec="{image: x, team: t, slo: {availability: 0}}"),
        "spec.slo.availability",
        "strictly between 0 and 100",
    ),
    (
        "SLO not a number",
        manifest(spec="{image: x, team: t, slo: {availability: high}}"),
        "spec.slo.availability",
        "decimal",
    ),
    (
        "latency off the histogram",
        manifest(spec="{image: x, team: t, slo: {latency: {thresholdMs: 300, target: 99}}}"),
        "spec.slo.latency.thresholdMs",
        "not a bucket",
    ),
    (
        "unknown field",
        manifest(spec="{image: x, team: t, replica: 3}"),
        "spec.replica",
        "Extra inputs",
    ),
    (
        "bad label name",
        manifest(spec="{image: x, team: t, observability: {metricLabels: {pod: 'pod,name'}}}"),
        "spec.observability.metricLabels.pod",
        "label name",
    ),
    ("port out of range", manifest(spec="{image: x, team: t, port: 70000}"), "spec.port", "65535"),
    ("spec a list", manifest(spec="[1, 2]"), "spec", "valid dictionary"),
    ("broken YAML", "kind: WebApplication\nmetadata: {name: [\n", "(yaml)", "line"),
    ("a list document", "- kind: WebApplication\n", "(document)", "expected a mapping"),
]


@pytest.mark.parametrize(
    ("text", "field", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_manifest_is_reported_with_file_and_field_and_the_others_still_load(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(text)
    loaded = load_manifests(tmp_path)
    assert [a.app.key for a in loaded.apps] == ["shop/checkout"]
    assert len(loaded.errors) >= 1
    error = loaded.errors[0]
    assert error.path == tmp_path / "bad.yaml"
    assert error.field == field, str(error)
    assert message in error.message, str(error)


def test_other_kinds_and_empty_documents_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "mixed.yml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n---\n" + VALID
    )
    loaded = load_manifests(tmp_path)
    assert [a.app.key for a in loaded.apps] == ["shop/checkout"]
    assert loaded.errors == []


def test_the_same_app_in_two_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    sub = tmp_path / "copy"
    sub.mkdir()
    (sub / "b.yaml").write_text(VALID)
    loaded = load_manifests(tmp_path)
    assert len(loaded.apps) == 1
    assert "also defined in" in str(loaded.errors[0])


def test_unreadable_and_non_utf8_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\u00e9".encode("latin-1"))
    loaded = load_manifests(tmp_path)
    assert "not UTF-8" in str(loaded.errors[0])
    assert load_manifests(tmp_path / "missing").errors[0].message == "is not a directory"


def test_shipped_examples_are_valid() -> None:
    loaded = load_manifests(ROOT / "examples")
    assert loaded.errors == []
    assert sorted(a.app.key for a in loaded.apps) == [
        "back-office/batch-reports",
        "shop/catalog",
        "shop/checkout",
    ]


def test_validate_command_exits_non_zero_with_file_field_messages(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(
        manifest(spec="{image: x, team: t, slo: {availability: 100}}")
    )
    result = subprocess.run(
        [sys.executable, "-m", "correlator", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}: spec.slo.availability: " in result.stderr
    assert "ok: shop/checkout" in result.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "correlator", "validate", str(ROOT / "examples")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
