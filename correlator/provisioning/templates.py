"""Filling the templates of dashboards/ and alert_rules/ (pure).

A template is parsed first (YAML or JSON) and placeholders `${correlator.NAME}` are then
replaced inside its string values, so that no value, whatever a manifest holds, can change the
template's structure. An element carrying `x-correlator-requires: FEATURE` is kept only when
the app has that feature (an SLO it declares, a repository, a runbook).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PLACEHOLDER = re.compile(r"\$\{correlator\.([a-z_][a-z0-9_]*)\}")
REQUIRES_KEY = "x-correlator-requires"


class TemplateError(Exception):
    """A template names a placeholder the generator does not know: a bug in the template."""


def render(value: Any, values: dict[str, str]) -> Any:
    """A copy of `value` with every placeholder in its strings (keys included) filled."""
    if isinstance(value, str):

        def fill(match: re.Match[str]) -> str:
            try:
                return values[match.group(1)]
            except KeyError:
                raise TemplateError(
                    f"unknown placeholder ${{correlator.{match.group(1)}}}"
                ) from None

        return PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [render(item, values) for item in value]
    if isinstance(value, dict):
        return {render(key, values): render(item, values) for key, item in value.items()}
    return value


def keep_supported(items: list[Any], features: set[str]) -> list[Any]:
    """The items whose requirement, if any, is among `features`, without the marker."""
    kept = []
    for item in items:
        if isinstance(item, dict) and REQUIRES_KEY in item:
            if item[REQUIRES_KEY] not in features:
                continue
            item = {key: value for key, value in item.items() if key != REQUIRES_KEY}
        kept.append(item)
    return kept


def content_hash(document: Any) -> str:
    """A digest of what an artifact says, independent of key order: equal means unchanged."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
