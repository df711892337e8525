"""Building LogQL from untrusted values (pure).

LogQL strings follow the same Go escaping as PromQL, so label values and line-filter text are
emitted through the same literal builder: a log line or label holding `"} |= "` stays text.
"""

from __future__ import annotations

import re
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


class SelectorRefused(ValueError):
    """A stream selector that is more than label matchers (a filter, a parser, a pipe)."""


_MATCHER = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)\s*'
)
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    out, chars = [], iter(literal[1:-1])
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars)
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
        elif escaped in _HEX_DIGITS:
            digits = "".join(next(chars, "") for _ in range(_HEX_DIGITS[escaped]))
            if not re.fullmatch(r"[0-9a-fA-F]+", digits) or len(digits) < _HEX_DIGITS[escaped]:
                raise SelectorRefused(f"malformed escape \\{escaped}{digits} in a label value")
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                raise SelectorRefused(f"no such character \\{escaped}{digits}") from None
        else:
            raise SelectorRefused(f"unsupported escape \\{escaped} in a label value")
    return "".join(out)


def parse_selector(text: str) -> list[tuple[str, str, str]]:
    """The (label, operator, value) matchers of a stream selector `{a="x", b=~"y"}`; raises
    SelectorRefused for anything else: line filters, parsers and pipes come only from
    correlator, never from a spec."""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise SelectorRefused(
            'must be a stream selector of label matchers only, such as {app="checkout"} '
            "(no line filters, parsers or pipes: correlator adds its own)"
        )
    inner, matchers, position = body[1:-1], [], 0
    while position < len(inner):
        match = _MATCHER.match(inner, position)
        if match is None:
            raise SelectorRefused(f"not a label matcher at {inner[position : position + 20]!r}")
        matchers.append((match.group(1), match.group(2), _unquote(match.group(3))))
        position = match.end()
        if position < len(inner):
            if inner[position] != ",":
                raise SelectorRefused(f"expected ',' at {inner[position : position + 20]!r}")
            position += 1
    if not matchers:
        raise SelectorRefused("a stream selector needs at least one matcher")
    return matchers


def confined_selector(
    matchers: list[tuple[str, str, str]], *, namespace_label: str, namespace: str
) -> str:
    """The selector of `matchers` with `namespace_label="namespace"` forced: whatever the
    matchers say, the stream is the namespace's own."""
    parts = [f"{label_name(namespace_label)}={string_literal(namespace)}"]
    parts += [
        f"{label_name(name)}{op}{string_literal(value)}"
        for name, op, value in matchers
        if name != namespace_label
    ]
    return "{" + ",".join(parts) + "}"
