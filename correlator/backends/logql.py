"""Building LogQL from untrusted values (pure).

LogQL strings follow the same Go escaping as PromQL, so label values and line-filter text are
emitted through the same literal builder: a log line or label holding `"} |= "` stays text.
"""

from __future__ import annotations

from collections.abc import Mapping

from correlator.backends.promql import label_name, regex_literal, string_literal


def stream_selector(equal: Mapping[str, str], *, regex: Mapping[str, str] | None = None) -> str:
    """`{a="…",b=~"…"}` with literal values (regex values match the literal text)."""
    parts = [f"{label_name(name)}={string_literal(value)}" for name, value in sorted(equal.items())]
    parts += [
        f"{label_name(name)}=~{regex_literal(value)}"
        for name, value in sorted((regex or {}).items())
    ]
    if not parts:
        raise ValueError("a LogQL stream selector needs at least one matcher")
    return "{" + ",".join(parts) + "}"


def contains(text: str) -> str:
    """A line filter keeping lines that contain `text` literally."""
    return f"|= {string_literal(text)}"


def excludes(text: str) -> str:
    return f"!= {string_literal(text)}"
