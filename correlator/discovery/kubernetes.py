"""WebApplications from the Kubernetes API: list, then watch, as a reflector does.

Client: kubernetes_asyncio. It is generated from the Kubernetes OpenAPI, so every parameter a
correct reflector needs is there (`allowWatchBookmarks`, `resourceVersion`, the status
subresource), it loads in-cluster and kubeconfig credentials, and a watch that has fallen
too far behind surfaces as a 410 (`outbound.kube.KubeGone`, as every failure of the API is
translated there). (lightkube restarts such a watch without a
re-list, which misses deletions made meanwhile; kopf would own the process's control flow.)

The loop: list (all namespaces, or each configured one), remember the list's resourceVersion,
watch from it with bookmarks (which keep the resourceVersion fresh while nothing changes),
and reconnect from the last resourceVersion seen when a watch ends. A `410 Gone` means that
version is no longer retained: list again, and compare with what was known, so deletions made
meanwhile are noticed. Other failures back off exponentially, with jitter, up to a cap.
Status-only updates (correlator's own condition writes) do not count as changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, watch

from correlator.backoff import retry_delay_s
from correlator.discovery.files import ManifestError, parse_document
from correlator.errors import TemporaryError
from correlator.models.webapp import WebApplication
from correlator.outbound.kube import KubeGone, kube_call, kube_errors
from correlator.settings import KubernetesSettings

log = logging.getLogger(__name__)

PLURAL = "webapplications"
CONDITION = "Provisioned"
WATCH_TIMEOUT_S = 300
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every valid WebApplication known now, and the reason each invalid one is not used."""

    apps: list[WebApplication]
    errors: list[ManifestError]


class KubernetesSource:
    """Keeps a current picture of the WebApplications and says when it changes."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        group: str,
        version: str,
        namespaces: list[str],
        on_change: Callable[[Snapshot], Awaitable[None]],
        watch_timeout_s: int = WATCH_TIMEOUT_S,
    ) -> None:
        self._api = client.CustomObjectsApi(api)
        self._group, self._version = group, version
        self._namespaces: list[str | None] = list(namespaces) or [None]  # None: all namespaces
        self._on_change = on_change
        self._watch_timeout_s = watch_timeout_s
        self._objects: dict[str, dict[str, Any]] = {}  # namespace/name -> object
        self.resource_versions: dict[str | None, str] = {}
        self.relists = 0

    @classmethod
    def from_settings(
        cls,
        api: client.ApiClient,
        settings: KubernetesSettings,
        on_change: Callable[[Snapshot], Awaitable[None]],
    ) -> KubernetesSource:
        return cls(
            api,
            group=settings.api_group,
            version=settings.api_version,
            namespaces=settings.namespaces,
            on_change=on_change,
        )

    def snapshot(self) -> Snapshot:
        apps, errors = [], []
        for key, obj in sorted(self._objects.items()):
            app, problems = parse_document(obj, path=_pseudo_path(key), index=1)
            if app is not None:
                apps.append(app)
            errors.extend(problems)
        return Snapshot(apps, errors)

    async def run(self) -> None:
        await asyncio.gather(*(self._follow(namespace) for namespace in self._namespaces))

    async def list_once(self) -> Snapshot:
        """List (no watch): the picture a one-shot command works from."""
        for namespace in self._namespaces:
            await self._list(namespace)
        return self.snapshot()

    async def _follow(self, namespace: str | None) -> None:
        failures = 0
        while True:
            try:
                if namespace not in self.resource_versions:
                    await self._list(namespace)
                await self._watch(namespace)
                failures = 0
            except KubeGone:
                log.info("watch expired; listing again", extra={"namespace": namespace or "*"})
                self.resource_versions.pop(namespace, None)
                self.relists += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any API trouble
                failures += 1
                delay = retry_delay_s(failures, BACKOFF_FIRST_S, BACKOFF_MAX_S)
                if isinstance(exc, TemporaryError) and exc.delay_s is not None:
                    delay = max(delay, exc.delay_s)  # the API server's Retry-After
                log.warning(
                    "Kubernetes API trouble; retrying",
                    extra={
                        "namespace": namespace or "*",
                        "error": str(exc) or type(exc).__name__,
                        "retry_in_s": round(delay, 2),
                    },
                )
                await asyncio.sleep(delay)

    async def _list(self, namespace: str | None) -> None:
        if namespace is None:
            listed = await kube_call(
                self._api.list_cluster_custom_object(self._group, self._version, PLURAL)
            )
        else:
            listed = await kube_call(
                self._api.list_namespaced_custom_object(
                    self._group, self._version, namespace, PLURAL
                )
            )
        fresh = {_key(obj): obj for obj in listed.get("items", [])}
        stale = {k for k in self._objects if namespace is None or k.startswith(f"{namespace}/")}
        before = {k: self._objects[k] for k in stale}
        for key in stale - fresh.keys():
            del self._objects[key]
        self._objects.update(fresh)
        self.resource_versions[namespace] = listed["metadata"]["resourceVersion"]
        if _specs(before) != _specs(fresh):
            await self._on_change(self.snapshot())

    async def _watch(self, namespace: str | None) -> None:
        args: tuple[Any, ...]
        call: Callable[..., Any]
        if namespace is None:
            call, args = self._api.list_cluster_custom_object, (self._group, self._version, PLURAL)
        else:
            call = self._api.list_namespaced_custom_object
            args = (self._group, self._version, namespace, PLURAL)
        stream = watch.Watch()
        try:
            with kube_errors():
                async for event in stream.stream(
                    call,
                    *args,
                    resource_version=self.resource_versions[namespace],
                    allow_watch_bookmarks=True,
                    timeout_seconds=self._watch_timeout_s,
                ):
                    await self._apply(namespace, event)
        finally:
            stream.stop()

    async def _apply(self, namespace: str | None, event: dict[str, Any]) -> None:
        kind, obj = event["type"], event.get("raw_object") or event.get("object")
        if not isinstance(obj, dict):
            return
        version = obj.get("metadata", {}).get("resourceVersion")
        if version:
            self.resource_versions[namespace] = version
        if kind == "BOOKMARK":
            return
        key = _key(obj)
        previous = self._objects.get(key)
        if kind == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
            if previous is not None and _spec_of(previous) == _spec_of(obj):
                return  # a status or metadata-only update, such as our own condition
        await self._on_change(self.snapshot())

    async def write_condition(self, key: str, *, ok: bool, message: str) -> None:
        """Record the provisioning result on the resource namespace/name (status.conditions)."""
        obj = self._objects.get(key)
        if obj is None:
            return  # deleted meanwhile
        namespace, name = key.split("/", 1)
        generation = obj.get("metadata", {}).get("generation")
        condition = {
            "type": CONDITION,
            "status": "True" if ok else "False",
            "reason": "Provisioned" if ok else "ProvisioningFailed",
            "message": message[:1024],
            "observedGeneration": generation,
            "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        current = obj.get("status", {}).get("conditions", [])
        existing = next((c for c in current if c.get("type") == CONDITION), None)
        if existing is not None and all(
            existing.get(k) == condition[k]
            for k in ("status", "reason", "message", "observedGeneration")
        ):
            return  # nothing new to say: no write, no event
        body = {"status": {"observedGeneration": generation, "conditions": [condition]}}
        # `_content_type` is read at run time but missing from the client's type stubs.
        patch: Callable[..., Awaitable[Any]] = self._api.patch_namespaced_custom_object_status
        await kube_call(
            patch(
                self._group,
                self._version,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
            )
        )


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _spec_of(obj: dict[str, Any]) -> Any:
    return (obj.get("spec"), obj.get("metadata", {}).get("generation"))


def _specs(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {key: _spec_of(obj) for key, obj in objects.items()}


def _pseudo_path(key: str) -> Any:
    from pathlib import PurePosixPath

    return PurePosixPath(f"webapplications/{key}")


async def api_client(kubeconfig: Any | None) -> client.ApiClient:
    """Credentials from a kubeconfig file, else the in-cluster service account, else
    $KUBECONFIG or ~/.kube/config; ConfigError saying so when there are none."""
    from kubernetes_asyncio import config
    from kubernetes_asyncio.config.config_exception import ConfigException

    from correlator.errors import ConfigError

    configuration = client.Configuration()
    try:
        if kubeconfig is not None:
            await config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=configuration
            )
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except ConfigException:
                await config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise ConfigError(
            f"no usable Kubernetes credentials ({exc}): run inside a cluster, or set "
            "CORRELATOR_KUBERNETES_KUBECONFIG or KUBECONFIG"
        ) from None
    return client.ApiClient(configuration)
