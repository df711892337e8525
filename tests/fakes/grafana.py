"""A Grafana test server for the folder, dashboard and search endpoints correlator uses.

It checks every request body against Grafana's own OpenAPI description
(../shared/contracts/grafana/openapi3.json) and every JSON answer it gives against the same
document, so it cannot accept what Grafana would refuse nor answer what Grafana would not.
Semantics follow Grafana: a save without `overwrite` of a changed dashboard is a 412
`version-mismatch`; up to 11.2 another dashboard with the same title in the folder is a 412
`name-exists` without `overwrite`, and with `overwrite` the save takes that dashboard over (it
adopts its uid, id and version, as Grafana's getExistingDashboardByTitleAndFolder does); an
existing folder UID is a 409 (412 from 11.3, see below); no or a wrong token is a 401.
Alert rules are answered with Grafana's defaults filled in; an invalid annotation PATCH is a
400.

Notification endpoints (provisioning API, Grafana's docs for contact points and notification
policies, and the webhook notifier's settings): a contact point is created (202, with its
secure settings `password` and `authorization_credentials` answered as "[REDACTED]"), updated
(202) and deleted
(202, also for an unknown uid; 409 only for the last integration of a name a route or a rule's
notification_settings names). Contact points are grouped by name: a new one with an existing
name joins it as one more integration, as in Grafana. A write without `X-Disable-Provenance`
marks the object provenance `api` (the header's presence decides), and a provisioned policy
tree is not turned back to none (403 `invalidProvenance`), only reset by DELETE;
`provision_policy_tree(routes, provenance)` presets a tree another tool provisioned. A
webhook needs `url`, and Basic and an Authorization header together are refused (400). The
notification policy tree is one object: GET answers it whole, PUT replaces it whole (400 if a
route names a receiver that does not exist, or the root has no receiver or has matchers) and
DELETE resets it; the provisioning API carries no version for it, so a writer that wants not
to lose a concurrent edit must re-read before writing (`before_next_tree_read` lets a test be
that concurrent editor). Rule-level `notification_settings` (simplified routing, not in the
stored OpenAPI: from the provisioning docs of Grafana 11) must name an existing contact point
(else 500, see below); a Grafana older than 10.4 ignores the field as unknown JSON.

Grafana by version (`version`, one of VERSIONS or any "major.minor.patch"; `hide_version`):
- /api/health leaves out `version` and `commit` with `[auth.anonymous] hide_version`
  (apiHealthHandler in pkg/api/http_server.go); /api/frontend/settings still shows
  `buildInfo.version` to a signed-in caller such as a service account token (hideVersion is
  `AnonymousHideVersion && !c.IsSignedIn`, pkg/api/frontendsettings.go).
- Up to 10.0 folders are dashboards: titles clash by slug, across folders for a folder's
  (getExistingDashboardByTitleAndFolder in pkg/services/dashboards/database/database.go
  matched `slug AND (is_folder OR folder_id)` until grafana/grafana#70378, 10.1): a
  dashboard's title may not be a folder's (400 `name-match`, ErrDashboardWithSameNameAsFolder)
  nor a folder's a dashboard's in the General folder (400,
  ErrDashboardFolderWithSameNameAsDashboard, passed through by pkg/api/apierrors/folder.go),
  and a folder of an existing folder's name is a 409 (ErrFolderSameNameExists).
- 10.1 to 11.2: titles clash as titles: a same-titled dashboard in the folder is 412
  `name-exists`, or with `overwrite` is taken over; a folder of an existing title is 409
  (ErrFolderSameNameExists, apierrors/folder.go).
- From 11.3 titles need not be unique: dashboards and folders of one title are created side by
  side, never taken over, and a folder uid that exists answers 412 `version-mismatch`
  (ErrFolderVersionMismatch in apierrors/folder.go, as the folder API over unified storage
  reports a conflict; issue 22's comparison of Grafana's source, 2026-12-06).
- Rule `notification_settings` (simplified routing, grafana/grafana#77928) exists from 10.4;
  before, it is unknown JSON and dropped (ProvisionedAlertRule in
  pkg/services/ngalert/api/tooling/definitions/provisioning_alert_rules.go).

Rules (pkg/services/ngalert/provisioning/alert_rules.go, api_provisioning.go): provenance is
`api` unless X-Disable-Provenance is sent (its presence decides); an update or a delete whose
provenance differs from a stored `api` or `file` fails with 500, and Grafana's body then says
only "Internal Server Error" (the reason, "cannot change provenance from 'api' to ''", is in
its log: response.ErrOrFallback over a plain error); deleting an absent rule is 204; a second
rule of a uid is 400 (ErrAlertRuleUniqueConstraintViolation); a rule naming a contact point
that does not exist is 500 (notifier.ErrorReceiverDoesNotExist reaches RoutePostAlertRule and
RoutePutAlertRule unwrapped). A second contact point of a uid is 500 (CreateContactPoint's
plain error). An annotation whose dashboardUID names no dashboard is saved as an organisation
annotation and answered 200 (PostAnnotation in pkg/api/annotations.go keeps dashboardId 0 when
the lookup fails).

Test controls: `fail(status, times)` answers the next requests with an error, `delay_s` adds
latency to every request, `edit_by_hand(uid)` changes a dashboard as a person in the UI would,
`before(method, path, action)` runs `action` just before the next such request (someone else
acting meanwhile), and `writes` counts the requests that change something.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema
from aiohttp import web

from tests.support import optional

# Grafana's OpenAPI is AGPL-3.0: not carried in the repository, read from ../shared when there
# (tests/support/optional.py). Without it, the test server answers the same but checks nothing
# against the document, and tests/fakes/test_grafana_contract.py says so.
OPENAPI = optional.find(optional.GRAFANA_OPENAPI)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The versions whose behaviour differs, as the test server imitates them (see the docstring);
# tests/provisioning runs against each.
VERSIONS = ("10.0.3", "10.4.19", "11.2.10", "11.3.0", "12.2.0")
INTERNAL_ERROR = {"message": "Internal Server Error"}  # Grafana's body for a plain error


@cache
def _document() -> dict[str, Any]:
    assert OPENAPI is not None, "validation is off without Grafana's OpenAPI"
    loaded: dict[str, Any] = json.loads(OPENAPI.read_text())
    # The one place the description and the server disagree: Grafana's OpenAPI types Duration
    # (an alert rule's `for`) as int64 nanoseconds, but the provisioning API reads and writes
    # Prometheus durations as strings ("5m"), as its docs and the Terraform provider use.
    loaded["components"]["schemas"]["Duration"] = {
        "type": ["integer", "string"],
        "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$",
    }
    schemas = loaded["components"]["schemas"]
    # Two more generator artefacts, where Grafana's docs and its own UI/Terraform payloads
    # say otherwise: the contact point `type` enum lists " webhook" with a leading space (the
    # server takes "webhook"), and a route's `object_matchers` is marshalled as
    # [["label", "=", "value"], ...] (ObjectMatchers.MarshalJSON), not as Matcher objects.
    point_type = schemas["EmbeddedContactPoint"]["properties"]["type"]
    point_type["enum"] = [name.strip() for name in point_type["enum"]]
    schemas["ObjectMatchers"] = {
        "type": "array",
        "items": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 3,
            "maxItems": 3,
        },
    }
    return loaded


def _validate(schema: dict[str, Any], instance: Any) -> None:
    """Draft 4 semantics (OpenAPI 3.0). Every $ref of the document points into
    #/components, so the schema is given the document's components as its root. Without the
    document (not beside the checkout), nothing is checked against it."""
    if OPENAPI is None:
        return
    jsonschema.Draft4Validator({**schema, "components": _document()["components"]}).validate(
        instance
    )


def _operation(method: str, template: str) -> dict[str, Any]:
    paths = _document()["paths"]
    # Most paths are listed relative to the /api server URL, the provisioning ones in full.
    path = template if template in paths else template.removeprefix("/api")
    op: dict[str, Any] = paths[path][method.lower()]
    return op


def _response_schema(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    response = op["responses"].get(str(status))
    if response is None:
        raise AssertionError(f"Grafana does not answer {op['operationId']} with {status}")
    if "$ref" in response:
        response = _document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] | None = (
        response.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


DEFAULT_CONTACT_POINT = {
    "uid": "default-email",
    "name": "grafana-default-email",
    "type": "email",
    "settings": {"addresses": "<example@email.com>"},
    "disableResolveMessage": False,
}
DEFAULT_POLICY_TREE = {
    "receiver": "grafana-default-email",
    "group_by": ["grafana_folder", "alertname"],
}
SECURE_SETTINGS = ("password", "authorization_credentials")


def _provenance(request: web.Request) -> str:
    """What a provisioning write marks its object with: the header's presence decides, not
    its value (determineProvenance in pkg/services/ngalert/api/api_provisioning.go, Grafana
    9.3 to 12.x; the provisioning docs' "Edit API-provisioned alerting resources"). Marked
    `api`, the UI refuses to edit the object."""
    return "" if "X-Disable-Provenance" in request.headers else "api"


def _receivers_of(route: dict[str, Any]) -> set[str]:
    named = {route["receiver"]} if route.get("receiver") else set()
    for child in route.get("routes") or []:
        named |= _receivers_of(child)
    return named


@dataclass
class StoredDashboard:
    dashboard: dict[str, Any]
    folder_uid: str
    version: int
    id: int
    created: str
    messages: list[str] = field(default_factory=list)


class FakeGrafana:
    """State and handlers; `app` is the aiohttp application to serve."""

    def __init__(
        self,
        *,
        token: str = "glsa_test_token",
        validate: bool = True,
        version: str = "11.5.0",
        hide_version: bool = False,
    ) -> None:
        self.token = token
        # Off in benchmarks, where the checking would dominate, and without the document.
        self.validate = validate and OPENAPI is not None
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, StoredDashboard] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.annotations: dict[int, dict[str, Any]] = {}
        self.annotation_requests: list[dict[str, Any]] = []  # the bodies POSTed, as sent
        self.requests: list[tuple[str, str]] = []
        self.version = version
        self.hide_version = hide_version
        self._before: list[tuple[str, str, Callable[[], None]]] = []
        self.contact_points: dict[str, dict[str, Any]] = {
            "default-email": copy.deepcopy(DEFAULT_CONTACT_POINT)
        }
        self.policy_tree: dict[str, Any] = copy.deepcopy(DEFAULT_POLICY_TREE)
        # "" (none: editable in the UI), "api" or "file": who provisioned the tree.
        self.policy_provenance = ""
        self.before_next_tree_read: list[Any] = []  # callables run before a GET of the tree
        self.delay_s = 0.0
        self._failures: list[int] = []
        self._ids = itertools.count(1)
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_post("/api/dashboards/db", self.save_dashboard)
        self.app.router.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        self.app.router.add_delete("/api/dashboards/uid/{uid}", self.delete_dashboard)
        self.app.router.add_post("/api/folders", self.create_folder)
        self.app.router.add_get("/api/folders/{folder_uid}", self.get_folder)
        self.app.router.add_get("/api/search", self.search)
        self.app.router.add_get("/api/v1/provisioning/alert-rules", self.list_rules)
        self.app.router.add_post("/api/v1/provisioning/alert-rules", self.create_rule)
        self.app.router.add_get("/api/v1/provisioning/alert-rules/{UID}", self.get_rule)
        self.app.router.add_put("/api/v1/provisioning/alert-rules/{UID}", self.update_rule)
        self.app.router.add_delete("/api/v1/provisioning/alert-rules/{UID}", self.delete_rule)
        self.app.router.add_get("/api/health", self.health)
        self.app.router.add_get("/api/frontend/settings", self.frontend_settings)
        self.app.router.add_post("/api/annotations", self.create_annotation)
        self.app.router.add_patch("/api/annotations/{annotation_id}", self.patch_annotation)
        self.app.router.add_get("/api/annotations", self.find_annotations)
        self.app.router.add_get("/api/v1/provisioning/contact-points", self.list_contact_points)
        self.app.router.add_post("/api/v1/provisioning/contact-points", self.create_contact_point)
        self.app.router.add_put(
            "/api/v1/provisioning/contact-points/{UID}", self.update_contact_point
        )
        self.app.router.add_delete(
            "/api/v1/provisioning/contact-points/{UID}", self.delete_contact_point
        )
        self.app.router.add_get("/api/v1/provisioning/policies", self.get_policies)
        self.app.router.add_put("/api/v1/provisioning/policies", self.put_policies)
        self.app.router.add_delete("/api/v1/provisioning/policies", self.reset_policies)
        self.app.router.add_get("/_test/stats", self.stats)

    # --- test controls -----------------------------------------------------------------

    @property
    def writes(self) -> int:
        return sum(1 for method, _ in self.requests if method in WRITE_METHODS)

    def fail(self, status: int, times: int = 1) -> None:
        self._failures += [status] * times

    def before(self, method: str, path: str, action: Callable[[], None]) -> None:
        """Run `action` just before the next `method path` request is handled."""
        self._before.append((method, path, action))

    def at_least(self, major: int, minor: int) -> bool:
        """Whether the imitated Grafana is this version or newer."""
        found = re.match(r"v?(\d+)\.(\d+)", self.version)
        return found is not None and (int(found.group(1)), int(found.group(2))) >= (major, minor)

    def edit_by_hand(self, uid: str, title: str = "edited in the UI") -> None:
        stored = self.dashboards[uid]
        stored.dashboard = {**stored.dashboard, "title": title}
        stored.version += 1
        stored.messages.append("edited by a person")

    def provision_policy_tree(self, routes: list[dict[str, Any]], provenance: str) -> None:
        """The tree as another tool left it: `file` (Grafana's provisioning files) or `api`
        (Terraform, or a script that sent no X-Disable-Provenance)."""
        self.policy_tree = {**copy.deepcopy(DEFAULT_POLICY_TREE), "routes": routes}
        self.policy_provenance = provenance

    def add_foreign_rule(
        self, uid: str, title: str, labels: dict[str, str], *, provenance: str = ""
    ) -> None:
        """A Grafana-managed alert rule someone else made (`file`: from provisioning files)."""
        self.rules[uid] = {
            "uid": uid,
            "title": title,
            "labels": labels,
            "orgID": 1,
            "folderUID": "",
            "ruleGroup": "theirs",
            "condition": "A",
            "noDataState": "OK",
            "execErrState": "Error",
            "for": "5m",
            "id": next(self._ids),
            "provenance": provenance,
            "data": [{"refId": "A", "datasourceUid": "p", "model": {"expr": "vector(1)"}}],
        }

    def add_foreign_dashboard(self, uid: str, title: str, tags: list[str]) -> None:
        """A dashboard someone else made (not through correlator)."""
        self.dashboards[uid] = StoredDashboard(
            {"uid": uid, "title": title, "tags": tags, "panels": []}, "", 1, next(self._ids), _now()
        )

    # --- plumbing --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        if request.path not in ("/api/health", "/_test/stats") and not authorized:
            return self._error(request, 401, "Unauthorized")
        for waiting in list(self._before):
            if waiting[:2] == (request.method, request.path):
                self._before.remove(waiting)
                waiting[2]()
        if self._failures:
            status = self._failures.pop(0)
            if status >= 500:
                return web.json_response({"message": "internal server error"}, status=status)
            return self._error(request, status, f"injected {status}")
        response: web.StreamResponse = await handler(request)
        return response

    def _op(self, request: web.Request) -> dict[str, Any]:
        resource = request.match_info.route.resource
        assert resource is not None
        return _operation(request.method, resource.canonical)

    def _answer(self, request: web.Request, status: int, body: Any) -> web.Response:
        schema = _response_schema(self._op(request), status) if self.validate else None
        if schema is not None:
            _validate(schema, body)
        return web.json_response(body, status=status)

    def _error(
        self, request: web.Request, code: int, message: str, *, status: str | None = None
    ) -> web.Response:
        """Grafana's error body: a message, and for some errors a machine-readable status."""
        body = {"message": message, **({"status": status} if status else {})}
        unlisted = ("/api/health", "/api/frontend/settings")  # not in Grafana's OpenAPI
        if request.match_info.route.resource is not None and request.path not in unlisted:
            return self._answer(request, code, body)
        return web.json_response(body, status=code)

    async def _body(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            raise web.HTTPBadRequest(
                text=json.dumps({"message": "bad request data"}), content_type="application/json"
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(
                text=json.dumps({"message": "bad request data"}), content_type="application/json"
            ) from None
        request_body = self._op(request).get("requestBody") if self.validate else None
        if request_body is not None:
            try:
                _validate(request_body["content"]["application/json"]["schema"], body)
            except jsonschema.ValidationError as exc:
                raise web.HTTPBadRequest(
                    text=json.dumps(
                        {"message": f"bad request data: {exc.json_path}: {exc.message}"}
                    ),
                    content_type="application/json",
                ) from None
        return body

    # --- endpoints -----------------------------------------------------------------------

    def _stored_rule(
        self, request: web.Request, body: dict[str, Any], rule_id: int
    ) -> dict[str, Any]:
        """The rule as Grafana stores and answers it: with its defaults filled in."""
        data = [
            {
                "queryType": "",
                **query,
                "model": {"intervalMs": 1000, "maxDataPoints": 43200, **query.get("model", {})},
            }
            for query in body.get("data", [])
        ]
        return {
            "orgID": 1,
            "annotations": {},
            "labels": {},
            "isPaused": False,
            "notification_settings": None,
            "record": None,
            **body,
            "data": data,
            "id": rule_id,
            "updated": _now(),
            "provenance": _provenance(request),
        }

    async def list_rules(self, request: web.Request) -> web.Response:
        return self._answer(request, 200, list(self.rules.values()))

    async def create_rule(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        uid = body.get("uid") or f"r{next(self._ids)}"
        if uid in self.rules:
            # ErrAlertRuleUniqueConstraintViolation: RoutePostAlertRule answers it 400.
            message = f"failed to insert alert rules: a conflicting alert rule is found: {uid}"
            return self._answer(request, 400, {"message": message, "msg": message})
        if body["folderUID"] not in self.folders:
            return self._answer(
                request, 400, {"message": "folder does not exist", "msg": "folder does not exist"}
            )
        body = self._versioned(body)
        # notifier.ErrorReceiverDoesNotExist, unwrapped: a bare 500 (not the 400 of the tree).
        if self._rule_problem(body) is not None:
            return web.json_response(INTERNAL_ERROR, status=500)
        self.rules[uid] = self._stored_rule(request, {**body, "uid": uid}, next(self._ids))
        return self._answer(request, 201, self.rules[uid])

    async def get_rule(self, request: web.Request) -> web.Response:
        rule = self.rules.get(request.match_info["UID"])
        if rule is None:
            return web.Response(status=404)
        return self._answer(request, 200, rule)

    async def update_rule(self, request: web.Request) -> web.Response:
        uid = request.match_info["UID"]
        body = await self._body(request)
        if uid not in self.rules:
            return web.Response(status=404)
        if not self._provenance_may_change(self.rules[uid]["provenance"], request):
            # UpdateAlertRule: "cannot change provenance from 'api' to ''", a plain error.
            return web.json_response(INTERNAL_ERROR, status=500)
        body = self._versioned(body)
        # notifier.ErrorReceiverDoesNotExist, unwrapped: a bare 500 (not the 400 of the tree).
        if self._rule_problem(body) is not None:
            return web.json_response(INTERNAL_ERROR, status=500)
        self.rules[uid] = self._stored_rule(request, {**body, "uid": uid}, self.rules[uid]["id"])
        return self._answer(request, 200, self.rules[uid])

    async def delete_rule(self, request: web.Request) -> web.Response:
        # DeleteAlertRule checks the stored provenance first ("cannot delete with provided
        # provenance '', needs 'api'", 500), and is idempotent: an absent rule is 204 too.
        rule = self.rules.get(request.match_info["UID"])
        if rule is not None and not self._provenance_may_change(rule["provenance"], request):
            return web.json_response(INTERNAL_ERROR, status=500)
        self.rules.pop(request.match_info["UID"], None)
        return web.Response(status=204)

    @staticmethod
    def _provenance_may_change(stored: str, request: web.Request) -> bool:
        """UpdateAlertRule and DeleteAlertRule: `stored != provenance && stored != none` fails."""
        return stored in ("", _provenance(request))

    # --- notifications -----------------------------------------------------------------

    def _receiver_names(self) -> set[str]:
        return {point["name"] for point in self.contact_points.values()}

    def _redacted(self, point: dict[str, Any]) -> dict[str, Any]:
        settings = {
            key: ("[REDACTED]" if key in SECURE_SETTINGS and value else value)
            for key, value in point["settings"].items()
        }
        return {**point, "settings": settings, "provenance": point.get("provenance", "")}

    def _point_problem(self, body: dict[str, Any]) -> str | None:
        if not body.get("name"):
            return "contact point name is required"
        settings = body.get("settings") or {}
        if body["type"] == "webhook":
            if not settings.get("url"):
                return "failed to validate integration: could not find url property in settings"
            if settings.get("httpMethod", "POST") not in ("POST", "PUT"):
                return "failed to validate integration: unsupported HTTP method"
            basic = settings.get("username") or settings.get("password")
            header = settings.get("authorization_scheme") or settings.get(
                "authorization_credentials"
            )
            if basic and header:
                return (
                    "failed to validate integration: both HTTP Basic Authentication and "
                    "Authorization Header are set, only 1 is permitted"
                )
        return None

    async def list_contact_points(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        points = [
            self._redacted(point)
            for point in self.contact_points.values()
            if name is None or point["name"] == name
        ]
        return self._answer(request, 200, points)

    async def create_contact_point(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        uid = body.get("uid") or f"cp{next(self._ids)}"
        problem = self._point_problem(body)
        if problem is not None:
            return self._answer(request, 400, {"msg": problem, "message": problem})
        if uid in self.contact_points:
            # CreateContactPoint refuses a uid in use with a plain error: RoutePostContactPoint
            # answers 500, not a validation 400.
            return web.json_response(INTERNAL_ERROR, status=500)
        # A name that exists already is not refused: Grafana groups contact points by name
        # and appends this one as one more integration of that receiver, so whatever routes
        # to the name now also reaches this integration (CreateContactPoint in
        # pkg/services/ngalert/provisioning/contactpoints.go, Grafana 9.1 to 12.x). Stored by
        # uid, listed one integration per entry, as the provisioning API lists them.
        stored = {
            "disableResolveMessage": False,
            **body,
            "uid": uid,
            "provenance": _provenance(request),
        }
        self.contact_points[uid] = stored
        return self._answer(request, 202, self._redacted(stored))

    async def update_contact_point(self, request: web.Request) -> web.Response:
        uid = request.match_info["UID"]
        body = await self._body(request)
        if uid not in self.contact_points:
            return web.json_response({"message": "contact point not found"}, status=404)
        problem = self._point_problem(body)
        if problem is not None:
            return self._answer(request, 400, {"msg": problem, "message": problem})
        old = self.contact_points[uid]
        settings = dict(body["settings"])
        for key in SECURE_SETTINGS:  # "[REDACTED]" sent back keeps the stored secret
            if settings.get(key) == "[REDACTED]":
                settings[key] = old["settings"].get(key, "")
        if old["name"] != body["name"]:
            self._rename_receiver(old["name"], body["name"])
        self.contact_points[uid] = {
            "disableResolveMessage": False,
            **body,
            "settings": settings,
            "uid": uid,
            "provenance": _provenance(request),
        }
        return self._answer(request, 202, {"message": "contactpoint updated"})

    def _rename_receiver(self, old: str, new: str) -> None:
        def rename(route: dict[str, Any]) -> None:
            if route.get("receiver") == old:
                route["receiver"] = new
            for child in route.get("routes") or []:
                rename(child)

        rename(self.policy_tree)

    async def delete_contact_point(self, request: web.Request) -> web.Response:
        # Grafana answers 202 {"message": "contactpoint deleted"}, also for a uid it does not
        # know (RouteDeleteContactPoint in pkg/services/ngalert/api/api_provisioning.go,
        # Grafana 9.1 to 12.x); its OpenAPI says 204, so this answer is not checked against
        # the document. Removing one integration of a name that has others is always allowed;
        # only removing the last one of a name that a route or a rule names is refused (409,
        # DeleteContactPoint's fullRemoval check in .../provisioning/contactpoints.go).
        deleted = web.json_response({"message": "contactpoint deleted"}, status=202)
        point = self.contact_points.get(request.match_info["UID"])
        if point is None:
            return deleted
        used_by_rule = any(
            (rule.get("notification_settings") or {}).get("receiver") == point["name"]
            for rule in self.rules.values()
        )
        last = not any(
            other["name"] == point["name"] and uid != point["uid"]
            for uid, other in self.contact_points.items()
        )
        if last and (point["name"] in _receivers_of(self.policy_tree) or used_by_rule):
            return web.json_response(
                {
                    "message": "contact point is referenced by a notification policy or rule",
                    "messageId": "alerting.notifications.contact-points.referenced",
                },
                status=409,
            )
        del self.contact_points[point["uid"]]
        return deleted

    async def get_policies(self, request: web.Request) -> web.Response:
        while self.before_next_tree_read:
            self.before_next_tree_read.pop(0)()
        return self._answer(
            request, 200, {**self.policy_tree, "provenance": self.policy_provenance}
        )

    async def put_policies(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        problem = None
        if not body.get("receiver"):
            problem = "invalid object specification: root route must specify a default receiver"
        elif body.get("object_matchers") or body.get("matchers") or body.get("match"):
            problem = "invalid object specification: root route must not have any matchers"
        else:
            missing = _receivers_of(body) - self._receiver_names()
            if missing:
                problem = (
                    f"invalid object specification: receiver '{sorted(missing)[0]}' does not exist"
                )
        if problem is not None:
            return self._answer(request, 400, {"msg": problem, "message": problem})
        provenance = _provenance(request)
        if self.policy_provenance and not provenance:
            # A provisioned tree cannot be made editable again by a PUT without provenance:
            # the validator NotificationPolicyService.UpdatePolicyTree calls refuses any
            # status -> none (ValidateProvenanceRelaxed in
            # pkg/services/ngalert/provisioning/validation/provenance.go, Grafana 11+; the
            # error is ErrProvenanceChangeNotAllowed, 403 alerting.notifications.
            # invalidProvenance). none -> api/file and file <-> api pass. Only a DELETE (reset)
            # unlocks it. Not in the OpenAPI for this operation, so not checked against it.
            message = (
                f"Resource with provenance status '{self.policy_provenance}' cannot be "
                "changed to 'none'. You must use appropriate API and permissions to manage "
                "this resource"
            )
            return web.json_response(
                {
                    "message": message,
                    "messageId": "alerting.notifications.invalidProvenance",
                    "statusCode": 403,
                },
                status=403,
            )
        body.pop("provenance", None)
        self.policy_tree = body
        self.policy_provenance = provenance
        return self._answer(request, 202, {"message": "policies updated"})

    async def reset_policies(self, request: web.Request) -> web.Response:
        self.policy_tree = copy.deepcopy(DEFAULT_POLICY_TREE)
        self.policy_provenance = ""  # ResetPolicyTree deletes the provenance with the tree
        return self._answer(request, 202, {"message": "policies resetted"})

    def _rule_problem(self, body: dict[str, Any]) -> str | None:
        settings = body.get("notification_settings")
        if settings is None:
            return None
        if not isinstance(settings, dict) or not isinstance(settings.get("receiver"), str):
            return "invalid alert rule: notification settings must name a receiver"
        if settings["receiver"] not in self._receiver_names():
            return (
                "invalid alert rule: notification settings: receiver "
                f"'{settings['receiver']}' does not exist"
            )
        return None

    def _versioned(self, body: dict[str, Any]) -> dict[str, Any]:
        """Before 10.4, Grafana does not know notification_settings and drops it unread."""
        if not self.at_least(10, 4):
            return {k: v for k, v in body.items() if k != "notification_settings"}
        return body

    async def stats(self, request: web.Request) -> web.Response:
        """Not Grafana's: how many requests and writes this server saw (for benchmarks)."""
        return web.json_response(
            {
                "requests": len(self.requests),
                "writes": self.writes,
                "dashboards": len(self.dashboards),
            }
        )

    async def create_annotation(self, request: web.Request) -> web.Response:
        """POST /api/annotations: `text` required, `time`/`timeEnd` in epoch ms, tags strings.
        A dashboardUID that names no dashboard is not refused: PostAnnotation (pkg/api/
        annotations.go, 9.x to 12.x) looks it up, keeps dashboardId 0 when the lookup fails,
        and saves an organisation annotation, answered 200 like any other."""
        body = await self._body(request)
        try:
            _validate({"$ref": "#/components/schemas/PostAnnotationsCmd"}, body)
        except jsonschema.ValidationError as exc:
            return self._error(request, 400, f"bad request data: {exc.message}")
        if not isinstance(body, dict) or not body.get("text"):
            return self._error(request, 400, "text field should not be empty")
        self.annotation_requests.append(copy.deepcopy(body))
        uid = body.get("dashboardUID")
        stored = {k: v for k, v in body.items() if k != "dashboardUID"}
        on = self.dashboards.get(uid) if isinstance(uid, str) else None
        stored["dashboardId"] = on.id if on is not None else 0
        if on is not None:
            stored["dashboardUID"] = uid
        annotation_id = next(self._ids)
        self.annotations[annotation_id] = {"id": annotation_id, **stored}
        return self._answer(request, 200, {"message": "Annotation added", "id": annotation_id})

    async def patch_annotation(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        stored = self.annotations.get(int(request.match_info["annotation_id"]))
        if stored is None:
            return self._error(request, 404, "Could not find annotation to update")
        try:
            _validate({"$ref": "#/components/schemas/PatchAnnotationsCmd"}, body)
        except jsonschema.ValidationError as exc:
            return self._error(request, 400, f"bad request data: {exc.message}")
        stored.update({k: v for k, v in body.items() if k in ("time", "timeEnd", "tags", "text")})
        return self._answer(request, 200, {"message": "Annotation patched"})

    async def find_annotations(self, request: web.Request) -> web.Response:
        tags = request.query.getall("tags", [])
        found = [a for a in self.annotations.values() if all(t in a.get("tags", []) for t in tags)]
        return web.json_response(found)

    async def health(self, request: web.Request) -> web.Response:
        # apiHealthHandler: version and commit only without [auth.anonymous] hide_version.
        if self.hide_version:
            return web.json_response({"database": "ok"})
        return web.json_response({"database": "ok", "version": self.version, "commit": "abc"})

    async def frontend_settings(self, request: web.Request) -> web.Response:
        """GET /api/frontend/settings, the part correlator reads: hide_version hides the build
        from anonymous callers only (pkg/api/frontendsettings.go); a token is signed in."""
        build = {"version": self.version, "commit": "abc", "env": "production"}
        return web.json_response({"buildInfo": build})

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        uid = body.get("uid") or f"f{next(self._ids)}"
        title = body.get("title", "")
        if uid in self.folders:
            if self.at_least(11, 3):  # ErrFolderVersionMismatch (apierrors/folder.go)
                return web.json_response(
                    {"status": "version-mismatch", "message": "the folder has been changed"},
                    status=412,
                )
            return self._error(request, 409, "a folder/dashboard with the same uid already exists")
        legacy = not self.at_least(10, 1)
        if legacy and any(
            d.folder_uid == "" and _slug(d.dashboard.get("title", "")) == _slug(title)
            for d in self.dashboards.values()
        ):
            # ErrDashboardFolderWithSameNameAsDashboard, a DashboardErr of status 400.
            return web.json_response(
                {"message": "Folder name cannot be the same as one of its dashboards"}, status=400
            )
        if not self.at_least(11, 3) and any(
            self._same_title(f["title"], title) for f in self.folders.values()
        ):
            return self._error(
                request,
                409,
                "a folder or dashboard in the general folder with the same name already exists",
            )
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
            return self._error(request, 400, "uid contains illegal characters or is too long")
        folder = {
            "id": next(self._ids),
            "uid": uid,
            "title": title,
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
            "created": _now(),
            "updated": _now(),
        }
        self.folders[uid] = folder
        return self._answer(request, 200, folder)

    def _same_title(self, one: str, other: str) -> bool:
        """Up to 10.0 Grafana compares slugs ("Checkout!" is "checkout"), from 10.1 titles."""
        return _slug(one) == _slug(other) if not self.at_least(10, 1) else one == other

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["folder_uid"])
        if folder is None:
            return self._error(request, 404, "folder not found")
        return self._answer(request, 200, folder)

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        dashboard = body.get("dashboard")
        if not isinstance(dashboard, dict) or not dashboard.get("title"):
            return self._error(request, 400, "Dashboard title cannot be empty")
        uid = dashboard.get("uid") or f"d{next(self._ids)}"
        if len(uid) > 40:
            return self._error(request, 400, "uid too long, max 40 characters")
        folder_uid = body.get("folderUid", "") or ""
        if folder_uid and folder_uid not in self.folders:
            return self._error(request, 400, "folder not found")
        overwrite = bool(body.get("overwrite"))
        # Up to 10.0: ErrDashboardWithSameNameAsFolder (the slug matched any folder's).
        if not self.at_least(10, 1) and any(
            self._same_title(f["title"], dashboard["title"]) for f in self.folders.values()
        ):
            return self._error(
                request, 400, "Dashboard name cannot be the same as folder", status="name-match"
            )
        for other_uid, other in list(self.dashboards.items()):
            if self.at_least(11, 3):
                break  # titles need not be unique: no name-exists, no takeover
            if (
                other_uid != uid
                and other.folder_uid == folder_uid
                and self._same_title(other.dashboard.get("title", ""), dashboard["title"])
            ):
                if not overwrite:
                    return self._error(
                        request,
                        412,
                        "A dashboard with the same name in the folder already exists",
                        status="name-exists",
                    )
                uid = other_uid  # Grafana takes the same-titled dashboard over
                dashboard = {**dashboard, "uid": uid, "version": other.version}
                break
        existing = self.dashboards.get(uid)
        if existing is not None and not overwrite and dashboard.get("version") != existing.version:
            return self._error(
                request,
                412,
                "The dashboard has been changed by someone else",
                status="version-mismatch",
            )
        version = existing.version + 1 if existing else 1
        stored_id = existing.id if existing else next(self._ids)
        saved = copy.deepcopy(dashboard)
        saved.update(uid=uid, id=stored_id, version=version)
        self.dashboards[uid] = StoredDashboard(
            saved,
            folder_uid,
            version,
            stored_id,
            existing.created if existing else _now(),
            [*(existing.messages if existing else []), body.get("message", "")],
        )
        slug = _slug(dashboard["title"])
        return self._answer(
            request,
            200,
            {
                "id": stored_id,
                "uid": uid,
                "title": dashboard["title"],
                "url": f"/d/{uid}/{slug}",
                "status": "success",
                "version": version,
                "slug": slug,
                "folderUid": folder_uid,
            },
        )

    async def get_dashboard(self, request: web.Request) -> web.Response:
        stored = self.dashboards.get(request.match_info["uid"])
        if stored is None:
            return self._error(request, 404, "Dashboard not found")
        folder = self.folders.get(stored.folder_uid, {})
        meta = {
            "folderUid": stored.folder_uid,
            "folderTitle": folder.get("title", "General"),
            "version": stored.version,
            "created": stored.created,
            "updated": _now(),
            "slug": _slug(stored.dashboard.get("title", "")),
            "url": f"/d/{stored.dashboard['uid']}",
            "canSave": True,
            "canEdit": True,
            "provisioned": False,
        }
        return self._answer(request, 200, {"dashboard": stored.dashboard, "meta": meta})

    async def delete_dashboard(self, request: web.Request) -> web.Response:
        stored = self.dashboards.pop(request.match_info["uid"], None)
        if stored is None:
            return self._error(request, 404, "Dashboard not found")
        title = stored.dashboard.get("title", "")
        return self._answer(
            request, 200, {"title": title, "message": f"Dashboard {title} deleted", "id": stored.id}
        )

    async def search(self, request: web.Request) -> web.Response:
        tags = request.query.getall("tag", [])
        text = request.query.get("query", "").lower()
        folders = request.query.getall("folderUIDs", [])
        uids = request.query.getall("dashboardUIDs", [])
        kind = request.query.get("type")
        limit = int(request.query.get("limit", "1000"))
        page = int(request.query.get("page", "1"))
        if kind not in (None, "dash-db", "dash-folder"):
            return self._error(request, 422, "invalid type")
        hits = []
        if kind != "dash-folder":
            for uid, stored in sorted(self.dashboards.items()):
                dashboard_tags = stored.dashboard.get("tags", [])
                title = stored.dashboard.get("title", "")
                if (
                    all(tag in dashboard_tags for tag in tags)
                    and text in title.lower()
                    and (not folders or stored.folder_uid in folders)
                    and (not uids or uid in uids)
                ):
                    hits.append(
                        {
                            "id": stored.id,
                            "uid": uid,
                            "title": stored.dashboard.get("title", ""),
                            "uri": f"db/{_slug(stored.dashboard.get('title', ''))}",
                            "url": f"/d/{uid}",
                            "type": "dash-db",
                            "tags": dashboard_tags,
                            "isStarred": False,
                            "folderUid": stored.folder_uid,
                        }
                    )
        window = hits[(page - 1) * limit : page * limit]
        return self._answer(request, 200, window)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    """Serve the test server on its own: python -m tests.fakes.grafana PORT [DELAY_MS]."""
    import sys

    fake = FakeGrafana(validate="--validate" in sys.argv)
    fake.delay_s = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0.0
    web.run_app(fake.app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
