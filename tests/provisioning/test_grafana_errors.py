"""Grafana's failures through grafana-client, translated by the shared mapping (the same as
every other remote's), against a real local server: the status, Retry-After (which
grafana-client's exceptions leave out), Grafana's own message and status, and no answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from correlator.errors import PermanentError, TemporaryError
from correlator.provisioning.dashboards import Folder
from correlator.provisioning.grafana import GrafanaRefused, GrafanaTarget, GrafanaUnavailable
from tests.support.processes import free_port
from tests.support.servers import served


def answering(status: int, body: dict[str, str], headers: dict[str, str]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@pytest.mark.parametrize(
    ("status", "temporary"),
    [(400, False), (401, False), (403, False), (404, False), (408, True), (409, False),
     (412, False), (425, True), (429, True), (500, True), (502, True), (503, True)],
)  # fmt: skip
async def test_each_status_by_the_shared_mapping(status: int, temporary: bool) -> None:
    body = {"message": "the reason", "status": "version-mismatch"}
    async with served(answering(status, body, {"Retry-After": "12"})) as url:
        with pytest.raises((GrafanaUnavailable, GrafanaRefused)) as raised:
            await GrafanaTarget(url, "token").alert_rules()
    error = raised.value
    assert isinstance(error, TemporaryError if temporary else PermanentError)
    assert f"Grafana answered {status}: the reason" in str(error)
    if isinstance(error, GrafanaUnavailable):
        assert error.status == status and error.delay_s == 12
    else:
        assert isinstance(error, GrafanaRefused)
        assert error.status_code == status and error.grafana_status == "version-mismatch"


async def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    async with served(answering(503, {"message": "restarting"}, {"Retry-After": when})) as url:
        with pytest.raises(GrafanaUnavailable) as raised:
            await GrafanaTarget(url, "token").ensure_folder(Folder("f", "F"))
    assert raised.value.delay_s is not None and 290 <= raised.value.delay_s <= 300


async def test_no_answer_is_temporary() -> None:
    with pytest.raises(GrafanaUnavailable, match="Grafana is unreachable") as raised:
        await GrafanaTarget(f"http://127.0.0.1:{free_port()}", "token").alert_rules()
    assert raised.value.delay_s is None
