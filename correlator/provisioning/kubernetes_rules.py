"""PrometheusRule objects applied through the Kubernetes API (prometheus-operator).

Each app's rules go into `webapp-NAME` in its namespace, labelled as correlator's; an object
that differs from the desired one is replaced (with its resourceVersion, so a concurrent
change is a conflict, retried at the next pass), and correlator's objects whose app is gone are
deleted. Objects without correlator's label are never touched.

With `kubernetes.namespaces` set, every list is per namespace: the RBAC then grants Roles in
those namespaces only (the chart's `rbac.namespaces`), and a cluster-wide list is a 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kubernetes_asyncio import client

from correlator.models.webapp import WebApplication
from correlator.outbound.kube import KubeError, kube_call
from correlator.provisioning.alert_rules import prometheus_rule
from correlator.provisioning.naming import MANAGED_BY, Links
from correlator.provisioning.reconcile import Action, Report, Step

GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "prometheusrules"
OWNED = f"app.kubernetes.io/managed-by={MANAGED_BY}"


async def _list_owned(
    objects: client.CustomObjectsApi, namespaces: Sequence[str]
) -> list[dict[str, Any]]:
    """correlator's PrometheusRules: one list per namespace when namespaces are configured (the
    RBAC grants no more), else one cluster-wide list."""
    if not namespaces:
        listed = await kube_call(
            objects.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=OWNED)
        )
        return list(listed.get("items", []))
    items: list[dict[str, Any]] = []
    for namespace in sorted(set(namespaces)):
        listed = await kube_call(
            objects.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, label_selector=OWNED
            )
        )
        items += listed.get("items", [])
    return items


async def reconcile_prometheus_rules(
    api: client.ApiClient,
    apps: Iterable[WebApplication],
    links: Links,
    *,
    namespaces: Sequence[str],
    dry_run: bool = False,
) -> Report:
    """Make each app's PrometheusRule the desired one and delete correlator's orphans.

    `namespaces` is `kubernetes.namespaces`: empty for the whole cluster, else the only
    namespaces read or written (an app elsewhere is reported, not written).
    """
    objects = client.CustomObjectsApi(api)
    report = Report()
    desired = {}
    for app in apps:
        if namespaces and app.namespace not in namespaces:
            report.errors.append(
                (
                    app.key,
                    f"namespace {app.namespace} is not in kubernetes.namespaces "
                    f"({', '.join(namespaces)}): its PrometheusRule is not written",
                )
            )
            continue
        desired[(app.namespace, f"webapp-{app.name}")] = (app, prometheus_rule(app, links))
    try:
        listed = await _list_owned(objects, namespaces)
    except KubeError as exc:
        report.errors.append(("Kubernetes", str(exc)))
        return report
    live: dict[tuple[str, str], dict[str, Any]] = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in listed
    }
    for (namespace, name), (app, want) in sorted(desired.items()):
        current = live.get((namespace, name))
        try:
            if current is None:
                if not dry_run:
                    await kube_call(
                        objects.create_namespaced_custom_object(
                            GROUP, VERSION, namespace, PLURAL, want
                        )
                    )
                report.steps.append(Step(Action.CREATE, name, app.key, "created", "prometheusrule"))
            elif current.get("spec") != want["spec"] or (
                current["metadata"].get("labels", {}) != want["metadata"]["labels"]
            ):
                if not dry_run:
                    body = {
                        **want,
                        "metadata": {
                            **want["metadata"],
                            "resourceVersion": current["metadata"]["resourceVersion"],
                        },
                    }
                    await kube_call(
                        objects.replace_namespaced_custom_object(
                            GROUP, VERSION, namespace, PLURAL, name, body
                        )
                    )
                report.steps.append(Step(Action.UPDATE, name, app.key, "changed", "prometheusrule"))
            else:
                report.steps.append(
                    Step(Action.UNCHANGED, name, app.key, "in sync", "prometheusrule")
                )
        except KubeError as exc:
            report.errors.append((app.key, str(exc)))
    for namespace, name in sorted(live.keys() - desired.keys()):
        try:
            if not dry_run:
                await kube_call(
                    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
                )
            report.steps.append(
                Step(Action.DELETE, name, None, "its WebApplication is gone", "prometheusrule")
            )
        except KubeError as exc:
            report.errors.append((f"{namespace}/{name}", str(exc)))
    return report
