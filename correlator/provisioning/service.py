"""Provisioning inside `correlator serve`: reconcile when manifests change, and periodically.

The manifests directory is watched by fingerprint (path, size and modification time of every
manifest), so an edit, a new file or a removal starts a pass within `watch_interval_s`; a pass
also runs every `resync_interval_s`, which puts back dashboards edited by hand. A pass that
fails is logged and counted, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from correlator.discovery.files import MANIFEST_SUFFIXES, load_manifests
from correlator.errors import CorrelatorError
from correlator.metrics import Metrics
from correlator.provisioning import files
from correlator.provisioning.command import links, reconcile_grafana
from correlator.provisioning.grafana import GrafanaTarget
from correlator.settings import Settings

log = logging.getLogger(__name__)


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any manifest below `directory` is added, edited or removed."""
    entries = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in MANIFEST_SUFFIXES and path.is_file():
            stat = path.stat()
            entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class Provisioner:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._all_settings = settings
        self._settings = settings.provisioning
        self._links = links(settings)
        self._metrics = metrics
        assert self._settings.source_dir is not None
        self._source = self._settings.source_dir
        self._grafana: GrafanaTarget | None = None
        if self._settings.target == "grafana" and self._settings.grafana_token is not None:
            self._grafana = GrafanaTarget(
                self._settings.grafana_url,
                self._settings.grafana_token.get_secret_value(),
                timeout_s=self._settings.timeout_s,
            )

    async def run(self) -> None:
        seen: tuple[tuple[str, int, int], ...] | None = None
        last_pass = 0.0
        while True:
            current = await asyncio.to_thread(fingerprint, self._source)
            due = time.monotonic() - last_pass >= self._settings.resync_interval_s
            if current != seen or due:
                await self.run_once()
                seen, last_pass = current, time.monotonic()
            await asyncio.sleep(self._settings.watch_interval_s)

    async def run_once(self) -> None:
        """One pass; never raises for a provisioning problem (it is logged and counted)."""
        try:
            manifests = await asyncio.to_thread(load_manifests, self._source)
            for invalid in manifests.errors:
                log.warning("invalid WebApplication manifest", extra={"problem": str(invalid)})
            self._metrics.provisioning_invalid.set(len(manifests.errors))
            apps = [loaded.app for loaded in manifests.apps]
            if self._grafana is not None:
                report = await reconcile_grafana(self._grafana, apps, self._all_settings)
                writes, errors = report.writes, [f"{what}: {why}" for what, why in report.errors]
            else:
                assert self._settings.out_dir is not None
                out_dir = self._settings.out_dir
                steps, contents = await asyncio.to_thread(files.plan, out_dir, apps, self._links)
                writes, errors = await asyncio.to_thread(files.apply, steps, contents), []
        except (CorrelatorError, OSError) as exc:
            writes, errors = 0, [str(exc)]
        self._metrics.provisioning_writes.inc(writes)
        for error in errors:
            log.warning("provisioning failed", extra={"problem": error})
        outcome = "with_errors" if errors else "ok"
        self._metrics.provisioning_runs.labels(outcome).inc()
        if not errors:
            self._metrics.provisioning_last_success.set(time.time())
        log.info("provisioning pass", extra={"writes": writes, "errors": len(errors)})
