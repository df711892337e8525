"""Provisioning inside `correlator serve`: follow the WebApplications, reconcile on change.

Every replica follows the apps (its catalogue needs them); only the provisioning leader
(`correlator.leader`) writes, and it checks that it still leads before each write step, so a
replica that lost the lease stops writing before another starts. A new leader passes at once.

Apps come from a manifests directory, watched by fingerprint (path, size and modification
time of every manifest), or from the Kubernetes API, followed by a reflector. A pass runs when
they change and every `resync_interval_s` (which puts back dashboards edited by hand). With
the Kubernetes API, each resource's `Provisioned` condition records its own result, and an
invalid resource's condition says which field is wrong. A failed pass is logged and counted,
and the loop goes on; so does a refusal of the API or the filesystem, after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes_asyncio import client

from correlator.backoff import Backoff
from correlator.catalogue import Catalogue
from correlator.discovery.files import MANIFEST_SUFFIXES, ManifestError, load_manifests
from correlator.discovery.kubernetes import KubernetesSource, Snapshot, api_client
from correlator.errors import CorrelatorError, TemporaryError
from correlator.leader import Leadership, NotLeading
from correlator.leader import from_settings as leadership_from_settings
from correlator.metrics import Metrics
from correlator.models.webapp import WebApplication
from correlator.outbound.kube import KubeError
from correlator.provisioning import files
from correlator.provisioning.command import file_options, links, reconcile_grafana
from correlator.provisioning.grafana import GrafanaTarget
from correlator.provisioning.kubernetes_rules import reconcile_prometheus_rules
from correlator.provisioning.reconcile import Report
from correlator.settings import Settings
from correlator.tenancy import admit

log = logging.getLogger(__name__)
GLOBAL = ("Grafana", "Kubernetes")


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any manifest below `directory` is added, edited or removed."""
    entries = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in MANIFEST_SUFFIXES and path.is_file():
            stat = path.stat()
            entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def problems_by_app(report: Report, apps: list[WebApplication]) -> dict[str, list[str]]:
    """Each app's own errors, plus those that concern every app (Grafana or the API down)."""
    common = [why for what, why in report.errors if what in GLOBAL]
    return {
        app.key: common
        + [why for what, why in report.errors if what == app.key or what.startswith(f"{app.key} ")]
        for app in apps
    }


class FencedGrafana(GrafanaTarget):
    """Grafana whose every write first asks `fence` (raising NotLeading once this replica no
    longer leads): a pass that began before the lease was lost writes nothing after."""

    def __init__(
        self, url: str, token: str, *, timeout_s: float, fence: Callable[[], None]
    ) -> None:
        super().__init__(url, token, timeout_s=timeout_s)
        self._fence = fence

    def _before_write(self) -> None:
        self._fence()


class Provisioner:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        catalogue: Catalogue | None = None,
        *,
        leadership: Leadership | None = None,
    ) -> None:
        self._settings = settings
        self._leadership = leadership  # None until run() elects (run_once alone: it writes)
        self._wake = asyncio.Event()
        self._catalogue = catalogue
        self._options = settings.provisioning
        self._links = links(settings)
        self._metrics = metrics
        self._grafana: GrafanaTarget | None = None
        if self._options.target == "grafana" and self._options.grafana_token is not None:
            self._grafana = FencedGrafana(
                self._options.grafana_url,
                self._options.grafana_token.get_secret_value(),
                timeout_s=self._options.timeout_s,
                fence=self._fence,
            )

    async def run(self) -> None:
        """Follow the apps until cancelled. A refusal of the network, the Kubernetes API or
        the filesystem is waited out with backoff; a configuration that cannot work ends it."""
        if self._leadership is None:
            self._leadership = await leadership_from_settings(self._settings)
        campaign = asyncio.create_task(self._campaign(self._leadership), name="leader-election")
        try:
            await self._follow()
        finally:
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
            await asyncio.shield(self._leadership.close())
            self._metrics.leader.labels("provisioning").set(0)

    async def _campaign(self, leadership: Leadership) -> None:
        gauge = self._metrics.leader.labels("provisioning")
        was_leading = False
        while True:
            leading = await leadership.campaign_once()
            gauge.set(1 if leading else 0)
            if leading and not was_leading:
                self._wake.set()  # a new leader provisions now, not at the next change
            was_leading = leading
            await asyncio.sleep(leadership.timings.retry_period_s)

    def _leading(self) -> bool:
        return self._leadership is None or self._leadership.is_leading()

    def _fence(self) -> None:
        if self._leadership is not None:
            self._leadership.check()

    async def _follow(self) -> None:
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                if self._settings.kubernetes.discovery:
                    await self._follow_kubernetes()
                else:
                    await self._follow_directory()
            except (TemporaryError, KubeError, OSError) as exc:
                if time.monotonic() - started > backoff.max_s:
                    backoff.reset()  # it ran a good while: this is a new spell of trouble
                delay_s = backoff.next_delay_s()
                if isinstance(exc, TemporaryError) and exc.delay_s is not None:
                    delay_s = max(delay_s, exc.delay_s)  # never sooner than the other side asked
                log.warning(
                    "provisioning interrupted; resuming",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay_s},
                )
                self._metrics.provisioning_runs.labels("with_errors").inc()
                await asyncio.sleep(delay_s)

    async def _follow_directory(self) -> None:
        source = self._options.source_dir
        assert source is not None
        seen: tuple[tuple[str, int, int], ...] | None = None
        last_pass = 0.0
        while True:
            current = await asyncio.to_thread(fingerprint, source)
            due = time.monotonic() - last_pass >= self._options.resync_interval_s
            if current != seen or due or self._wake.is_set():
                self._wake.clear()
                manifests = await asyncio.to_thread(load_manifests, source)
                apps = [loaded.app for loaded in manifests.apps]
                await self.run_once(apps, manifests.errors)
                seen, last_pass = current, time.monotonic()
            await asyncio.sleep(self._options.watch_interval_s)

    async def _follow_kubernetes(self) -> None:
        k8s = self._settings.kubernetes
        api = await api_client(k8s.kubeconfig)
        changed = self._wake
        latest: list[Snapshot] = []

        async def on_change(snapshot: Snapshot) -> None:
            latest[:] = [snapshot]
            changed.set()

        source = KubernetesSource.from_settings(api, k8s, on_change)
        watcher = asyncio.create_task(source.run(), name="kubernetes-discovery")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self._options.resync_interval_s)
                changed.clear()
                if not latest:
                    continue
                snapshot = latest[0]
                problems = await self.run_once(snapshot.apps, snapshot.errors, api=api)
                if k8s.write_status and self._leading():
                    refused = self._admit(snapshot.apps)[1]
                    await self._write_conditions(source, snapshot.errors + refused, problems)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await api.close()

    async def _write_conditions(
        self, source: KubernetesSource, invalid: list[ManifestError], problems: dict[str, list[str]]
    ) -> None:
        results = {
            key: (not errors, "; ".join(errors) or "dashboards and alert rules in sync")
            for key, errors in problems.items()
        }
        for problem in invalid:
            key = str(problem.path).removeprefix("webapplications/")
            results[key] = (False, f"invalid: {problem.field}: {problem.message}")
        for key, (ok, message) in results.items():
            try:
                await source.write_condition(key, ok=ok, message=message)
            except Exception as exc:  # status is best effort; provisioning already happened
                log.warning("cannot write status", extra={"app": key, "error": str(exc)})

    def _admit(
        self, apps: list[WebApplication]
    ) -> tuple[list[WebApplication], list[ManifestError]]:
        return admit(
            apps, self._settings.tenancy, namespace_label=self._settings.loki.namespace_label
        )

    async def run_once(
        self,
        apps: list[WebApplication],
        invalid: list[ManifestError],
        *,
        api: client.ApiClient | None = None,
    ) -> dict[str, list[str]]:
        """One pass; returns each app's problems. Never raises for a provisioning problem.
        A replica that does not lead only updates its catalogue. Apps that reach beyond their
        tenancy are refused like invalid ones: neither provisioned nor known to the catalogue."""
        apps, refused = self._admit(apps)
        invalid = invalid + refused
        if self._catalogue is not None:
            self._catalogue.update(apps)
        if not self._leading():
            # Counted, so that a follower is seen to follow (and, after a pause, to have
            # passed without writing).
            self._metrics.provisioning_runs.labels("following").inc()
            return {}
        for problem in invalid:
            log.warning("invalid WebApplication", extra={"problem": str(problem)})
        self._metrics.provisioning_invalid.set(len(invalid))
        report = Report()
        try:
            self._fence()
            if self._grafana is not None:
                report = await reconcile_grafana(self._grafana, apps, self._settings)
            elif self._options.out_dir is not None:
                out_dir = self._options.out_dir
                options = file_options(self._settings)
                steps, contents = await asyncio.to_thread(
                    lambda: files.plan(out_dir, apps, self._links, **options)
                )
                self._fence()
                written = await asyncio.to_thread(files.apply, steps, contents)
                self._metrics.provisioning_writes.inc(written)
            if api is not None and self._settings.kubernetes.prometheus_rules:
                self._fence()
                rules = await reconcile_prometheus_rules(
                    api, apps, self._links, namespaces=self._settings.kubernetes.namespaces
                )
                report = Report(
                    steps=report.steps + rules.steps,
                    errors=report.errors + rules.errors,
                    conflicts=report.conflicts,
                    left_alone=report.left_alone,
                )
        except NotLeading:
            log.warning("provisioning pass abandoned: this replica no longer leads")
            return {}
        except (CorrelatorError, OSError) as exc:
            report.errors.append(("Grafana" if self._grafana else "Kubernetes", str(exc)))
        if not self._leading():  # lost mid-pass: the fenced writes were refused, not failed
            log.warning("provisioning pass abandoned: this replica no longer leads")
            return {}
        self._metrics.provisioning_writes.inc(report.writes)
        self._metrics.provisioning_conflicts.set(len(report.conflicts))
        self._metrics.provisioning_left_alone.clear()
        for what, reason in report.left_alone:
            self._metrics.provisioning_left_alone.labels(what, reason).set(1)
        for what, why in report.errors:
            log.warning("provisioning failed", extra={"what": what, "problem": why})
        outcome = "with_errors" if report.errors else "ok"
        self._metrics.provisioning_runs.labels(outcome).inc()
        if not report.errors:
            self._metrics.provisioning_last_success.set(time.time())
        log.info(
            "provisioning pass",
            extra={"apps": len(apps), "writes": report.writes, "errors": len(report.errors)},
        )
        return problems_by_app(report, apps)
