"""The incident pages and graphs: the report, the timeline, inert hostile content, and a real
headless Chromium render (screenshot kept as a test artifact)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tests.pipeline.test_pipeline import LABELS, slow_database
from tests.sinks.test_delivery import HOSTILE
from tests.sinks.test_links import silence_matchers
from tests.support.payloads import alert, payload
from tests.support.servers import served

ARTIFACTS = Path(os.environ.get("CORRELATOR_TEST_ARTIFACTS", "test-artifacts"))


class Resources(HTMLParser):
    """Every URL the page would load (not links a reader may follow), and every script."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.scripts = 0
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("img", "script", "iframe", "source") and values.get("src"):
            self.loads.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.loads.append(str(values["href"]))
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


async def _reported(client: Any, labels: dict[str, str], **extra: Any) -> int:
    now = datetime.now(UTC)
    body = payload(
        [alert("p1", labels=labels, starts_at=(now - timedelta(minutes=2)).isoformat())],
        group_key='{}:{alertname="ApiLatencyHigh"}',
        **extra,
    )
    answer = await client.post("/api/v1/alerts", json=body)
    assert answer.status == 200, await answer.text()
    incident_id = int((await answer.json())["incident_id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
        # The report is stored a moment before its work item is recorded done; the page names
        # the notification analysed once both are.
        work = detail.get("work_items") or []
        if detail.get("report") and work and all(w["state"] == "done" for w in work):
            return incident_id
        await asyncio.sleep(0.05)
    raise AssertionError("no report")


async def test_the_incident_page_shows_the_report_and_loads_nothing_external(
    app_client: Any,
) -> None:
    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
        client = await app_client(jaeger={"url": jaeger_url}, loki={"url": loki_url})
        incident_id = await _reported(client, LABELS)
        page = await client.get(f"/incidents/{incident_id}")
        listing = await client.get("/incidents")
        detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
        html, listed = await page.text(), await listing.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "postgres" in html and "SELECT orders" in html  # the first suspect and its evidence
    assert "prometheus (everything): not configured" in html  # what is missing
    # The score is explained as the confidence it is.
    assert re.search(
        r"(strong|moderate|weak|faint) confidence that the incident started here", html
    )
    assert re.search(r"score \d\.\d\d of at most 1\.2: how far its own metrics", html)
    # When the report was analysed, for which notification, and the timeline of both.
    analysed = re.search(r"Analysed (\S+ \S+) UTC for notification #(\d+) \(received", html)
    assert analysed, html
    notification = analysed.group(2)
    assert f"notification #{notification}: firing" in html
    assert f"analysed notification #{notification}" in html
    # Silence opens Alertmanager's form (the payload's externalURL) with the group's matchers.
    (silence,) = re.findall(r'class="silence" href="([^"]+)"', html)
    matchers = silence_matchers(unescape(silence), "http://alertmanager:9093")
    assert matchers == detail["common_labels"]
    assert f'href="/incidents/{incident_id}"' in listed
    resources = Resources()
    resources.feed(html)
    assert resources.scripts == 0 and resources.handlers == []
    assert all(url.startswith("/") for url in resources.loads), resources.loads


async def test_hostile_alert_content_is_inert_on_the_page(app_client: Any) -> None:
    hostile = {
        **LABELS,
        "alertname": '<script>alert(1)</script>"><img src=x onerror=alert(2)>',
        "team": HOSTILE,
    }
    annotations = {
        "summary": "<b>bold</b> <a href='javascript:alert(3)'>x</a>",
        "runbook_url": "javascript:alert(4)",
    }
    client = await app_client()
    incident_id = await _reported(
        client, hostile, commonLabels=hostile, commonAnnotations=annotations
    )
    html = await (await client.get(f"/incidents/{incident_id}")).text()
    resources = Resources()
    resources.feed(html)
    assert resources.scripts == 0 and resources.handlers == [], resources.handlers
    assert "javascript:" not in re.sub(r"&[a-z]+;|&#\d+;", "", html).split("<main>")[0]
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text


def _throttled_prometheus(tmp_path: Path) -> Any:
    """A real Prometheus holding 90 minutes of api's CPU throttling, 80% in the last 4."""
    from tests.support.processes import Prometheus

    now = datetime.now(UTC).replace(microsecond=0)
    pod = 'namespace="shop",pod="api-5d8f9c7b6d-x2x4q",container="app"'
    throttled, periods, lines = 0.0, 0.0, {"throttled": [], "periods": []}
    for step in range(90 * 4):  # 90 minutes at 15 s; throttled 80% in the last 4 minutes
        moment = now - timedelta(minutes=90) + timedelta(seconds=15 * step)
        share = 0.8 if moment > now - timedelta(minutes=4) else 0.02
        periods += 150
        throttled += 150 * share
        t = f"{moment.timestamp():.0f}"
        lines["throttled"].append(
            f"container_cpu_cfs_throttled_periods_total{{{pod}}} {throttled} {t}"
        )
        lines["periods"].append(f"container_cpu_cfs_periods_total{{{pod}}} {periods} {t}")
    history = "\n".join(
        ["# TYPE container_cpu_cfs_throttled_periods counter", *lines["throttled"],
         "# TYPE container_cpu_cfs_periods counter", *lines["periods"], "# EOF"]
    ) + "\n"  # fmt: skip
    return Prometheus(tmp_path, rule_files=[], openmetrics=history).start()


async def test_graphs_of_the_evidence_are_png(app_client: Any, tmp_path: Path) -> None:
    prometheus = _throttled_prometheus(tmp_path)
    try:
        client = await app_client(prometheus={"url": prometheus.url})
        incident_id = await _reported(client, LABELS)
        detail = await (await client.get(f"/api/v1/incidents/{incident_id}")).json()
        graph = await client.get(f"/api/v1/incidents/{incident_id}/graphs/0.png")
        missing = await client.get(f"/api/v1/incidents/{incident_id}/graphs/7.png")
        hostile = await client.get(f"/api/v1/incidents/{incident_id}/graphs/..%2F1.png")
        page = await (await client.get(f"/incidents/{incident_id}")).text()
    finally:
        prometheus.stop()
    assert detail["report"]["suspects"][0]["service"] == "api"
    assert detail["report"]["series"][0]["signal"] == "cpu_throttled_ratio"
    assert graph.status == 200 and graph.content_type == "image/png"
    body = await graph.read()
    assert body.startswith(b"\x89PNG\r\n\x1a\n") and len(body) > 5000
    assert missing.status == 404 and hostile.status == 400  # "../1" is no number
    assert f"/api/v1/incidents/{incident_id}/graphs/0.png" in page


CHROMIUM = shutil.which("chromium") or "chromium"  # tests/run.sh installs Debian's chromium


async def test_the_page_renders_in_headless_chromium(app_client: Any, tmp_path: Path) -> None:
    """A real browser: the page renders (screenshot kept), logs no console error, and every
    request it makes goes to this server."""
    from aiohttp import web

    now = datetime.now(UTC)
    jaeger, loki = slow_database(now)
    prometheus = _throttled_prometheus(tmp_path)
    correlation = {"kiali_url": "https://kiali.example/kiali", "grafana_url": "https://g.example"}
    try:
        async with served(jaeger.app) as jaeger_url, served(loki.app) as loki_url:
            client = await app_client(
                jaeger={"url": jaeger_url},
                loki={"url": loki_url},
                prometheus={"url": prometheus.url},
                correlation=correlation,
            )
            incident_id = await _reported(client, LABELS)
            html = await (await client.get(f"/incidents/{incident_id}")).text()
            assert "for notification #" in html, html
            graphs = {
                path: await (await client.get(path)).read()
                for path in re.findall(r'src="(/api/v1/incidents/\d+/graphs/\d+\.png)"', html)
            }
    finally:
        prometheus.stop()
    assert graphs, "the page shows the evidence's graphs"
    assert (
        'class="mesh" href="https://kiali.example/kiali/console/graph/node/namespaces/shop/' in html
    )
    assert ">Explore</a>" in html

    # Serve the rendered page (and its graphs) from a plain server: no credentials needed.
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def graph(request: web.Request) -> web.Response:
        return web.Response(body=graphs[request.path], content_type="image/png")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/api/v1/incidents/{id}/graphs/{n}", graph)
    async with served(app) as url:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        logs = []
        for label, size in (("laptop", "1280,2600"), ("phone", "390,844")):
            shot = ARTIFACTS / f"incident-page-{label}.png"
            process = await asyncio.create_subprocess_exec(
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--enable-logging=stderr", "--v=0",
                f"--user-data-dir={tmp_path / label}",
                f"--window-size={size}", f"--screenshot={shot}", f"{url}/page",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(process.communicate(), 120)
            logs.append(err.decode(errors="replace"))
            assert process.returncode == 0, logs[-1][-2000:]
            assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG")
            assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    log = "\n".join(logs)
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line and "ERROR" in line]
    assert console_errors == []
    assert "ERR_NAME_NOT_RESOLVED" not in log  # nothing tried to reach another host


def test_a_graph_shows_the_incident_with_a_proportionate_stretch_of_baseline() -> None:
    from correlator.web.graphs import view

    onset = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    stamp = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    points = [
        [stamp(onset - timedelta(minutes=100) + timedelta(minutes=m)), 1.0] for m in range(106)
    ]
    windows = {
        "baseline_start": stamp(onset - timedelta(minutes=100)),
        "incident_start": stamp(onset - timedelta(minutes=5)),
        "incident_end": stamp(onset + timedelta(minutes=30)),  # beyond the data: cut to it
        "onset": stamp(onset),
    }
    start, end = view(points, windows)
    # 10 minutes of incident (to the last point), 10 of baseline: not 90 minutes of baseline.
    assert end == onset + timedelta(minutes=5)
    assert start == onset - timedelta(minutes=15)
    long = {**windows, "incident_start": stamp(onset - timedelta(minutes=80))}
    start, _ = view(points, long)
    assert start == onset - timedelta(minutes=100)  # never before the data
    assert view(points, None) == (onset - timedelta(minutes=100), onset + timedelta(minutes=5))
