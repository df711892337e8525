"""The chart keeps secrets out of its ConfigMap: header values, a URL's user:password and
secret query strings in `config` fail the render with a message that names the value and
points to the Secret; the same settings without secrets render."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm.test_chart import CREDENTIAL, NAMESPACE, RELEASE, find, render


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    from tests.helm.test_chart import CHART

    return helm.Chart.load(CHART)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"prometheus": {"url": "http://prom", "headers": {"X-Api-Key": "k-SECRET"}}},
            "config.prometheus.headers holds secrets",
        ),
        ({"loki": {"headers": {"Authorization": "Basic x"}}}, "put CORRELATOR_LOKI_HEADERS in"),
        (
            {"prometheus": {"url": "https://reader:p-SECRET@prom.example"}},
            "config.prometheus.url holds a user:password in its URL",
        ),
        (
            {"jaeger": {"url": "https://u:p@ss@jaeger.example/"}},
            "put CORRELATOR_JAEGER_URL in your Secret",
        ),
        (
            {"provisioning": {"webhook_url": "https://hooks.example/in?token=t-SECRET"}},
            "config.provisioning.webhook_url holds a secret in its query string",
        ),
        ({"auth": {"read_bearer_token": "r-SECRET"}}, "config.auth.read_bearer_token is a secret"),
        (
            {"provisioning": {"grafana_url": "https://x.example/w?api-version=1&sig=s-SECRET"}},
            "config.provisioning.grafana_url holds a secret in its query string",
        ),
    ],
)
def test_secrets_in_config_fail_the_render_naming_the_value(
    chart: helm.Chart, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as caught:
        chart.render({"config": config}, name=RELEASE, namespace=NAMESPACE)
    assert message in str(caught.value)
    assert "Secret" in str(caught.value) and "SECRET" not in str(caught.value)


def test_the_same_settings_without_secrets_render(chart: helm.Chart) -> None:
    config = {
        "prometheus": {"url": "http://prometheus-operated.monitoring:9090", "headers": {}},
        "loki": {"url": "http://loki-gateway.logging/?direction=backward"},
        "provisioning": {"grafana_url": "http://grafana.monitoring"},
    }
    objects = render(chart, {**CREDENTIAL, "config": config})
    text = find(objects, "ConfigMap", f"{RELEASE}-config")["data"]["config.yaml"]
    assert "prometheus-operated.monitoring" in text
