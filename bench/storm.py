"""An alert storm: how soon every incident has its report, with one replica and with two.

N alert groups over S services arrive within a few seconds at `correlator serve` (PostgreSQL,
real Prometheus with backfilled history, the Loki and Jaeger test servers in a child process
that counts the requests it is asked at once); then the same groups are re-notified once with
nothing new. Printed for each setup, side by side (the one-replica run is the baseline of the
ratio):

- seconds from the last group's arrival until 50 %, 95 % and 100 % of incidents have a report;
- the work items the unchanged re-notifications created (each would be a correlation);
- Loki and Jaeger requests in flight at peak (the per-backend budget bounds each replica);
- how busy the machine's cores were from the first post to the last report, and the CPU
  seconds the serving processes and their analysis processes used (what bounds a second
  replica on the same cores);
- peak RSS of each service process.

With --spread-s S the groups' onsets spread over S seconds, as a cluster-wide fault makes apps
alert seconds apart: their questions differ, so no analysis is shared. With --against REV every
setup runs again on that commit's code (`git archive`), in the same run, beside the working
tree's (the ratios compare each column with the one-replica run of the same code).

    .venv/bin/python bench/storm.py [--groups 1000] [--services 200] [--replicas 1 2]
        [--workers 4] [--spread-s 60] [--against HEAD~1] [--share-s 0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.databases import create_postgres_database, drop_postgres_database  # noqa: E402
from tests.support.processes import backfilled_backends, checkout, free_port  # noqa: E402
from tests.support.scenarios import Behaviour, Scenario, openmetrics  # noqa: E402

NAMESPACE = "storm"
CLUSTER = 5  # services per small call tree: a root calling four


def scenarios(services: int, now: datetime) -> list[Scenario]:
    """`services` services in trees of five; in each, the last one fails."""

    def fault(_: str, b: Behaviour) -> Behaviour:
        b.error_ratio, b.log_errors, b.latency_ms = 0.3, 2, 150.0
        return b

    made = []
    for c in range(services // CLUSTER):
        names = [f"s{c:03d}-{i}" for i in range(CLUSTER)]
        made.append(
            Scenario(
                f"tree {c}",
                NAMESPACE,
                [(names[0], n) for n in names[1:]],
                culprit=names[-1],
                alerting=names[0],
                fault=fault,
                fault_at=now - timedelta(minutes=5),
                history=timedelta(minutes=40),
            )
        )
    return made


def serve_fakes(ports: tuple[int, int, int], services: int, now: datetime, history: Path) -> None:
    """The child process: the metric history for promtool, then Loki and Jaeger test servers
    that count the requests in flight (GET /peak on the third port answers the peaks)."""
    from aiohttp import web

    from tests.fakes.jaeger import FakeJaeger
    from tests.fakes.loki import FakeLoki

    made = scenarios(services, now)
    history.write_text(openmetrics(made, now))
    loki, jaeger = FakeLoki(), FakeJaeger()
    for chosen in made:
        for labels, lines in chosen.log_streams(now):
            loki.add(labels, list(lines))
        jaeger.add(*chosen.spans(now, every=timedelta(seconds=60)))
    counts = {"loki": [0, 0], "jaeger": [0, 0]}

    def counting(name: str) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> Any:
            count = counts[name]
            count[0] += 1
            # The test servers' handlers do not wait on anything, so without a turn here each
            # request would be counted alone: the others read meanwhile get theirs first.
            await asyncio.sleep(0)
            count[1] = max(count[1], count[0])
            try:
                return await handler(request)
            finally:
                count[0] -= 1

        return middleware

    loki.app.middlewares.append(counting("loki"))
    jaeger.app.middlewares.append(counting("jaeger"))
    peaks = web.Application()

    async def peak(request: web.Request) -> web.Response:
        answer = {name: value[1] for name, value in counts.items()}
        if request.query.get("reset"):
            for value in counts.values():
                value[1] = value[0]
        return web.json_response(answer)

    peaks.router.add_get("/peak", peak)

    async def run() -> None:
        for app, port in zip((loki.app, jaeger.app, peaks), ports, strict=True):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def group(index: int, services: int, now: datetime, onset_s: float = 0.0) -> dict[str, Any]:
    """Alert group `index`: on service `index % services` (every service fires groups, as an
    app fires several alerts at once: error rate, latency, saturation), severity by turns,
    started four minutes ago (and `onset_s` later)."""
    service = index % (services // CLUSTER * CLUSTER)
    root = f"s{service // CLUSTER:03d}-{service % CLUSTER}"
    labels = {
        "alertname": f"Storm{index}",
        "destination_workload": root,
        "destination_workload_namespace": NAMESPACE,
        "severity": ("critical", "warning")[index % 2],
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{root} is failing"},
        "startsAt": (now - timedelta(minutes=4, seconds=-onset_s)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"{index:016x}",
    }
    return {
        "version": "4",
        "status": "firing",
        "receiver": "correlator",
        "groupKey": f'{{}}:{{alertname="Storm{index}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": f"Storm{index}"},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager",
        "alerts": [alert],
    }


async def post_all(urls: list[str], bodies: list[dict[str, Any]]) -> float:
    """POST every group, spread over the replicas, 32 at a time; returns when the last was
    acknowledged (monotonic seconds)."""
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(32)

        async def one(i: int, body: dict[str, Any]) -> None:
            async with gate:
                answer = await client.post(f"{urls[i % len(urls)]}/api/v1/alerts", json=body)
                answer.raise_for_status()

        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    return time.monotonic()


async def counts(db: Any) -> tuple[int, int]:
    """Reports stored and work items created. Read with plain SQL: the code under test (maybe
    an older checkout) owns the schema and its migrations."""
    done = await db.fetchval("SELECT count(*) FROM reports")
    items = await db.fetchval("SELECT count(*) FROM work_items")
    return int(done), int(items)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def machine() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_setup(
    args: argparse.Namespace,
    replicas: int,
    backends: dict[str, str],
    peak_url: str,
    source: Path,
) -> dict[str, Any]:
    url = await create_postgres_database()
    workdir = Path(tempfile.mkdtemp(prefix="storm-"))
    processes, urls = [], []
    backend_env = {
        f"CORRELATOR_{name.upper()}_URL": value for name, value in backends.items() if value
    }
    env = {
        **os.environ,
        **backend_env,
        "PYTHONPATH": str(source),
        "CORRELATOR_CORRELATION_SHARE_S": str(args.share_s),
        "CORRELATOR_DATABASE_URL": url,
        "CORRELATOR_QUEUE_WORKERS": str(args.workers),
        "CORRELATOR_QUEUE_POLL_INTERVAL_S": "0.2",
        "CORRELATOR_CORRELATION_DEADLINE_S": "30",
        "CORRELATOR_CORRELATION_NEIGHBOUR_DEPTH": "1",
        "CORRELATOR_LOG_LEVEL": "warning",
    }
    db = None
    try:
        for _ in range(replicas):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            log = (workdir / f"service-{port}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "correlator", "serve", "--port", str(port)],
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for base in urls:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        if peak_url:
            httpx.get(f"{peak_url}?reset=1")
        now = datetime.now(UTC)
        spread = args.spread_s / max(args.groups - 1, 1)
        bodies = [group(i, args.services, now, i * spread) for i in range(args.groups)]
        serving_before = sum(cpu_s(p.pid) for p in processes)
        busy_before = machine()
        first = time.monotonic()
        last = await post_all(urls, bodies)
        marks: dict[int, float] = {}
        while len(marks) < 3 and time.monotonic() - last < args.timeout_s:
            done, _ = await counts(db)
            for share in (50, 95, 100):
                if share not in marks and done >= args.groups * share / 100:
                    marks[share] = time.monotonic() - last
            await asyncio.sleep(0.25)
        busy_after = machine()
        # From the first post to the last report: how busy the machine's cores were, and the
        # CPU the replicas (and their analysis processes) used of it.
        busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
        cpu = {
            "cores_busy": busy * (os.cpu_count() or 1),
            "serving_s": sum(cpu_s(p.pid) for p in processes) - serving_before,
            "analysis_s": sum(cpu_s(c) for p in processes for c in children(p.pid)),
        }
        before = (await counts(db))[1]
        await post_all(urls, bodies)  # the same groups again: nothing new
        await asyncio.sleep(2)
        after = (await counts(db))[1]
        peaks = httpx.get(peak_url).json() if peak_url else {"loki": 0, "jaeger": 0}
        analyses = {"analysed": 0.0, "shared": 0.0}
        for base in urls:
            for line in httpx.get(f"{base}/metrics").text.splitlines():
                if line.startswith("correlator_correlations_total{"):
                    how = line.split('how="', 1)[1].split('"', 1)[0]
                    analyses[how] = analyses.get(how, 0.0) + float(line.rsplit(" ", 1)[1])
        rss = [peak_rss_mib(p.pid) for p in processes]
        return {
            "arrival_s": last - first,
            "marks": marks,
            "refresh_items": after - before,
            "peaks": peaks,
            "analyses": analyses,
            "cpu": cpu,
            "rss": rss,
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        if db is not None:
            await db.close()
        await drop_postgres_database(url)
        shutil.rmtree(workdir, ignore_errors=True)  # its servers' files, once they stopped


async def measure(args: argparse.Namespace) -> None:
    if args.no_backends:
        # No backend: every correlation is trivially partial, so what is measured is the
        # queue itself (intake, claims, reports) and how it scales with replicas.
        none = {"prometheus": "", "loki": "", "jaeger": ""}
        results: dict[str, list[dict[str, Any]]] = {}
        for label, replicas, source in setups(args):
            results.setdefault(label, []).append(await one_setup(args, replicas, none, "", source))
        return summarise(args, median_of(results), "no backends")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
    ports = (free_port(), free_port(), free_port())
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        child, prometheus = backfilled_backends(
            __file__, ports, services=args.services, now=now, workdir=Path(workdir)
        )
        print(f"setup (backfill of {args.services} services, servers): "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        backends = {
            "prometheus": prometheus.url,
            "loki": f"http://127.0.0.1:{ports[0]}",
            "jaeger": f"http://127.0.0.1:{ports[1]}",
        }
        results = {}
        try:
            for label, replicas, source in setups(args):
                result = await one_setup(
                    args, replicas, backends, f"http://127.0.0.1:{ports[2]}/peak", source
                )
                results.setdefault(label, []).append(result)
                print(f"{label}: {json.dumps(result)}", flush=True)
        finally:
            prometheus.stop()
            child.terminate()
    summarise(args, median_of(results), "real Prometheus, Loki and Jaeger test servers")


def setups(args: argparse.Namespace) -> list[tuple[str, int, Path]]:
    """(column, replicas, code) of every setup: the working tree's, then REV's if asked; with
    --repeat N, all of them N times over, interleaved (a machine whose load drifts during the
    run then weighs on every column alike)."""
    sources = [("", ROOT)]
    if args.against:
        root = tempfile.mkdtemp(prefix="storm-src-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        tree = checkout(args.against, Path(root) / "src")
        sources.append((f" @{args.against}", tree))
    one_round = [(f"{r} replica(s){tag}", r, src) for tag, src in sources for r in args.replicas]
    return one_round * int(args.repeat)


def median_of(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each setup's runs as one: the median of every figure (the first run's peaks)."""
    merged = {}
    for label, runs in results.items():
        one = dict(runs[0])
        one["arrival_s"] = statistics.median(r["arrival_s"] for r in runs)
        one["marks"] = {
            share: statistics.median(r["marks"][share] for r in runs)
            for share in runs[0]["marks"]
            if all(share in r["marks"] for r in runs)
        }
        for group in ("cpu", "analyses"):
            one[group] = {k: statistics.median(r[group][k] for r in runs) for k in runs[0][group]}
        one["runs"] = len(runs)
        merged[label] = one
    return merged


def summarise(args: argparse.Namespace, results: dict[str, dict[str, Any]], what: str) -> None:
    columns = list(results)
    # Each column's ratio is to the first (fewest replicas) of the same code.
    base = {c: results[next(b for b in columns if b.split(" ", 2)[2:] == c.split(" ", 2)[2:])]
            for c in columns}  # fmt: skip
    runs = f", median of {args.repeat} runs each" if args.repeat > 1 else ""
    print(
        f"\n{args.groups} groups over {args.services} services, onsets within "
        f"{args.spread_s:g} s, share_s {args.share_s:g}, {args.workers} workers a replica, "
        f"PostgreSQL, {what}{runs}; seconds after the last group arrived"
    )
    width = max(18, *(len(c) + 2 for c in columns))
    print(f"{'':<36}" + "".join(f"{c:>{width}}" for c in columns))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<36}" + "".join(f"{v:>{width}}" for v in values))

    row("groups arrived within (s)", [f"{results[c]['arrival_s']:.1f}" for c in columns])
    for share in (50, 95, 100):
        values = []
        for c in columns:
            mark = results[c]["marks"].get(share)
            ratio = base[c]["marks"].get(share)
            text = "not in time" if mark is None else f"{mark:.1f}"
            if mark and ratio and base[c] is not results[c]:
                text += f" ({ratio / mark:.2f}x)"
            values.append(text)
        row(f"{share} % of incidents reported", values)
    row("correlations from unchanged repeats", [str(results[c]["refresh_items"]) for c in columns])
    analyses = [results[c].get("analyses", {}) for c in columns]
    row(
        "reports analysed / shared",
        [f"{a.get('analysed', 0):.0f} / {a.get('shared', 0):.0f}" for a in analyses],
    )
    cpu = [results[c]["cpu"] for c in columns]
    row(f"cores busy (of {os.cpu_count()}) until 100 %", [f"{u['cores_busy']:.2f}" for u in cpu])
    row(
        "CPU s: serving / analysis processes",
        [f"{u['serving_s']:.0f} / {u['analysis_s']:.0f}" for u in cpu],
    )
    peaks = [results[c]["peaks"] for c in columns]
    row("Loki / Jaeger requests at peak", [f"{p['loki']} / {p['jaeger']}" for p in peaks])
    rss = [results[c]["rss"] for c in columns]
    row("peak RSS per replica (MiB)", [", ".join(f"{m:.0f}" for m in r) for r in rss])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout-s", type=float, default=900)
    parser.add_argument("--spread-s", type=float, default=0.0, help="onsets spread over this")
    parser.add_argument("--share-s", type=float, default=60.0, help="correlation.share_s")
    parser.add_argument("--against", metavar="REV", help="also run every setup on REV's code")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setup (medians)")
    parser.add_argument("--no-backends", action="store_true")
    parser.add_argument("--serve-fakes", nargs=3, type=int)
    parser.add_argument("--now")
    parser.add_argument("--history", type=Path)
    args = parser.parse_args()
    if args.serve_fakes:
        serve_fakes(
            tuple(args.serve_fakes), args.services, datetime.fromisoformat(args.now), args.history
        )
        return
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
