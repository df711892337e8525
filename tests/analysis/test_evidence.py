"""Evidence that follows how faults show themselves, on synthetic spans and logs (pure):
edge time explained away to the delayed or starved endpoint, log paths that vanish or appear
per request, change points, and the victim upstream of its cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from correlator.analysis.edges import client_spans, edge_findings
from correlator.analysis.findings import Finding, change_point, confirmed, proportion_z
from correlator.analysis.paths import event_of, path_findings
from correlator.analysis.rank import rank
from correlator.analysis.replicas import replica_findings
from correlator.analysis.telemetry import SignalMeta, log_frame, span_frame, wide_to_replicas
from correlator.analysis.windows import incident_windows

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ONSET = NOW - timedelta(minutes=5)
WINDOWS = incident_windows(ONSET, NOW)
FAULT_AT = ONSET - timedelta(minutes=2)  # inside the incident window, which opens 15 min before


def moments() -> list[datetime]:
    """A request every 20 s over the baseline and every 10 s over the incident window."""
    out, t = [], WINDOWS.baseline_start
    while t < WINDOWS.baseline_end:
        out.append(t)
        t += timedelta(seconds=20)
    t = WINDOWS.incident_start
    while t <= NOW:
        out.append(t)
        t += timedelta(seconds=10)
    return out


def calls(graph: list[tuple[str, str]], delay: dict[str, float], starved: str = "") -> Any:
    """Traces over `graph` (caller, callee), each remote call through a client span of the
    caller. `delay[s]` ms is added to every answer `s` sends after FAULT_AT; a `starved`
    caller takes every answer up 80 ms late after FAULT_AT."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(3)
    for n, start in enumerate(moments()):
        trace = f"{n:032x}"
        faulty = start >= FAULT_AT

        def span(service: str, parent: str, at: datetime, ms: float, op: str, trace: str) -> str:
            sid = f"{len(rows) + 1:016x}"
            rows.append(
                {"trace_id": trace, "span_id": sid, "parent_id": parent, "service": service,
                 "operation": op, "start": at, "duration_ms": ms, "error": False}
            )  # fmt: skip
            return sid

        root = graph[0][0]
        server = span(root, "", start, 0.0, "GET /", trace)
        servers = {root: server}
        cursor = start + timedelta(milliseconds=1)
        total = 1.0
        for caller, callee in graph:
            if caller != root:
                continue
            for hop in [(caller, callee), *[(c, d) for c, d in graph if c == callee]]:
                wire = 1.0 + rng.random()
                back = (delay.get(hop[1], 0.0) if faulty else 0.0) + wire
                back += 80.0 if faulty and hop[0] == starved else 0.0
                work = 5.0 + rng.random()
                at = cursor + timedelta(milliseconds=wire)
                client = span(
                    hop[0], servers[hop[0]], cursor, wire + work + back, "HTTP GET", trace
                )
                servers[hop[1]] = span(hop[1], client, at, work, f"GET /{hop[1]}", trace)
                cursor += timedelta(milliseconds=wire + work + back)
                total += wire + work + back
        rows[0 if not rows else [r["span_id"] for r in rows].index(server)]["duration_ms"] = total
    return span_frame(rows)


def cut(spans: Any) -> tuple[Any, Any]:
    t = spans["start"]
    spans = spans.assign(client=client_spans(spans))
    return (
        spans[(t >= WINDOWS.baseline_start) & (t < WINDOWS.baseline_end)],
        spans[(t >= WINDOWS.incident_start) & (t <= WINDOWS.incident_end)],
    )


GRAPH = [("web", "cart"), ("web", "search"), ("cart", "prices"), ("search", "prices")]


@pytest.mark.parametrize(
    ("name", "delay", "starved", "blamed"),
    [
        ("delayed answers from a shared callee", {"prices": 300.0}, "", "prices"),
        ("delayed answers from a leaf with one caller", {"cart": 300.0}, "", "cart"),
        ("a caller that takes every answer up late", {}, "web", "web"),
    ],
)
def test_slowed_edges_are_explained_by_their_common_endpoint(
    name: str, delay: dict[str, float], starved: str, blamed: str
) -> None:
    found = edge_findings(*cut(calls(GRAPH, delay, starved)), WINDOWS)
    assert found, name
    assert found[0].service == blamed, [(f.service, f.detail) for f in found]
    assert found[0].kind == "network" and found[0].change_time is not None
    assert (
        FAULT_AT - timedelta(seconds=30) <= found[0].change_time <= FAULT_AT + timedelta(seconds=30)
    )


def test_healthy_edges_are_no_evidence() -> None:
    assert edge_findings(*cut(calls(GRAPH, {})), WINDOWS) == []


def test_a_server_span_is_not_a_client_span() -> None:
    spans = calls(GRAPH, {})
    flags = client_spans(spans)
    assert set(spans.loc[flags, "operation"]) == {"HTTP GET"}
    assert not flags[spans["operation"] == "GET /"].any()


def test_the_span_kind_decides_where_the_source_gives_it() -> None:
    """OTLP's kind is believed: a client span that retried (two children) is still a client
    span, and a server span shaped like one is not; without a kind, the structure decides."""
    spans = calls(GRAPH, {})
    inferred = client_spans(spans)
    told = spans.assign(kind=np.where(inferred, "client", "server"))
    retried = told.index[inferred][0]
    child = told.index[(told["parent_id"] == told.at[retried, "span_id"])][0]
    twice = told.loc[[child]].assign(span_id="f" * 16)  # a second attempt of the same call
    told = pd.concat([told, twice], ignore_index=True)
    assert client_spans(told).iloc[retried]
    assert not client_spans(told.drop(columns="kind")).iloc[retried]  # the structure alone
    server = told.assign(kind=np.where(told.index == retried, "server", told["kind"]))
    assert not client_spans(server).iloc[retried]


def test_spans_with_error_status_are_evidence_at_their_origin() -> None:
    """Spans that Jaeger reports with OTLP status ERROR become trace evidence, on the deepest
    failing span's service (its callers fail because it did)."""
    from correlator.analysis.traces import trace_findings
    from correlator.backends.jaeger_spans import parse_otlp

    def otlp(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
        attributes = [{"key": "service.name", "value": {"stringValue": service}}]
        return {"resource": {"attributes": attributes}, "scopeSpans": [{"spans": spans}]}

    web, prices = [], []
    for n, start in enumerate(moments()):
        failing = start >= FAULT_AT and n % 2 == 0
        ns = int(start.timestamp() * 1e9)
        status = {"code": 2} if failing else {}
        trace = f"{n:032x}"
        web.append({"traceId": trace, "spanId": f"{2 * n:016x}", "name": "GET /", "kind": 2,
                    "startTimeUnixNano": str(ns), "endTimeUnixNano": str(ns + 20_000_000),
                    "status": status})  # fmt: skip
        prices.append({"traceId": trace, "spanId": f"{2 * n + 1:016x}", "kind": 2,
                       "parentSpanId": f"{2 * n:016x}", "name": "GET /price",
                       "startTimeUnixNano": str(ns + 1_000_000),
                       "endTimeUnixNano": str(ns + 9_000_000), "status": status})  # fmt: skip
    parsed = parse_otlp({"resourceSpans": [otlp("web", web), otlp("prices", prices)]})
    frame = span_frame(
        {"trace_id": s.trace_id, "span_id": s.span_id, "parent_id": s.parent_span_id or "",
         "service": s.service, "operation": s.operation, "start": s.start,
         "duration_ms": s.duration_ms, "error": s.error, "kind": s.kind}
        for s in parsed
    )  # fmt: skip
    assert set(frame["kind"]) == {"server"} and frame["error"].any()
    errors = [f for f in trace_findings(frame, WINDOWS) if f.signal == "error spans"]
    assert [f.service for f in errors] == ["prices"]


def log_paths(
    *, vanish: str = "", new: str = "", with_spans: bool = True, quiet_after: bool = False
) -> tuple[Any, Any]:
    """`orders` logs two statements per request; after FAULT_AT `vanish` is no longer
    written and `new` is. `quiet_after` halves the traffic in the incident (a count per minute
    would then see everything 'vanish')."""
    logs, spans = [], []
    for n, start in enumerate(moments()):
        if quiet_after and start >= WINDOWS.incident_start and n % 2:
            continue
        trace = f"{n:032x}"
        spans.append(
            {"trace_id": trace, "span_id": f"{n:016x}", "parent_id": "", "service": "orders",
             "operation": "POST /orders", "start": start, "duration_ms": 5.0, "error": False}
        )  # fmt: skip
        statements = [
            "INFO  o.s.OrderServiceImpl#41 created order",
            "INFO  o.s.OrderServiceImpl#57 priced order",
        ]
        if start >= FAULT_AT:
            statements = [s for s in statements if vanish not in s or not vanish]
            if new:
                statements.append(new)
        for i, text in enumerate(statements):
            logs.append(
                (start + timedelta(milliseconds=i + 1), "orders", f"12:00:00.000 {text} {n}", trace)
            )
    return log_frame(logs), span_frame(spans if with_spans else [])  # fmt: skip


@pytest.mark.parametrize("with_spans", [True, False])
def test_a_statement_that_vanished_from_the_path_is_found(with_spans: bool) -> None:
    logs, spans = log_paths(vanish="#57", with_spans=with_spans)
    found = path_findings(logs, spans, WINDOWS)
    assert [(f.service, f.signal.split()[-1]) for f in found] == [
        ("orders", "o.s.OrderServiceImpl#57")
    ]
    assert "vanished" in found[0].detail
    assert found[0].change_time is not None and abs(found[0].change_time - FAULT_AT) < timedelta(
        seconds=30
    )


def test_a_new_error_statement_is_found_and_quieter_traffic_is_not_news() -> None:
    logs, spans = log_paths(new="ERROR o.s.OrderServiceImpl#88 price lookup failed")
    found = path_findings(logs, spans, WINDOWS)
    assert [f.signal.split()[-1] for f in found] == ["o.s.OrderServiceImpl#88"]
    assert found[0].detail.startswith("new log event")
    assert path_findings(*log_paths(quiet_after=True), WINDOWS) == []


def test_an_error_that_stopped_is_not_a_cause() -> None:
    logs, spans = log_paths(vanish="#41")
    logs["line"] = logs["line"].str.replace("INFO  o.s.OrderServiceImpl#41", "ERROR o.s.X#41")
    assert path_findings(logs, spans, WINDOWS) == []


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("19:19:44.267 INFO  t.s.TravelServiceImpl#532 TraceID: ab", "t.s.TravelServiceImpl#532"),
        ("ERROR o.a.c.c.C.[.[.[.[dispatcherServlet]#175 x", "o.a.c.c.C.[.[.[.[dispatcherServlet]#175"),  # noqa: E501
        ('{"level":"error","msg":"user 42 not found at 10.0.0.1"}', "user <NUM> not found at <IP>"),
        # logback/log4j %file:%line, and a caller frame Class.method(File.java:line)
        ("2026-12-06 10:00:01 ERROR [main] OrderService.java:42 - price failed", "OrderService.java:42"),  # noqa: E501
        ("WARN o.s.OrderService.price(OrderService.java:42) - slow", "OrderService.java:42"),
        ("ERROR Price.kt:7 bad", "Price.kt:7"),
        # Python logging, by filename or by pathname
        ("2026-12-06 10:00:01,123 ERROR app.py:42 lookup failed", "app.py:42"),
        ("ERROR /srv/shop/views.py:108 lookup failed for 17", "/srv/shop/views.py:108"),
        # Go: log.Lshortfile, log.Llongfile, zap/slog callers
        ("2026/12/06 10:00:01 main.go:42: connection refused", "main.go:42"),
        ('{"level":"error","caller":"server/handler.go:88","msg":"timeout 30s"}', "server/handler.go:88"),  # noqa: E501
        ("E1206 10:00:01.000 1 pkg/server/handler.go:88] boom", "pkg/server/handler.go:88"),
        # A version or a ratio is no location
        ("INFO started v1.2:42 of 3", "INFO started v1.<NUM>:<NUM> of <NUM>"),
    ],
)  # fmt: skip
def test_an_event_is_the_source_location_else_the_masked_message(line: str, event: str) -> None:
    assert event_of(line)[0] == event


def test_change_point_finds_a_step_and_ignores_noise() -> None:
    rng = np.random.default_rng(1)
    step = np.concatenate([rng.normal(10, 1, 40), rng.normal(30, 1, 40)])
    at, z = change_point(step)
    assert at == 40 and z > 5
    _, calm = change_point(rng.normal(10, 1, 80))
    assert calm < 3
    times = [NOW + timedelta(seconds=i) for i in range(80)]
    assert confirmed(step, times) == (1.0, times[40])
    assert confirmed(step, times, up=False)[1] is None  # it rose: not a fall
    assert proportion_z(35, 36, 0, 65) < -8


def finding(service: str, score: float, minute: int) -> Finding:
    return Finding(service, "log", f"path x {service}", score, 0.0, 1.0, "ratio",
                   ONSET + timedelta(minutes=minute), "…")  # fmt: skip


def test_a_victim_two_calls_above_its_cause_is_discounted() -> None:
    edges = {("web", "api"), ("api", "prices")}
    ranked = rank([finding("web", 8.0, 1), finding("prices", 8.0, 0)], edges)
    assert [s.service for s in ranked] == ["prices", "web"]
    assert ranked[1].caused_by == ["prices"]
    # A much weaker anomaly downstream does not explain a strong one upstream away.
    ranked = rank([finding("web", 12.0, 1), finding("prices", 1.0, 0)], edges)
    assert ranked[0].service == "web"


def test_the_reason_names_the_evidence_that_decided() -> None:
    loud = Finding("prices", "network", "time between services", 40.0, 1.0, 300.0, "ms",
                   FAULT_AT, "3 of its 3 call edges slowed")  # fmt: skip
    quiet = finding("prices", 4.0, 0)
    ranked = rank([quiet, loud], set())
    assert ranked[0].reason.startswith(
        "decided by time between services: 3 of its 3 call edges slowed; also logs: …"
    )


def replica_rows(levels: dict[str, tuple[float, float]]) -> Any:
    """cpu_cores of each pod of `checkout` every 15 s: (baseline level, incident level), with
    the change at FAULT_AT."""
    rng = np.random.default_rng(5)
    rows = []
    t = WINDOWS.baseline_start
    while t <= NOW:
        for pod, (before, after) in levels.items():
            level = after if t >= FAULT_AT else before
            rows.append(
                (t, "checkout", pod, "cpu_cores", level * (1 + 0.05 * rng.standard_normal()))
            )
        t += timedelta(seconds=15)
    return pd.DataFrame(rows, columns=["time", "service", "instance", "signal", "value"])


CPU = {"cpu_cores": SignalMeta("cores", "higher", floor=0.01)}


@pytest.mark.parametrize(
    ("name", "levels", "found"),
    [
        ("one replica saturated among healthy siblings",
         {"checkout-a-1": (0.2, 0.95), "checkout-a-2": (0.2, 0.21), "checkout-a-3": (0.2, 0.2)},
         ["checkout-a-1"]),
        ("every replica busier: the service's change, not one replica's",
         {"checkout-a-1": (0.2, 0.9), "checkout-a-2": (0.2, 0.9), "checkout-a-3": (0.2, 0.9)}, []),
        ("a replica that was always the hot one",
         {"checkout-a-1": (0.9, 0.9), "checkout-a-2": (0.2, 0.2), "checkout-a-3": (0.2, 0.2)}, []),
    ],
)  # fmt: skip
def test_a_saturated_replica_stands_out_from_its_siblings(
    name: str, levels: dict[str, tuple[float, float]], found: list[str]
) -> None:
    findings = replica_findings(replica_rows(levels), CPU, WINDOWS)
    assert [f.detail.split(":")[0].removeprefix("replica ") for f in findings] == found, name
    for f in findings:
        assert f.service == "checkout" and f.change_time is not None
        assert abs(f.change_time - FAULT_AT) <= timedelta(seconds=15)


def test_pod_series_become_replica_rows_only_for_services_with_siblings() -> None:
    index = pd.DatetimeIndex([NOW - timedelta(seconds=15), NOW], tz=UTC)
    a, b, c = (
        (("pod", "checkout-5d8f9c7b6d-aaaaa"),),
        (("pod", "checkout-5d8f9c7b6d-bbbbb"),),
        (("pod", "cart-7c9d8e6f5a-ccccc"),),
    )
    wide = pd.DataFrame({a: [0.1, 0.2], b: [0.3, 0.4], c: [0.5, 0.6]}, index=index)
    service_of = {a: "checkout", b: "checkout", c: "cart"}
    instance_of = {k: dict(k)["pod"] for k in (a, b, c)}
    rows = wide_to_replicas(wide, "cpu_cores", service_of, instance_of)
    assert sorted(set(rows["instance"])) == [
        "checkout-5d8f9c7b6d-aaaaa",
        "checkout-5d8f9c7b6d-bbbbb",
    ]
    assert rows["value"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_a_client_span_with_nothing_under_it_keeps_its_time() -> None:
    """A database call without a span of the database's own: its time is nobody else's, so
    it counts as the calling span's own time (and a slow database is seen)."""
    spans = calls(GRAPH, {})
    leaves = ~spans["span_id"].isin(set(spans["parent_id"]))
    told = spans.assign(kind=np.where(leaves, "client", "server"))
    assert not client_spans(told)[leaves].any()
