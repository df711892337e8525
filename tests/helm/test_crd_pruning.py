"""CRD checks prune as the API server prunes: an undeclared field fails, it is not dropped."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from correlator.models.crd import webapplication_crd
from tests.support import structural

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "tests" / "contracts"
SERVICE_MONITORS = CONTRACTS / "prometheus-operator" / "monitoring.coreos.com_servicemonitors.yaml"


def served_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


def service_monitor(endpoint: dict[str, Any]) -> dict[str, Any]:
    """What the chart renders (templates/servicemonitor.yaml), with one endpoint."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "correlator", "namespace": "correlator"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "correlator"}},
            "namespaceSelector": {"matchNames": ["correlator"]},
            "endpoints": [endpoint],
        },
    }


@pytest.fixture(scope="module")
def service_monitor_schema() -> dict[str, Any]:
    return served_schema(yaml.safe_load(SERVICE_MONITORS.read_text()), "v1")


def test_the_charts_service_monitor_is_kept_whole(service_monitor_schema: dict[str, Any]) -> None:
    monitor = service_monitor({"port": "http", "path": "/metrics", "interval": "30s"})
    assert structural.pruned_fields(monitor, service_monitor_schema) == []
    structural.validate(monitor, service_monitor_schema)


def test_a_misspelt_service_monitor_fails_where_the_api_server_would_drop_fields(
    service_monitor_schema: dict[str, Any],
) -> None:
    misspelt = service_monitor({"prot": "http", "path": "/metrics", "intervall": "30s"})
    # JSON Schema alone accepts it: a misspelt name is merely an unknown property.
    jsonschema.Draft4Validator(service_monitor_schema).validate(misspelt)
    assert structural.pruned_fields(misspelt, service_monitor_schema) == [
        ".spec.endpoints[0].prot",
        ".spec.endpoints[0].intervall",
    ]
    with pytest.raises(jsonschema.ValidationError, match=r"prunes: .*\.prot, .*\.intervall$"):
        structural.validate(misspelt, service_monitor_schema)
    # `endpoint` for `endpoints`: dropped too (and v0.93's schema requires `endpoints`).
    misspelt["spec"]["endpoint"] = misspelt["spec"].pop("endpoints")
    assert structural.pruned_fields(misspelt, service_monitor_schema) == [".spec.endpoint"]
    with pytest.raises(jsonschema.ValidationError):
        structural.validate(misspelt, service_monitor_schema)


def test_preserve_unknown_fields_and_maps_keep_what_they_hold() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                    "empty": {"type": "object"},
                },
            }
        },
    }
    obj = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n", "annotations": {"a": "b"}},
        "spec": {
            "free": {"anything": {"deep": 1}},
            "labels": {"any-key": "v"},
            "items": [{"name": "a"}, {"name": "b", "nmae": "typo"}],
            "empty": {"dropped": True},
        },
        "status": {"phase": "Ready"},
    }
    assert structural.pruned_fields(obj, schema) == [
        ".spec.items[1].nmae",
        ".spec.empty.dropped",
        ".status",
    ]


def webapplication_examples() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "WebApplication"
    ]


def test_the_webapplication_examples_lose_no_field_to_our_crd() -> None:
    crd = webapplication_crd()
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))["name"]
    schema = served_schema(crd, version)
    examples = webapplication_examples()
    assert examples
    for example in examples:
        structural.validate(example, schema)
    misspelt = copy.deepcopy(examples[0])
    misspelt["spec"]["imagePullPolicyy"] = "Always"
    assert structural.pruned_fields(misspelt, schema) == [".spec.imagePullPolicyy"]
