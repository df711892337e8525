"""Webhook intake: requests/s and ack latency, durable (SQLite, PostgreSQL) vs a bare handler.

Each server runs in its own process; the same aiohttp client drives all of them from this
process. Two measurements per server:
  - closed loop: CONCURRENCY requests in flight until REQUESTS are done → requests/s, p50, p99;
  - open loop: a fixed RATE of requests per second for SECONDS → p50, p99 ack latency.
Every request is a distinct alert group (a new incident: the most writing a notification does).

    .venv/bin/python bench/intake.py [--requests 4000] [--concurrency 32] [--rate 200] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
FIRING = ROOT.parent / "shared" / "contracts" / "alertmanager" / "webhook-v4-firing-am0.25.json"
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
        closed = await closed_loop(url, bodies(args.requests), args.concurrency)
        opened = await open_loop(
            url, bodies(int(args.rate * args.seconds)), args.rate, args.seconds
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
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    database = f"correlator_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    serve = [sys.executable, "-m", "correlator", "serve"]
    runs = [
        ("bare aiohttp (baseline)", [sys.executable, str(ROOT / "bench" / "bare_server.py")], {}),
        ("correlator, SQLite", serve, {"CORRELATOR_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}),
        (
            "correlator, PostgreSQL",
            serve,
            {"CORRELATOR_DATABASE_URL": f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}"},
        ),
        # The same without the work-queue consumer: what the intake alone costs.
        (
            "  intake only, SQLite",
            serve,
            {
                "CORRELATOR_DATABASE_URL": f"sqlite:///{workdir}/intake-only.db",
                "CORRELATOR_QUEUE_WORKERS": "0",
            },
        ),
    ]
    results = {}
    try:
        for name, command, env in runs:
            results[name] = await measure(name, command, env, workdir, args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()

    baseline = results[runs[0][0]]["rps"]
    print(
        f"closed loop: {args.requests} requests, concurrency {args.concurrency}; "
        f"open loop: {args.rate:g} req/s for {args.seconds:g} s"
    )
    print(
        f"{'server':26} {'req/s':>8} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'@rate p50':>10} {'@rate p99':>10} {'failed':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:26} {r['rps']:8.0f} {r['rps'] / baseline:8.0%} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['open_p50_ms']:10.2f} {r['open_p99_ms']:10.2f} "
            f"{int(r['failures']):7d}"
        )


if __name__ == "__main__":
    asyncio.run(main())
