"""What keeping each analysis's inputs costs (correlation.keep_inputs), on bench/correlate.py's
50 services x 1 h: bytes per incident, and extra milliseconds per analysis, with keep_inputs on
and off side by side in the same process (alternating which goes first).

The same real fetches (real Prometheus, the Loki and Jaeger test servers, as bench/correlate.py
sets them up) feed two pipelines on one SQLite store, one keeping inputs and one not, in
alternating runs, each analysing in its own process pool as `correlator serve` does:
- report: work item to report body (what a responder waits for);
- bundle stored: until the kept inputs are in the store (packed in the pool after the report);
- keeping: encoding and compressing the stored form alone, in this process (the CPU it costs,
  in the pool), beside writing the bundle format itself (what a download costs, once);
- pickling: the serving process's own extra work, handing the frames to the pool once more.

    .venv/bin/python bench/keep_inputs.py [--runs 5] [--services 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import pickle
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import correlate  # noqa: E402  (the 50-service scenario and its test servers)

from correlator.models.alerts import WebhookPayload  # noqa: E402
from correlator.models.incidents import IntakeResult, ReceivedNotification  # noqa: E402
from correlator.pipeline import Pipeline  # noqa: E402
from correlator.rca.bundle_write import alert_payload, policy_document  # noqa: E402
from correlator.rca.frames import bundle_archive, packed_inputs  # noqa: E402
from correlator.runtime.correlations import inputs_saver  # noqa: E402
from correlator.settings import load_settings  # noqa: E402
from correlator.store import Store  # noqa: E402
from correlator.store.replay import get_bundle  # noqa: E402
from tests.support.processes import backfilled_backends  # noqa: E402


async def _incident(store: Store, alerting: str, onset: datetime, group: str) -> int:
    body = {
        "version": "4",
        "receiver": "bench",
        "status": "firing",
        "groupKey": group,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "SloBurn",
                    "destination_workload": alerting,
                    "destination_workload_namespace": correlate.NAMESPACE,
                },
                "annotations": {},
                "startsAt": onset.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "f",
            }
        ],
    }
    raw = json.dumps(body).encode()
    received = ReceivedNotification(
        payload=WebhookPayload.model_validate_json(raw),
        received_at=datetime.now(UTC),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    (result,) = await store.record_batch([received])
    assert isinstance(result, IntakeResult)
    return result.incident_id


async def measure(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    chosen = correlate.scenario(args.services, now)
    onset = chosen.fault_at + timedelta(minutes=1)
    loki_port, jaeger_port = correlate.free_port(), correlate.free_port()
    with tempfile.TemporaryDirectory() as workdir:
        child, prometheus = backfilled_backends(
            correlate.__file__, (loki_port, jaeger_port), services=args.services, now=now,
            workdir=Path(workdir),
        )  # fmt: skip
        database = {"url": f"sqlite:///{workdir}/bench.db"}
        store = await Store.open(load_settings(database=database).database)
        common = {
            "database": database,
            "prometheus": {"url": prometheus.url},
            "loki": {"url": f"http://127.0.0.1:{loki_port}"},
            "jaeger": {"url": f"http://127.0.0.1:{jaeger_port}"},
            "queue": {"analysis_concurrency": 1},
        }
        correlation = {"deadline_s": 30, "lead_min": 10, "baseline_min": 40, "share_s": 0}
        pipelines = {
            keep: Pipeline(
                load_settings(
                    **common, correlation={**correlation, "keep_inputs": {"enabled": keep}}
                ),
                reports=store,
                save_inputs=inputs_saver(store),
            )
            for keep in (False, True)
        }
        rows: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        try:
            for run in range(args.runs + 1):  # the first run of each warms its pool: not counted
                order = [False, True] if run % 2 else [True, False]  # neither always first
                for keep in order:
                    pipeline = pipelines[keep]
                    incident_id = await _incident(store, chosen.alerting, onset, f"g{run}{keep}")
                    incident = await store.get_incident(incident_id)
                    assert incident is not None
                    question = pipeline.question(incident)
                    begin = time.perf_counter()
                    body = await pipeline.correlate(incident, now=now, question=question)
                    reported = time.perf_counter()
                    size = 0.0
                    if keep:
                        await pipeline._keeper.close(timeout_s=120)  # type: ignore[union-attr]
                        stored = await store.read(get_bundle, incident_id)
                        assert stored is not None, "no bundle stored"
                        size = float(stored.size_bytes)
                    done = time.perf_counter()
                    if run:
                        rows[keep].append(
                            {
                                "report": (reported - begin) * 1e3,
                                "stored": (done - begin) * 1e3,
                                "analysis": body["timings_ms"]["analysis"],
                                "bytes": size,
                            }
                        )
            pipeline = pipelines[True]
            telemetry, _, _ = await pipeline.gather(
                [chosen.alerting], [correlate.NAMESPACE], pipeline_windows(pipeline, onset, now)
            )
            windows = pipeline_windows(pipeline, onset, now)
            about = {"app": "bench", "policy": policy_document(pipeline.policy)}
            alert = alert_payload(incident)
            packing, pickling, serving = [], [], []
            kinds = ["metrics", "logs", "traces"]
            for _ in range(args.runs):
                started = time.perf_counter()
                packed = packed_inputs(alert, telemetry, windows, kinds, about)
                packing.append((time.perf_counter() - started) * 1e3)
                started = time.perf_counter()
                pickle.dumps((alert, telemetry, windows), protocol=pickle.HIGHEST_PROTOCOL)
                pickling.append((time.perf_counter() - started) * 1e3)
                started = time.perf_counter()
                served = bundle_archive(packed)
                serving.append((time.perf_counter() - started) * 1e3)
            per_kind = {
                kind: len(packed_inputs(alert, telemetry, windows, [kind], about)) for kind in kinds
            }
        finally:
            for pipeline in pipelines.values():
                await pipeline.close()
            await store.close()
            prometheus.stop()
            child.terminate()
    med = {
        keep: {k: statistics.median(r[k] for r in rows[keep]) for k in rows[keep][0]}
        for keep in rows
    }
    off, on = med[False], med[True]
    print(
        f"{args.services} services x 1 h; metric rows {len(telemetry.metrics)}, log lines "
        f"{len(telemetry.logs)}, spans {len(telemetry.spans)}, replica rows "
        f"{len(telemetry.replicas)}"
    )
    print(
        f"kept per incident: {on['bytes'] / 1024:.0f} KiB stored; alone: metrics "
        f"{per_kind['metrics'] / 1024:.0f} KiB, logs {per_kind['logs'] / 1024:.0f} KiB, traces "
        f"{per_kind['traces'] / 1024:.0f} KiB; served as a bundle (tar.gz): "
        f"{len(served) / 1024:.0f} KiB"
    )
    print(f"{'median of ' + str(args.runs) + ' runs (ms)':<40} {'off':>8} {'on':>8} {'on/off':>7}")
    for label, key in (
        ("work item to report", "report"),
        ("  of which analysis (pool)", "analysis"),
        ("work item to bundle stored", "stored"),
    ):
        print(f"{label:<40} {off[key]:>8.1f} {on[key]:>8.1f} {on[key] / off[key]:>6.2f}x")
    pack_ms, pickle_ms = statistics.median(packing), statistics.median(pickling)
    serve_ms = statistics.median(serving)
    print(
        f"{'keeping the inputs (pool CPU)':<40} {pack_ms:>8.1f}  = "
        f"{pack_ms / off['analysis']:.2f}x the analysis"
    )
    print(
        f"{'pickling the frames again (server CPU)':<40} {pickle_ms:>8.1f}  = "
        f"{pickle_ms / off['analysis']:.2f}x the analysis"
    )
    print(f"{'writing the bundle for a download':<40} {serve_ms:>8.1f}  (once per download)")


def pipeline_windows(pipeline: Pipeline, onset: datetime, now: datetime):  # type: ignore[no-untyped-def]
    from correlator.analysis.windows import incident_windows

    step = pipeline.settings.correlation.step_s
    aligned = datetime.fromtimestamp(now.timestamp() // step * step, tz=UTC)
    return incident_windows(onset, aligned, pipeline.policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--services", type=int, default=50)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
