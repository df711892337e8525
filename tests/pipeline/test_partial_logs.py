"""A log window that fails part way keeps the lines that arrived and is reported as partial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from correlator.analysis.windows import incident_windows
from correlator.pipeline import Pipeline
from correlator.settings import load_settings
from tests.fakes.loki import FakeLoki
from tests.support.servers import served


async def test_lines_read_before_loki_failed_are_kept_and_the_window_is_partial() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    windows = incident_windows(now - timedelta(minutes=5), now)
    fake = FakeLoki(max_entries=10)
    start = windows.incident_start.timestamp()
    fake.add(
        {"app": "api", "namespace": "shop"},
        [(start + i, f"ERROR payment refused #{i}") for i in range(25)],
    )
    # Each window: the cap's 400, then a page; after those four answers, only 503s.
    fake.refuse_next(503, "too busy", times=50, after=4)
    async with served(fake.app) as url:
        settings = load_settings(loki={"url": url})
        pipeline = Pipeline(settings)
        try:
            telemetry, fetch, _ = await pipeline.gather(["api"], ["shop"], windows)
        finally:
            await pipeline.close()
    incident = [m for m in fetch.missing if m["what"] == "incident logs"]
    assert len(incident) == 1 and incident[0]["reason"].startswith("partial: "), fetch.missing
    kept = telemetry.logs["line"].tolist()
    assert kept and set(kept) <= {f"ERROR payment refused #{i}" for i in range(25)}
    assert "ERROR payment refused #24" in kept  # newest first: the first page arrived
