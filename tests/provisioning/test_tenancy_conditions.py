"""Ownership is granted by the platform (issue 23, item 2): `correlator serve` following the
Kubernetes API (test server) refuses a WebApplication that claims another team's repository,
channel, team or receiver, with a `Provisioned=False` condition naming the field, and
provisions nothing for it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from correlator.provisioning.naming import dashboard_uid
from tests.provisioning.test_kubernetes_provisioning import cluster, grafana, webapp
from tests.support.processes import Service
from tests.support.servers import eventually

__all__ = ["cluster", "grafana"]  # the fixtures

TEAMS = {
    "shop": {"namespaces": ["shop"], "chat_channels": ["C0SHOP"],
             "repositories": ["https://github.com/acme/shop-*"], "receivers": ["shop-pager"]},
    "payments": {"namespaces": ["payments"], "chat_channels": ["C0PAYMENTS"],
                 "repositories": ["https://github.com/acme/payments"],
                 "receivers": ["payments-pager"]},
}  # fmt: skip
CLAIMS = {
    "repo": ({"repo": "https://github.com/acme/payments"}, "spec.repo"),
    "channel": ({"alerting": {"chatChannel": "C0PAYMENTS"}}, "spec.alerting.chatChannel"),
    "team": ({"team": "payments"}, "spec.team"),
    "page": ({"alerting": {"pageReceiver": "payments-pager"}}, "spec.alerting.pageReceiver"),
    "ticket": ({"alerting": {"ticketReceiver": "payments-pager"}}, "spec.alerting.ticketReceiver"),
    "logs": ({"observability": {"logSelector": '{namespace="payments"}'}},
             "spec.observability.logSelector"),
    "traces": ({"observability": {"traceService": "checkout.payments"}},
               "spec.observability.traceService"),
    "runbook": ({"observability": {"runbookUrl": 'https://x/{{ query "up" }}'}},
                "spec.observability.runbookUrl"),
    "severity": ({"alerting": {"severity": {"page": "{{ $value }}"}}},
                 "spec.alerting.severity.page"),
}  # fmt: skip


async def test_claims_outside_the_binding_are_refused_naming_the_field(
    cluster: Any, grafana: Any, tmp_path: Path
) -> None:
    k8s, kubeconfig = cluster
    fake_grafana, url = grafana
    k8s.apply(webapp("checkout", "payments", team="payments"))
    k8s.apply(webapp("web", "shop", team="shop", repo="https://github.com/acme/shop-web"))
    for name, (spec, _) in CLAIMS.items():
        k8s.apply(webapp(f"evil-{name}", "shop", **{"team": "shop", **spec}))
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_KUBERNETES_DISCOVERY": "true",
            "CORRELATOR_KUBERNETES_KUBECONFIG": str(kubeconfig),
            "CORRELATOR_PROVISIONING_GRAFANA_URL": url,
            "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": fake_grafana.token,
            "CORRELATOR_TENANCY_TEAMS": json.dumps(TEAMS),
        },
    )
    await asyncio.to_thread(service.start)
    try:

        def condition(namespace: str, name: str) -> dict[str, Any] | None:
            obj = k8s.objects.get(("webapplications", namespace, name), {})
            conditions = obj.get("status", {}).get("conditions", [])
            return conditions[0] if conditions else None

        names = [("payments", "checkout"), ("shop", "web")]
        names += [("shop", f"evil-{claim}") for claim in CLAIMS]
        await eventually(
            lambda: all(condition(*key) is not None for key in names), "every condition"
        )
        assert condition("payments", "checkout")["status"] == "True"  # type: ignore[index]
        assert condition("shop", "web")["status"] == "True"  # type: ignore[index]
        for claim, (_, field) in CLAIMS.items():
            written = condition("shop", f"evil-{claim}")
            assert written is not None and written["status"] == "False", claim
            assert field in written["message"], (claim, written["message"])
            assert dashboard_uid("shop", f"evil-{claim}") not in fake_grafana.dashboards
        assert dashboard_uid("shop", "web") in fake_grafana.dashboards
    finally:
        await asyncio.to_thread(service.stop)
