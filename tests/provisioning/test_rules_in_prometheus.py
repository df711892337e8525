"""Generated rules in a real Prometheus, over a backfilled history: who pages and who does not."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from correlator.models.webapp import WebApplication
from correlator.provisioning.alert_rules import rule_file, to_yaml
from correlator.provisioning.naming import Links
from tests.provisioning.conftest import webapp
from tests.support.processes import Prometheus, wait_until

# 12 hours: long enough that the 3d window of a 5-minute spike stays under the ticket
# threshold, as it does with a real 3-day history.
HISTORY_MINUTES = 12 * 60
PAGE = "WebAppAvailabilityBudgetBurnPage"


def history(app: WebApplication, error_ratio_at: dict[int, float]) -> str:
    """OpenMetrics counters for one app: minute -> error ratio (minutes before now)."""
    now = int(time.time()) - 30
    selector = (
        f'reporter="destination",destination_workload_namespace="{app.namespace}",'
        f'destination_workload="{app.name}"'
    )
    good = bad = 0.0
    good_lines, bad_lines = [], []
    for minute in range(HISTORY_MINUTES, -1, -1):
        ratio = error_ratio_at.get(minute, 0.0)
        good += 1000 * (1 - ratio)
        bad += 1000 * ratio
        timestamp = now - minute * 60
        good_lines.append(
            f'istio_requests_total{{{selector},response_code="200"}} {good} {timestamp}'
        )
        bad_lines.append(
            f'istio_requests_total{{{selector},response_code="503"}} {bad} {timestamp}'
        )
    return "\n".join(good_lines + bad_lines)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    apps = {
        "outage": (webapp("outage", slo={"availability": 99.9}), {m: 1.0 for m in range(70)}),
        "healthy": (webapp("healthy", slo={"availability": 99.9}), {}),
        "spike": (webapp("spike", slo={"availability": 99.9}), {m: 0.1 for m in range(30, 35)}),
    }
    rule_files = []
    series = []
    for name, (app, errors) in apps.items():
        path = workdir / f"{name}.rules.yaml"
        path.write_text(to_yaml(rule_file(app, Links())))
        rule_files.append(path)
        series.append(history(app, errors))
    text = "# TYPE istio_requests_total counter\n" + "\n".join(series) + "\n# EOF\n"
    server = Prometheus(workdir, rule_files=rule_files, openmetrics=text).start()
    try:
        yield server
    finally:
        server.stop()


def test_sustained_errors_page_and_a_healthy_or_briefly_spiking_app_does_not(
    prometheus: Prometheus,
) -> None:
    def outage_alert() -> dict[str, object] | None:
        return next(
            (
                a
                for a in prometheus.alerts()
                if a["labels"]["alertname"] == PAGE and a["labels"]["webapp"] == "outage"
            ),
            None,
        )

    alert = wait_until(outage_alert, timeout_s=60, what="the page alert of the outage app")
    # Active now; `for: 2m` turns it from pending to firing two minutes later.
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["slo"] == "availability"
    assert alert["annotations"]["dashboard_url"].startswith("http")
    time.sleep(3)  # several more evaluations
    others = [a["labels"] for a in prometheus.alerts() if a["labels"]["webapp"] != "outage"]
    assert others == []
