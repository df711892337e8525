"""Webhook intake: requests/s and ack latency, durable (SQLite, PostgreSQL) vs a bare handler.

Each server runs in its own process; the same aiohttp client drives all of them from this
process. Two measurements per server:
  - closed loop: CONCURRENCY requests in flight until REQUESTS are done → requests/s, p50, p99;
  - open loop: a fixed RATE of requests per second for SECONDS → p50, p99 ack latency.
Every request is a distinct alert group (a new incident: the most writing a notification does).
With the work queue running, each also becomes a correlation in the same server: the CPU
seconds the server process and its analysis processes spent are printed beside the latencies,
and those the rest of the machine spent meanwhile (another job: on 2 cores it shows in p99).
This process's garbage collector is off while it measures (its full collections paused the
loop that times the requests for 33-85 ms).
--against REV runs the correlator rows again on that commit's code (`git archive`), in the
same run, so a change is measured beside what it changes on a machine whose load varies.

With --big, instead: a group of 10,000 alerts with typical labels and annotations beside a
group of 1 alert, on each store: time to acknowledge (median of --repeat groups, one at a
time, then 4 big ones at once) and the server's peak memory (VmHWM) over its idle size.

    .venv/bin/python bench/intake.py [--requests 4000] [--concurrency 32] [--rate 200] [--seconds 5]
    .venv/bin/python bench/intake.py --against HEAD~1
    .venv/bin/python bench/intake.py --big [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
FIRING = ROOT / "examples" / "alertmanager" / "firing.json"
sys.path.insert(0, str(ROOT))

from tests.support.payloads import big_group  # noqa: E402
from tests.support.processes import checkout  # noqa: E402

PG_ADMIN = os.environ.get("CORRELATOR_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bodies(count: int) -> list[bytes]:
    template = json.loads(FIRING.read_text())
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        template["groupKey"] = f'{{}}:{{alertname="Bench{run}{i}"}}'
        out.append(json.dumps(template).encode())
    return out


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(url: str, payloads: list[bytes], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    queue = list(reversed(payloads))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal failures
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                async with session.post(f"{url}/api/v1/alerts", data=body, headers=headers) as r:
                    await r.read()
                    failures += r.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "failures": failures,
    }


async def open_loop(
    url: str, payloads: list[bytes], rate: float, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    headers = {"Content-Type": "application/json"}
    total = int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: bytes) -> None:
            nonlocal failures
            started = time.perf_counter()
            async with session.post(f"{url}/api/v1/alerts", data=body, headers=headers) as r:
                await r.read()
                failures += r.status != 200
            latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        for i in range(total):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(payloads[i % len(payloads)])))
        await asyncio.gather(*tasks)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "failures": failures,
    }


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def children_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each live child of `pid` (the analysis processes)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return found


def busy_s() -> float:
    """CPU seconds the machine's processes have used (all cores: user, nice and system time;
    not interrupts, which no process is charged with)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(fields) / TICKS_PER_S


def postgres_cpu_s() -> float:
    """CPU seconds of the PostgreSQL server's processes on this machine."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += cpu_s(int(entry.name))
            except OSError:
                continue
    return total


def start(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure(
    name: str, command: list[str], env: dict[str, str], cwd: Path, args: argparse.Namespace
) -> dict[str, float]:
    port = free_port()
    process = start(
        [*command, *([str(port)] if "bare" in name else [])],
        {**env, "CORRELATOR_SERVER_PORT": str(port), "CORRELATOR_LOG_LEVEL": "warning"},
        cwd,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        await closed_loop(url, bodies(200), args.concurrency)  # warm-up
        closed_bodies = bodies(args.requests)
        open_bodies = bodies(int(args.rate * args.seconds))
        # This process's own collector stays out of the timings: a full collection here took
        # 33-85 ms, a pause of this loop that every request in flight was charged with.
        gc.collect()
        gc.freeze()
        gc.disable()
        server_before, children_before = cpu_s(process.pid), children_cpu_s(process.pid)
        mine_before, busy_before, pg_before = cpu_s(os.getpid()), busy_s(), postgres_cpu_s()
        try:
            closed = await closed_loop(url, closed_bodies, args.concurrency)
            opened = await open_loop(url, open_bodies, args.rate, args.seconds)
        finally:
            gc.enable()
            gc.unfreeze()
        server_s = cpu_s(process.pid) - server_before
        children_s = sum(
            used - children_before.get(pid, 0.0)
            for pid, used in children_cpu_s(process.pid).items()
        )
        # What else ran on the machine meanwhile (another job, not this bench, its server, its
        # analysis processes or PostgreSQL): the latencies of a row measured beside it suffer.
        others_s = (
            busy_s()
            - busy_before
            - (cpu_s(os.getpid()) - mine_before)
            - server_s
            - children_s
            - (postgres_cpu_s() - pg_before)
        )
    finally:
        process.terminate()
        process.wait(timeout=20)
    return {
        "rps": closed["rps"],
        "p50_ms": closed["p50_ms"],
        "p99_ms": closed["p99_ms"],
        "open_p50_ms": opened["p50_ms"],
        "open_p99_ms": opened["p99_ms"],
        "failures": closed["failures"] + opened["failures"],
        "server_cpu_s": server_s,
        "analysis_cpu_s": children_s,
        "others_cpu_s": others_s,
    }


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident size now (VmRSS) and at its peak (VmHWM), in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def group_bodies(alerts: int, count: int) -> list[bytes]:
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        body = big_group(alerts)
        body["groupKey"] = f'{{}}:{{alertname="Big{run}{i}"}}'
        out.append(json.dumps(body).encode())
    return out


async def post_all(url: str, payloads: list[bytes]) -> list[float]:
    """Post the bodies at once; each one's time to acknowledge, in seconds."""
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes) -> float:
            started = time.perf_counter()
            async with session.post(f"{url}/api/v1/alerts", data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{r.status}: {(await r.text())[:200]}")
            return time.perf_counter() - started

        return list(await asyncio.gather(*(one(body) for body in payloads)))


async def measure_group(
    env: dict[str, str], cwd: Path, alerts: int, repeat: int
) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "correlator", "serve"]
    process = start(
        command,
        {**env, "CORRELATOR_SERVER_PORT": str(port), "CORRELATOR_LOG_LEVEL": "warning"},
        cwd,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        await post_all(url, group_bodies(1, 1))  # warm-up
        idle = memory_kib(process.pid)
        one_at_a_time = []
        for body in group_bodies(alerts, repeat):
            one_at_a_time += await post_all(url, [body])
        together = await post_all(url, group_bodies(alerts, 4))
        peak = memory_kib(process.pid)
        size = len(group_bodies(alerts, 1)[0])
    finally:
        process.terminate()
        process.wait(timeout=20)
    return {
        "body_mb": size / 1e6,
        "ack_ms": statistics.median(one_at_a_time) * 1000,
        "ack_max_ms": max(one_at_a_time) * 1000,
        "four_at_once_ms": max(together) * 1000,
        "idle_mib": idle["VmRSS"] / 1024,
        "peak_mib": peak["VmHWM"] / 1024,
    }


async def big_groups(repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-big-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # its databases and logs
    admin = await asyncpg.connect(PG_ADMIN)
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for store in ("SQLite", "PostgreSQL"):
            for alerts in (1, 10_000):
                database = f"correlator_bench_{uuid.uuid4().hex[:8]}"
                if store == "SQLite":
                    url = f"sqlite:///{workdir}/{database}.db"
                else:
                    await admin.execute(f'CREATE DATABASE "{database}"')
                    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"
                # Intake only: the work queue's consumers would add correlation's own memory.
                env = {"CORRELATOR_DATABASE_URL": url, "CORRELATOR_QUEUE_WORKERS": "0"}
                try:
                    results[(store, alerts)] = await measure_group(env, workdir, alerts, repeat)
                finally:
                    if store == "PostgreSQL":
                        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    print(f"one group at a time ({repeat} groups, median and max), then 4 groups at once")
    print(
        f"{'store':11} {'alerts':>7} {'body MB':>8} {'ack ms':>8} {'max ms':>8} "
        f"{'4 at once':>10} {'idle MiB':>9} {'peak MiB':>9}"
    )
    for (store, alerts), r in results.items():
        print(
            f"{store:11} {alerts:7d} {r['body_mb']:8.2f} {r['ack_ms']:8.1f} {r['ack_max_ms']:8.1f} "
            f"{r['four_at_once_ms']:10.1f} {r['idle_mib']:9.1f} {r['peak_mib']:9.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--big", action="store_true", help="a 10,000-alert group vs 1 alert")
    parser.add_argument("--repeat", type=int, default=5, help="groups of each size (--big)")
    parser.add_argument(
        "--against", metavar="REV", help="also run the correlator rows on this commit's code"
    )
    args = parser.parse_args()
    if args.big:
        await big_groups(args.repeat)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # its databases and logs
    trees: list[tuple[str, dict[str, str]]] = [("", {})]
    if args.against:
        tree = checkout(args.against, workdir / "against")
        trees.insert(0, (f" @{args.against}", {"PYTHONPATH": str(tree)}))
    serve = [sys.executable, "-m", "correlator", "serve"]
    runs = [
        ("bare aiohttp (baseline)", [sys.executable, str(ROOT / "bench" / "bare_server.py")], {})
    ]
    databases = []
    for suffix, code in trees:
        database = f"correlator_bench_{uuid.uuid4().hex[:8]}"
        databases.append(database)
        sqlite = f"sqlite:///{workdir}/bench-{len(databases)}"  # .db and -intake-only.db
        runs += [
            (
                f"correlator, SQLite{suffix}",
                serve,
                {**code, "CORRELATOR_DATABASE_URL": f"{sqlite}.db"},
            ),
            (
                f"correlator, PostgreSQL{suffix}",
                serve,
                {**code, "CORRELATOR_DATABASE_URL": f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"},
            ),
            # The same without the work-queue consumer: what the intake alone costs.
            (
                f"  intake only, SQLite{suffix}",
                serve,
                {
                    **code,
                    "CORRELATOR_DATABASE_URL": f"{sqlite}-intake-only.db",
                    "CORRELATOR_QUEUE_WORKERS": "0",
                },
            ),
        ]
    admin = await asyncpg.connect(PG_ADMIN)
    results = {}
    try:
        for database in databases:
            await admin.execute(f'CREATE DATABASE "{database}"')
        for name, command, env in runs:
            results[name] = await measure(name, command, env, workdir, args)
    finally:
        for database in databases:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()

    baseline = results[runs[0][0]]["rps"]
    print(
        f"closed loop: {args.requests} requests, concurrency {args.concurrency}; "
        f"open loop: {args.rate:g} req/s for {args.seconds:g} s"
    )
    width = max(len(name) for name in results) + 1
    print(
        f"{'server':{width}} {'req/s':>8} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'@rate p50':>10} {'@rate p99':>10} {'failed':>7} {'server cpu s':>13} "
        f"{'analysis cpu s':>15} {'others cpu s':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:{width}} {r['rps']:8.0f} {r['rps'] / baseline:8.0%} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['open_p50_ms']:10.2f} {r['open_p99_ms']:10.2f} "
            f"{int(r['failures']):7d} {r['server_cpu_s']:13.1f} {r['analysis_cpu_s']:15.1f} "
            f"{r['others_cpu_s']:13.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
