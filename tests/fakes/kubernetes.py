"""A Kubernetes API test server for WebApplications and PrometheusRules.

It speaks the API's list/watch contract as a reflector relies on it: lists carry
`metadata.resourceVersion`; `?watch=true&resourceVersion=N` streams newline-delimited JSON
events after N (`ADDED`, `MODIFIED`, `DELETED`, and `BOOKMARK` when `allowWatchBookmarks`);
a resourceVersion older than the retained history is answered with an `ERROR` event carrying a
`410 Gone` Status; `timeoutSeconds` ends a watch cleanly. Writing `/status` bumps the
resourceVersion but not `metadata.generation`. Errors are `Status` objects. A bearer token is
required.

Leases (`coordination.k8s.io/v1`) follow the API server's optimistic concurrency: a create of
an existing name is `409 AlreadyExists`; a replace whose `metadata.resourceVersion` is not the
stored one is `409 Conflict` (without one it is unconditional, and it creates a missing Lease
as the Lease strategy allows); `acquireTime`/`renewTime` must be MicroTime
(`2006-01-02T15:04:05.000000Z07:00`, exactly six fraction digits) or the body is a `400
BadRequest`; `leaseDurationSeconds` and `leaseTransitions` are validated (`422 Invalid`).

Test controls: `apply(obj)`, `delete(namespace, name)`, `compact()` (forget history so old
resourceVersions are gone), `break_watches()` (drop every open watch), `bookmark_every_s`;
`lease(namespace, name)`, `lease_writes` (every accepted Lease write, in order) and
`touch_lease(namespace, name)` (another writer bumps its resourceVersion, so a replace based
on the old one conflicts) and `writes_before_next_lease_replace` (that many such writes land
between a client's read and its next replace: a deterministic race).

RBAC, when the server is given `rbac` (Roles, ClusterRoles and their bindings, as `helm
template` renders them) and the service account its token authenticates: every request is
authorized as the API server's RBAC authorizer does it (verb from the method and `watch`,
apiGroups/resources/subresources/resourceNames/verbs with `*`; a RoleBinding grants in its own
namespace only, a ClusterRoleBinding everywhere), and a refusal is the API server's `403`
Status, reason `Forbidden`, with its message and details. `forbidden` lists every refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

WEBAPPS = ("platform.correlator.dev", "v1alpha1", "webapplications")
RULES = ("monitoring.coreos.com", "v1", "prometheusrules")
LEASES = ("coordination.k8s.io", "v1", "leases")
# metav1.RFC3339Micro as Go parses it: exactly six fraction digits, Z or a numeric offset.
MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
# creationTimestamp of every object the test server creates (a fixed moment: tests compare).
CREATED = "2026-01-01T00:00:00Z"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def go_bool(value: str | None) -> bool:
    """Query booleans as the API server parses them (Go's strconv.ParseBool)."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=code)


@dataclass(frozen=True)
class Attributes:
    """What the API server's authorizer is asked: who does what to which resource."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


# /apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]]
RESOURCE_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/[^/]+(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_attributes(method: str, path: str, query: dict[str, str]) -> Attributes | None:
    """RequestInfoFactory's reading of a resource request (None: not a resource path)."""
    match = RESOURCE_PATH.match(path)
    if match is None:
        return None
    name = match["name"] or ""
    if method == "GET":
        verb = "get" if name else ("watch" if go_bool(query.get("watch")) else "list")
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = VERBS.get(method, method.lower())
    return Attributes(
        verb, match["group"], match["plural"], match["sub"] or "", match["ns"] or "", name
    )


def _rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    names = rule.get("resourceNames") or []
    return (
        bool(set(rule.get("verbs") or []) & {attrs.verb, "*"})
        and bool(set(rule.get("apiGroups") or []) & {attrs.group, "*"})
        and (
            resource in resources
            or "*" in resources
            or (bool(attrs.subresource) and f"*/{attrs.subresource}" in resources)
        )
        and (not names or attrs.name in names)
    )


class Rbac:
    """The RBAC authorizer over a fixed set of Roles, ClusterRoles and bindings."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = [copy.deepcopy(o) for o in objects]

    def _role(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        for obj in self.objects:
            meta = obj["metadata"]
            if (
                obj["kind"] == kind
                and meta["name"] == name
                and (kind == "ClusterRole" or meta.get("namespace") == namespace)
            ):
                return obj
        return None

    def allows(self, user: tuple[str, str], attrs: Attributes) -> bool:
        """Whether the service account `user` (namespace, name) may do `attrs`."""
        for binding in self.objects:
            kind = binding["kind"]
            if kind not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            where = binding["metadata"].get("namespace", "")
            if kind == "RoleBinding" and (not attrs.namespace or attrs.namespace != where):
                continue  # a RoleBinding grants in its namespace, never cluster-wide
            if not any(
                subject.get("kind") == "ServiceAccount"
                and (subject.get("namespace"), subject.get("name")) == user
                for subject in binding.get("subjects") or []
            ):
                continue
            ref = binding["roleRef"]
            if kind == "ClusterRoleBinding" and ref["kind"] != "ClusterRole":
                continue
            role = self._role(ref["kind"], ref["name"], where)
            if role is not None and any(_rule_allows(r, attrs) for r in role.get("rules") or []):
                return True
        return False


def forbidden(user: tuple[str, str], attrs: Attributes) -> web.Response:
    """The API server's answer (responsewriters.Forbidden over errors.NewForbidden)."""
    username = f"system:serviceaccount:{user[0]}:{user[1]}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = (
        f'User "{username}" cannot {attrs.verb} resource "{resource}" in API group '
        f'"{attrs.group}" {scope}'
    )
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {"group": attrs.group, "kind": attrs.resource}
    if attrs.name:
        details = {"name": attrs.name, **details}
    return status(403, "Forbidden", f"{subject} is forbidden: {why}", details)


class FakeKubernetes:
    def __init__(
        self,
        *,
        token: str = "k8s-test-token",
        rbac: list[dict[str, Any]] | None = None,
        service_account: tuple[str, str] = ("correlator", "correlator"),
    ) -> None:
        self.token = token
        # None: every authenticated request is allowed (no authorizer).
        self.rbac = Rbac(rbac) if rbac is not None else None
        self.service_account = service_account  # (namespace, name) the token authenticates
        self.forbidden: list[Attributes] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.history: list[tuple[int, str, dict[str, Any]]] = []  # (rv, type, object)
        self.oldest_rv = 0
        self.bookmark_every_s = 0.2
        self.status_writes: list[tuple[str, str, dict[str, Any]]] = []
        self.lease_writes: list[dict[str, Any]] = []
        self.writes_before_next_lease_replace = 0
        self._rv = itertools.count(100)
        self._current_rv = 99
        self._changed = asyncio.Condition()
        self._watches: list[web.Request] = []
        self.app = web.Application(middlewares=[self._auth])
        group, version, plural = WEBAPPS
        base = f"/apis/{group}/{version}"
        self.app.router.add_get(f"{base}/{plural}", self.list_or_watch)
        self.app.router.add_get(f"{base}/namespaces/{{ns}}/{plural}", self.list_or_watch)
        self.app.router.add_route(
            "PATCH", f"{base}/namespaces/{{ns}}/{plural}/{{name}}/status", self.patch_status
        )
        rgroup, rversion, rplural = RULES
        rbase = f"/apis/{rgroup}/{rversion}/namespaces/{{ns}}/{rplural}"
        self.app.router.add_get(rbase, self.list_rules)
        self.app.router.add_get(f"/apis/{rgroup}/{rversion}/{rplural}", self.list_rules)
        self.app.router.add_post(rbase, self.create_rule)
        self.app.router.add_get(f"{rbase}/{{name}}", self.get_rule)
        self.app.router.add_put(f"{rbase}/{{name}}", self.replace_rule)
        self.app.router.add_delete(f"{rbase}/{{name}}", self.delete_rule)
        lgroup, lversion, lplural = LEASES
        lbase = f"/apis/{lgroup}/{lversion}/namespaces/{{ns}}/{lplural}"
        self.app.router.add_post(lbase, self.create_lease)
        self.app.router.add_get(f"{lbase}/{{name}}", self.get_lease)
        self.app.router.add_put(f"{lbase}/{{name}}", self.replace_lease)
        self.app.router.add_delete(f"{lbase}/{{name}}", self.delete_lease)

    # --- test controls -----------------------------------------------------------------

    def _next_rv(self) -> str:
        self._current_rv = next(self._rv)
        return str(self._current_rv)

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.history.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(notify())

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update a WebApplication as kubectl apply would (spec change: generation+1)."""
        meta = obj["metadata"]
        key = (WEBAPPS[2], meta.get("namespace", "default"), meta["name"])
        existing = self.objects.get(key)
        stored = copy.deepcopy(obj)
        stored["metadata"] = {
            **meta,
            "namespace": key[1],
            "uid": f"uid-{key[1]}-{key[2]}",
            "creationTimestamp": CREATED,
        }
        if existing is None:
            stored["metadata"]["generation"] = 1
        else:
            changed = existing.get("spec") != stored.get("spec")
            stored["metadata"]["generation"] = existing["metadata"]["generation"] + int(changed)
            stored["status"] = existing.get("status", {})
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = stored
        self._record("MODIFIED" if existing else "ADDED", stored)
        return stored

    def delete(self, namespace: str, name: str) -> None:
        stored = self.objects.pop((WEBAPPS[2], namespace, name))
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self._record("DELETED", stored)

    def compact(self) -> None:
        self.oldest_rv = self._current_rv
        self.history.clear()

    def break_watches(self) -> None:
        """Drop every open watch connection, as a restarting API server or a proxy does."""
        for request in self._watches:
            if request.transport is not None:
                request.transport.close()
        self._watches.clear()

    def webapps(self) -> list[dict[str, Any]]:
        return [obj for (plural, _, _), obj in sorted(self.objects.items()) if plural == WEBAPPS[2]]

    # --- plumbing --------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        if self.rbac is not None:
            attrs = request_attributes(request.method, request.path, dict(request.query))
            if attrs is not None and not self.rbac.allows(self.service_account, attrs):
                self.forbidden.append(attrs)
                return forbidden(self.service_account, attrs)
        response: web.StreamResponse = await handler(request)
        return response

    def _selected(self, request: web.Request) -> list[dict[str, Any]]:
        namespace = request.match_info.get("ns")
        return [
            obj
            for obj in self.webapps()
            if namespace is None or obj["metadata"]["namespace"] == namespace
        ]

    async def list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if go_bool(request.query.get("watch")):
            return await self._watch(request)
        group, version, _ = WEBAPPS
        return web.json_response(
            {
                "apiVersion": f"{group}/{version}",
                "kind": "WebApplicationList",
                "metadata": {"resourceVersion": str(self._current_rv)},
                "items": self._selected(request),
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info.get("ns")
        since = int(request.query.get("resourceVersion") or self._current_rv)
        bookmarks = go_bool(request.query.get("allowWatchBookmarks"))
        timeout_s = float(request.query.get("timeoutSeconds", "300"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self._watches.append(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since < self.oldest_rv:
            gone = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({self.oldest_rv})",
                "reason": "Expired",
                "code": 410,
            }
            await send("ERROR", gone)
            return response
        deadline = asyncio.get_running_loop().time() + timeout_s
        sent_up_to = since
        try:
            while asyncio.get_running_loop().time() < deadline:
                for rv, kind, obj in list(self.history):
                    if rv > sent_up_to and (
                        namespace is None or obj["metadata"]["namespace"] == namespace
                    ):
                        await send(kind, obj)
                    sent_up_to = max(sent_up_to, rv)
                if bookmarks:
                    group, version, _ = WEBAPPS
                    await send(
                        "BOOKMARK",
                        {
                            "kind": "WebApplication",
                            "apiVersion": f"{group}/{version}",
                            "metadata": {"resourceVersion": str(self._current_rv)},
                        },
                    )
                    sent_up_to = max(sent_up_to, self._current_rv)
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.bookmark_every_s)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    async def patch_status(self, request: web.Request) -> web.Response:
        key = (WEBAPPS[2], request.match_info["ns"], request.match_info["name"])
        stored = self.objects.get(key)
        if stored is None:
            return status(404, "NotFound", f'webapplications "{key[2]}" not found')
        if request.content_type not in (
            "application/merge-patch+json",
            "application/json-patch+json",
            "application/strategic-merge-patch+json",
        ):
            return status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {request.content_type}",
            )
        patch = await request.json()
        stored["status"] = {**stored.get("status", {}), **patch.get("status", {})}
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self.status_writes.append((key[1], key[2], copy.deepcopy(stored["status"])))
        self._record("MODIFIED", stored)
        return web.json_response(stored)

    # --- PrometheusRule ------------------------------------------------------------------

    def _rule_key(self, request: web.Request, name: str | None = None) -> tuple[str, str, str]:
        return (RULES[2], request.match_info["ns"], name or request.match_info["name"])

    async def list_rules(self, request: web.Request) -> web.Response:
        selector = request.query.get("labelSelector")
        namespace = request.match_info.get("ns")  # None: all namespaces
        items = [
            obj
            for (plural, ns, _), obj in sorted(self.objects.items())
            if plural == RULES[2] and namespace in (None, ns)
        ]
        if selector:
            wanted = dict(part.split("=", 1) for part in selector.split(","))
            items = [
                o
                for o in items
                if all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
        return web.json_response(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRuleList",
                "metadata": {"resourceVersion": str(self._current_rv)},
                "items": items,
            }
        )

    async def create_rule(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = self._rule_key(request, body["metadata"]["name"])
        if key in self.objects:
            return status(409, "AlreadyExists", f'prometheusrules "{key[2]}" already exists')
        body["metadata"] = {
            **body["metadata"],
            "namespace": key[1],
            "uid": f"uid-rule-{key[1]}-{key[2]}",
            "creationTimestamp": CREATED,
            "generation": 1,
            "resourceVersion": self._next_rv(),
        }
        self.objects[key] = body
        return web.json_response(body, status=201)

    async def get_rule(self, request: web.Request) -> web.Response:
        stored = self.objects.get(self._rule_key(request))
        if stored is None:
            return status(
                404, "NotFound", f'prometheusrules "{request.match_info["name"]}" not found'
            )
        return web.json_response(stored)

    async def replace_rule(self, request: web.Request) -> web.Response:
        key = self._rule_key(request)
        if key not in self.objects:
            return status(404, "NotFound", f'prometheusrules "{key[2]}" not found')
        body = await request.json()
        if (
            body["metadata"].get("resourceVersion")
            != self.objects[key]["metadata"]["resourceVersion"]
        ):
            return status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version",
            )
        stored = self.objects[key]["metadata"]
        # The system fields stay the stored ones whatever the body says; a spec change is a
        # new generation.
        body["metadata"] = {
            **body["metadata"],
            **{k: stored[k] for k in ("namespace", "uid", "creationTimestamp") if k in stored},
            "generation": stored.get("generation", 1)
            + int(body.get("spec") != self.objects[key].get("spec")),
            "resourceVersion": self._next_rv(),
        }
        self.objects[key] = body
        return web.json_response(body)

    async def delete_rule(self, request: web.Request) -> web.Response:
        if self.objects.pop(self._rule_key(request), None) is None:
            return status(
                404, "NotFound", f'prometheusrules "{request.match_info["name"]}" not found'
            )
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    # --- Lease (coordination.k8s.io/v1) --------------------------------------------------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        stored = self.objects.get((LEASES[2], namespace, name))
        return copy.deepcopy(stored) if stored is not None else None

    def touch_lease(self, namespace: str, name: str) -> None:
        """Another writer updates the Lease without changing its holder (a label, say)."""
        stored = self.objects[(LEASES[2], namespace, name)]
        stored["metadata"]["resourceVersion"] = self._next_rv()

    @staticmethod
    def _lease_not_found(name: str) -> web.Response:
        return status(
            404,
            "NotFound",
            f'leases.coordination.k8s.io "{name}" not found',
            {"name": name, "group": LEASES[0], "kind": "leases"},
        )

    @staticmethod
    def _lease_problems(body: Any) -> tuple[int, str] | None:
        """Why the API server would refuse this Lease body: (400 decode | 422 invalid, message)."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return 400, 'Lease in version "v1" cannot be handled as a Lease: no metadata'
        if body.get("apiVersion") not in (None, "coordination.k8s.io/v1") or body.get(
            "kind"
        ) not in (None, "Lease"):
            return 400, f"the body is a {body.get('apiVersion')}/{body.get('kind')}, not a Lease"
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            return 400, 'Lease in version "v1" cannot be handled as a Lease: spec is not an object'
        for field in ("acquireTime", "renewTime"):
            value = spec.get(field)
            if value is not None and not (isinstance(value, str) and MICRO_TIME.match(value)):
                return 400, (
                    f'Lease in version "v1" cannot be handled as a Lease: parsing time '
                    f'{json.dumps(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse'
                )
        for field in ("leaseDurationSeconds", "leaseTransitions"):
            value = spec.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                return 400, (
                    f'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal '
                    f"{type(value).__name__} into Go struct field LeaseSpec.spec.{field} of type "
                    "int32"
                )
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            return (
                422,
                f"spec.leaseDurationSeconds: Invalid value: {duration}: must be greater than 0",
            )
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            return 422, (
                f"spec.leaseTransitions: Invalid value: {transitions}: must be greater than or "
                "equal to 0"
            )
        holder = spec.get("holderIdentity")
        if holder is not None and not isinstance(holder, str):
            return 400, 'Lease in version "v1" cannot be handled as a Lease: holderIdentity'
        return None

    def _store_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (LEASES[2], namespace, name)
        existing = self.objects.get(key)
        stored = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                **{k: v for k, v in body["metadata"].items() if k != "resourceVersion"},
                "name": name,
                "namespace": namespace,
                "uid": existing["metadata"]["uid"] if existing else f"uid-lease-{namespace}-{name}",
                "creationTimestamp": existing["metadata"]["creationTimestamp"]
                if existing
                else CREATED,
                "resourceVersion": self._next_rv(),
            },
            "spec": copy.deepcopy(body.get("spec") or {}),
        }
        self.objects[key] = stored
        self.lease_writes.append(copy.deepcopy(stored))
        return stored

    async def create_lease(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return status(400, "BadRequest", f"invalid JSON: {exc}")
        problem = self._lease_problems(body)
        if problem is not None:
            return status(problem[0], "BadRequest" if problem[0] == 400 else "Invalid", problem[1])
        namespace = request.match_info["ns"]
        meta = body["metadata"]
        if meta.get("namespace") not in (None, namespace):
            return status(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        name = meta.get("name")
        if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            return status(422, "Invalid", f"metadata.name: Invalid value: {json.dumps(name)}")
        if meta.get("resourceVersion"):
            return status(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if (LEASES[2], namespace, name) in self.objects:
            return status(
                409,
                "AlreadyExists",
                f'leases.coordination.k8s.io "{name}" already exists',
                {"name": name, "group": LEASES[0], "kind": "leases"},
            )
        return web.json_response(self._store_lease(namespace, name, body), status=201)

    async def get_lease(self, request: web.Request) -> web.Response:
        stored = self.objects.get((LEASES[2], request.match_info["ns"], request.match_info["name"]))
        if stored is None:
            return self._lease_not_found(request.match_info["name"])
        return web.json_response(stored)

    async def replace_lease(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        if self.writes_before_next_lease_replace and (LEASES[2], namespace, name) in self.objects:
            self.writes_before_next_lease_replace -= 1
            self.touch_lease(namespace, name)
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return status(400, "BadRequest", f"invalid JSON: {exc}")
        problem = self._lease_problems(body)
        if problem is not None:
            return status(problem[0], "BadRequest" if problem[0] == 400 else "Invalid", problem[1])
        meta = body["metadata"]
        if meta.get("name") != name:
            return status(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})",
            )
        if meta.get("namespace") not in (None, namespace):
            return status(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        existing = self.objects.get((LEASES[2], namespace, name))
        wanted = meta.get("resourceVersion") or None
        if existing is None:
            if wanted is not None:  # a precondition on an object that is not there
                return self._lease_not_found(name)
            return web.json_response(self._store_lease(namespace, name, body), status=201)
        if wanted is not None and wanted != existing["metadata"]["resourceVersion"]:
            return status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the '
                "object has been modified; please apply your changes to the latest version and "
                "try again",
                {"name": name, "group": LEASES[0], "kind": "leases"},
            )
        return web.json_response(self._store_lease(namespace, name, body))

    async def delete_lease(self, request: web.Request) -> web.Response:
        key = (LEASES[2], request.match_info["ns"], request.match_info["name"])
        if self.objects.pop(key, None) is None:
            return self._lease_not_found(request.match_info["name"])
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
