"""The WebApplication CustomResourceDefinition, generated from the model (pure).

Kubernetes wants a structural OpenAPI 3.0 schema: no $ref, no anyOf for optional fields,
`nullable` instead of a null type. The schema is derived from `WebAppSpec`, so the CRD that
the API server checks and the model correlator parses cannot drift apart; a test checks that
the chart's copy (helm/correlator/crds/) is current (`correlator crd` prints it).
"""

from __future__ import annotations

from typing import Any

from correlator.models.webapp import DEFAULT_API_GROUP, DEFAULT_API_VERSION, KIND, WebAppSpec

_KEEP = {
    "type",
    "properties",
    "required",
    "items",
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


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        return _structural({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option != {"type": "null"}]
        nullable = len(options) < len(node["anyOf"])
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if {option.get("type") for option in options} == {"number", "string"}:
            merged: dict[str, Any] = {**rest, "type": "number"}  # a decimal: YAML writes a number
        else:
            (only,) = options
            merged = {**rest, **only}
        converted = _structural(merged, defs)
        if nullable:
            converted["nullable"] = True
        return converted
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            result[key] = {name: _structural(child, defs) for name, child in value.items()}
        elif key == "items":
            result[key] = _structural(value, defs)
        else:
            result[key] = value
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        result["additionalProperties"] = _structural(node["additionalProperties"], defs)
    return result


_CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "observedGeneration": {"type": "integer"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
    },
}


def webapplication_crd(
    group: str = DEFAULT_API_GROUP, version: str = DEFAULT_API_VERSION
) -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) of WebApplication."""
    schema = WebAppSpec.model_json_schema(by_alias=True)
    spec_schema = _structural(schema, schema.get("$defs", {}))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"webapplications.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": "webapplications",
                "singular": "webapplication",
                "shortNames": ["webapp"],
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Team", "type": "string", "jsonPath": ".spec.team"},
                        {
                            "name": "Availability",
                            "type": "number",
                            "jsonPath": ".spec.slo.availability",
                        },
                        {
                            "name": "Provisioned",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Provisioned")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "observedGeneration": {"type": "integer"},
                                        "conditions": {"type": "array", "items": _CONDITION},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
