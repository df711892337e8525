"""No secret in correlator's log: not a chat webhook URL, not a backend's user:password, not
a token, at any level including debug, in `correlator serve` and in-process alike."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from correlator.backends.prometheus import PrometheusBackend
from correlator.observability import configure_logging
from correlator.redaction import RedactingFilter, Redactor, mask_text, redactor_for
from correlator.settings import load_settings
from correlator.sinks import build_sinks
from tests.fakes.slack import FakeSlack
from tests.sinks.test_slack_limits import _big_message
from tests.support.processes import Service, wait_until
from tests.support.servers import InThread, served

WEBHOOK_PATH = "/services/T0SECRET/B0SECRET/hookSECRETxyz123"
BACKEND_USER, BACKEND_PASSWORD = "prom-reader", "backend-SECRET-pw"
HEADER_VALUE = "header-SECRET-key"
SECRETS = ("T0SECRET", "B0SECRET", "hookSECRETxyz123", BACKEND_PASSWORD, HEADER_VALUE)


def _prometheus_app() -> web.Application:
    """Answers every query with an empty result, so a correlation asks and goes on."""

    async def answer(request: web.Request) -> web.Response:
        kind = {"query_range": "matrix", "query": "vector"}.get(request.path.rsplit("/", 1)[-1])
        data: Any = {"resultType": kind, "result": []} if kind else []
        return web.json_response({"status": "success", "data": data})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def _leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "hpack")}
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


async def test_debug_logging_in_process_masks_webhook_urls_userinfo_and_headers(
    restore_logging: None,
) -> None:
    slack = FakeSlack()
    async with served(slack.app) as slack_url, served(_prometheus_app()) as prometheus_url:
        backend_url = prometheus_url.replace("://", f"://{BACKEND_USER}:{BACKEND_PASSWORD}@")
        settings = load_settings(
            database={"url": "sqlite:///unused.db"},
            prometheus={"url": backend_url, "headers": {"X-Api-Key": HEADER_VALUE}},
            notify={"sinks": [{"type": "slack", "name": "chat",
                               "webhook_url": slack_url + WEBHOOK_PATH}]},
        )  # fmt: skip
        stream = io.StringIO()
        configure_logging(settings.log.model_copy(update={"level": "debug"}), stream=stream,
                          redact=redactor_for(settings))  # fmt: skip
        config = settings.prometheus.config("Prometheus")
        assert config is not None
        backend = PrometheusBackend(config)
        try:
            await backend.query_range("up", datetime.now(UTC) - timedelta(minutes=5),
                                      datetime.now(UTC), 15)  # fmt: skip
        finally:
            await backend.close()
        sink = build_sinks(settings)["chat"]
        try:
            await sink.send(_big_message(), {}, _remember)
        finally:
            await sink.close()
        log = logging.getLogger("correlator.test")
        log.debug("posting to %s", slack_url + WEBHOOK_PATH)
        log.debug("backend %s", backend_url, extra={"url": backend_url})
        try:
            raise RuntimeError(f"cannot reach {slack_url + WEBHOOK_PATH}?sig=abc")
        except RuntimeError:
            log.exception("failed with header %s", HEADER_VALUE)
    assert slack.webhook_posts, "the webhook was called"
    text = stream.getvalue()
    assert "posting to" in text and "failed with header" in text
    assert _leaked(text) == [], text


async def _remember(remote: dict[str, Any]) -> None:
    pass


def test_the_filter_masks_arguments_extras_and_exceptions() -> None:
    redact = Redactor(values=["configured-SECRET"], urls=["https://hooks.example/p/SECRETpath"])
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "to %s with %s", None, None)
    record.args = ("https://hooks.example/p/SECRETpath?x=1", "configured-SECRET")
    record.target = "postgresql://user:pa@ss-SECRET@db/x"
    RedactingFilter(redact).filter(record)
    assert "SECRET" not in record.getMessage() + record.target
    assert record.getMessage() == "to https://hooks.example/***?x=1 with ***"
    assert record.target == "postgresql://***@db/x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at https://u:p@ss@host/x", "at https://***@host/x"),
        ("POST https://hooks.slack.com/services/T/B/C ok", "POST https://hooks.slack.com/*** ok"),
        ("https://x.logic.azure.com/w?api-version=1&sig=abc", "https://x.logic.azure.com/w?api-version=1&sig=***"),
        ("Authorization: Bearer abcdef123", "Authorization: Bearer ***"),
        ("token xoxb-123456-abcdef", "token ***"),
        ("https://chat.example/hooks/abcdef", "https://chat.example/***"),
        ("plain text at http://host/path?page=2", "plain text at http://host/path?page=2"),
    ],
)  # fmt: skip
def test_what_is_masked_without_configuration(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_serve_at_debug_logs_no_webhook_url_nor_backend_password(tmp_path: Path) -> None:
    """The real `correlator serve`, debug on, a Slack webhook sink and a Prometheus URL with
    user:password: an alert is correlated and posted, and its log holds neither."""
    slack = FakeSlack()
    with InThread(slack.app) as slack_url, InThread(_prometheus_app()) as prometheus_url:
        sinks = [{"type": "slack", "name": "chat", "webhook_url": slack_url + WEBHOOK_PATH}]
        backend_url = prometheus_url.replace("://", f"://{BACKEND_USER}:{BACKEND_PASSWORD}@")
        service = Service(
            tmp_path,
            env={
                "CORRELATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'correlator.db'}",
                "CORRELATOR_LOG_LEVEL": "debug",
                "CORRELATOR_PROMETHEUS_URL": backend_url,
                "CORRELATOR_PROMETHEUS_HEADERS": json.dumps({"X-Api-Key": HEADER_VALUE}),
                "CORRELATOR_NOTIFY_SINKS": json.dumps(sinks),
                "CORRELATOR_QUEUE_ANALYSIS_POOL": "thread",
            },
        ).start()
        try:
            name = f"Leak{uuid.uuid4().hex[:8]}"
            body = {
                "version": "4", "status": "firing", "receiver": "correlator",
                "groupKey": f'{{}}:{{alertname="{name}"}}', "groupLabels": {"alertname": name},
                "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
                "alerts": [{"status": "firing", "fingerprint": "f1",
                            "labels": {"alertname": name, "namespace": "shop", "app": "api"},
                            "annotations": {},
                            "startsAt": (datetime.now(UTC) - timedelta(minutes=2)).isoformat()}],
            }  # fmt: skip
            stored = httpx.post(f"{service.url}/api/v1/alerts", json=body, timeout=10)
            assert stored.status_code == 200, stored.text
            wait_until(lambda: slack.webhook_posts, timeout_s=60, what="the Slack webhook post")
        finally:
            service.stop()
    log = service.log()
    assert "webhook notification stored" in log
    assert _leaked(log) == [], log
