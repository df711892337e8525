"""One correlation keeps a bounded number of log bytes in memory, across its windows and
pages: past `loki.max_bytes` reading stops and the report names the windows as partial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from correlator.analysis.windows import incident_windows
from correlator.pipeline import Pipeline
from correlator.settings import load_settings
from tests.fakes.loki import FakeLoki
from tests.support.servers import served

LINE_BYTES = 10_000
BUDGET = 300_000


async def test_the_log_windows_of_a_correlation_share_one_byte_budget() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    windows = incident_windows(now - timedelta(minutes=5), now)
    fake = FakeLoki(max_entries=10)  # pages of ten lines: 100 kB each
    for start, prefix in ((windows.baseline_start, "base"), (windows.incident_start, "inc")):
        t0 = start.timestamp()
        fake.add(
            {"app": "api", "namespace": "shop"},
            [(t0 + i, f"ERROR {prefix} {i} " + "x" * LINE_BYTES) for i in range(100)],
        )
    async with served(fake.app) as url:
        settings = load_settings(loki={"url": url, "max_bytes": BUDGET})
        pipeline = Pipeline(settings)
        try:
            telemetry, fetch, _ = await pipeline.gather(["api"], ["shop"], windows)
        finally:
            await pipeline.close()
    kept = telemetry.logs["line"].str.len().sum()
    assert 0 < kept <= BUDGET, kept  # not the 2 MB Loki holds
    partial = [m for m in fetch.missing if m["backend"] == "loki"]
    assert partial and all("loki.max_bytes" in m["reason"] for m in partial), fetch.missing
