"""The kept inputs of an analysis as the store holds them: its frames column by column (NumPy
arrays in a deflated zip), with the alert and bundle.json beside them (I/O: bytes).

Writing the bundle format itself (OpenMetrics, JSON lines, OTLP) costs more CPU than the
analysis it keeps (measured on bench/keep_inputs.py: 0.8 s against 0.4 s for 50 services x
1 h); this form costs a few tens of milliseconds and reads back to the very same values. The
bundle format is written from it when someone asks (`GET /api/v1/incidents/{id}/bundle`,
`bench rca --incidents`, `export-incidents`).

Strings are stored as codes into a table of distinct values (UTF-8 with offsets), times as
int64 nanoseconds: nothing is pickled, so reading a stored form runs no code.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from correlator.analysis.telemetry import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    REPLICA_COLUMNS,
    SPAN_COLUMNS,
    Telemetry,
)
from correlator.analysis.windows import Windows
from correlator.models.alerts import WebhookPayload
from correlator.rca.bundle import Bundle, BundleError, telemetry_from_meta, windows_from_meta
from correlator.rca.bundle_write import KINDS, bundle_files, bundle_meta, pack

FRAMES = {
    "metrics": METRIC_COLUMNS,
    "replicas": REPLICA_COLUMNS,
    "logs": LOG_COLUMNS,
    "spans": SPAN_COLUMNS,
}
_OF_KIND = {"metrics": ("metrics", "replicas"), "logs": ("logs",), "traces": ("spans",)}
_TIMES = frozenset({"time", "start"})
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
# What bundle_meta writes itself (the rest of bundle.json is `about`, carried over).
WRITTEN = frozenset({"format", "now", "windows", "signals", "edges", "kinds", "version"})


def _array(archive: zipfile.ZipFile, name: str, values: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(values), allow_pickle=False)
    archive.writestr(name, buffer.getvalue())


def _strings(archive: zipfile.ZipFile, name: str, column: pd.Series) -> None:
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=False)
    encoded = [str(value).encode("utf-8", "surrogatepass") for value in uniques]
    _array(archive, f"{name}.codes.npy", codes.astype(np.int32))
    _array(archive, f"{name}.lengths.npy", np.array([len(e) for e in encoded], dtype=np.int64))
    archive.writestr(f"{name}.values", b"".join(encoded))


def encode(
    *,
    alert: Mapping[str, Any],
    telemetry: Telemetry,
    windows: Windows,
    kinds: Sequence[str] = KINDS,
    about: Mapping[str, Any] | None = None,
    level: int = 1,
) -> bytes:
    """The stored form of an analysis's inputs (deflate `level` 1: fast, a little larger)."""
    kept = [kind for kind in KINDS if kind in set(kinds)]
    meta = bundle_meta(telemetry, windows, kept, about)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        archive.writestr("alert.json", json.dumps(alert))
        archive.writestr("bundle.json", json.dumps(meta))
        for kind in kept:
            for frame_name in _OF_KIND[kind]:
                frame: pd.DataFrame = getattr(telemetry, frame_name)
                for column in FRAMES[frame_name]:
                    name = f"{frame_name}/{column}"
                    values = frame[column]
                    if column in _TIMES:
                        _array(archive, f"{name}.npy", values.astype("int64").to_numpy())
                    elif values.dtype.kind in "fb":
                        _array(archive, f"{name}.npy", values.to_numpy())
                    else:
                        _strings(archive, name, values)
    return buffer.getvalue()


def packed_inputs(
    alert: Mapping[str, Any],
    telemetry: Telemetry,
    windows: Windows,
    kinds: Sequence[str],
    about: Mapping[str, Any],
) -> bytes:
    """`encode` with positional arguments, as the analysis pool runs it (pipeline/keep.py):
    a module the analysis processes import without the service's HTTP clients and store."""
    return encode(alert=alert, telemetry=telemetry, windows=windows, kinds=kinds, about=about)


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise BundleError(f"{name}: larger than {MAX_MEMBER_BYTES // 2**20} MiB")
    return archive.read(name)


def _load_array(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    values: np.ndarray = np.lib.format.read_array(
        io.BytesIO(_read(archive, name)), allow_pickle=False
    )
    return values


def _load_strings(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    codes = _load_array(archive, f"{name}.codes.npy")
    lengths = _load_array(archive, f"{name}.lengths.npy")
    blob = _read(archive, f"{name}.values")
    ends = np.cumsum(lengths)
    if len(ends) and int(ends[-1]) != len(blob):
        raise BundleError(f"{name}: the values do not add up")
    starts = ends - lengths
    table = np.array(
        [blob[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts, ends, strict=True)]
        + [""],
        dtype=object,
    )
    if len(codes) and (codes.min() < 0 or codes.max() >= len(table) - 1):
        raise BundleError(f"{name}: a code past its table")
    values: np.ndarray = table[codes]
    return values


def decode(data: bytes) -> tuple[dict[str, Any], dict[str, Any], Bundle]:
    """The alert payload and bundle.json as stored, and the bundle the stored form holds."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            alert = json.loads(_read(archive, "alert.json"))
            meta = json.loads(_read(archive, "bundle.json"))
            names = set(archive.namelist())
            frames: dict[str, pd.DataFrame] = {}
            for frame_name, columns in FRAMES.items():
                if f"{frame_name}/{columns[0]}.npy" not in names and (
                    f"{frame_name}/{columns[0]}.codes.npy" not in names
                ):
                    continue
                data_columns: dict[str, Any] = {}
                for column in columns:
                    name = f"{frame_name}/{column}"
                    if f"{name}.npy" in names:
                        values = _load_array(archive, f"{name}.npy")
                        data_columns[column] = (
                            pd.to_datetime(values, utc=True) if column in _TIMES else values
                        )
                    else:
                        data_columns[column] = _load_strings(archive, name)
                frames[frame_name] = pd.DataFrame(data_columns)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise BundleError(f"not kept inputs: {exc}") from None
    telemetry = telemetry_from_meta(meta)
    for frame_name, frame in frames.items():
        setattr(telemetry, frame_name, frame)
    telemetry.__post_init__()  # conform the frames read to their columns and types
    try:
        payload = WebhookPayload.model_validate(alert)
    except ValueError as exc:
        raise BundleError(f"alert.json: {exc}") from None
    return alert, meta, Bundle(None, payload, telemetry, windows_from_meta(meta), None)


def bundle_archive(data: bytes, *, truth: Mapping[str, Any] | None = None) -> bytes:
    """The stored form as the bundle format's tar.gz (what `correlator analyze` reads)."""
    alert, meta, bundle = decode(data)
    about = {k: v for k, v in meta.items() if k not in WRITTEN}
    files = bundle_files(
        alert=alert,
        telemetry=bundle.telemetry,
        windows=bundle.windows,
        kinds=meta.get("kinds") or KINDS,
        about=about,
        truth=truth,
    )
    return pack(files)
