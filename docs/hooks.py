"""MkDocs hooks that render the reference pages from their sources of truth at build time.

A page holding `<!-- generated:http-api -->` gets the HTTP API from `correlator/web/openapi.json`
(the description the service serves and the tests hold every answer to); one holding
`<!-- generated:helm-values -->` gets the chart's values from `helm/correlator/values.yaml`
(its `# --` comments) and `values.schema.json` (the types). Nothing generated is committed, so
the pages cannot fall behind the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "correlator" / "web" / "openapi.json"
VALUES = ROOT / "helm" / "correlator" / "values.yaml"
VALUES_SCHEMA = ROOT / "helm" / "correlator" / "values.schema.json"

HTTP_API_MARKER = "<!-- generated:http-api -->"
HELM_VALUES_MARKER = "<!-- generated:helm-values -->"

_METHODS = ("get", "post", "put", "patch", "delete")


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: replace each marker with the page it stands for."""
    if HTTP_API_MARKER in markdown:
        spec = json.loads(OPENAPI.read_text())
        markdown = markdown.replace(HTTP_API_MARKER, http_api_markdown(spec))
    if HELM_VALUES_MARKER in markdown:
        schema = json.loads(VALUES_SCHEMA.read_text())
        markdown = markdown.replace(
            HELM_VALUES_MARKER, helm_values_markdown(VALUES.read_text(), schema)
        )
    return markdown


# --- HTTP API -----------------------------------------------------------------------------


def http_api_markdown(spec: dict[str, Any]) -> str:
    """Every operation of an OpenAPI 3.1 description, then every schema it names, as Markdown."""
    lines: list[str] = []
    for path, item in spec["paths"].items():
        for method in _METHODS:
            if method in item:
                lines += _operation(method, path, item[method])
    lines += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines)


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", ""]
    if operation.get("summary"):
        lines += [_cell(operation["summary"]) + ".", ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    security = operation.get("security")
    if security:
        schemes = sorted({name for requirement in security for name in requirement})
        optional = any(not requirement for requirement in security)
        auth = " or ".join(f"`{name}`" for name in schemes)
        when = " (when a credential is configured)" if optional else ""
        lines += [f"**Auth:** {auth}{when}", ""]
    else:
        lines += ["**Auth:** none", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += [
            "| Parameter | In | Type | Required | Description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | "
                f"{_type_of(parameter.get('schema', {}))} | "
                f"{'yes' if parameter.get('required') else 'no'} | "
                f"{_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        kinds = ", ".join(
            f"`{media}`: {_type_of(content.get('schema', {}))}"
            for media, content in body.get("content", {}).items()
        )
        lines += [f"**Request body**{' (required)' if body.get('required') else ''}: {kinds}", ""]
    lines += ["| Status | Meaning | Body |", "| --- | --- | --- |"]
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        kinds = "; ".join(
            f"`{media}`" + (f" {_type_of(c['schema'])}" if c.get("schema") else "")
            for media, c in content.items()
        )
        headers = ", ".join(f"`{header}` header" for header in response.get("headers", {}))
        body_text = ", ".join(part for part in (kinds, headers) if part) or "—"
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {body_text} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name} {{ #{_anchor(name)} }}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        return [*lines, f"Type: {_type_of({k: v for k, v in schema.items() if k != 'title'})}", ""]
    required = set(schema.get("required", []))
    lines += ["| Field | Type | Required | Description |", "| --- | --- | --- | --- |"]
    for field, field_schema in properties.items():
        lines.append(
            f"| `{field}` | {_type_of(field_schema)} | {'yes' if field in required else 'no'} | "
            f"{_cell(field_schema.get('description', ''))} |"
        )
    extra = schema.get("additionalProperties")
    if extra is True or isinstance(extra, dict):
        lines.append("| *(other fields)* | accepted | no | Unknown fields are accepted. |")
    return [*lines, ""]


def _type_of(schema: dict[str, Any]) -> str:
    """A schema as a short phrase with links to named schemas."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return " or ".join(_type_of(option) for option in schema[combinator])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_type_of({**schema, "type": one}) for one in kind)
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type_of(schema['additionalProperties'])}"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind) if kind else "any"


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --- Helm values ---------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")


def helm_values_markdown(values_text: str, schema: dict[str, Any]) -> str:
    """One row per key of values.yaml: its path, type, default and `# --` comment."""
    defaults = yaml.safe_load(values_text)
    rows = ["| Value | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path, comment in _documented_keys(values_text):
        found, default = _lookup(defaults, path)
        if not found:
            continue  # a key inside a list item (e.g. ingress.hosts[0].host): its list is listed
        shown = "" if isinstance(default, dict) and default else f"`{_inline(default)}`"
        rows.append(
            f"| `{'.'.join(path)}` | {_schema_type(schema, path)} | {shown} | {_cell(comment)} |"
        )
    return "\n".join(rows) + "\n"


def _documented_keys(values_text: str) -> list[tuple[tuple[str, ...], str]]:
    """Each key's path, with the `# --` comment block directly above it (helm-docs' convention)."""
    keys: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text.startswith("--"):
                comment = [text[2:].strip()]
            elif comment:
                comment.append(text)
            continue
        match = _KEY.match(line)
        if match is None:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        keys.append((tuple(key for _, key in stack), " ".join(comment)))
        comment = []
    return keys


def _lookup(values: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return False, None
        values = values[key]
    return True, values


def _schema_type(schema: dict[str, Any], path: tuple[str, ...]) -> str:
    for key in path:
        schema = schema.get("properties", {}).get(key, {})
    if "enum" in schema:
        return " / ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind) if kind else ""


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(", ", ": "))
