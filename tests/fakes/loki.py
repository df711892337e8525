"""A Loki test server: push-free (tests add streams directly), LogQL subset evaluated for real.

It answers as Loki 3.4 does in ../shared/contracts/loki/: `query_range` returns `streams`
(values `[ns-string, line]`, newest first by default, `limit` entries across all streams) or a
`matrix` for metric queries, always with `data.stats`; `detected_level` is added to streams;
with `X-Loki-Response-Encoding-Flags: categorize-labels` structured metadata moves into a third
element of each value. Errors are plain text 400s with Loki's own words: parse errors, the
entry limit (`max_entries_limit_per_query`), selectors without a non-empty-compatible matcher,
an end not after the start, a log query sent as an instant query.

LogQL subset: `{a="x", b!="y", c=~"re", d!~"re"}`, line filters `|= != |~ !~`, `| json`,
`| logfmt`, label filters `| name="v"` (and `!=`), `count_over_time(<log>[d])`,
`rate(<log>[d])`, optionally inside `sum(...)` or `sum by (labels) (...)`.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

TEXT = "text/plain; charset=utf-8"
EMPTY_MATCHER = (
    "parse error : queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
    'app=~".+" will'
)
INSTANT_LOG = (
    "log queries are not supported as an instant query type, please change your query to a "
    "range query type"
)
STATS = {
    "summary": {"totalEntriesReturned": 0, "execTime": 0.001},
    "querier": {},
    "ingester": {},
    "cache": {},
    "index": {},
}


class ParseError(Exception):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"parse error at line 1, col {column}: syntax error: {message}")


@dataclass
class Entry:
    ns: int
    line: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Query:
    matchers: list[tuple[str, str, str]]
    pipeline: list[tuple[str, str, str]]  # (kind, name/op, value)
    metric: str | None = None  # count_over_time | rate
    range_s: float = 0.0
    aggregate_by: list[str] | None = None  # None: no sum; []: sum without by


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, message: str) -> ParseError:
        return ParseError(self.pos + 1, message)

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.space()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> None:
        if not self.peek(token):
            found = self.text[self.pos : self.pos + 1] or "$end"
            raise self.fail(f"unexpected {found}, expecting {token}")
        self.pos += len(token)

    def name(self) -> str:
        self.space()
        match = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(self.text, self.pos)
        if not match:
            raise self.fail(
                f"unexpected {self.text[self.pos : self.pos + 1] or '$end'}, expecting IDENTIFIER"
            )
        self.pos = match.end()
        return match.group(0)

    def string(self) -> str:
        self.space()
        if self.peek("`"):
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise self.fail("unexpected $end, expecting `")
            value, self.pos = self.text[self.pos + 1 : end], end + 1
            return value
        if not self.peek('"'):
            raise self.fail(
                f"unexpected {self.text[self.pos : self.pos + 1] or '$end'}, expecting STRING"
            )
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                escape = self.text[self.pos + 1 : self.pos + 2]
                if escape == "x":
                    out.append(chr(int(self.text[self.pos + 2 : self.pos + 4], 16)))
                    self.pos += 4
                    continue
                out.append(
                    {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(escape, escape)
                )
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise self.fail('unexpected $end, expecting "')

    def op(self, options: tuple[str, ...]) -> str:
        self.space()
        for option in options:
            if self.text.startswith(option, self.pos):
                self.pos += len(option)
                return option
        raise self.fail(
            f"unexpected {self.text[self.pos : self.pos + 1] or '$end'}, expecting operator"
        )

    def log_query(self) -> Query:
        self.take("{")
        matchers = []
        while True:
            label = self.name()
            matchers.append((label, self.op(("=~", "!~", "!=", "=")), self.string()))
            if self.peek(","):
                self.take(",")
                continue
            self.take("}")
            break
        pipeline: list[tuple[str, str, str]] = []
        while True:
            self.space()
            if self.peek("|=") or self.peek("!=") or self.peek("|~") or self.peek("!~"):
                operator = self.op(("|=", "!=", "|~", "!~"))
                pipeline.append(("line", operator, self.string()))
            elif self.peek("|"):
                self.take("|")
                word = self.name()
                if word in ("json", "logfmt"):
                    pipeline.append(("parser", word, ""))
                else:
                    pipeline.append(("label", f"{word} {self.op(('!=', '='))}", self.string()))
            else:
                return Query(matchers, pipeline)

    def query(self) -> Query:
        self.space()
        aggregate: list[str] | None = None
        if self.peek("sum"):
            self.take("sum")
            aggregate = []
            if self.peek("by"):
                self.take("by")
                self.take("(")
                aggregate.append(self.name())
                while self.peek(","):
                    self.take(",")
                    aggregate.append(self.name())
                self.take(")")
            self.take("(")
        if self.peek("count_over_time") or self.peek("rate"):
            function = "count_over_time" if self.peek("count_over_time") else "rate"
            self.take(function)
            self.take("(")
            parsed = self.log_query()
            self.take("[")
            self.space()
            match = re.compile(r"(\d+)(ms|s|m|h|d)").match(self.text, self.pos)
            if not match:
                raise self.fail("unexpected duration")
            self.pos = match.end()
            self.take("]")
            self.take(")")
            unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
            parsed.metric, parsed.range_s = function, int(match.group(1)) * unit
        elif aggregate is not None:
            raise self.fail("unexpected token, expecting range aggregation")
        else:
            parsed = self.log_query()
        if aggregate is not None:
            self.take(")")
            parsed.aggregate_by = aggregate
        self.space()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos]}")
        return parsed


def parse(text: str) -> Query:
    return _Parser(text).query()


def _matches(op: str, actual: str, wanted: str) -> bool:
    if op == "=":
        return actual == wanted
    if op == "!=":
        return actual != wanted
    found = re.fullmatch(wanted, actual) is not None
    return found if op == "=~" else not found


def _logfmt(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)=("[^"]*"|\S*)', line)}


SERVICE_NAME_SOURCES = (
    "service_name",
    "service",
    "app",
    "application",
    "name",
    "app_kubernetes_io_name",
    "container",
    "k8s_container_name",
)


def _service_name(labels: dict[str, str]) -> str:
    """Loki 3's default service_name discovery: the first of these labels, else unknown."""
    return next(
        (labels[name] for name in SERVICE_NAME_SOURCES if labels.get(name)), "unknown_service"
    )


class FakeLoki:
    def __init__(self, *, max_entries: int = 5000) -> None:
        self.max_entries = max_entries
        self.streams: list[tuple[dict[str, str], list[Entry]]] = []
        self.queries: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_get("/loki/api/v1/query_range", self.query_range)
        self.app.router.add_get("/loki/api/v1/query", self.query_instant)
        self.app.router.add_get("/loki/api/v1/labels", self.labels)

    def add(
        self,
        labels: dict[str, str],
        entries: list[tuple[float, str] | tuple[float, str, dict[str, str]]],
    ) -> None:
        """Lines at unix-second times (optionally with structured metadata)."""
        labels = {
            "service_name": _service_name(labels),
            **labels,
        }  # added at ingestion, as Loki 3 does
        rows = [Entry(round(e[0] * 1e9), e[1], dict(e[2]) if len(e) > 2 else {}) for e in entries]  # type: ignore[misc]
        self.streams.append((dict(labels), rows))

    # --- evaluation ------------------------------------------------------------------------

    def _select(self, query: Query) -> list[tuple[dict[str, str], list[Entry]]]:
        if all(_matches(op, "", value) for _, op, value in query.matchers):
            raise ValueError(EMPTY_MATCHER)
        return [
            (labels, entries)
            for labels, entries in self.streams
            if all(_matches(op, labels.get(name, ""), value) for name, op, value in query.matchers)
        ]

    def _pipeline(
        self, query: Query, labels: dict[str, str], entry: Entry
    ) -> dict[str, str] | None:
        result = dict(labels)
        for kind, operator, value in query.pipeline:
            if kind == "line":
                keep = {
                    "|=": value in entry.line,
                    "!=": value not in entry.line,
                    "|~": re.search(value, entry.line) is not None,
                    "!~": re.search(value, entry.line) is None,
                }[operator]
                if not keep:
                    return None
            elif kind == "parser":
                try:
                    parsed = json.loads(entry.line) if operator == "json" else _logfmt(entry.line)
                except json.JSONDecodeError:
                    result["__error__"] = "JSONParserErr"
                    continue
                if isinstance(parsed, dict):
                    result.update(
                        {k: str(v) for k, v in parsed.items() if not isinstance(v, dict | list)}
                    )
            else:
                name, op = operator.split(" ")
                if not _matches(op, result.get(name, ""), value):
                    return None
        return result

    @staticmethod
    def _time(value: str | None, default: float) -> float:
        if value is None:
            return default
        if re.fullmatch(r"\d{19}", value):
            return int(value) / 1e9
        try:
            return float(value)
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    async def query_range(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        now = time.time()
        end = self._time(request.query.get("end"), now)
        start = self._time(request.query.get("start"), end - 3600)
        if end <= start:
            return web.Response(
                status=400,
                text="end timestamp must not be before or equal to start time",
                content_type="text/plain",
                charset="utf-8",
            )
        limit = int(request.query.get("limit", "100"))
        if limit > self.max_entries:
            return web.Response(
                status=400,
                content_type="text/plain",
                charset="utf-8",
                text="max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {self.max_entries})",
            )
        try:
            query = parse(request.query.get("query", ""))
            selected = self._select(query)
        except (ParseError, ValueError) as exc:
            return web.Response(
                status=400, text=str(exc), content_type="text/plain", charset="utf-8"
            )
        if query.metric:
            return web.json_response(
                {
                    "status": "success",
                    "data": {
                        "resultType": "matrix",
                        "result": self._matrix(
                            query, selected, start, end, float(request.query.get("step", "60"))
                        ),
                        "stats": STATS,
                    },
                }
            )
        categorize = "categorize-labels" in request.headers.get(
            "X-Loki-Response-Encoding-Flags", ""
        )
        hits: list[tuple[int, str, dict[str, str], dict[str, str]]] = []
        for labels, entries in selected:
            for entry in entries:
                if start * 1e9 <= entry.ns < end * 1e9:
                    result = self._pipeline(query, labels, entry)
                    if result is not None:
                        hits.append((entry.ns, entry.line, result, entry.metadata))
        hits.sort(
            key=lambda hit: hit[0], reverse=request.query.get("direction", "backward") == "backward"
        )
        grouped: dict[tuple[tuple[str, str], ...], list[list[Any]]] = defaultdict(list)
        for ns, line, labels, metadata in hits[:limit]:
            level = labels.get("level", "unknown")
            if categorize:
                key = tuple(sorted(labels.items()))
                grouped[key].append(
                    [str(ns), line, {"structuredMetadata": {**metadata, "detected_level": level}}]
                )
            else:
                key = tuple(sorted({**labels, **metadata, "detected_level": level}.items()))
                grouped[key].append([str(ns), line])
        data: dict[str, Any] = {
            "resultType": "streams",
            "result": [{"stream": dict(key), "values": values} for key, values in grouped.items()],
            "stats": STATS,
        }
        if categorize:
            data["encodingFlags"] = ["categorize-labels"]
        return web.json_response({"status": "success", "data": data})

    def _matrix(
        self,
        query: Query,
        selected: list[tuple[dict[str, str], list[Entry]]],
        start: float,
        end: float,
        step: float,
    ) -> list[dict[str, Any]]:
        series: dict[tuple[tuple[str, str], ...], dict[float, float]] = defaultdict(dict)
        steps = []
        moment = start
        while moment <= end:
            steps.append(moment)
            moment += step
        for labels, entries in selected:
            for at in steps:
                counts: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
                for entry in entries:
                    at_ns = round(at * 1e9)
                    if at_ns - round(query.range_s * 1e9) < entry.ns <= at_ns:
                        result = self._pipeline(query, labels, entry)
                        if result is not None:
                            if query.aggregate_by is not None:
                                result = {
                                    k: v for k, v in result.items() if k in query.aggregate_by
                                }
                            counts[tuple(sorted(result.items()))] += 1
                for key, count in counts.items():
                    value = count / query.range_s if query.metric == "rate" else count
                    series[key][at] = series[key].get(at, 0) + value
        return [
            {
                "metric": dict(key),
                "values": [[at, f"{value:g}"] for at, value in sorted(points.items())],
            }
            for key, points in series.items()
        ]

    async def query_instant(self, request: web.Request) -> web.Response:
        try:
            query = parse(request.query.get("query", ""))
        except ParseError as exc:
            return web.Response(
                status=400, text=str(exc), content_type="text/plain", charset="utf-8"
            )
        if not query.metric:
            return web.Response(
                status=400, text=INSTANT_LOG, content_type="text/plain", charset="utf-8"
            )
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": [], "stats": STATS}}
        )

    async def labels(self, request: web.Request) -> web.Response:
        names = sorted({name for labels, _ in self.streams for name in labels})
        return web.json_response({"status": "success", "data": names})
