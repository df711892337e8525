"""The chart's RBAC and the app's Kubernetes calls agree (issue 21, item 2).

`helm template` renders the Roles, ClusterRoles and bindings; the Kubernetes API test server
enforces exactly those for the chart's service account and answers 403 Forbidden as the API
server does. Then the app makes every call it makes in a pod, configured by the rendered
config file: discovery's lists and watches, its status writes, the PrometheusRules pass and the
provisioning Lease. None may be refused. On the previous chart (and code) the PrometheusRules
pass listed cluster-wide under namespaced Roles: every pass was a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from correlator.discovery.kubernetes import KubernetesSource, Snapshot
from correlator.leader import KubernetesLease, Timings
from correlator.outbound.kube import KubeDenied
from correlator.provisioning.kubernetes_rules import reconcile_prometheus_rules
from correlator.provisioning.naming import Links
from correlator.settings import Settings, load_settings
from tests.fakes.kubernetes import FakeKubernetes
from tests.helm.test_chart import CHART, CREDENTIAL, NAMESPACE, RELEASE, Yaml12Loader
from tests.support import tools
from tests.support.servers import eventually, served

APP_NAMESPACES = ["shop", "payments"]
DISCOVERY = {
    **CREDENTIAL,
    "discovery": {"enabled": True},
    "config": {"provisioning": {"target": "files", "out_dir": "/tmp/provisioned"}},
}
NAMESPACED = {**DISCOVERY, "rbac": {"namespaces": APP_NAMESPACES, "prometheusRules": True}}
CLUSTER_WIDE = {**DISCOVERY, "rbac": {"prometheusRules": True}}


def helm_template(tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    done = subprocess.run(
        [
            *(tools.binary("helm"), "template", RELEASE, str(CHART)),
            *("-n", NAMESPACE, "-f", str(values_file)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.load_all(done.stdout, Loader=Yaml12Loader) if d]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def settings_of(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a pod of this render runs with (its config file and its env)."""
    config = tmp_path / "config.yaml"
    config.write_text(the(objects, "ConfigMap")["data"]["config.yaml"])
    monkeypatch.setenv("CORRELATOR_AUTH_BEARER_TOKEN", "t")
    monkeypatch.setenv("CORRELATOR_LEADER_NAMESPACE", NAMESPACE)  # the downward API's value
    return load_settings(config)


def service_account(objects: list[dict[str, Any]]) -> tuple[str, str]:
    pod = the(objects, "Deployment")["spec"]["template"]["spec"]
    return NAMESPACE, pod["serviceAccountName"]


def webapp(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "platform.correlator.dev/v1alpha1",
        "kind": "WebApplication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": f"registry.example/{namespace}/{name}:1.0", "team": namespace},
    }


@contextlib.asynccontextmanager
async def api_server(fake: FakeKubernetes) -> AsyncIterator[client.ApiClient]:
    async with served(fake.app) as url:
        configuration = client.Configuration(host=url)
        configuration.api_key = {"BearerToken": fake.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        async with client.ApiClient(configuration) as api:
            try:
                yield api
            finally:
                fake.break_watches()


async def _nothing(snapshot: Snapshot) -> None:
    return None


async def run_every_call_the_app_makes(
    api: client.ApiClient, fake: FakeKubernetes, settings: Settings
) -> list[str]:
    """Discovery (list, watch, status), two PrometheusRules passes (create, then delete an
    orphan) and the leader's Lease, as `serve` makes them; returns the passes' errors."""
    source = KubernetesSource.from_settings(api, settings.kubernetes, _nothing)
    snapshot = await source.list_once()
    assert set(APP_NAMESPACES) <= {app.namespace for app in snapshot.apps}
    following = asyncio.create_task(source.run())
    try:
        await eventually(
            lambda: len(fake._watches) == len(settings.kubernetes.namespaces or [None]),
            "a watch per namespace",
            timeout_s=10,
        )
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    for app in snapshot.apps:
        await source.write_condition(app.key, ok=True, message="provisioned")
    errors: list[str] = []
    links, namespaces = Links(), settings.kubernetes.namespaces
    first = await reconcile_prometheus_rules(api, snapshot.apps, links, namespaces=namespaces)
    kept = [app for app in snapshot.apps if app.namespace != "payments"]
    second = await reconcile_prometheus_rules(api, kept, links, namespaces=namespaces)
    for report in (first, second):
        errors += [f"{where}: {what}" for where, what in report.errors]
    assert [s.action.value for s in second.steps].count("delete") == 1 or errors
    leader = settings.leader
    lease = KubernetesLease(
        api,
        namespace=leader.namespace or NAMESPACE,
        name=leader.lease_name,
        identity="pod-a",
        timings=Timings(leader.lease_duration_s, leader.renew_deadline_s, leader.retry_period_s),
    )
    assert await lease.campaign_once()  # create
    assert await lease.campaign_once()  # get, update
    await lease.release()
    return errors


@pytest.mark.parametrize(
    "values", [NAMESPACED, CLUSTER_WIDE], ids=["namespaced-rbac", "cluster-wide-rbac"]
)
async def test_every_call_the_app_makes_is_one_the_rendered_rbac_allows(
    values: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = helm_template(tmp_path, values)
    settings = settings_of(objects, tmp_path, monkeypatch)
    assert settings.kubernetes.prometheus_rules
    rbac = [o for o in objects if o["kind"].endswith(("Role", "RoleBinding"))]
    fake = FakeKubernetes(rbac=rbac, service_account=service_account(objects))
    for namespace in APP_NAMESPACES:
        fake.apply(webapp(namespace, f"{namespace}-web"))
    fake.apply(webapp("elsewhere", "other-web"))  # outside rbac.namespaces: never listed there
    async with api_server(fake) as api:
        errors = await run_every_call_the_app_makes(api, fake, settings)
    assert fake.forbidden == []
    assert errors == []
    rules = {key[1:] for key in fake.objects if key[0] == "prometheusrules"}
    kept = {("shop", "webapp-shop-web")}  # payments' app was dropped: its rule deleted
    assert rules == (
        kept if settings.kubernetes.namespaces else kept | {("elsewhere", "webapp-other-web")}
    )


async def test_the_test_server_refuses_what_the_rbac_does_not_grant_as_the_api_server_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle can fail: under the namespaced Roles, the previous code's cluster-wide list
    of PrometheusRules is a 403 Forbidden Status, and so is any other account's call."""
    objects = helm_template(tmp_path, NAMESPACED)
    settings = settings_of(objects, tmp_path, monkeypatch)
    rbac = [o for o in objects if o["kind"].endswith(("Role", "RoleBinding"))]
    fake = FakeKubernetes(rbac=rbac, service_account=service_account(objects))
    fake.apply(webapp("shop", "shop-web"))
    async with api_server(fake) as api:
        apps = (
            await KubernetesSource.from_settings(api, settings.kubernetes, _nothing).list_once()
        ).apps
        report = await reconcile_prometheus_rules(api, apps, Links(), namespaces=[])
        [(what, why)] = report.errors
        assert what == "Kubernetes" and why.startswith("the Kubernetes API answered 403 Forbidden")
        assert "prometheusrules" in why and "`rbac` values" in why  # what, and where to grant it
        objects_api = client.CustomObjectsApi(api)
        with pytest.raises(client.ApiException) as refused:
            await objects_api.list_cluster_custom_object(
                "monitoring.coreos.com", "v1", "prometheusrules"
            )
        body = yaml.safe_load(refused.value.body)
        assert refused.value.status == 403
        assert body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'prometheusrules.monitoring.coreos.com is forbidden: User "system:'
            'serviceaccount:correlator:correlator" cannot list resource "prometheusrules" in API '
            'group "monitoring.coreos.com" at the cluster scope',
            "reason": "Forbidden",
            "details": {"group": "monitoring.coreos.com", "kind": "prometheusrules"},
            "code": 403,
        }
        with pytest.raises(client.ApiException) as refused:  # a Lease the Role does not name
            await client.CoordinationV1Api(api).read_namespaced_lease("other", NAMESPACE)
        assert yaml.safe_load(refused.value.body)["message"] == (
            'leases.coordination.k8s.io "other" is forbidden: User "system:serviceaccount:'
            'correlator:correlator" cannot get resource "leases" in API group '
            '"coordination.k8s.io" in the namespace "correlator"'
        )
    other = FakeKubernetes(rbac=rbac, service_account=(NAMESPACE, "default"))
    other.apply(webapp("shop", "shop-web"))
    async with api_server(other) as api:
        with pytest.raises(KubeDenied) as denied:
            await KubernetesSource.from_settings(api, settings.kubernetes, _nothing).list_once()
        assert denied.value.status == 403
