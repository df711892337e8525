"""Range results to DataFrames: correlator's vectorised conversion vs prometheus-api-client.

The same Prometheus matrix answer (SERIES series x POINTS points, 15 s steps: 50 services x 1 h
is the correlation benchmark's size) is converted REPEAT times by each; the faster one is what
correlator/backends/prometheus.py uses.

    .venv/bin/python bench/promql_frames.py [--series 50] [--points 240] [--repeat 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_api_client import MetricRangeDataFrame

from correlator.backends.prometheus import range_frame


def matrix(series: int, points: int) -> list[dict[str, object]]:
    start = 1_795_600_000
    return [
        {
            "metric": {"__name__": "rate", "destination_workload": f"svc-{s}", "namespace": "shop"},
            "values": [[start + 15 * p, f"{(s * 7 + p) % 97 / 10:.3f}"] for p in range(points)],
        }
        for s in range(series)
    ]


def timed(convert: object, result: list[dict[str, object]], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        convert(result)  # type: ignore[operator]
    return (time.perf_counter() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--points", type=int, default=240)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    result = matrix(args.series, args.points)
    ours = range_frame(result)
    theirs = MetricRangeDataFrame(result)
    assert ours.shape == (args.points, args.series), ours.shape
    assert len(theirs) == args.series * args.points  # long format: one row per sample
    ours_ms = timed(range_frame, result, args.repeat)
    theirs_ms = timed(MetricRangeDataFrame, result, args.repeat)
    print(f"{args.series} series x {args.points} points, mean of {args.repeat}")
    print(f"{'conversion':40} {'ms':>8} {'vs ours':>8}")
    print(f"{'correlator range_frame (wide, vectorised)':40} {ours_ms:8.2f} {1.0:8.2f}")
    ratio = theirs_ms / ours_ms
    print(f"{'prometheus-api-client MetricRangeDataFrame':40} {theirs_ms:8.2f} {ratio:8.2f}")


if __name__ == "__main__":
    main()
