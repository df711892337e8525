"""Messages about a Grafana-managed rule carry Grafana's own links and values; messages about
an Alertmanager group carry none."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from correlator.models.alerts import parse_webhook
from correlator.models.incidents import ReceivedNotification
from correlator.sinks import github, slack
from correlator.sinks.message import incident_message
from correlator.store import Store
from tests.support.payloads import recorded

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "grafana"


async def _stored(store: Store, raw: bytes) -> int:
    received = ReceivedNotification(
        payload=parse_webhook(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    [result] = await store.record_batch([received])
    return result.incident_id


async def test_grafana_links_and_values_reach_the_chat_and_git_messages(store: Store) -> None:
    raw = (EXAMPLES / "firing.json").read_bytes()
    hostile = json.loads(raw)
    hostile["alerts"][0]["silenceURL"] = "javascript:alert(1)"
    incident = await store.get_incident(await _stored(store, json.dumps(hostile).encode()))
    assert incident is not None
    message = incident_message(incident, None, public_url="http://correlator.example")
    assert message.grafana is not None
    links = message.grafana.links
    assert list(links) == ["Alert rule", "Panel"]  # the javascript: silence link is dropped
    assert message.grafana.values == "A=0.0731, C=1"
    text = json.dumps(slack.blocks(message))
    assert "|Alert rule>" in text and "|Panel>" in text and "javascript:" not in text
    body = github.markdown(message)
    assert "[Panel](<http://grafana.example:3000/d/wa-shop-checkout" in body
    assert "Grafana values: A=0.0731, C=1" in body  # as Grafana sent them: nothing to defuse


async def test_an_alertmanager_group_has_no_grafana_part(store: Store) -> None:
    raw = json.dumps(recorded("webhook-v4-firing-am0.25.json")).encode()
    incident = await store.get_incident(await _stored(store, raw))
    assert incident is not None
    message = incident_message(incident, None, public_url="http://correlator.example")
    assert message.grafana is None
    assert "Alert rule" not in json.dumps(slack.blocks(message))
