"""The Grafana test server's contact-point and notification-policy endpoints refuse and answer
as Grafana does, so the routing tests mean it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakes.grafana import FakeGrafana
from tests.support import optional
from tests.support.servers import served

WEBHOOK = {
    "uid": "hook",
    "name": "hook",
    "type": "webhook",
    "settings": {"url": "http://x.example/", "authorization_credentials": "s3cret"},
}


async def test_contact_points_policies_and_rule_notification_settings() -> None:
    optional.require(optional.GRAFANA_OPENAPI)  # its 400s for ill-typed bodies come from it
    fake = FakeGrafana()
    async with (
        served(fake.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {fake.token}"}) as http,
    ):

        async def call(method: str, path: str, body: Any = None) -> httpx.Response:
            return await http.request(method, f"/api/v1/provisioning/{path}", json=body)

        no_url = {**WEBHOOK, "settings": {"httpMethod": "POST"}}
        assert (await call("POST", "contact-points", no_url)).status_code == 400
        both = {**WEBHOOK, "settings": {**WEBHOOK["settings"], "username": "u", "password": "p"}}
        assert (await call("POST", "contact-points", both)).status_code == 400
        unknown_type = {**WEBHOOK, "type": "carrier-pigeon"}
        assert (await call("POST", "contact-points", unknown_type)).status_code == 400
        created = await call("POST", "contact-points", WEBHOOK)
        assert created.status_code == 202
        assert created.json()["settings"]["authorization_credentials"] == "[REDACTED]"
        listed = (await call("GET", "contact-points")).json()
        assert [p["name"] for p in listed] == ["grafana-default-email", "hook"]
        assert "s3cret" not in (await call("GET", "contact-points?name=hook")).text
        # Sending the redacted placeholder back keeps the stored secret.
        redacted = {
            **WEBHOOK,
            "settings": {**WEBHOOK["settings"], "authorization_credentials": "[REDACTED]"},
        }
        assert (await call("PUT", "contact-points/hook", redacted)).status_code == 202
        assert fake.contact_points["hook"]["settings"]["authorization_credentials"] == "s3cret"

        tree = (await call("GET", "policies")).json()
        assert tree["receiver"] == "grafana-default-email"
        bad = [
            {**tree, "routes": [{"receiver": "nobody"}]},  # no such contact point
            {"routes": []},  # the root needs a receiver
            {**tree, "object_matchers": [["a", "=", "b"]]},  # the root matches everything
            {**tree, "routes": [{"receiver": "hook", "object_matchers": [{"Name": "a"}]}]},
            {**tree, "routes": {"receiver": "hook"}},
        ]
        for body in bad:
            refused = await call("PUT", "policies", body)
            assert refused.status_code == 400, body
        route = {"receiver": "hook", "object_matchers": [["team", "=", "a"]], "continue": True}
        assert (await call("PUT", "policies", {**tree, "routes": [route]})).status_code == 202
        assert (await call("GET", "policies")).json()["routes"] == [route]
        in_use = await call("DELETE", "contact-points/hook")
        assert in_use.status_code == 409 and "hook" in fake.contact_points
        assert (await call("DELETE", "policies")).status_code == 202
        assert "routes" not in (await call("GET", "policies")).json()  # one object, reset whole

        assert (await http.post("/api/folders", json={"uid": "f", "title": "F"})).status_code == 200
        rule = {
            "title": "r",
            "orgID": 1,
            "folderUID": "f",
            "ruleGroup": "g",
            "condition": "A",
            "data": [{"refId": "A", "datasourceUid": "p", "model": {"expr": "vector(1)"}}],
            "noDataState": "OK",
            "execErrState": "Error",
            "for": "1m",
        }
        nobody = {**rule, "notification_settings": {"receiver": "nobody"}}
        unknown = await call("POST", "alert-rules", nobody)
        # notifier.ErrorReceiverDoesNotExist reaches the handler unwrapped: a 500 whose body
        # does not say why (a policy tree naming an unknown receiver, above, is a 400).
        assert unknown.status_code == 500 and unknown.json() == {"message": "Internal Server Error"}
        named = await call(
            "POST", "alert-rules", {**rule, "notification_settings": {"receiver": "hook"}}
        )
        assert named.status_code == 201
        assert (await call("DELETE", "contact-points/hook")).status_code == 409  # a rule names it
        fake.version = "10.3.0"  # before simplified routing: the field is unknown, dropped
        old = await call(
            "POST",
            "alert-rules",
            {**rule, "uid": "old", "notification_settings": {"receiver": "nobody"}},
        )
        assert old.status_code == 201 and old.json()["notification_settings"] is None


async def test_provenance_follows_the_header_and_a_provisioned_tree_stays_provisioned() -> None:
    fake = FakeGrafana()
    async with (
        served(fake.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {fake.token}"}) as http,
    ):

        async def call(method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
            return await http.request(
                method, f"/api/v1/provisioning/{path}", json=body, headers=headers
            )

        editable = {"X-Disable-Provenance": "true"}
        tree = (await call("GET", "policies")).json()
        assert tree["provenance"] == ""
        assert (await call("PUT", "policies", tree, **editable)).status_code == 202
        assert (await call("GET", "policies")).json()["provenance"] == ""
        # The header's presence decides, whatever its value.
        assert (await call("PUT", "policies", tree, **{"X-Disable-Provenance": "false"})).is_success
        assert (await call("GET", "policies")).json()["provenance"] == ""
        assert (await call("PUT", "policies", tree)).status_code == 202
        assert (await call("GET", "policies")).json()["provenance"] == "api"
        # From api back to none is refused; only a reset unlocks the tree.
        refused = await call("PUT", "policies", tree, **editable)
        assert refused.status_code == 403
        assert refused.json()["messageId"] == "alerting.notifications.invalidProvenance"
        assert (await call("DELETE", "policies")).status_code == 202
        assert (await call("GET", "policies")).json()["provenance"] == ""

        fake.provision_policy_tree([{"receiver": "grafana-default-email"}], "file")
        provisioned = (await call("GET", "policies")).json()
        assert provisioned["provenance"] == "file"
        assert (await call("PUT", "policies", provisioned, **editable)).status_code == 403

        made = await call("POST", "contact-points", WEBHOOK)
        assert made.json()["provenance"] == "api"
        kept_editable = await call("POST", "contact-points", {**WEBHOOK, "uid": "h2"}, **editable)
        assert kept_editable.json()["provenance"] == ""


async def test_contact_points_are_grouped_by_name_and_deleted_as_grafana_does() -> None:
    fake = FakeGrafana()
    async with (
        served(fake.app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {fake.token}"}) as http,
    ):

        async def call(method: str, path: str, body: Any = None) -> httpx.Response:
            return await http.request(method, f"/api/v1/provisioning/{path}", json=body)

        # A second contact point of an existing name is not refused: it joins that name.
        assert (await call("POST", "contact-points", WEBHOOK)).status_code == 202
        second = {**WEBHOOK, "uid": "hook-2", "settings": {"url": "http://y.example/"}}
        assert (await call("POST", "contact-points", second)).status_code == 202
        named = (await call("GET", "contact-points?name=hook")).json()
        assert sorted(point["uid"] for point in named) == ["hook", "hook-2"]

        tree = (await call("GET", "policies")).json()
        assert (
            await call("PUT", "policies", {**tree, "routes": [{"receiver": "hook"}]})
        ).is_success
        # An unknown uid: 202, as for a deletion.
        unknown = await call("DELETE", "contact-points/nobody")
        assert unknown.status_code == 202
        assert unknown.json() == {"message": "contactpoint deleted"}
        # One of two integrations of a referenced name may go; the last one may not.
        assert (await call("DELETE", "contact-points/hook-2")).status_code == 202
        assert "hook-2" not in fake.contact_points
        assert (await call("DELETE", "contact-points/hook")).status_code == 409
        assert "hook" in fake.contact_points
