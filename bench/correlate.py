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
measures with the cache on. With --against REV, REV's code is measured too, in its own
process, the two taking turns run by run against the same backends.

    .venv/bin/python bench/correlate.py [--runs 5] [--services 50] [--cached] [--against REV]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# A measurer's code (`--against`), first on its path and on its analysis processes' (which
# import this module again, as their main, when they are spawned).
if tree := os.environ.get("CORRELATOR_BENCH_TREE"):
    sys.path.insert(0, tree)

from bench.replay import SETTLE, serve_apps  # noqa: E402
from tests.support.processes import backfilled_backends, checkout  # noqa: E402
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
    from tests.fakes.jaeger import FakeJaeger
    from tests.fakes.loki import FakeLoki

    chosen = scenario(services, now)
    history.write_text(openmetrics([chosen], now))
    loki, jaeger = FakeLoki(), FakeJaeger()
    for labels, lines in chosen.log_streams(now):
        loki.add(labels, list(lines))
    jaeger.add(*chosen.spans(now))

    asyncio.run(serve_apps([(loki.app, loki_port), (jaeger.app, jaeger_port)]))


def _check_tree(tree: str) -> None:
    """In an analysis process: the measured code is the one imported."""
    assert Path(sys.modules["correlator"].__file__ or "").is_relative_to(tree)


def measurer(args: argparse.Namespace, backends: dict[str, str], now: datetime, tree: Path) -> Any:
    """A child process measuring the pipeline of the code in `tree` (first on its path) against
    the running backends: one correlation each time it is told "run", its figures as a line of
    JSON. Each setup keeps its own warm process (its analysis pool spawned, as a running
    server's is), and the setups take turns, so a machine whose speed drifts weighs on them
    alike."""
    command = [sys.executable, __file__, "--measure", json.dumps(backends), "--now",
               now.isoformat(), "--services", str(args.services)]  # fmt: skip
    if args.cached:
        command.append("--cached")
    command += ["--tree", str(tree)]
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CORRELATOR_BENCH_TREE": str(tree)},
    )


async def serve_measurements(args: argparse.Namespace) -> None:
    """The measuring child: one correlation per "run" read on stdin, its figures printed."""
    from correlator.analysis.evidence import Options, analyse
    from correlator.analysis.telemetry import Telemetry
    from correlator.analysis.windows import incident_windows
    from correlator.pipeline import Pipeline
    from correlator.settings import load_settings

    urls = json.loads(args.measure)
    now = datetime.fromisoformat(args.now)
    chosen = scenario(args.services, now)
    cache = {} if args.cached else {"cache_s": 0}
    settings = load_settings(
        **{name: {"url": url, **cache} for name, url in urls.items()},
        correlation={"deadline_s": 30, "lead_min": 10, "baseline_min": 40},
    )
    pipeline = Pipeline(settings)
    assert Path(sys.modules["correlator"].__file__ or "").is_relative_to(args.tree)
    # The analysis processes run the measured code too.
    await pipeline._analysis.run(_check_tree, args.tree)
    windows = incident_windows(chosen.fault_at + timedelta(minutes=1), now, pipeline.policy)
    # Warm the analysis processes (spawned on first use), as a running server has.
    await pipeline._analysis.run(analyse, Telemetry(), windows)
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    while (await asyncio.to_thread(sys.stdin.readline)).strip() == "run":
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
        # The traces are asked for beside the call graph; the other sources after it.
        waited = max(t["graph"] + max(t["metrics"], t["logs"]), t["traces"])
        total = (end - begin) * 1e3
        row = {
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
            # Reading a source's answers (alone: with the evidence of that source's own).
            "read": max((v for k, v in t.items() if k.startswith("read_")), default=math.nan),
            "analysis": whole,
            "uncalibrated": uncalibrated,
            "services": len(services),
            "first": result.ranking()[0] if result.suspects else "-",
            "missing": len(fetch.missing),
            "rows": (len(telemetry.metrics), len(telemetry.logs), len(telemetry.spans)),
            "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "timings": {k: round(v) for k, v in t.items()},
        }
        print(json.dumps(row), flush=True)
    await pipeline.close()


def measure(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    chosen = scenario(args.services, now)
    loki_port, jaeger_port = free_port(), free_port()
    trees = {"now": ROOT}
    with tempfile.TemporaryDirectory() as workdir:
        if args.against:
            trees[f"@{args.against}"] = checkout(args.against, Path(workdir) / "src")
        started = time.perf_counter()
        child, prometheus = backfilled_backends(
            __file__, (loki_port, jaeger_port), services=args.services, now=now,
            workdir=Path(workdir),
        )  # fmt: skip
        print(f"setup (backfill, servers): {time.perf_counter() - started:.1f} s")
        backends = {
            "prometheus": prometheus.url,
            "loki": f"http://127.0.0.1:{loki_port}",
            "jaeger": f"http://127.0.0.1:{jaeger_port}",
        }
        replay = None
        if args.replayed:
            replay, backends = replayed(backends)
        measurers = {}
        try:
            measurers = {name: measurer(args, backends, now, tree) for name, tree in trees.items()}
            rss_before = {name: json.loads(m.stdout.readline()) for name, m in measurers.items()}
            if replay is not None:  # one run each records the requests; then they are timed
                for m in measurers.values():
                    ask(m)
                httpx.post(f"{backends['prometheus']}{SETTLE}", timeout=600).raise_for_status()
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, m in measurers.items():
                    rows[name].append(ask(m))
        finally:
            for m in measurers.values():
                m.stdin.close()
                m.wait(timeout=30)
            if replay is not None:
                replay.terminate()
            prometheus.stop()
            child.terminate()
    summarise(args, chosen, rows, rss_before)


def ask(m: Any) -> dict[str, Any]:
    """One correlation by the measurer `m`, and its figures."""
    m.stdin.write("run\n")
    m.stdin.flush()
    return dict(json.loads(m.stdout.readline()))


def replayed(backends: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The replaying server (`bench/replay.py`) in front of `backends`, and its addresses."""
    ports = {name: free_port() for name in backends}
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "replay.py"),
         *(f"{ports[name]}={url}" for name, url in backends.items())],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def summarise(
    args: argparse.Namespace,
    chosen: Scenario,
    rows: dict[str, list[dict[str, Any]]],
    rss_before: dict[str, dict[str, int]],
) -> None:
    keys = (
        "total",
        "sequential",
        "slowest",
        "waited",
        "own",
        "read",
        "tail",
        "analysis",
        "uncalibrated",
    )
    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in keys}
        for name, runs in rows.items()
    }
    for name, runs in rows.items():
        last = runs[-1]
        print(
            f"{name}: scope {last['services']} services; metric rows {last['rows'][0]}, log "
            f"lines {last['rows'][1]}, spans {last['rows'][2]}; missing parts {last['missing']}; "
            f"first suspect {last['first']} (injected {chosen.culprit}); slowest query per "
            f"backend, last run (ms): {last['by_backend']}"
        )
        if args.verbose:
            for run in runs:
                print(f"  {name} run: {run['timings']}")
    how = "cached" if args.cached else "uncached"
    if args.replayed:
        how += ", replayed"
    head = f"median of {args.runs} {how} runs (ms, x slowest query)"
    print(f"{head:<44}" + "".join(f"{name:>24}" for name in rows))
    for label, key in (
        ("slowest single backend query", "slowest"),
        ("waiting on backends", "waited"),
        ("pipeline's own overhead", "own"),
        ("  reading a source, slowest (with evidence)", "read"),
        ("  ranking after the last source was read", "tail"),
        ("analysis, all of it, in one process", "analysis"),
        ("  (analysis without calibration)", "uncalibrated"),
        ("total: fetch, then analyse (before)", "sequential"),
        ("total, work item to report", "total"),
    ):
        print(
            f"{label:<44}"
            + "".join(f"{m[key]:>14.1f} {m[key] / m['slowest']:>8.2f}x" for m in med.values())
        )
    # Each run against its own slowest query: the backends' times move from run to run, and
    # the ratio of two medians mixes runs.
    cells = []
    for runs in rows.values():
        ratios = sorted(r["ratio"] for r in runs)
        cells.append(f"{statistics.median(ratios):>8.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
    print(
        f"{'each run: total / its slowest query, median':<44}" + "".join(f"{c:>24}" for c in cells)
    )
    peaks = (
        f"{runs[-1]['rss_kib'] / 1024:.0f} MiB ({rss_before[name]['rss_kib'] / 1024:.0f} before)"
        for name, runs in rows.items()
    )
    print(f"{'peak RSS of the measuring process':<44}" + "".join(f"{p:>24}" for p in peaks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--cached", action="store_true", help="with the backends' request cache")
    parser.add_argument("--against", metavar="REV", help="also measure REV's code, in turns")
    parser.add_argument("--verbose", action="store_true", help="each run's timings by part")
    parser.add_argument(
        "--replayed",
        action="store_true",
        help="answers recorded once, then replayed after each request's own time alone, as "
        "backends on machines of their own answer (bench/replay.py)",
    )
    parser.add_argument("--serve-fakes", nargs=2, type=int, metavar=("LOKI", "JAEGER"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--now")
    parser.add_argument("--history", type=Path)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(
            *args.serve_fakes, args.services, datetime.fromisoformat(args.now), args.history
        )
        return
    if args.measure:
        asyncio.run(serve_measurements(args))
        return
    measure(args)


if __name__ == "__main__":
    main()
