"""`correlator demo`: a packaged incident, end to end, on the embedded defaults.

The scenario: `storefront` calls `checkout`, which calls `payments`; payments starts failing
six minutes ago and its callers follow. The demo writes the scenario's WebApplications and an
incident bundle, starts the service (SQLite, files provisioning), loads the metrics into a real
Prometheus when the Debian package is installed, sends the alert through the intake, and prints
the stored report, the offline analysis of the same bundle (with its logs and traces), the
incident page URL and what was provisioned. What it cannot do here it says, plainly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from correlator.lifetime import signal_on_parent_death
from correlator.models.report import Report, Suspect

NAMESPACE = "demo"
CALLS = (("storefront", "checkout"), ("checkout", "payments"))
SERVICES = ("storefront", "checkout", "payments")
CULPRIT = "payments"
STEP = timedelta(seconds=15)
HISTORY = timedelta(minutes=90)
PROPAGATION = timedelta(seconds=30)
SIGNALS = {"error_ratio": ("ratio", "higher"), "latency_p99_ms": ("ms", "higher"),
           "throughput_rps": ("req/s", "lower")}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    now: datetime

    @property
    def fault_at(self) -> datetime:
        return self.now - timedelta(minutes=6)

    def depth(self, service: str) -> int:
        return SERVICES.index(CULPRIT) - SERVICES.index(service)

    def failing(self, service: str, moment: datetime) -> bool:
        return moment >= self.fault_at + PROPAGATION * self.depth(service)

    def values(self, service: str, moment: datetime) -> dict[str, float]:
        bad = self.failing(service, moment)
        return {
            "error_ratio": (0.3 - 0.05 * self.depth(service)) if bad else 0.002,
            "latency_p99_ms": 40.0 + 15 * self.depth(service) + (25 if bad else 0),
            "throughput_rps": 20.0,
        }

    def times(self) -> list[datetime]:
        out, moment = [], self.now - HISTORY
        while moment <= self.now:
            out.append(moment)
            moment += STEP
        return out


def apps() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "platform.correlator.dev/v1alpha1",
            "kind": "WebApplication",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "image": f"registry.example/demo/{name}:1.0.0",
                "team": "shop",
                "slo": {"availability": 99.5},
                "alerting": {"chatChannel": "#shop-alerts"},
            },
        }
        for name in SERVICES
    ]


def write_bundle(scenario: Scenario, directory: Path) -> Path:
    """The scenario as an incident bundle (the format `correlator analyze` reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    labels = {"alertname": "StorefrontErrorBudgetBurn", "destination_workload": "storefront",
              "destination_workload_namespace": NAMESPACE, "severity": "page"}  # fmt: skip
    starts = (scenario.fault_at + timedelta(minutes=1)).isoformat()
    alert = {"status": "firing", "labels": labels, "fingerprint": "d3m0d3m0d3m0d3m0",
             "annotations": {"summary": "storefront is burning its error budget"},
             "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}  # fmt: skip
    payload = {
        "version": "4", "status": "firing", "receiver": "demo", "truncatedAlerts": 0,
        "groupKey": '{}:{alertname="StorefrontErrorBudgetBurn"}',
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
        "commonAnnotations": alert["annotations"], "externalURL": "", "alerts": [alert],
    }  # fmt: skip
    (directory / "alert.json").write_text(json.dumps(payload, indent=1))
    lines = []
    for name in SIGNALS:
        lines.append(f"# TYPE {name} gauge")
        for service in SERVICES:
            tags = f'destination_workload="{service}",destination_workload_namespace="{NAMESPACE}"'
            for moment in scenario.times():
                value = scenario.values(service, moment)[name]
                lines.append(f"{name}{{{tags}}} {value} {moment.timestamp():.0f}")
    (directory / "metrics.om").write_text("\n".join(lines) + "\n# EOF\n")
    with (directory / "logs.jsonl").open("w") as out:
        for number, moment in enumerate(scenario.times()):
            for service in SERVICES:
                line = f"INFO handled request {number} in 12 ms"
                if service == CULPRIT and scenario.failing(service, moment):
                    line = f"ERROR card processor refused charge {number}: upstream 503"
                out.write(json.dumps({"time": int(moment.timestamp() * 1e9),
                                      "labels": {"app": service, "namespace": NAMESPACE},
                                      "line": line}) + "\n")  # fmt: skip
    (directory / "traces.json").write_text(json.dumps(_traces(scenario)))
    (directory / "bundle.json").write_text(json.dumps({
        "now": scenario.now.isoformat(),
        "signals": {n: {"unit": u, "worse_when": w} for n, (u, w) in SIGNALS.items()},
    }))  # fmt: skip
    (directory / "truth.json").write_text(json.dumps({"service": CULPRIT}))
    return directory


def _traces(scenario: Scenario) -> dict[str, Any]:
    spans: dict[str, list[dict[str, Any]]] = {s: [] for s in SERVICES}
    for number, moment in enumerate(scenario.times()):
        trace = f"{number + 1:032x}"
        start = int(moment.timestamp() * 1e9)
        fails = scenario.failing(CULPRIT, moment) and number % 3 == 0
        for depth, service in enumerate(SERVICES):
            span: dict[str, Any] = {
                "traceId": trace,
                "spanId": f"{depth + 1:016x}",
                "name": f"POST /{service}",
                "kind": 2,
                "startTimeUnixNano": str(start + depth * 1_000_000),
                "endTimeUnixNano": str(start + (30 - 5 * depth) * 1_000_000),
            }
            if depth:
                span["parentSpanId"] = f"{depth:016x}"
            if fails:
                span["status"] = {"code": 2}
            spans[service].append(span)
    return {"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": s}}]},
         "scopeSpans": [{"scope": {}, "spans": items}]}
        for s, items in spans.items()
    ]}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call_graph(scenario: Scenario) -> list[str]:
    """Istio request counters between the services: how the live pipeline finds neighbours."""
    lines = ["# TYPE istio_requests counter"]
    for caller, callee in CALLS:
        tags = (
            f'reporter="destination",source_workload="{caller}",'
            f'destination_workload="{callee}",destination_workload_namespace="{NAMESPACE}",'
            'response_code="200"'
        )
        for number, moment in enumerate(scenario.times()):
            lines.append(f"istio_requests_total{{{tags}}} {number * 300} {moment.timestamp():.0f}")
    return lines


def start_prometheus(
    workdir: Path, bundle: Path, scenario: Scenario
) -> tuple[subprocess.Popen[bytes], str] | None:
    """Real Prometheus over the scenario's history (promtool backfill), None if not installed."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        return None
    signals = (bundle / "metrics.om").read_text().removesuffix("# EOF\n").splitlines()
    history = workdir / "history.om"
    history.write_text("\n".join([*signals, *call_graph(scenario), "# EOF"]) + "\n")
    tsdb = workdir / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(history), str(tsdb)],
        check=True,
        capture_output=True,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    port = _free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        stdout=(workdir / "prometheus.log").open("ab"), stderr=subprocess.STDOUT,
        preexec_fn=signal_on_parent_death,  # only prctl runs between fork and exec
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    return None


def _say(ok: bool | None, text: str) -> None:
    print(f"  {'✓' if ok else ('✗' if ok is False else '·')} {text}", flush=True)


def _suspects(suspects: list[Suspect]) -> None:
    if not suspects:
        print("    (no service's telemetry left its baseline)")
    for item in suspects[:3]:
        print(f"    {item.rank}. {item.service}: {item.reason}")


class PortInUse(Exception):
    """The demo's port is taken: say which, and how to choose another."""

    def __init__(self, port: int) -> None:
        super().__init__(
            f"correlator demo: port {port} is in use (another correlator, or another program); "
            f"choose another with --port, e.g. correlator demo --port {port + 1}"
        )


def _check_port(port: int) -> None:
    """Fail before starting anything if the port cannot be bound."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(port) from None


def _fresh_start(root: Path) -> None:
    """Remove what a previous run in the same directory left: its database would answer this
    run's alert with that run's incident and report."""
    root.mkdir(parents=True, exist_ok=True)
    for leftover in ("correlator.db", "correlator.db-wal", "correlator.db-shm"):
        (root / leftover).unlink(missing_ok=True)
    shutil.rmtree(root / "provisioned", ignore_errors=True)


async def run(*, port: int, workdir: Path | None, keep_running: bool) -> int:
    """Run the demo; a temporary working directory is removed if the demo fails or is stopped.

    SIGTERM (`timeout`, systemd, a container runtime) stops it as Ctrl-C does: the service
    and its analysis processes shut down, Prometheus is stopped, the directory removed."""
    _check_port(port)
    root = workdir or Path(tempfile.mkdtemp(prefix="correlator-demo-"))
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    if main is not None:
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        return await _run(root, port=port, keep_running=keep_running)
    except BaseException:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(root: Path, *, port: int, keep_running: bool) -> int:
    from aiohttp import web

    from correlator.analysis.evidence import analyse
    from correlator.pipeline.report import ranked
    from correlator.rca.bundle import load
    from correlator.runtime.service import create_app
    from correlator.settings import load_settings

    await asyncio.to_thread(_fresh_start, root)
    scenario = Scenario(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20))
    print("correlator demo: payments starts failing; checkout and storefront follow", flush=True)
    apps_dir = root / "apps"
    apps_dir.mkdir(exist_ok=True)
    (apps_dir / "demo.yaml").write_text(yaml.safe_dump_all(apps(), sort_keys=False))
    bundle = write_bundle(scenario, root / "bundle")
    _say(True, f"WebApplications {', '.join(SERVICES)} in {apps_dir}; incident bundle in {bundle}")
    prometheus = start_prometheus(root, bundle, scenario)
    groups: dict[str, Any] = {
        "server": {"port": port},
        "database": {"url": f"sqlite:///{root / 'correlator.db'}"},
        "provisioning": {"source_dir": str(apps_dir), "target": "files",
                         "out_dir": str(root / "provisioned"),
                         "public_url": f"http://127.0.0.1:{port}"},
        "correlation": {"deadline_s": 10, "signals": [
            {"name": n, "unit": u, "worse_when": w,
             "query": f"max by ($by) ({n}{{$istio_ns=~$ns,$istio_workload=~$names}})"}
            for n, (u, w) in SIGNALS.items()
        ]},
    }  # fmt: skip
    if prometheus is not None:
        groups["prometheus"] = {"url": prometheus[1]}
        _say(True, f"Prometheus started on {prometheus[1]} with 90 min of the scenario's metrics")
    else:
        _say(False, "skipped Prometheus: not installed (apt-get install prometheus); "
             "the live report will say metrics are missing")  # fmt: skip
    _say(False, "skipped Loki and Jaeger (not installable here): the live report has no logs "
         "or traces; the offline analysis below reads them from the bundle")  # fmt: skip
    settings = load_settings(**groups)
    runner = web.AppRunner(create_app(settings), access_log=None)
    base = f"http://127.0.0.1:{port}"
    try:
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        except OSError:
            raise PortInUse(port) from None  # taken since it was checked
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(200):  # the first provisioning pass fills the app catalogue
                if (
                    'correlator_provisioning_runs_total{outcome="ok"}'
                    in (await client.get("/metrics")).text
                ):
                    break
                await asyncio.sleep(0.05)
            written = sorted(p.relative_to(root) for p in (root / "provisioned").rglob("*.*"))
            _say(True, f"provisioned {len(written)} files in {root / 'provisioned'}:")
            for path in written:
                print(f"      {path}")
            body = (bundle / "alert.json").read_bytes()
            answer = await client.post(
                "/api/v1/alerts", content=body, headers={"Content-Type": "application/json"}
            )
            answer.raise_for_status()
            incident_id = answer.json()["incident_id"]
            _say(True, f"alert sent through the intake: incident {incident_id}")
            report = None
            for _ in range(600):
                served = (await client.get(f"/api/v1/incidents/{incident_id}")).json()["report"]
                if served is not None:
                    report = Report.model_validate(served)
                    break
                await asyncio.sleep(0.05)
        if report is None:
            _say(False, "no report within 30 s")
            return 1
        missing = sorted({m.backend for m in report.missing})
        print(f"\n  Live report ({report.status}; missing: {', '.join(missing) or 'nothing'}):")
        _suspects(report.suspects)
        offline = load(bundle)
        result = analyse(offline.telemetry, offline.windows)
        print("\n  Offline analysis of the same incident with its logs and traces "
              f"(correlator analyze {bundle}):")  # fmt: skip
        _suspects([ranked(s, i) for i, s in enumerate(result.suspects, 1)])
        if keep_running:
            print(f"\n  Incident page: {base}/incidents/{incident_id}")
            print("  Serving until Ctrl-C.", flush=True)
            await asyncio.Event().wait()
        else:
            print(
                "\n  Incident page: served only while the demo runs; run "
                f"`correlator demo --port {port}` without --exit and open the link it prints"
            )
        return 0
    finally:
        await runner.cleanup()
        if prometheus is not None:
            prometheus[0].terminate()
            prometheus[0].wait(timeout=15)
