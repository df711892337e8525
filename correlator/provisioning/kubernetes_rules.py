"""PrometheusRule objects applied through the Kubernetes API (prometheus-operator).

Each app's rules go into `webapp-NAME` in its namespace, labelled as correlator's; an object
that differs from the desired one is replaced (with its resourceVersion, so a concurrent
change is a conflict, retried at the next pass), and correlator's objects whose app is gone are
deleted. Objects without correlator's label are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from correlator.models.webapp import WebApplication
from correlator.provisioning.alert_rules import prometheus_rule
from correlator.provisioning.naming import MANAGED_BY, Links
from correlator.provisioning.reconcile import Action, Report, Step

GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "prometheusrules"
OWNED = f"app.kubernetes.io/managed-by={MANAGED_BY}"


def _describe(exc: ApiException) -> str:
    return f"Kubernetes API answered {exc.status} {exc.reason}"


async def reconcile_prometheus_rules(
    api: client.ApiClient, apps: Iterable[WebApplication], links: Links, *, dry_run: bool = False
) -> Report:
    objects = client.CustomObjectsApi(api)
    report = Report()
    desired = {
        (app.namespace, f"webapp-{app.name}"): (app, prometheus_rule(app, links)) for app in apps
    }
    try:
        listed = await objects.list_cluster_custom_object(
            GROUP, VERSION, PLURAL, label_selector=OWNED
        )
    except ApiException as exc:
        report.errors.append(("Kubernetes", _describe(exc)))
        return report
    live: dict[tuple[str, str], dict[str, Any]] = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in listed.get("items", [])
    }
    for (namespace, name), (app, want) in sorted(desired.items()):
        current = live.get((namespace, name))
        try:
            if current is None:
                if not dry_run:
                    await objects.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, want
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
                    await objects.replace_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, name, body
                    )
                report.steps.append(Step(Action.UPDATE, name, app.key, "changed", "prometheusrule"))
            else:
                report.steps.append(
                    Step(Action.UNCHANGED, name, app.key, "in sync", "prometheusrule")
                )
        except ApiException as exc:
            report.errors.append((app.key, _describe(exc)))
    for namespace, name in sorted(live.keys() - desired.keys()):
        try:
            if not dry_run:
                await objects.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name
                )
            report.steps.append(
                Step(Action.DELETE, name, None, "its WebApplication is gone", "prometheusrule")
            )
        except ApiException as exc:
            report.errors.append((f"{namespace}/{name}", _describe(exc)))
    return report
