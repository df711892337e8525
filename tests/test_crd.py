"""The WebApplication CRD: generated from the model, shipped in the chart, and as strict."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from correlator.discovery.files import load_manifests
from correlator.models.crd import webapplication_crd

ROOT = Path(__file__).resolve().parents[1]
CHART_CRD = ROOT / "helm" / "correlator" / "crds" / "webapplication.yaml"


def schema() -> dict[str, Any]:
    crd = webapplication_crd()
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def test_chart_ships_the_current_crd() -> None:
    assert yaml.safe_load(CHART_CRD.read_text()) == webapplication_crd(), (
        "regenerate: correlator crd > helm/correlator/crds/webapplication.yaml"
    )
    printed = subprocess.run(
        [sys.executable, "-m", "correlator", "crd"], capture_output=True, text=True, check=True
    ).stdout
    assert yaml.safe_load(printed) == webapplication_crd()


STRUCTURAL_KEYWORDS = {
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "nullable",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "maxItems",
    "pattern",
    "enum",
    "description",
}


def test_schema_is_structural() -> None:
    """Only keywords a structural schema allows, and every node typed: no $ref, no anyOf."""

    def walk(node: dict[str, Any], where: str) -> None:
        assert set(node) <= STRUCTURAL_KEYWORDS, (where, set(node) - STRUCTURAL_KEYWORDS)
        assert "type" in node, where
        for name, child in node.get("properties", {}).items():
            walk(child, f"{where}.{name}")
        if "items" in node:
            walk(node["items"], f"{where}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}{{}}")

    walk(schema(), "")


def test_every_example_manifest_passes_the_crd_schema() -> None:
    manifests = load_manifests(ROOT / "examples")
    assert manifests.apps
    for document in yaml.safe_load_all((ROOT / "examples" / "catalog.yaml").read_text()):
        jsonschema.Draft4Validator(schema()).validate(document)
    for document in yaml.safe_load_all((ROOT / "examples" / "checkout.yaml").read_text()):
        jsonschema.Draft4Validator(schema()).validate(document)


BASE = {
    "apiVersion": "platform.correlator.dev/v1alpha1",
    "kind": "WebApplication",
    "metadata": {"name": "a"},
    "spec": {"image": "x", "team": "t"},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "slo"), {"availability": 100}),
        (("spec", "slo"), {"availability": 0}),
        (("spec", "slo"), {"latency": {"thresholdMs": 300, "target": 99}}),
        (("spec", "team"), "Not-A-Label"),
        (("spec", "team"), "t" * 64),
        (("spec", "port"), 0),
        (("spec", "replicas"), "three"),
        (("spec", "observability"), {"metricLabels": {"pod": 'pod"name'}}),
    ],
)
def test_the_api_server_would_refuse_what_the_model_refuses(
    path: tuple[str, ...], value: Any
) -> None:
    document = copy.deepcopy(BASE)
    document[path[0]][path[1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema()).validate(document)
