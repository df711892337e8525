"""The site's generated pages (docs/hooks.py) carry everything their sources hold: every
operation and schema of the OpenAPI description, every key of the chart's values with its
comment. `mkdocs build --strict` in tests/run.sh checks the links and the navigation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def test_the_http_api_page_lists_every_operation_and_schema() -> None:
    spec = json.loads(hooks.OPENAPI.read_text())
    page = hooks.http_api_markdown(spec)
    for path, item in spec["paths"].items():
        for method in item:
            assert f"## `{method.upper()} {path}`" in page
            for status in item[method]["responses"]:
                assert f"| {status} |" in page
    for name in spec["components"]["schemas"]:
        assert f"### {name} {{ #schema-{name.lower()} }}" in page


def test_every_schema_a_page_links_to_is_on_the_page() -> None:
    spec = json.loads(hooks.OPENAPI.read_text())
    page = hooks.http_api_markdown(spec)
    linked = set(_anchors_linked(page))
    defined = {f"schema-{name.lower()}" for name in spec["components"]["schemas"]}
    assert linked <= defined


def _anchors_linked(page: str) -> list[str]:
    return [part.split(")", 1)[0] for part in page.split("](#")[1:]]


def test_the_helm_values_page_lists_every_value_with_its_comment() -> None:
    text = hooks.VALUES.read_text()
    page = hooks.helm_values_markdown(text, json.loads(hooks.VALUES_SCHEMA.read_text()))
    for key in yaml.safe_load(text):
        assert f"| `{key}` |" in page
    assert "| `replicaCount` | integer | `1` | Pods. More than one needs" in page
    assert "| `persistence.enabled` | boolean | `true` | false: an emptyDir" in page
    assert "| `image.pullPolicy` | `Always` / `IfNotPresent` / `Never` |" in page


def test_a_comment_belongs_to_the_key_below_it_only() -> None:
    values = "# -- The first.\nfirst: 1\nsecond: 2\n\n# not a doc comment\nthird: {a: 1}\n"
    page = hooks.helm_values_markdown(values, {})
    assert "| `first` |  | `1` | The first. |" in page
    assert "| `second` |  | `2` |  |" in page
    assert "| `third` |  |  |  |" in page


def test_the_hook_replaces_the_markers_and_leaves_other_pages_alone() -> None:
    page = hooks.on_page_markdown(f"# API\n\n{hooks.HTTP_API_MARKER}\n")
    assert hooks.HTTP_API_MARKER not in page and "## `POST /api/v1/alerts`" in page
    assert hooks.on_page_markdown("# Other\n") == "# Other\n"
