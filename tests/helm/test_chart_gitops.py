"""The chart rendered the way GitOps renders it (helm template, Argo CD: no cluster, so `lookup`
finds nothing): the webhook token never changes behind the pods' back, shutdown fits in the
grace period, and `config` cannot undo the chart's own wiring (issue 21)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from correlator.settings import ServerSettings
from tests.helm.test_chart import CHART, CREDENTIAL, NAMESPACE, RELEASE, find, render
from tests.support import tools


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def with_secrets(**secrets: Any) -> dict[str, Any]:
    return {"secrets": secrets}


def pod_checksum(objects: list[dict[str, Any]]) -> str:
    annotations = find(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return str(annotations["checksum/secret"])


def webhook_token(objects: list[dict[str, Any]]) -> str:
    data = find(objects, "Secret")["data"]
    return base64.b64decode(data["CORRELATOR_AUTH_BEARER_TOKEN"]).decode()


# --- the webhook token -------------------------------------------------------------------------


def test_two_renders_of_the_same_values_give_the_same_token_and_the_same_pods(
    chart: helm.Chart,
) -> None:
    first, second = render(chart, CREDENTIAL), render(chart, CREDENTIAL)
    assert webhook_token(first) == webhook_token(second) == "webhook-SECRET"
    assert find(first, "Secret") == find(second, "Secret")
    assert pod_checksum(first) == pod_checksum(second)


def render_or_refusal(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]] | None:
    try:
        return render(chart, values)
    except helm.HelmError:
        return None


@pytest.mark.parametrize(
    "values",
    [{}, CREDENTIAL, with_secrets(basicAuthUsername="am", basicAuthPassword="p")],
    ids=["no-credential", "bearer-token", "basic-auth"],
)
def test_two_cluster_less_renders_roll_the_pods_iff_the_token_changed(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    """helm template twice (Argo CD's refresh, helm-diff): a render may refuse, but two that
    succeed never give the pods a token they were not rolled for."""
    first, second = render_or_refusal(chart, values), render_or_refusal(chart, values)
    if first is None or second is None:
        assert first is second is None
        return
    secret_first, secret_second = find(first, "Secret")["data"], find(second, "Secret")["data"]
    assert (secret_first != secret_second) == (pod_checksum(first) != pod_checksum(second))
    assert secret_first == secret_second


def test_the_pods_roll_exactly_when_the_token_changes(chart: helm.Chart) -> None:
    """The checksum hashes the Secret's final data, the token included: a new token rolls the
    pods (which read it at start), the same token with other values changed does not."""
    before = render(chart, with_secrets(bearerToken="token-one"))
    rotated = render(chart, with_secrets(bearerToken="token-two"))
    unrelated = render(chart, {**with_secrets(bearerToken="token-one"), "podLabels": {"team": "a"}})
    assert webhook_token(before) != webhook_token(rotated)
    assert pod_checksum(before) != pod_checksum(rotated)
    assert pod_checksum(before) == pod_checksum(unrelated)


def test_any_secret_value_that_changes_rolls_the_pods(chart: helm.Chart) -> None:
    before = render(chart, with_secrets(bearerToken="t", grafanaToken="glsa-one"))
    after = render(chart, with_secrets(bearerToken="t", grafanaToken="glsa-two"))
    assert pod_checksum(before) != pod_checksum(after)


def test_without_a_credential_no_token_is_made_up(chart: helm.Chart) -> None:
    """Today's chart made a new random token at every cluster-less render (helm template,
    Argo CD, helm-diff) while the checksum stayed the same: the pods kept the old one."""
    with pytest.raises(helm.HelmError) as caught:
        chart.render({}, name=RELEASE, namespace=NAMESPACE)
    message = str(caught.value)
    assert "the webhook needs a credential" in message
    for value in (
        "secrets.bearerToken",
        "secrets.basicAuthPassword",
        "secrets.existingSecret",
        "externalSecret.enabled",
    ):
        assert value in message


@pytest.mark.parametrize(
    "values",
    [
        with_secrets(basicAuthUsername="alertmanager", basicAuthPassword="p-SECRET"),
        with_secrets(existingSecret="correlator-credentials"),
    ],
    ids=["basic-auth", "existing-secret"],
)
def test_any_credential_is_enough(chart: helm.Chart, values: dict[str, Any]) -> None:
    objects = render(chart, values)
    assert find(objects, "Deployment")


def test_helm_template_twice_gives_the_same_manifests(tmp_path: Path) -> None:
    """The CLI Argo CD runs, twice over the same values: byte for byte the same output."""
    helm_cli = tools.binary("helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(CREDENTIAL))
    command = [helm_cli, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values)]
    first, second = (
        subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
        for _ in range(2)
    )
    assert first == second


# --- shutdown ----------------------------------------------------------------------------------

MARGIN_S = 5


def grace_and_budget(objects: list[dict[str, Any]]) -> tuple[int, float]:
    """The pod's grace period, and what must fit in it: the preStop sleep plus the service's
    shutdown budget (its drain and its bounded shutdown)."""
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop_s = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    config = yaml.safe_load(find(objects, "ConfigMap")["data"]["config.yaml"])
    server = ServerSettings(**config["server"])
    return int(pod["terminationGracePeriodSeconds"]), pre_stop_s + server.shutdown_budget_s


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"preStopSleepSeconds": 20},
        {"config": {"server": {"shutdown_timeout_s": 45}}},
        {"config": {"server": {"drain_s": 10, "shutdown_timeout_s": 7.5}}},
    ],
    ids=["defaults", "long-prestop", "long-shutdown", "drain-and-fractional-shutdown"],
)
def test_the_grace_period_covers_prestop_and_the_whole_shutdown(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    grace_s, needed_s = grace_and_budget(render(chart, {**CREDENTIAL, **values}))
    assert grace_s >= needed_s + MARGIN_S, (grace_s, needed_s)


# --- config cannot undo the chart's wiring -----------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"server": {"port": 9090}}, "config.server.port is set by the chart"),
        ({"server": {"host": "127.0.0.1"}}, "config.server.host is set by the chart"),
        ({"leader": {"lease_name": "mine"}}, "config.leader.lease_name is set by the chart"),
        ({"kubernetes": {"namespaces": []}}, "config.kubernetes.namespaces is set by the chart"),
        (
            {"kubernetes": {"prometheus_rules": True}},
            "config.kubernetes.prometheus_rules is set by the chart",
        ),
    ],
)
def test_config_keys_the_chart_wires_are_refused_by_name(
    chart: helm.Chart, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as caught:
        chart.render({**CREDENTIAL, "config": config}, name=RELEASE, namespace=NAMESPACE)
    assert message in str(caught.value)


def test_the_rest_of_those_sections_stays_configurable(chart: helm.Chart) -> None:
    config = {"server": {"max_body_bytes": 2048}, "leader": {}, "kubernetes": {}}
    objects = render(chart, {**CREDENTIAL, "config": config})
    rendered = yaml.safe_load(find(objects, "ConfigMap")["data"]["config.yaml"])
    assert rendered["server"]["max_body_bytes"] == 2048
    assert (rendered["server"]["host"], rendered["server"]["port"]) == ("0.0.0.0", 8080)
