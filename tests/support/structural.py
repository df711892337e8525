"""A CRD's structural schema applied as the API server applies it: validation, then pruning.

The API server drops (prunes) every field a structural schema does not declare, unless the node
says `x-kubernetes-preserve-unknown-fields: true`; JSON Schema's validation ignores unknown
properties. So a misspelt field (`endpoint` for `endpoints`) validates, then silently vanishes
from the stored object. `validate` refuses such an object, naming the fields a real API server
would drop.
"""

from __future__ import annotations

from typing import Any

import jsonschema

# What the API server keeps at an object's root (and in an embedded resource) whatever the
# schema says: metadata is ObjectMeta, decoded and pruned by its own Go type, not by the schema.
_ALWAYS_KEPT = frozenset({"apiVersion", "kind", "metadata"})


def pruned_fields(instance: Any, schema: dict[str, Any]) -> list[str]:
    """The paths (`.spec.endpoints[0].prot`) of the fields the API server would prune."""
    found: list[str] = []
    _walk(instance, schema, "", found, root=True)
    return found


def _walk(value: Any, schema: dict[str, Any], path: str, found: list[str], *, root: bool) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _walk(item, items, f"{path}[{index}]", found, root=False)
        return
    if not isinstance(value, dict):
        return
    kept = _ALWAYS_KEPT if root or schema.get("x-kubernetes-embedded-resource") else frozenset()
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    properties: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            if name in kept and name == "metadata":
                continue
            _walk(item, properties[name], where, found, root=False)
        elif isinstance(additional, dict):
            _walk(item, additional, where, found, root=False)
        elif not (name in kept or preserve or additional is True):
            found.append(where)


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Refuse what the API server refuses, and what it would silently change by pruning.

    A CRD's structural schema is OpenAPI 3.0, whose keywords are JSON Schema draft 4's
    (boolean exclusiveMinimum); its patterns are Go RE2, so the schema itself is not checked
    as Python regexes, only applied."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft4Validator(schema).iter_errors(instance)
    )
    if error is not None:
        raise error
    pruned = pruned_fields(instance, schema)
    if pruned:
        raise jsonschema.ValidationError(
            f"fields the schema does not declare, which the API server prunes: {', '.join(pruned)}"
        )
