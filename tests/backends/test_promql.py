"""PromQL built from untrusted values: literals stay literals."""

from __future__ import annotations

import pytest

from correlator.backends.promql import (
    UnsafeName,
    matchers,
    metric_label,
    regex_literal,
    selector,
    string_literal,
)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("checkout", '"checkout"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("bell\x07", '"bell\\x07"'),
        ('"} or vector(1) or {x="', '"\\"} or vector(1) or {x=\\""'),
        ("ünïcödé ☃", '"ünïcödé ☃"'),
    ],
)
def test_string_literals_escape_what_could_end_them(value: str, literal: str) -> None:
    assert string_literal(value) == literal


def test_regex_literals_match_only_the_value() -> None:
    assert regex_literal("a.b*") == '"a\\\\.b\\\\*"'
    assert regex_literal("(x|y)") == '"\\\\(x\\\\|y\\\\)"'


def test_selectors_sort_labels_and_refuse_unsafe_names() -> None:
    assert selector("up", {"job": "api", "instance": 'x"y'}) == 'up{instance="x\\"y",job="api"}'
    assert matchers({"a": "1"}, regex={"pod": "web-1"}) == 'a="1",pod=~"web-1"'
    for bad in ('job"}', "1abc", "with space", ""):
        with pytest.raises(UnsafeName):
            matchers({bad: "x"})
    with pytest.raises(UnsafeName):
        selector("up or vector(1)", {})


def test_metric_labels_quote_only_what_prometheus_2_could_not_name() -> None:
    assert metric_label("destination_workload") == "destination_workload"
    assert metric_label("service.name") == '"service.name"'
    assert metric_label("k8s.pod.name") == '"k8s.pod.name"'
    for bad in ('a"b', "a{b", "a,b", "x=~y", "__meta.x", "", "new\nline"):
        with pytest.raises(UnsafeName):
            metric_label(bad)
