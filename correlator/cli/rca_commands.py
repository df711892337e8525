"""The commands over rca/: `analyze BUNDLE`, `bench rca DATASET`, `bench rca --incidents` and
`export-incidents`. Each reads incident bundles or a public dataset (or the store's bundles),
runs the offline analysis on them and prints a report; none starts the service."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from correlator.cli.exits import EXIT_UNAVAILABLE
from correlator.errors import ConfigError, StoreUnavailable
from correlator.progress import Progress
from correlator.settings import load_settings


def analyze(path: Path, *, as_json: bool) -> int:
    from correlator.analysis.evidence import collect, decide
    from correlator.pipeline.report import ranked, report_windows
    from correlator.rca.bundle import BundleError, load

    progress = Progress.on_terminal(machine_output=as_json)
    try:
        with progress.stage(f"loading the bundle {path.name}"):
            bundle = load(path)
    except BundleError as exc:
        print(f"correlator: {exc}", file=sys.stderr)
        return 1
    with progress.stage("finding what left its baseline in metrics, logs and traces"):
        findings = collect(bundle.telemetry, bundle.windows)
    services = {f.service for found in findings.values() for f in found}
    with progress.stage(f"ranking {len(services)} services"):
        analysis = decide(findings, bundle.telemetry, bundle.windows)
    # The windows and suspects as the stored report has them (models/report.py).
    suspects = [ranked(s, i) for i, s in enumerate(analysis.suspects[:10], 1)]
    report: dict[str, Any] = {
        "bundle": str(path),
        "windows": report_windows(analysis.windows).model_dump(mode="json"),
        "suspects": [s.model_dump(mode="json") for s in suspects],
        "notes": analysis.notes,
    }
    if bundle.truth is not None:
        report["truth"] = bundle.truth
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(
        f"incident window {report['windows']['incident_start']} .. "
        f"{report['windows']['incident_end']} (baseline from {report['windows']['baseline_start']})"
    )
    if not analysis.suspects:
        print("no service's telemetry left its baseline")
    for suspect in suspects:
        print(f"{suspect.rank:>2}. {suspect.service}  score {suspect.score:.3f}")
        print(f"    {suspect.reason}")
    for note in analysis.notes:
        print(f"note: {note}")
    return 0


def bench_rca(dataset: Path, *, as_json: bool) -> int:
    from correlator.rca import benchmark
    from correlator.rca.tables import Problems

    if not (dataset / "rca_data").is_dir():
        print(f"correlator: {dataset}: no rca_data/ directory (the Nezha layout)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    problems = Problems()
    steps = Progress.on_terminal(machine_output=as_json).steps
    try:
        cases = benchmark.collected(dataset, problems, steps=steps)
        result = benchmark.evaluate(cases, problems, steps=steps, root=dataset)
    except OSError as exc:
        print(f"correlator: {exc.filename or dataset}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    result["seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(benchmark.table(result)))
        print(f"whole run: {result['seconds']} s")
    return 0


def _since(text: str | None) -> Any:
    """--since as an aware datetime: RFC 3339, or an age such as 30d or 12h."""
    from datetime import UTC, datetime, timedelta

    if text is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since: {text!r} is neither RFC 3339 nor an age like 30d") from None
    if moment.tzinfo is None:
        raise ConfigError(f"--since: {text!r} has no time zone")
    return moment


def bench_incidents(args: argparse.Namespace) -> int:
    from correlator.rca import incidents

    settings = load_settings(args.config)
    against = load_settings(args.against) if args.against else None
    since = _since(args.since)
    started = time.perf_counter()
    try:
        result = asyncio.run(
            incidents.evaluate(
                settings,
                since=since,
                app=args.app,
                against=against,
                names=("replayed", args.against.stem if args.against else "against"),
            )
        )
    except StoreUnavailable as exc:
        print(f"correlator: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(incidents.table(result)))
    return 0


def export_incidents(args: argparse.Namespace) -> int:
    from correlator.rca import incidents

    settings = load_settings(args.config)
    try:
        written, problems = asyncio.run(
            incidents.export(
                settings,
                args.directory,
                anonymise=args.anonymise,
                since=_since(args.since),
                app=args.app,
            )
        )
    except StoreUnavailable as exc:
        print(f"correlator: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"correlator: {exc.filename or args.directory}: {exc.strerror}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    for problem in problems:
        print(f"correlator: not exported: {problem}", file=sys.stderr)
    print(f"{len(written)} incident(s) written to {args.directory}", file=sys.stderr)
    return 0
