"""The command line: `correlator serve | config | validate | crd | version`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from correlator import __version__
from correlator.errors import ConfigError, StoreUnavailable
from correlator.settings import Settings, effective_config, is_loopback, load_settings, mask_url

log = logging.getLogger("correlator")

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a service the program needs is not there


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

    manifests = load_manifests(directory)
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

    from correlator.telemetry import configure_logging, configure_tracing, shutdown_tracing

    configure_logging(settings.log)
    provider = configure_tracing()
    try:
        asyncio.run(_run_server(settings))
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
    return 0


async def _run_server(settings: Settings) -> None:
    from aiohttp import web

    from correlator.web.app import create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner,
            settings.server.host,
            settings.server.port,
            shutdown_timeout=settings.server.shutdown_timeout_s,
        )
        await site.start()
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
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
