"""Every renderer, under generated content: names copy out of chat byte-identical, and
mentions, links and formatting injected through alert labels and annotations do nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.models.message import Message
from correlator.sinks import escape, github, slack
from correlator.sinks.mattermost import mattermost_post
from correlator.sinks.teams import teams_card
from tests.sinks.inert import live_markdown, live_slack, outside_markdown_code

FIELDS = ("title", "severity", "namespace", "service", "summary", "reason", "detail", "missing")

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True)
label_values = st.from_regex(r"[a-zA-Z0-9_./-]{0,12}", fullmatch=True)
selectors = st.builds(
    lambda metric, label, value: f'{metric}{{{label}="{value}"}}',
    metric_names,
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True),
    label_values,
)
kubernetes_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
names = st.one_of(metric_names, selectors, kubernetes_names)

ACTIVE = [
    "@here", "@channel", "@everyone", "<!here>", "<!channel>", "<!everyone>", "<@U123ABC>",
    "<!subteam^S1>", "@alice", "<at>bob</at>", "http://evil.example/x", "https://evil.example",
    "www.evil.com", "evil.example", "[a](http://evil)", "![i](http://evil/i.png)",
    "<http://evil|click>", "*bold*", "_it_", "~strike~", "`code`", "**b**", "__u__", "# head",
    "> quote", "- item", "1. item", ":fire:", "#123", "!12", "$x$", "|a|b|", "&amp;", "<b>x</b>",
    "<img src=x onerror=alert(1)>", "\\*", "a_b_c", "*", "_", "``", "deadbeefcafe", "%v1",
]  # fmt: skip
hostile = st.lists(
    st.one_of(st.sampled_from(ACTIVE), st.text(max_size=12), st.sampled_from(["ok", "rose"])),
    min_size=1,
    max_size=8,
).flatmap(lambda words: st.sampled_from([" ", "\n", ""]).map(lambda sep: sep.join(words)))


def message(values: dict[str, str]) -> Message:
    """A neutral message whose every alert- or report-borne text is from `values`."""
    evidence = {
        "detail": values["detail"],
        "links": {"explore": "https://grafana.example/explore?x=1", "trace_1": "https://j/t/1"},
    }
    return Message.model_validate({
        "incident_id": 7, "title": values["title"], "status": "firing",
        "severity": values["severity"], "namespace": values["namespace"],
        "summary": values["summary"], "runbook_url": "https://runbook.example/r",
        "alerts_firing": 1, "alerts_total": 2, "started_at": None, "resolved_at": None,
        "duration": None,
        "suspects": [{"service": values["service"], "reason": values["reason"],
                      "evidence": [evidence]}],
        "missing": [f"loki: {values['missing']}"], "analysed": True,
        "incident_url": "https://correlator.example/incidents/7",
        "dashboard_url": "https://grafana.example/d/x", "graphs": [],
        "app": None, "grafana": None,
        "silence_url": "https://am.example/#/silences/new?filter=%7Ba%3D%22b%22%7D",
        "mesh_url": "https://kiali.example/console/graph/namespaces/?namespaces=shop",
    })  # fmt: skip


def slack_text(msg: Message) -> str:
    texts = [slack.fallback(msg)]
    for block in slack.blocks(msg):
        if isinstance(block.get("text"), dict):
            texts.append(block["text"]["text"])
        texts += [element["text"] for element in block.get("elements", [])]
    return "\n".join(texts)


def mattermost_text(msg: Message) -> str:
    post = mattermost_post(msg)
    (attachment,) = post["attachments"]
    fields = [field["value"] for field in attachment["fields"]]
    return "\n".join([post["text"], attachment["text"], *fields])


def teams_runs(msg: Message) -> list[dict[str, Any]]:
    body = teams_card(msg)["attachments"][0]["content"]["body"]
    assert {block["type"] for block in body} == {"RichTextBlock"}  # no Markdown anywhere
    return [run for block in body for run in block["inlines"]]


RENDERERS = {
    "slack": slack_text,
    "mattermost": mattermost_text,
    "github": github.markdown,  # GitLab posts the same body
    "teams": lambda msg: "\n".join(run["text"] for run in teams_runs(msg)),
    "webhook": lambda msg: "\n".join(_strings(json.loads(msg.model_dump_json()))),
}


def _strings(value: Any) -> list[str]:
    """The strings a webhook receiver decodes from the body."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [s for item in items for s in _strings(item)]


many = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@many
@given(values=st.fixed_dictionaries({field: names for field in FIELDS}))
def test_names_copy_out_of_every_renderer_byte_identical(values: dict[str, str]) -> None:
    values = {**values, "summary": f"{values['summary']} rose", "detail": f"{values['detail']} 5%"}
    msg = message(values)
    for platform, render in RENDERERS.items():
        text = render(msg)
        assert escape.JOINER not in text, platform
        for field in ("title", "namespace", "service"):
            assert values[field] in text, (platform, field, values[field], text)
        assert values["summary"].split()[0] in text, platform  # a name in free text, too


@many
@given(values=st.fixed_dictionaries({field: hostile for field in FIELDS}))
def test_mentions_links_and_formatting_from_alerts_do_nothing(values: dict[str, str]) -> None:
    bad = message(values)
    benign = message({field: "x" if value else "" for field, value in values.items()})
    # What the platform would act on is exactly what our own template puts there.
    assert live_slack(slack_text(bad)) == live_slack(slack_text(benign))
    assert live_markdown(github.markdown(bad)) == live_markdown(github.markdown(benign))
    assert live_markdown(mattermost_text(bad)) == live_markdown(mattermost_text(benign))
    # Teams' TextRuns parse no Markdown; a URL in them is defused (a client may autolink it).
    for run in teams_runs(bad):
        assert "://" not in run["text"] and "www." not in run["text"]
    # The webhook carries the text verbatim: it is data for a program, not chat.
    assert Message.model_validate_json(bad.model_dump_json()) == bad


def test_a_value_with_backticks_is_one_markdown_code_span() -> None:
    for value in ("a`b", "``x", "y`", "`", "a ``` b"):
        span = escape.markdown_code(value)
        assert outside_markdown_code(f"before {span} after") == "before   after"
        fence = span[: len(span) - len(span.lstrip("`"))]
        inner = span[len(fence) : -len(fence)]
        if inner.startswith(" ") and inner.endswith(" ") and inner.strip():
            inner = inner[1:-1]  # CommonMark strips one space from each side
        assert inner == value


def test_plain_words_stay_plain_and_the_rest_is_code() -> None:
    assert escape.slack("checkout-v2 rose 5%") == "checkout-v2 rose 5%"
    assert escape.markdown("error_ratio rose") == "`error_ratio` rose"
    assert escape.slack("<!here> ok") == "`&lt;!here&gt;` ok"
    assert escape.markdown_name('http_requests_total{code="500"}') == (
        '`http_requests_total{code="500"}`'
    )
