"""Provisioning 1,000 WebApplications: generation, a full reconcile, an unchanged resync.

The Grafana test server (tests/fakes/grafana.py) runs in its own process with 5 ms added to
every request, its contract checking off so that it measures correlator, not itself. Figures
are printed beside baselines measured in the same run: generation against a deep copy of the
dashboard template, reconciling against the same number of bare GETs through the same client
at the same concurrency.

    .venv/bin/python bench/provision.py [--apps 1000] [--delay-ms 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from correlator.models.webapp import WebApplication  # noqa: E402
from correlator.provisioning.alert_rules import rule_file, rule_tests  # noqa: E402
from correlator.provisioning.dashboards import dashboard, template  # noqa: E402
from correlator.provisioning.grafana import GrafanaTarget  # noqa: E402
from correlator.provisioning.naming import Links  # noqa: E402
from correlator.provisioning.reconcile import Action, reconcile  # noqa: E402

TOKEN = "glsa_test_token"


def apps(count: int) -> list[WebApplication]:
    made = []
    for i in range(count):
        slo: dict[str, object] = {}
        if i % 3:
            slo["availability"] = ["99.9", "99.5", "99", "99.95"][i % 4]
        if i % 4 == 0:
            slo["latency"] = {"thresholdMs": [100, 250, 500][i % 3], "target": 99}
        made.append(
            WebApplication.model_validate(
                {
                    "apiVersion": "platform.correlator.dev/v1alpha1",
                    "kind": "WebApplication",
                    "metadata": {"name": f"app-{i:04d}", "namespace": f"team-{i % 40:02d}"},
                    "spec": {
                        "image": f"registry/app-{i}:1",
                        "team": f"team-{i % 25:02d}",
                        "slo": slo,
                        "repo": f"https://git.example/app-{i}",
                    },
                }
            )
        )
    return made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stats(url: str) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{url}/_test/stats").json()
    return result


async def bare_gets(target: GrafanaTarget, uids: list[str], concurrency: int) -> float:
    limit = asyncio.Semaphore(concurrency)

    async def one(uid: str) -> None:
        async with limit:
            await target.get_dashboard(uid)

    started = time.perf_counter()
    await asyncio.gather(*(one(uid) for uid in uids))
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    links = Links()
    webapps = apps(args.apps)

    started = time.perf_counter()
    for app in webapps:
        dashboard(app, links)
        rule_file(app, links)
    generation_ms = (time.perf_counter() - started) * 1000 / len(webapps)
    started = time.perf_counter()
    for app in webapps:
        rule_tests(app, links, "rules.yaml")
    tests_ms = (time.perf_counter() - started) * 1000 / len(webapps)
    started = time.perf_counter()
    for _ in webapps:
        copy.deepcopy(template())
    copy_ms = (time.perf_counter() - started) * 1000 / len(webapps)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.grafana", str(port), str(args.delay_ms)], cwd=ROOT
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        target = GrafanaTarget(url, TOKEN)
        started = time.perf_counter()
        first = await reconcile(target, webapps, links, concurrency=args.concurrency)
        full_s = time.perf_counter() - started
        after_full = stats(url)
        started = time.perf_counter()
        resync = await reconcile(target, webapps, links, concurrency=args.concurrency)
        resync_s = time.perf_counter() - started
        after_resync = stats(url)
        uids = sorted({step.uid for step in first.steps})
        baseline_s = await bare_gets(target, uids, args.concurrency)
    finally:
        server.terminate()
        server.wait()

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.apps} WebApplications, Grafana test server +{args.delay_ms} ms/request, "
        f"concurrency {args.concurrency}"
    )
    print(f"{'measure':44} {'value':>12} {'baseline':>12} {'ratio':>7}")
    print(
        f"{'generation per app (dashboard + rules), ms':44} {generation_ms:12.2f} "
        f"{copy_ms:12.2f} {generation_ms / copy_ms:7.1f}   baseline: deep copy of the template"
    )
    print(f"{'promtool test generation per app, ms':44} {tests_ms:12.2f}")
    print(
        f"{'full reconcile, s':44} {full_s:12.2f} {baseline_s:12.2f} {full_s / baseline_s:7.1f}   "
        f"baseline: {len(uids)} bare GETs; {first.count(Action.CREATE)} created, "
        f"{after_full['writes']} writes, {len(first.errors)} errors"
    )
    ratio = resync_s / baseline_s
    print(
        f"{'unchanged resync, s':44} {resync_s:12.2f} {baseline_s:12.2f} {ratio:7.1f}   "
        f"writes: {after_resync['writes'] - after_full['writes']}, "
        f"unchanged: {resync.count(Action.UNCHANGED)}"
    )
    print(f"{'peak RSS of this process, MiB':44} {rss_mib:12.0f}")


if __name__ == "__main__":
    asyncio.run(main())
