"""The command line: `correlator serve | config | validate | provision | analyze | bench |
export-incidents | demo | crd | version`. The parser, the dispatch and the commands about the
service itself are here; the commands over rca/ (analyze, bench, export-incidents) are in
cli/rca_commands.py, the exit statuses in cli/exits.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from correlator import __version__
from correlator.cli.exits import EXIT_SOFTWARE, EXIT_UNAVAILABLE, EXIT_USAGE
from correlator.cli.rca_commands import analyze, bench_incidents, bench_rca, export_incidents
from correlator.errors import ConfigError, StoreUnavailable
from correlator.progress import Progress
from correlator.settings import Settings, effective_config, is_loopback, load_settings, mask_url

if TYPE_CHECKING:
    from correlator.runtime.queues import WorkHandler

log = logging.getLogger("correlator")
SWITCH_INTERVAL_S = 0.001  # see _serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="correlator",
        description="Correlates Alertmanager alerts with metrics, logs and traces.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the webhook receiver and API")
    serve.add_argument("--config", type=Path, help="YAML configuration file")
    serve.add_argument("--host", help="address to bind (server.host)")
    serve.add_argument("--port", type=int, help="port to bind (server.port)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback bind with no credential configured",
    )

    config = commands.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument("--config", type=Path, help="YAML configuration file")
    config.add_argument("--format", choices=("yaml", "json"), default="yaml")
    config.add_argument(
        "--reference", action="store_true", help="print the configuration reference (Markdown)"
    )

    validate = commands.add_parser(
        "validate", help="check the WebApplication manifests below a directory"
    )
    validate.add_argument("directory", type=Path)

    provision = commands.add_parser(
        "provision", help="generate and apply dashboards and alert rules for WebApplications"
    )
    provision.add_argument("--config", type=Path, help="YAML configuration file")
    provision.add_argument(
        "--source",
        required=True,
        help="a directory of WebApplication manifests, or k8s for the Kubernetes API",
    )
    provision.add_argument(
        "--target",
        choices=("grafana", "files", "kubernetes"),
        required=True,
        help="grafana: dashboards and Grafana-managed rules; files: provisioning files; "
        "kubernetes: PrometheusRule objects",
    )
    provision.add_argument("--out", type=Path, help="output directory (--target files)")
    provision.add_argument(
        "--dry-run", action="store_true", help="print the plan without applying it"
    )

    analyze = commands.add_parser(
        "analyze", help="rank the likely causes of an incident bundle, offline"
    )
    analyze.add_argument(
        "bundle",
        type=Path,
        help="an incident bundle directory, or its .tar.gz (GET /api/v1/incidents/ID/bundle)",
    )
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")

    bench = commands.add_parser("bench", help="benchmarks")
    bench_kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    rca = bench_kinds.add_parser(
        "rca", help="root-cause accuracy (AC@k, Avg@5) on a dataset in the Nezha layout"
    )
    rca.add_argument(
        "dataset",
        type=Path,
        nargs="?",
        help="directory holding rca_data/ (and construct_data/); not with --incidents",
    )
    rca.add_argument("--json", action="store_true", help="print the results as JSON")
    rca.add_argument(
        "--incidents",
        action="store_true",
        help="replay the stored incidents with a confirmed cause (database of --config)",
    )
    rca.add_argument("--config", type=Path, help="YAML configuration file (--incidents)")
    rca.add_argument(
        "--against", type=Path, help="a second configuration file to compare (--incidents)"
    )
    rca.add_argument("--since", help="causes confirmed since (RFC 3339 or e.g. 30d, 12h)")
    rca.add_argument("--app", help="one app (namespace/name, as the incident page names it)")

    export = commands.add_parser(
        "export-incidents", help="write the stored incidents with a confirmed cause as bundles"
    )
    export.add_argument("directory", type=Path, help="where to write incident-ID/ directories")
    export.add_argument("--config", type=Path, help="YAML configuration file")
    export.add_argument(
        "--anonymise",
        action="store_true",
        help="replace label values (services, alert labels) by salted digests",
    )
    export.add_argument("--since", help="causes confirmed since (RFC 3339 or e.g. 30d, 12h)")
    export.add_argument("--app", help="one app (namespace/name)")

    demo = commands.add_parser(
        "demo", help="run a packaged incident end to end on the embedded defaults"
    )
    demo.add_argument("--port", type=int, default=8080, help="port of the demo service")
    demo.add_argument("--dir", type=Path, help="working directory (default: a new temporary one)")
    demo.add_argument(
        "--exit", action="store_true", help="exit after printing (default: serve until Ctrl-C)"
    )

    commands.add_parser("crd", help="print the WebApplication CustomResourceDefinition (YAML)")
    commands.add_parser("version", help="print the version")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    server = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("insecure", args.insecure))
        if value is not None
    }
    return {"server": server} if server else {}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"correlator {__version__}")
            return 0
        if args.command == "config":
            return _config(args)
        if args.command == "validate":
            return _validate(args.directory)
        if args.command == "provision":
            from correlator.provisioning.command import provision

            return provision(
                load_settings(args.config),
                source=args.source,
                target=args.target,
                out=args.out,
                dry_run=args.dry_run,
            )
        if args.command == "analyze":
            return analyze(args.bundle, as_json=args.json)
        if args.command == "bench" and args.incidents:
            return bench_incidents(args)
        if args.command == "bench":
            if args.dataset is None:
                print("correlator: bench rca needs a dataset, or --incidents", file=sys.stderr)
                return EXIT_USAGE
            return bench_rca(args.dataset, as_json=args.json)
        if args.command == "export-incidents":
            return export_incidents(args)
        if args.command == "demo":
            from correlator.demo import PortInUse, run

            try:
                return asyncio.run(
                    run(port=args.port, workdir=args.dir, keep_running=not args.exit)
                )
            except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM
                return 0
            except PortInUse as exc:
                print(exc, file=sys.stderr)
                return EXIT_UNAVAILABLE
        if args.command == "crd":
            from correlator.models.crd import webapplication_crd

            print(yaml.safe_dump(webapplication_crd(), sort_keys=False), end="")
            return 0
        return _serve(args)
    except ConfigError as exc:
        print(f"correlator: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _config(args: argparse.Namespace) -> int:
    if args.reference:
        from correlator.settings import reference_markdown

        print(reference_markdown(), end="")
        return 0
    data = effective_config(load_settings(args.config))
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _validate(directory: Path) -> int:
    """Print every problem as FILE: FIELD: MESSAGE; exit 1 if there is any."""
    from correlator.discovery.files import load_manifests

    manifests = load_manifests(directory, steps=Progress.on_terminal().steps)
    for error in manifests.errors:
        print(error, file=sys.stderr)
    for loaded in manifests.apps:
        print(f"ok: {loaded.app.key} ({loaded.path})")
    print(
        f"{len(manifests.apps)} valid WebApplication(s), {len(manifests.errors)} problem(s)",
        file=sys.stderr,
    )
    return 1 if manifests.errors else 0


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **_overrides(args))
    server = settings.server
    if not settings.auth.configured and not is_loopback(server.host) and not server.insecure:
        print(
            f"correlator: refusing to listen on {server.host} with no credential configured: "
            "anyone who reaches it could write alerts and read incidents. Set "
            "CORRELATOR_AUTH_BEARER_TOKEN (or CORRELATOR_AUTH_BASIC_USERNAME and _PASSWORD), "
            "bind 127.0.0.1, or pass --insecure.",
            file=sys.stderr,
        )
        return EXIT_USAGE

    from correlator.observability import configure_logging, configure_tracing, shutdown_tracing
    from correlator.redaction import redactor_for

    configure_logging(settings.log, redact=redactor_for(settings))
    provider = configure_tracing()
    # The event loop hands the GIL to the store's threads (SQLite's writer and readers) and
    # waits this long to get it back while they run Python: 5 ms by default, several times
    # over in one acknowledgement. 1 ms keeps the loop's turn short under a backlog.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        died = asyncio.run(_run_server(settings))
    except StoreUnavailable as exc:
        log.error("cannot start: %s", exc)
        print(f"correlator: cannot start: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(
            f"correlator: cannot listen on {server.host}:{server.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    finally:
        shutdown_tracing(provider)
    if died:
        print(f"correlator: stopped: a background loop died: {'; '.join(died)}", file=sys.stderr)
        return EXIT_SOFTWARE
    return 0


async def _run_server(settings: Settings, *, handler: WorkHandler | None = None) -> list[str]:
    """Serve until SIGINT/SIGTERM or until a background loop dies; returns the loops that
    died (empty on an ordinary stop)."""
    from aiohttp import web

    from correlator.runtime.service import create_app
    from correlator.web.state import LOOPS

    app = create_app(settings, handler=handler)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.server.shutdown_timeout_s,
    )
    try:
        # Inside: a resource that fails to start leaves those started before it cleaned up.
        await runner.setup()
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        # What start-up made (modules, settings, pools) lives as long as the process: kept out
        # of the collector, a full collection no longer walks it (in a storm those walks were
        # long pauses of the event loop, taken while parsing answers made many objects).
        gc.freeze()
        sockets = getattr(site._server, "sockets", None) or []
        addresses = [sock.getsockname()[:2] for sock in sockets]
        log.info(
            "listening",
            extra={
                "addresses": [f"http://{host}:{port}" for host, port in addresses],
                "database": mask_url(settings.database.url),
                "auth": settings.auth.configured,
            },
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        fatal = app[LOOPS].fatal
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(fatal.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        # Unready from now on: requests still in flight are finished, but no new ones sent.
        app[LOOPS].stopping = True
        if settings.server.drain_s and not fatal.is_set():
            # Still serving, but /readyz says 503: load balancers stop sending meanwhile. A
            # second signal stops at once.
            log.info("draining", extra={"seconds": settings.server.drain_s})
            stop.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.server.drain_s)
        log.info("shutting down")
        # One budget from here on: in-flight requests (the runner's shutdown_timeout), the
        # intake's flush, the workers and the store's close all share it.
        app[LOOPS].shutdown_deadline = loop.time() + settings.server.shutdown_timeout_s
    finally:
        await runner.cleanup()
    return list(app[LOOPS].died)
