"""Incident bundles written by correlator (rca/bundle_write.py) read back to the very frames,
windows, signals and edges they were written from, in a directory or as the tar.gz the API
serves, and so does the store's form of them (rca/frames.py); only the kinds kept are written;
a tar.gz that is not a bundle is refused."""

from __future__ import annotations

import io
import json
import math
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from correlator.analysis.telemetry import SignalMeta, Telemetry
from correlator.analysis.windows import incident_windows
from correlator.rca.bundle import BundleError, load
from correlator.rca.bundle_write import bundle_files, pack, write
from correlator.rca.frames import bundle_archive, decode, encode

NOW = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)
ALERT = {
    "version": "4",
    "receiver": "correlator",
    "status": "firing",
    "groupKey": "g",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "SloBurn", "app": "web"},
            "annotations": {},
            "startsAt": (NOW - timedelta(minutes=3)).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "f",
        }
    ],
}


def telemetry() -> Telemetry:
    """Every frame, with what a live fetch may hold: time-major rows, an infinity, odd labels,
    µs span starts, span kinds, replicas, edges, signal floors and queries."""
    times = [NOW - timedelta(seconds=15 * i) for i in range(4)]
    metrics = pd.DataFrame(
        [
            (t, service, "error_ratio", value)
            for t in times
            for service, value in (("web", 0.1 / 3), ('pay"ments\\', math.inf), ("api", 1e-300))
        ],
        columns=["time", "service", "signal", "value"],
    )
    replicas = pd.DataFrame(
        [(t, "api", pod, "cpu_cores", 0.5 + n) for t in times for n, pod in enumerate("ab")],
        columns=["time", "service", "instance", "signal", "value"],
    )
    logs = pd.DataFrame(
        {
            "time": [NOW - timedelta(microseconds=7), NOW],
            "service": ["web", "api"],
            "line": ['ERROR "quoted" é 💥\ttab', "ok"],
            "trace_id": ["4bf92f3577b34da6a3ce929d0e0e4736", ""],
        }
    )
    spans = pd.DataFrame(
        {
            "trace_id": ["t1", "t1", "t2"],
            "span_id": ["s1", "s2", "s3"],
            "parent_id": ["", "s1", ""],
            "service": ["web", "api", "web"],
            "operation": ["GET /", "charge", "GET /x"],
            "start": [NOW - timedelta(microseconds=n * 1001) for n in range(3)],
            "duration_ms": [12.345, 0.001, 1500.0],
            "error": [False, True, False],
            "kind": ["server", "client", ""],
        }
    )
    signals = {
        "error_ratio": SignalMeta("ratio", "higher", "sum(rate(x[5m]))", 0.001),
        "cpu_cores": SignalMeta("cores", "either", "q", 0.0),
    }
    return Telemetry(
        metrics=metrics,
        logs=logs,
        spans=spans,
        replicas=replicas,
        signals=signals,
        edges={("web", "api"), ("api", 'pay"ments\\')},
    )


def same(a: pd.DataFrame, b: pd.DataFrame, by: list[str]) -> None:
    pd.testing.assert_frame_equal(
        a.sort_values(by).reset_index(drop=True), b.sort_values(by).reset_index(drop=True)
    )


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "tar.gz"])
def test_a_written_bundle_reads_back_to_the_same_inputs(tmp_path: Path, packed: bool) -> None:
    written = telemetry()
    windows = incident_windows(NOW - timedelta(minutes=3), NOW)
    files = bundle_files(alert=ALERT, telemetry=written, windows=windows, about={"app": "x"})
    if packed:
        path = tmp_path / "b.tar.gz"
        path.write_bytes(pack(files))
        assert pack(files) == path.read_bytes()  # the same files, the same bytes
    else:
        path = write(files, tmp_path / "b")
    read = load(path).telemetry
    same(read.metrics, written.metrics, ["signal", "service", "time"])
    same(read.replicas, written.replicas, ["signal", "service", "instance", "time"])
    pd.testing.assert_frame_equal(read.logs, written.logs)
    pd.testing.assert_frame_equal(read.spans, written.spans)
    assert read.edges == written.edges
    for name, meta in written.signals.items():
        assert read.signals[name] == meta
    assert load(path).windows == windows
    assert json.loads(files["bundle.json"])["app"] == "x"


def test_only_the_kinds_kept_are_written(tmp_path: Path) -> None:
    windows = incident_windows(NOW - timedelta(minutes=3), NOW)
    files = bundle_files(
        alert=ALERT, telemetry=telemetry(), windows=windows, kinds=["metrics", "traces"]
    )
    assert "logs.jsonl" not in files and {"metrics.om", "replicas.om", "traces.json"} <= set(files)
    read = load(write(files, tmp_path / "b")).telemetry
    assert read.logs.empty and not read.spans.empty


def _archive(name: str, content: bytes = b"{}", kind: bytes = tarfile.REGTYPE) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(content) if kind == tarfile.REGTYPE else 0
        info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        archive.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "words"),
    [
        (_archive("../alert.json"), "not a file of a bundle"),
        (_archive("/etc/alert.json"), "not a file of a bundle"),
        (_archive("alert.json", kind=tarfile.SYMTYPE), "not a file of a bundle"),
        (_archive("notes.txt"), "not a file of a bundle"),
        (b"\x1f\x8b not gzip", "not a tar.gz"),
    ],
)
def test_a_tar_gz_that_is_not_a_bundle_is_refused(
    tmp_path: Path, archive: bytes, words: str
) -> None:
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(archive)
    with pytest.raises(BundleError, match=words):
        load(path)
    assert not (tmp_path.parent / "alert.json").exists()


def test_the_stored_form_reads_back_to_the_same_inputs_and_serves_the_same_bundle(
    tmp_path: Path,
) -> None:
    written = telemetry()
    windows = incident_windows(NOW - timedelta(minutes=3), NOW)
    stored = encode(alert=ALERT, telemetry=written, windows=windows, about={"app": "x"})
    alert, meta, bundle = decode(stored)
    assert alert == ALERT and meta["app"] == "x" and bundle.windows == windows
    read = bundle.telemetry
    for name in ("metrics", "replicas", "logs", "spans"):
        pd.testing.assert_frame_equal(
            getattr(read, name).reset_index(drop=True),
            getattr(written, name).reset_index(drop=True),
            check_dtype=False,
        )
    assert read.edges == written.edges
    assert all(read.signals[name] == meta for name, meta in written.signals.items())
    # What the API serves is the bundle format, written from the stored form.
    served = tmp_path / "served.tar.gz"
    served.write_bytes(bundle_archive(stored))
    direct = tmp_path / "direct.tar.gz"
    direct.write_bytes(
        pack(bundle_files(alert=ALERT, telemetry=written, windows=windows, about={"app": "x"}))
    )
    assert served.read_bytes() == direct.read_bytes()


@pytest.mark.parametrize("stored", [b"", b"PK\x03\x04 not a zip", b"\x00" * 100])
def test_a_stored_form_that_cannot_be_read_is_a_bundle_error(stored: bytes) -> None:
    with pytest.raises(BundleError, match="not kept inputs"):
        decode(stored)
