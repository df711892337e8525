"""The links a responder clicks, held to the URL formats their targets document: Alertmanager's
new-silence form, Grafana's own silence link, Kiali's graph routes and Grafana Explore's panes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.analysis.findings import Finding
from correlator.analysis.windows import Windows
from correlator.pipeline.report import EvidenceLinks
from correlator.settings import Settings
from correlator.sinks import github, slack
from correlator.sinks.links import alertmanager_silence, kiali_graph
from correlator.sinks.mattermost import mattermost_post
from correlator.sinks.teams import teams_card
from tests.sinks.test_chat_text import message

# Alertmanager's matcher syntax: name="value", the value with Prometheus' escapes.
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def silence_matchers(url: str, external_url: str) -> dict[str, str]:
    """The equality matchers of an Alertmanager new-silence URL, checked against its format:
    `<externalURL>/#/silences/new?filter={a="x",b="y"}` (percent-encoded)."""
    assert url.startswith(external_url.rstrip("/") + "/#/silences/new?"), url
    fragment = urlsplit(url).fragment
    path, _, query = fragment.partition("?")
    assert path == "/silences/new"
    (raw,) = parse_qs(query, keep_blank_values=True)["filter"]
    assert raw.startswith("{") and raw.endswith("}"), raw
    inner, matchers, position = raw[1:-1], {}, 0
    while position < len(inner):
        found = _MATCHER.match(inner, position)
        assert found, (inner, position)
        value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), found[2])
        matchers[found[1]] = value
        position = found.end()
        if position < len(inner):
            assert inner[position] == ",", inner
            position += 1
    return matchers


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
label_values = st.text(min_size=1, max_size=20).filter(lambda v: "\x00" not in v)


@settings(max_examples=200, deadline=None)
@given(labels=st.dictionaries(label_names, label_values, min_size=1, max_size=6))
def test_silence_opens_alertmanagers_form_with_the_groups_matchers(labels: dict[str, str]) -> None:
    url = alertmanager_silence("https://am.example/prefix/", labels)
    assert url is not None and " " not in url and '"' not in url  # one clickable URL
    assert silence_matchers(url, "https://am.example/prefix") == labels


def test_no_silence_link_without_an_http_external_url_or_labels() -> None:
    assert alertmanager_silence("", {"a": "b"}) is None
    assert alertmanager_silence("javascript:alert(1)", {"a": "b"}) is None
    assert alertmanager_silence("http://am:9093", {}) is None


def test_a_grafana_rule_silences_through_grafanas_own_link() -> None:
    from correlator.models.alerts import parse_webhook
    from correlator.models.incidents import AlertRecord, IncidentDetail
    from correlator.sinks.message import silence_url

    raw = (Path(__file__).resolve().parents[2] / "examples/grafana/firing.json").read_bytes()
    payload = parse_webhook(raw)
    now = datetime.now(UTC)
    alerts = [
        AlertRecord(fingerprint=a.fingerprint or "f", status=a.status, starts_at=a.starts_at,
                    ends_at=a.ends_at, labels=a.labels, annotations=a.annotations,
                    generator_url=a.generator_url, details=a.details, first_seen_at=now,
                    updated_at=now)
        for a in payload.alerts
    ]  # fmt: skip
    incident = IncidentDetail(
        id=1, receiver="r", group_key="g", status=payload.status, alertname="A", namespace="shop",
        group_labels={}, common_labels=payload.common_labels, common_annotations={},
        external_url=payload.external_url, truncated_alerts=0, notification_count=1,
        alerts_total=1, alerts_firing=1, started_at=now, resolved_at=None, created_at=now,
        updated_at=now, alerts=alerts, timeline=[], work_items=[],
    )  # fmt: skip
    url = silence_url(incident)
    assert url == json.loads(raw)["alerts"][0]["silenceURL"]
    parts = urlsplit(url)
    assert parts.path == "/alerting/silence/new"  # Grafana's documented silence form
    (matchers,) = parse_qs(parts.query)["matcher"]
    assert "namespace=shop" in matchers.split(",")


def test_mesh_opens_kialis_graph_of_the_workload_in_its_namespace() -> None:
    url = kiali_graph("https://kiali.example/kiali/", "shop", "checkout-v2")
    assert url is not None
    parts = urlsplit(url)
    # Kiali's console route /graph/node/namespaces/:namespace/workloads/:workload
    assert parts.netloc == "kiali.example"
    segments = [unquote(s) for s in parts.path.split("/")]
    assert segments == ["", "kiali", "console", "graph", "node", "namespaces", "shop",
                        "workloads", "checkout-v2"]  # fmt: skip
    odd = urlsplit(kiali_graph("https://k", "a/b", "c?d") or "")
    assert [unquote(s) for s in odd.path.split("/")][-4:] == [
        "namespaces",
        "a/b",
        "workloads",
        "c?d",
    ]
    whole = urlsplit(kiali_graph("https://k", "shop", None) or "")
    assert whole.path == "/console/graph/namespaces/"  # the namespace's graph
    assert parse_qs(whole.query) == {"namespaces": ["shop"]}
    assert kiali_graph(None, "shop", "x") is None and kiali_graph("https://k", None, "x") is None


def _explore(url: str, grafana: str) -> dict[str, Any]:
    """The one pane of a Grafana Explore URL (Grafana 10+: `/explore?schemaVersion=1&panes=`)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == grafana and parts.path == "/explore"
    query = parse_qs(parts.query)
    assert query["schemaVersion"] == ["1"] and query["orgId"] == ["1"]
    (pane,) = json.loads(query["panes"][0]).values()
    return dict(pane)


@settings(max_examples=100, deadline=None)
@given(query=st.text(min_size=1, max_size=80).filter(lambda q: "\x00" not in q))
def test_explore_opens_grafana_on_the_evidences_own_query(query: str) -> None:
    end = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    windows = Windows(
        baseline_start=end - timedelta(minutes=90), baseline_end=end - timedelta(minutes=15),
        incident_start=end - timedelta(minutes=15), incident_end=end, onset=end,
    )  # fmt: skip
    config = Settings(correlation={"grafana_url": "https://g.example/"})
    links = EvidenceLinks(config, windows, lambda service: f'{{service="{service}"}}')
    metric = Finding("api", "metric", "error_ratio", 9.0, 0.1, 5.0, "%", end, "rose", query)
    pane = _explore(links.for_finding("api", metric)["explore"], "https://g.example")
    assert pane["datasource"] == "prometheus"
    (target,) = pane["queries"]
    assert target["expr"] == query and target["datasource"] == {"uid": "prometheus"}
    start_ms = int(windows.baseline_start.timestamp() * 1000)
    assert pane["range"] == {"from": str(start_ms), "to": str(int(end.timestamp() * 1000))}
    log = Finding("api", "log", "timeout <*>", 9.0, 1, 50, "lines", end, "new template", "")
    pane = _explore(links.for_finding("api", log)["explore"], "https://g.example")
    assert pane["queries"][0]["expr"] == '{service="api"}' and pane["datasource"] == "loki"


def test_every_renderer_offers_silence_mesh_and_explore() -> None:
    msg = message(dict.fromkeys(("title", "severity", "namespace", "service", "summary",
                                 "reason", "detail", "missing"), "x"))  # fmt: skip
    wanted = (msg.silence_url, msg.mesh_url, "https://grafana.example/explore?x=1")
    rendered = {
        "slack": json.dumps(slack.blocks(msg)),
        "teams": json.dumps(teams_card(msg)),
        "mattermost": json.dumps(mattermost_post(msg)),
        "github": github.markdown(msg),
    }
    for platform, text in rendered.items():
        for url in wanted:
            assert url in text, (platform, url)
        assert "Silence" in text and "Mesh" in text and "Explore" in text, platform
