"""Provisioning from and to the Kubernetes API (test server), as a cluster would see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from correlator.provisioning.naming import dashboard_uid
from tests.fakes.grafana import FakeGrafana
from tests.fakes.kubernetes import RULES, FakeKubernetes
from tests.provisioning.conftest import ROOT
from tests.support.processes import Service, run_cli
from tests.support.servers import eventually, served


def webapp(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "registry/app:1",
            "team": "payments",
            "slo": {"availability": 99.9},
            **spec,
        },
    }


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[FakeKubernetes, Path]]:
    fake = FakeKubernetes()
    async with served(fake.app) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": url}}],
                    "users": [{"name": "test", "user": {"token": fake.token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                }
            )
        )
        try:
            yield fake, kubeconfig
        finally:
            fake.break_watches()


@pytest.fixture
async def grafana() -> AsyncIterator[tuple[FakeGrafana, str]]:
    """The Grafana test server and its URL (the service under test runs in another process)."""
    fake = FakeGrafana()
    async with served(fake.app) as url:
        yield fake, url


async def test_one_shot_from_the_kubernetes_api_to_grafana(cluster: Any, grafana: Any) -> None:
    k8s, kubeconfig = cluster
    fake_grafana, url = grafana
    k8s.apply(webapp("checkout"))
    k8s.apply(webapp("ledger", "finance"))
    env = {
        "CORRELATOR_KUBERNETES_KUBECONFIG": str(kubeconfig),
        "CORRELATOR_PROVISIONING_GRAFANA_URL": url,
        "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": fake_grafana.token,
    }
    code, _out, err = await run_cli("provision", "--source", "k8s", "--target", "grafana", env=env)
    assert code == 0, err
    assert set(fake_grafana.dashboards) == {
        dashboard_uid("shop", "checkout"),
        dashboard_uid("finance", "ledger"),
    }


async def test_prometheus_rules_are_applied_kept_and_collected(cluster: Any) -> None:
    k8s, kubeconfig = cluster
    env = {"CORRELATOR_KUBERNETES_KUBECONFIG": str(kubeconfig)}
    code, _, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "kubernetes", env=env
    )
    assert code == 0, err
    rules = {key[1:]: obj for key, obj in k8s.objects.items() if key[0] == RULES[2]}
    assert set(rules) == {
        ("shop", "webapp-checkout"),
        ("shop", "webapp-catalog"),
        ("back-office", "webapp-batch-reports"),
    }
    assert (
        rules[("shop", "webapp-checkout")]["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        == "correlator"
    )
    k8s.objects[(RULES[2], "shop", "hand-made")] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hand-made", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"groups": []},
    }
    code, _, err = await run_cli(
        "provision", "--source", str(ROOT / "examples"), "--target", "kubernetes", env=env
    )
    assert code == 0 and "write 0 artifact(s), 3 unchanged" in err
    only_checkout = Path(kubeconfig).parent / "one"
    only_checkout.mkdir()
    (only_checkout / "checkout.yaml").write_text((ROOT / "examples" / "checkout.yaml").read_text())
    code, _out, err = await run_cli(
        "provision", "--source", str(only_checkout), "--target", "kubernetes", env=env
    )
    assert code == 0, err
    remaining = {key[1:] for key in k8s.objects if key[0] == RULES[2]}
    assert remaining == {("shop", "webapp-checkout"), ("shop", "hand-made")}


async def test_the_kubernetes_api_refusing_is_a_clear_error(cluster: Any, tmp_path: Path) -> None:
    _, kubeconfig = cluster
    broken = tmp_path / "wrong-token"
    broken.write_text(kubeconfig.read_text().replace("k8s-test-token", "nope"))
    code, _, err = await run_cli(
        "provision",
        "--source",
        "k8s",
        "--target",
        "files",
        "--out",
        str(tmp_path / "out"),
        env={"CORRELATOR_KUBERNETES_KUBECONFIG": str(broken)},
    )
    assert code == 2 and "answered 401" in err and "Traceback" not in err


async def test_serve_follows_the_cluster_and_records_results_in_status(
    cluster: Any, grafana: Any, tmp_path: Path
) -> None:
    k8s, kubeconfig = cluster
    fake_grafana, url = grafana
    k8s.apply(webapp("checkout"))
    broken = webapp("broken")
    del broken["spec"]["team"]
    k8s.apply(broken)
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_KUBERNETES_DISCOVERY": "true",
            "CORRELATOR_KUBERNETES_KUBECONFIG": str(kubeconfig),
            "CORRELATOR_PROVISIONING_GRAFANA_URL": url,
            "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": fake_grafana.token,
        },
    )
    await asyncio.to_thread(service.start)
    try:

        def condition(name: str) -> dict[str, Any] | None:
            obj = k8s.objects.get(("webapplications", "shop", name), {})
            conditions = obj.get("status", {}).get("conditions", [])
            return conditions[0] if conditions else None

        await eventually(lambda: condition("checkout") is not None, "a condition on checkout")
        assert condition("checkout")["status"] == "True"  # type: ignore[index]
        assert dashboard_uid("shop", "checkout") in fake_grafana.dashboards
        await eventually(lambda: condition("broken") is not None, "a condition on broken")
        assert condition("broken")["status"] == "False"  # type: ignore[index]
        assert "spec.team" in condition("broken")["message"]  # type: ignore[index]
        k8s.apply(webapp("catalog"))
        await eventually(
            lambda: dashboard_uid("shop", "catalog") in fake_grafana.dashboards, "catalog"
        )
        k8s.delete("shop", "checkout")
        await eventually(
            lambda: dashboard_uid("shop", "checkout") not in fake_grafana.dashboards,
            "checkout's dashboard to be collected",
        )
    finally:
        await asyncio.to_thread(service.stop)
