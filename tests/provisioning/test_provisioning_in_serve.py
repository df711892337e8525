"""`correlator serve` keeps a manifests directory provisioned, as it changes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from correlator.provisioning.naming import dashboard_uid
from tests.fakes.grafana import VERSIONS, FakeGrafana
from tests.provisioning.conftest import ROOT
from tests.support.processes import Service
from tests.support.servers import eventually, served

BROKEN = (
    "apiVersion: platform.correlator.dev/v1alpha1\nkind: WebApplication\n"
    "metadata: {name: x}\nspec: {team: t}\n"
)


async def test_serve_provisions_files_and_follows_manifest_changes(tmp_path: Path) -> None:
    source, out = tmp_path / "manifests", tmp_path / "out"
    shutil.copytree(ROOT / "examples", source)
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_PROVISIONING_SOURCE_DIR": str(source),
            "CORRELATOR_PROVISIONING_TARGET": "files",
            "CORRELATOR_PROVISIONING_OUT_DIR": str(out),
            "CORRELATOR_PROVISIONING_WATCH_INTERVAL_S": "0.2",
        },
    )
    await asyncio.to_thread(service.start)
    try:
        rules = out / "prometheus" / "rules"
        await eventually(lambda: (rules / "shop.checkout.rules.yaml").exists(), "the first pass")
        (source / "catalog.yaml").unlink()  # removes catalog and batch-reports
        (source / "broken.yaml").write_text(BROKEN)
        await eventually(lambda: not (rules / "shop.catalog.rules.yaml").exists(), "removal")
        assert (rules / "shop.checkout.rules.yaml").exists()
        metrics = httpx.get(f"{service.url}/metrics").text
        assert "correlator_provisioning_invalid_manifests 1.0" in metrics
        assert 'correlator_provisioning_runs_total{outcome="ok"}' in metrics
        assert "broken.yaml: spec.image" in service.log()
    finally:
        await asyncio.to_thread(service.stop)


# The oldest, the last that takes same-titled dashboards over, and the newest: a serve run
# takes seconds, and the grafana fixture's tests cover every version in between.
@pytest.mark.parametrize("version", VERSIONS[::2])
async def test_serve_provisions_grafana_and_survives_its_failures(
    tmp_path: Path, version: str
) -> None:
    fake = FakeGrafana(version=version)
    async with served(fake.app) as url:
        await _provision_grafana(fake, url, tmp_path)


async def _provision_grafana(fake: FakeGrafana, url: str, tmp_path: Path) -> None:
    source = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples", source)
    fake.fail(503, times=3)  # Grafana is down when correlator starts
    service = Service(
        tmp_path,
        env={
            "CORRELATOR_PROVISIONING_SOURCE_DIR": str(source),
            "CORRELATOR_PROVISIONING_GRAFANA_URL": url,
            "CORRELATOR_PROVISIONING_GRAFANA_TOKEN": fake.token,
            "CORRELATOR_PROVISIONING_WATCH_INTERVAL_S": "0.2",
            "CORRELATOR_PROVISIONING_RESYNC_INTERVAL_S": "0.5",
        },
    )
    await asyncio.to_thread(service.start)
    try:
        await eventually(lambda: len(fake.dashboards) == 3, "three dashboards")
        uid = dashboard_uid("shop", "checkout")
        fake.edit_by_hand(uid)
        await eventually(
            lambda: fake.dashboards[uid].dashboard["title"] == "shop / checkout",
            "the hand edit to be reverted",
        )
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'correlator_provisioning_runs_total{outcome="with_errors"}' in metrics
        assert fake.token not in service.log()
    finally:
        await asyncio.to_thread(service.stop)


def test_serve_refuses_a_grafana_target_without_a_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "correlator", "serve"],
        env={"PATH": "/usr/bin:/bin", "CORRELATOR_PROVISIONING_SOURCE_DIR": str(ROOT / "examples")},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CORRELATOR_PROVISIONING_GRAFANA_TOKEN" in result.stderr
