"""Cut the Nezha extract in this folder from the development dataset (see README.md).

    python tests/contracts/nezha-extract/make_extract.py ../shared/datasets/nezha-tt-dev

Rows are copied byte for byte (lines of the original files, header first); nothing is edited.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAY = "2023-01-30"
HOUR = "11"  # the hour whose two faults are kept
# Each fault's minute and the two after it.
MINUTES = ("11_51", "11_52", "11_53", "11_59", "12_00", "12_01")
NORMAL_MINUTE = "11_39"  # the day's fault-free minute (construct_data)
TRACES_PER_MINUTE = 2  # the first traces (by first span) of each minute, whole
LOG_LINES_PER_MINUTE = 20  # the first log lines of those traces
# Metric rows: from an hour before the first fault's window to after the second's.
METRIC_FROM = datetime(2023, 1, 30, 10, 45, tzinfo=UTC).timestamp()
METRIC_TO = datetime(2023, 1, 30, 12, 5, tzinfo=UTC).timestamp()
# The pods whose metric rows are kept: the two faulty services and the services the kept traces
# cross most, up to this many.
METRIC_PODS = 16


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)


def rows(line: str) -> list[str]:
    return next(csv.reader(io.StringIO(line)))


def write(path: Path, kept: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(kept), encoding="utf-8", errors="surrogateescape")


def cut_minute(source: Path, target: Path, minute: str, pods: dict[str, int]) -> None:
    trace = lines(source / "trace" / f"{minute}_trace.csv")
    order: list[str] = []
    for line in trace[1:]:
        trace_id = rows(line)[0]
        if trace_id not in order:
            order.append(trace_id)
    chosen = set(order[:TRACES_PER_MINUTE])
    spans = [line for line in trace[1:] if rows(line)[0] in chosen]
    for line in spans:
        pod = rows(line)[3]
        pods[pod] = pods.get(pod, 0) + 1
    write(target / "trace" / f"{minute}_trace.csv", [trace[0], *spans])
    log = lines(source / "log" / f"{minute}_log.csv")
    kept = [line for line in log[1:] if rows(line)[5] in chosen][:LOG_LINES_PER_MINUTE]
    write(target / "log" / f"{minute}_log.csv", [log[0], *kept])
    ids = lines(source / "traceid" / f"{minute}_traceid.csv")
    write(
        target / "traceid" / f"{minute}_traceid.csv",
        [line for line in ids if line.strip() in chosen],
    )


def main(dataset: Path) -> None:
    for folder in ("rca_data", "construct_data"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
    day, out = dataset / "rca_data" / DAY, HERE / "rca_data" / DAY
    faults = json.loads((day / f"{DAY}-fault_list.json").read_text())
    out.mkdir(parents=True)
    (out / f"{DAY}-fault_list.json").write_text(json.dumps({HOUR: faults[HOUR]}, indent=4) + "\n")
    pods: dict[str, int] = {}
    for minute in MINUTES:
        cut_minute(day, out, minute, pods)
    cut_minute(dataset / "construct_data" / DAY, HERE / "construct_data" / DAY, NORMAL_MINUTE, {})
    faulty = {fault["inject_pod"] for fault in faults[HOUR]}
    crossed = sorted(pods, key=lambda pod: -pods[pod])
    chosen = list(dict.fromkeys([*sorted(faulty), *crossed]))[:METRIC_PODS]
    for path in sorted((day / "metric").glob("*.csv")):
        if path.name != "front_service.csv" and path.name.removesuffix("_metric.csv") not in chosen:
            continue
        metric = lines(path)
        stamp = rows(metric[0]).index("TimeStamp")
        kept = [m for m in metric[1:] if METRIC_FROM <= float(rows(m)[stamp]) <= METRIC_TO]
        write(out / "metric" / path.name, [metric[0], *kept])
    shutil.copy(dataset / "LICENSE", HERE / "LICENSE")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
