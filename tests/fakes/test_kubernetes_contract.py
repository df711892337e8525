"""The Kubernetes API test server's bodies are ones a real API server could send.

Correlator's own leader election and discovery drive the test server; every JSON body it
answers, and every watch event, is then checked against outside evidence: the built-in kinds
(Lease, Status, WatchEvent, ObjectMeta, ListMeta) against Kubernetes' OpenAPI through
`kubernetes-validate` for each supported Kubernetes, WebApplications against our CRD's
structural schema as the API server applies it (validation and pruning), PrometheusRules
against prometheus-operator's CRD.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from aiohttp import web
from kubernetes_asyncio import client
from packaging.version import Version

from correlator.discovery.kubernetes import KubernetesSource
from correlator.leader import KubernetesLease, Timings
from correlator.models.crd import webapplication_crd
from correlator.provisioning.kubernetes_rules import reconcile_prometheus_rules
from correlator.provisioning.naming import Links
from tests.fakes.kubernetes import FakeKubernetes, Rbac
from tests.support import structural
from tests.support.servers import served

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_RULES = (
    ROOT / "tests/contracts/prometheus-operator/monitoring.coreos.com_prometheusrules.yaml"
)
KUBE_VERSIONS = [
    v
    for v in sorted(set(kubernetes_validate.utils.all_versions()), key=Version)
    if Version(v) >= Version("1.29")
]
GROUP, VERSION = "platform.correlator.dev", "v1alpha1"
NAMESPACE = "shop"


@cache
def builtin_validator(stem: str, kube: str) -> jsonschema.protocols.Validator:
    """Kubernetes' own schema of a type (`status-meta-v1`), strict: no undeclared field."""
    folder = f"kubernetes-json-schema/v{kube}-local-strict"
    schema = kubernetes_validate.utils.schema_contents(f"{folder}/{stem}.json", kube)
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", kube)
    registry: referencing.Registry[Any] = referencing.Resource.from_contents(definitions) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry()
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def check_builtin(obj: Any, stem: str) -> None:
    for kube in KUBE_VERSIONS:
        builtin_validator(stem, kube).validate(obj)


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    if kind == "WebApplication":
        crd = webapplication_crd(GROUP, VERSION)
    else:
        crd = yaml.safe_load(PROMETHEUS_RULES.read_text())
    served_version = next(v for v in crd["spec"]["versions"] if v["served"] and v["storage"])
    schema: dict[str, Any] = served_version["schema"]["openAPIV3Schema"]
    return schema


def check_object(obj: dict[str, Any]) -> None:
    """One object as the API server would serve it; fails naming the object."""
    kind = obj.get("kind")
    try:
        if kind == "Lease":
            for kube in KUBE_VERSIONS:
                kubernetes_validate.validate(obj, kube, strict=True)
            missing = {"uid", "creationTimestamp", "resourceVersion"} - set(obj["metadata"])
            assert not missing, f"metadata lacks {sorted(missing)}"
        elif kind == "Status":
            check_builtin(obj, "status-meta-v1")
        elif kind in ("WebApplication", "PrometheusRule"):
            structural.validate(obj, crd_schema(kind))
            check_builtin(obj["metadata"], "objectmeta-meta-v1")
            # The API server sets these on every stored custom resource (and keeps them across
            # updates): uid and creationTimestamp at creation, generation from 1.
            missing = {"uid", "creationTimestamp", "generation"} - set(obj["metadata"])
            assert not missing, f"metadata lacks {sorted(missing)}"
        elif kind in ("WebApplicationList", "PrometheusRuleList"):
            assert set(obj) == {"apiVersion", "kind", "metadata", "items"}, obj
            check_builtin(obj["metadata"], "listmeta-meta-v1")
            for item in obj["items"]:
                check_object({"apiVersion": obj["apiVersion"], "kind": kind[:-4], **item})
        else:
            raise AssertionError(f"no evidence to check a {kind} against")
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        raise AssertionError(f"{kind} {json.dumps(obj)[:300]}: {exc}") from None


def check_watch_event(event: dict[str, Any]) -> None:
    check_builtin(event, "watchevent-meta-v1")
    assert event["type"] in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"), event
    obj = event["object"]
    if event["type"] == "BOOKMARK":
        # A bookmark carries only the kind and the resourceVersion, never the object's fields.
        assert set(obj) == {"apiVersion", "kind", "metadata"}, obj
        assert set(obj["metadata"]) <= {"resourceVersion", "annotations"}, obj
        check_builtin(obj["metadata"], "objectmeta-meta-v1")
    elif event["type"] == "ERROR":
        assert obj["kind"] == "Status", obj
        check_object(obj)
    else:
        check_object(obj)


@dataclass
class Kube:
    fake: FakeKubernetes
    url: str
    api: client.ApiClient
    http: httpx.AsyncClient
    answers: list[tuple[str, int, Any]] = field(default_factory=list)  # (path, status, body)


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    fake = FakeKubernetes()
    answers: list[tuple[str, int, Any]] = []

    @web.middleware
    async def tap(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if isinstance(response, web.Response) and response.content_type == "application/json":
            assert response.body is not None and isinstance(response.body, bytes)
            answers.append((request.path, response.status, json.loads(response.body)))
        return response

    fake.app.middlewares.insert(0, tap)
    async with served(fake.app) as url:
        configuration = client.Configuration(host=url)
        configuration.api_key = {"BearerToken": fake.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        headers = {"Authorization": f"Bearer {fake.token}"}
        async with (
            client.ApiClient(configuration) as api,
            httpx.AsyncClient(base_url=url, headers=headers) as http,
        ):
            try:
                yield Kube(fake, url, api, http, answers)
            finally:
                fake.break_watches()


def check_answers(kube: Kube) -> int:
    for path, code, body in kube.answers:
        assert body.get("kind"), (path, code, body)
        check_object(body)
    return len(kube.answers)


def webapplications() -> list[dict[str, Any]]:
    examples = [
        doc
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "WebApplication"
    ]
    assert examples
    return [
        {**example, "metadata": {**example["metadata"], "namespace": NAMESPACE}}
        for example in examples
    ]


async def test_the_leases_correlators_election_writes_and_reads_are_valid_leases(
    kube: Kube,
) -> None:
    lease = "correlator-leader"
    moments = iter(datetime(2026, 12, 6, 9, 0, s, 250_000 + s, tzinfo=UTC) for s in range(60))
    timings = Timings(lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)

    def candidate(identity: str) -> KubernetesLease:
        return KubernetesLease(
            kube.api,
            namespace=NAMESPACE,
            name=lease,
            identity=identity,
            timings=timings,
            wall_clock=lambda: next(moments),
        )

    a, b = candidate("a"), candidate("b")
    assert await a.campaign_once()  # creates
    assert await a.campaign_once()  # renews
    assert not await b.campaign_once()  # held by another
    kube.fake.touch_lease(NAMESPACE, lease)
    kube.fake.writes_before_next_lease_replace = 1
    await a.campaign_once()  # a replace based on a stale resourceVersion: 409
    assert await a.campaign_once()
    await a.release()
    # The refusals a client can meet: not found, undecodable, invalid.
    base = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    await kube.http.get(f"{base}/missing")
    await kube.http.post(base, json={"metadata": {"name": "x"}, "spec": {"renewTime": "now"}})
    await kube.http.post(base, json={"metadata": {"name": "x"}, "spec": {"leaseTransitions": -1}})
    await kube.http.post(base, json={"metadata": {"name": lease}, "spec": {}})

    codes = sorted({code for _, code, _ in kube.answers})
    assert codes == [200, 201, 400, 404, 409, 422]
    assert check_answers(kube) >= 10
    for stored in kube.fake.lease_writes:
        check_object(stored)


async def read_watch(kube: Kube, path: str, **params: str) -> list[dict[str, Any]]:
    answer = await kube.http.get(
        path, params={"watch": "true", "timeoutSeconds": "1", **params}, timeout=10
    )
    assert answer.status_code == 200
    return [json.loads(line) for line in answer.text.splitlines() if line]


async def test_the_webapplications_their_status_and_watch_events_are_what_an_api_server_sends(
    kube: Kube,
) -> None:
    apps = webapplications()
    for app in apps:
        kube.fake.apply(app)
    source = KubernetesSource(
        kube.api,
        group=GROUP,
        version=VERSION,
        namespaces=[NAMESPACE],
        on_change=lambda snapshot: _nothing(),
        watch_timeout_s=1,
    )
    snapshot = await source.list_once()
    assert len(snapshot.apps) == len(apps)
    first, second = snapshot.apps[0].key, snapshot.apps[-1].key
    await source.write_condition(first, ok=True, message="2 dashboards, 3 rules")
    await source.write_condition(second, ok=False, message="Grafana answered 412 " * 100)
    changed = {**apps[0], "spec": {**apps[0]["spec"], "team": "checkout-team"}}
    kube.fake.apply(changed)
    kube.fake.delete(NAMESPACE, apps[-1]["metadata"]["name"])

    plural = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/webapplications"
    listed = (await kube.http.get(plural)).json()
    assert [item["metadata"]["name"] for item in listed["items"]] == sorted(
        a["metadata"]["name"] for a in apps[:-1]
    )
    events = await read_watch(kube, plural, resourceVersion="0", allowWatchBookmarks="true")
    assert {e["type"] for e in events} == {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"}
    statuses = [e["object"]["status"] for e in events if e["object"].get("status")]
    assert {c["status"] for s in statuses for c in s["conditions"]} == {"True", "False"}
    kube.fake.compact()
    expired = await read_watch(kube, plural, resourceVersion="1")
    assert [e["type"] for e in expired] == ["ERROR"]
    missing = await kube.http.patch(
        f"{plural}/missing/status",
        json={"status": {}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert missing.status_code == 404

    for event in events + expired:
        check_watch_event(event)
    assert check_answers(kube) >= 4  # the list, two status writes, the 404


async def _nothing() -> None:
    return None


async def test_the_prometheusrules_correlator_applies_are_served_as_prometheus_operator_defines(
    kube: Kube,
) -> None:
    for app in webapplications():
        kube.fake.apply(app)
    source = KubernetesSource(
        kube.api,
        group=GROUP,
        version=VERSION,
        namespaces=[NAMESPACE],
        on_change=lambda snapshot: _nothing(),
    )
    apps = (await source.list_once()).apps
    created = await reconcile_prometheus_rules(kube.api, apps, Links(), namespaces=[NAMESPACE])
    assert not created.errors
    changed = await reconcile_prometheus_rules(
        kube.api, apps, Links(grafana_url="https://grafana.example"), namespaces=[NAMESPACE]
    )
    assert not changed.errors
    assert {code for path, code, _ in kube.answers if "prometheusrules" in path} == {200, 201}
    assert check_answers(kube) >= 1 + 2 * len(apps)


async def test_an_rbac_refusal_is_the_api_servers_forbidden_status(kube: Kube) -> None:
    """With RBAC that grants nothing, each kind of request is a 403 Status an API server sends."""
    kube.fake.rbac = Rbac([])
    plural = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/webapplications"
    await kube.http.get(plural)
    await kube.http.get(f"/apis/{GROUP}/{VERSION}/webapplications", params={"watch": "1"})
    await kube.http.patch(
        f"{plural}/web/status",
        json={"status": {}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    await kube.http.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/l")
    refused = [(code, body["reason"], body["details"]) for _, code, body in kube.answers]
    assert refused == [
        (403, "Forbidden", {"group": GROUP, "kind": "webapplications"}),
        (403, "Forbidden", {"group": GROUP, "kind": "webapplications"}),
        (403, "Forbidden", {"name": "web", "group": GROUP, "kind": "webapplications"}),
        (403, "Forbidden", {"name": "l", "group": "coordination.k8s.io", "kind": "leases"}),
    ]
    assert [a.verb for a in kube.fake.forbidden] == ["list", "watch", "patch", "get"]
    assert 'cannot patch resource "webapplications/status"' in kube.answers[2][2]["message"]
    assert check_answers(kube) == 4


def test_the_checks_refuse_what_an_api_server_would_not_send() -> None:
    """The oracle can fail: each check refuses a body a real API server would not produce."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": NAMESPACE, "resourceVersion": "1"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "holder": "typo"},
    }
    with pytest.raises(AssertionError, match="holder"):
        check_object(lease)
    app = webapplications()[0]
    app["metadata"] |= {"uid": "u", "generation": 1, "resourceVersion": "7"}
    app["status"] = {"observedGeneration": 1, "conditions": [], "phase": "Ready"}
    with pytest.raises(AssertionError, match=r"\.status\.phase"):
        check_object(app)
    app["status"].pop("phase")
    app["metadata"]["generation"] = "1"
    with pytest.raises(AssertionError, match="generation"):
        check_object(app)
    bookmark = {
        "type": "BOOKMARK",
        "object": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WebApplication",
            "metadata": {"resourceVersion": "9"},
            "spec": {},
        },
    }
    with pytest.raises(AssertionError):
        check_watch_event(bookmark)
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "code": "404"}
    with pytest.raises(AssertionError, match="code"):
        check_object(status)
