"""From work item to report: one correlation over 50 services x 1 h of telemetry at 15 s.

Real Prometheus (Debian package) holds the Istio and cAdvisor history of 50 services
(promtool backfill); the Loki and Jaeger test servers run in a child process with the logs and
spans of the same services. The pipeline (scope → call graph → fan-out → analysis) runs
against them several times. Its figures are printed beside the baseline measured in the same
run: the slowest single backend query it made. The pipeline's own overhead is the total minus
the time it waited on backends (the call graph, then the slowest of the concurrent fetches).
Beside it, in the same run, the same correlation fetched first and analysed after (the
pipeline before each source's evidence started in the analysis processes as it came in).

Every run is uncached, as a first alert's correlation is (`cache_s: 0` on every backend:
otherwise the later runs, within the request cache's 10 s, read cached bodies); `--cached`
measures with the cache on.

    .venv/bin/python bench/correlate.py [--runs 5] [--services 50] [--cached]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from correlator.analysis.evidence import Options, analyse  # noqa: E402
from correlator.analysis.telemetry import Telemetry  # noqa: E402
from correlator.analysis.windows import incident_windows  # noqa: E402
from correlator.pipeline import Pipeline  # noqa: E402
from correlator.settings import load_settings  # noqa: E402
from tests.support.processes import backfilled_backends  # noqa: E402
from tests.support.scenarios import Behaviour, Scenario, openmetrics  # noqa: E402

NAMESPACE = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario(services: int, now: datetime) -> Scenario:
    """A root calling 7 services that call 6 each (50 services within two hops)."""
    names = [f"svc-{i:02d}" for i in range(services)]
    calls = []
    fan_out = 7
    for i, name in enumerate(names[1:], 1):
        parent = names[0] if i <= fan_out else names[1 + (i - fan_out - 1) // 6]
        calls.append((parent, name))

    def fault(_: str, b: Behaviour) -> Behaviour:
        b.error_ratio, b.log_errors, b.latency_ms = 0.3, 2, 150.0
        return b

    return Scenario(
        "bench",
        NAMESPACE,
        calls,
        culprit=names[-1],
        alerting=names[0],
        fault=fault,
        fault_at=now - timedelta(minutes=5),
        history=timedelta(hours=1),
    )


def serve_fakes(
    loki_port: int, jaeger_port: int, services: int, now: datetime, history: Path
) -> None:
    """The child process: writes the metric history for promtool, then serves the Loki and
    Jaeger test servers with the scenario's logs and spans (so that the measuring process holds
    nothing but the pipeline, and its peak RSS is the pipeline's)."""
    from aiohttp import web

    from tests.fakes.jaeger import FakeJaeger
    from tests.fakes.loki import FakeLoki

    chosen = scenario(services, now)
    history.write_text(openmetrics([chosen], now))
    loki, jaeger = FakeLoki(), FakeJaeger()
    for labels, lines in chosen.log_streams(now):
        loki.add(labels, list(lines))
    jaeger.add(*chosen.spans(now))

    async def run() -> None:
        runners = []
        for app, port in ((loki.app, loki_port), (jaeger.app, jaeger_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


async def measure(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    chosen = scenario(args.services, now)
    loki_port, jaeger_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        child, prometheus = backfilled_backends(
            __file__, (loki_port, jaeger_port), services=args.services, now=now,
            workdir=Path(workdir),
        )  # fmt: skip
        print(f"setup (backfill, servers): {time.perf_counter() - started:.1f} s")
        try:
            cache = {} if args.cached else {"cache_s": 0}
            settings = load_settings(
                prometheus={"url": prometheus.url, **cache},
                loki={"url": f"http://127.0.0.1:{loki_port}", **cache},
                jaeger={"url": f"http://127.0.0.1:{jaeger_port}", **cache},
                correlation={"deadline_s": 30, "lead_min": 10, "baseline_min": 40},
            )
            pipeline = Pipeline(settings)
            windows = incident_windows(chosen.fault_at + timedelta(minutes=1), now, pipeline.policy)
            rows = []
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            # Warm the analysis processes (spawned on first use), as a running server has.
            await pipeline._analysis.run(analyse, Telemetry(), windows)
            for _ in range(args.runs):
                # Baseline in the same run: fetch everything, then analyse it in the pool (the
                # pipeline before each source's evidence started as the source came in).
                begin = time.perf_counter()
                telemetry, _, _ = await pipeline.gather([chosen.alerting], [NAMESPACE], windows)
                await pipeline._analysis.run(analyse, telemetry, windows)
                sequential = (time.perf_counter() - begin) * 1e3
                begin = time.perf_counter()
                result, telemetry, fetch, services = await pipeline.analysed(
                    [chosen.alerting], [NAMESPACE], windows
                )
                end = time.perf_counter()
                # The same analysis without calibration (its null windows): what it costs.
                analysed = time.perf_counter()
                analyse(telemetry, windows)
                whole = (time.perf_counter() - analysed) * 1e3
                analyse(telemetry, windows, Options(calibrate=False))
                uncalibrated = (time.perf_counter() - analysed) * 1e3 - whole
                t = fetch.timings_ms
                slowest = max(v for k, v in t.items() if k.startswith("slowest_query_"))
                waited = t["graph"] + max(t["metrics"], t["logs"], t["traces"])
                total = (end - begin) * 1e3
                rows.append(
                    {
                        "by_backend": {
                            k.removeprefix("slowest_query_"): round(v)
                            for k, v in t.items()
                            if k.startswith("slowest_query_")
                        },
                        "total": total,
                        "ratio": total / slowest,
                        "sequential": sequential,
                        "slowest": slowest,
                        "waited": waited,
                        "own": total - waited,
                        "tail": t["analysis"],
                        "analysis": whole,
                        "uncalibrated": uncalibrated,
                        "services": len(services),
                        "first": result.ranking()[0] if result.suspects else "-",
                        "missing": len(fetch.missing),
                        "rows": (len(telemetry.metrics), len(telemetry.logs), len(telemetry.spans)),
                    }
                )
            await pipeline.close()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        finally:
            prometheus.stop()
            child.terminate()
    med = {
        k: statistics.median(r[k] for r in rows)
        for k in (
            "total",
            "sequential",
            "slowest",
            "waited",
            "own",
            "tail",
            "analysis",
            "uncalibrated",
        )
    }
    last = rows[-1]
    print(
        f"scope {last['services']} services; metric rows {last['rows'][0]}, log lines "
        f"{last['rows'][1]}, spans {last['rows'][2]}; missing parts {last['missing']}; "
        f"first suspect {last['first']} (injected {chosen.culprit})"
    )
    print(f"slowest query per backend, last run (ms): {last['by_backend']}")
    how = "cached" if args.cached else "uncached"
    print(f"{'median of ' + str(args.runs) + f' {how} runs':<44} {'ms':>8} {'x slowest query':>16}")
    for label, key in (
        ("slowest single backend query", "slowest"),
        ("waiting on backends", "waited"),
        ("pipeline's own overhead", "own"),
        ("  of which analysis after the last source", "tail"),
        ("analysis, all of it, in one process", "analysis"),
        ("  (analysis without calibration)", "uncalibrated"),
        ("total: fetch, then analyse (before)", "sequential"),
        ("total, work item to report", "total"),
    ):
        print(f"{label:<44} {med[key]:>8.1f} {med[key] / med['slowest']:>15.2f}x")
    # Each run against its own slowest query: the backends' times move from run to run, and
    # the ratio of two medians mixes runs.
    ratios = sorted(r["ratio"] for r in rows)
    print(
        f"{'each run: total / its slowest query, median':<44} {'':>8} "
        f"{statistics.median(ratios):>15.2f}x  (runs: {ratios[0]:.2f}x to {ratios[-1]:.2f}x)"
    )
    print(
        f"peak RSS of the measuring process {peak / 1024:.0f} MiB "
        f"({rss_before / 1024:.0f} MiB before the first run)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--cached", action="store_true", help="with the backends' request cache")
    parser.add_argument("--serve-fakes", nargs=2, type=int, metavar=("LOKI", "JAEGER"))
    parser.add_argument("--now")
    parser.add_argument("--history", type=Path)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(
            *args.serve_fakes, args.services, datetime.fromisoformat(args.now), args.history
        )
        return
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
