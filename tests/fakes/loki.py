"""A Loki test server that answers as Loki 3.4.6 does (tests/contracts/loki/).

Time is integer nanoseconds throughout and a log query's window is [start, end), as in Loki;
`start`/`end` parse as Loki parses them (float seconds rounded to the millisecond, up to ten
digits as seconds, more as nanoseconds, or RFC 3339). Regular expressions are RE2 (google-re2),
with Go's error wording, so a pattern Loki refuses is refused here too. At ingestion, as Loki's
distributor does: `service_name` from the default discovery list and `detected_level` (as
structured metadata) from a level label, level metadata, a JSON/logfmt field or the line's words.

Answers: `query_range` (GET or form POST) gives `streams` (values `[ns-string, line]`, or with
`X-Loki-Response-Encoding-Flags: categorize-labels` index labels only in the stream and a third
element `{"structuredMetadata": …, "parsed": …}`) or a step-aligned `matrix`; `query` answers
metric queries with a `vector` and refuses log queries; `push` (JSON), `labels`,
`label/<name>/values`, `series`, `/ready`, `/loki/api/v1/status/buildinfo`. Refusals are plain
text 400s with Loki's words: parse and regexp errors, `limit` not a positive number, the entry
limit (`max_entries_limit_per_query`), `max_query_length`, selectors without a
non-empty-compatible matcher, an end before the start (`start == end` answers no streams).
Overload (429) and timeouts (504) are injected with `refuse_next`; a slow answer with `trickle`.

LogQL subset: `{a="x", b!="y", c=~"re", d!~"re"}`, line filters `|= != |~ !~`, `| json`,
`| logfmt`, label filters `| name="v"` (`!=`, `=~`, `!~`), range aggregations `count_over_time`,
`rate`, `bytes_over_time`, `bytes_rate` over `[d]`, optionally inside `sum|count|min|max|avg`
with `by (…)`.

Not modelled (a client of ours never sends them): protobuf/snappy push (answered 415), `tail`,
`interval`, `line_format`/`label_format`, binary operations, `unwrap`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import re2
from aiohttp import web

TEXT = "text/plain; charset=utf-8"
NS = 1_000_000_000
EMPTY_MATCHER = (
    "parse error : queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
    'app=~".+" will'
)
INSTANT_LOG = (
    "log queries are not supported as an instant query type, please change your query to a "
    "range query type"
)
END_BEFORE_START = "end timestamp must not be before or equal to start time"
LIMIT_NOT_POSITIVE = "limit must be a positive value"
STEP_NOT_POSITIVE = (
    "zero or negative query resolution step widths are not accepted. Try a positive integer"
)
STEP_TOO_SMALL = (
    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
    "resolution (?step=XX)"
)
OVERLOADED = "too many outstanding requests"
TIMED_OUT = "request timed out, decrease the duration of the request or increase the timeout"
STATS = {
    "summary": {"totalEntriesReturned": 0, "execTime": 0.001},
    "querier": {},
    "ingester": {},
    "cache": {},
    "index": {},
}
# limits_config.discover_service_name, in Loki's order (Loki 3.4 default).
SERVICE_NAME_SOURCES = (
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
)
LEVEL_FIELDS = ("level", "LEVEL", "Level", "severity", "SEVERITY", "Severity", "lvl", "LVL", "Lvl")
LEVELS = {
    "trace": "trace",
    "trc": "trace",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "warn": "warn",
    "wrn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "critical": "critical",
    "fatal": "fatal",
}
# RE2 (C++) error codes in the words of Go's regexp/syntax, which Loki uses.
_GO_REGEXP_ERRORS = {
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid named capture group": "invalid named capture",
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class range": "invalid character class range",
    "invalid character class": "invalid character class",
    "trailing \\": "trailing backslash at end of expression",
}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_DOTALL = re2.Options()
_RE2_DOTALL.log_errors = False
_RE2_DOTALL.dot_nl = True
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class Refusal(Exception):
    """A request Loki answers with a plain-text 4xx."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.text, self.status = text, status


class ParseError(Refusal):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"parse error at line 1, col {column}: syntax error: {message}")


def compile_re2(pattern: str, *, anchored: bool, column: int = 1) -> Any:
    """Compile as Loki does: label matchers are anchored (`^(?s:re)$`), line filters search."""
    try:
        if anchored:
            return re2.compile(f"^(?s:{pattern})$", _RE2_DOTALL)
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raw = exc.args[0]
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        code, _, fragment = text.partition(": ")
        message = _GO_REGEXP_ERRORS.get(code, code)
        raise Refusal(
            f"parse error at line 1, col {column}: error parsing regexp: {message}: `{fragment}`"
        ) from None


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(), as Loki's messages print durations."""
    if ns == 0:
        return "0s"
    hours, rest = divmod(ns, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    seconds = f"{rest / NS:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def parse_time(value: str | None, default_ns: int) -> int:
    """Loki's parseTimestamp, in integer nanoseconds."""
    if not value:
        return default_ns
    if "." in value:
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            whole = math.trunc(seconds)
            millis = math.floor(abs(seconds - whole) * 1000 + 0.5) * (1 if seconds >= 0 else -1)
            return whole * NS + millis * 1_000_000
    if re.fullmatch(r"[+-]?\d+", value):
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise Refusal(f'strconv.ParseInt: parsing "{value}": value out of range')
        return number * NS if len(value) <= 10 else number
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", value
    )
    if match:
        whole_s = datetime.fromisoformat(match.group(1) + match.group(3).replace("Z", "+00:00"))
        return int(whole_s.timestamp()) * NS + int((match.group(2) or "0").ljust(9, "0"))
    raise Refusal(f'strconv.ParseInt: parsing "{value}": invalid syntax')


def parse_step(value: str | None, start_ns: int, end_ns: int) -> int:
    """Loki's step: float seconds or a Prometheus duration; default max(floor(range/250 s), 1 s)."""
    if not value:
        return max(math.floor((end_ns - start_ns) / NS / 250), 1) * NS
    try:
        return round(float(value) * NS)
    except ValueError:
        pass
    try:
        return duration_ns(value)
    except ValueError:
        raise Refusal(f'cannot parse "{value}" to a valid duration') from None


_UNITS = {"ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS, "d": 86400 * NS}
_UNITS |= {"w": 7 * _UNITS["d"], "y": 365 * _UNITS["d"]}


def duration_ns(text: str) -> int:
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(text)
    return sum(int(amount) * _UNITS[unit] for amount, unit in parts)


def parse_limit(value: str | None) -> int:
    if not value:
        return 100
    try:
        limit = int(value)
    except ValueError:
        raise Refusal(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    if limit <= 0:
        raise Refusal(LIMIT_NOT_POSITIVE)
    return limit


# --- LogQL -----------------------------------------------------------------------------------

RANGE_FUNCTIONS = ("count_over_time", "bytes_over_time", "bytes_rate", "rate")
AGGREGATIONS = ("sum", "count", "min", "max", "avg")


@dataclass
class Matcher:
    name: str
    op: str
    value: str
    regex: Any = None

    def matches(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self.regex.search(actual) is not None
        return found if self.op == "=~" else not found


@dataclass
class Query:
    matchers: list[Matcher]
    pipeline: list[tuple[str, str, Any]]  # (kind, operator, value | Matcher)
    metric: str | None = None
    range_ns: int = 0
    aggregation: str | None = None
    aggregate_by: list[str] | None = None


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

    def peek_word(self, word: str) -> bool:
        self.space()
        match = _LABEL_NAME.match(self.text, self.pos)
        return match is not None and match.group(0) == word

    def found(self) -> str:
        return self.text[self.pos : self.pos + 1] or "$end"

    def take(self, token: str) -> None:
        if not self.peek(token):
            raise self.fail(f"unexpected {self.found()}, expecting {token}")
        self.pos += len(token)

    def name(self) -> str:
        self.space()
        match = _LABEL_NAME.match(self.text, self.pos)
        if not match:
            raise self.fail(f"unexpected {self.found()}, expecting IDENTIFIER")
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
            raise self.fail(f"unexpected {self.found()}, expecting STRING")
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
                if escape in ("u", "U"):
                    width = 4 if escape == "u" else 8
                    out.append(chr(int(self.text[self.pos + 2 : self.pos + 2 + width], 16)))
                    self.pos += 2 + width
                    continue
                simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
                if escape not in simple:
                    raise self.fail("invalid char escape")
                out.append(simple[escape])
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
        raise self.fail(f"unexpected {self.found()}, expecting operator")

    def matcher(self) -> Matcher:
        label = self.name()
        op = self.op(("=~", "!~", "!=", "="))
        column = self.pos + 1
        value = self.string()
        regex = compile_re2(value, anchored=True, column=column) if "~" in op else None
        return Matcher(label, op, value, regex)

    def log_query(self) -> Query:
        self.take("{")
        matchers = [self.matcher()]
        while self.peek(","):
            self.take(",")
            matchers.append(self.matcher())
        if not self.peek("}"):
            raise self.fail(f"unexpected {self.found()}, expecting }} or ,")
        self.take("}")
        if all(m.matches("") for m in matchers):
            raise Refusal(EMPTY_MATCHER)
        pipeline: list[tuple[str, str, Any]] = []
        while True:
            self.space()
            if self.peek("|=") or self.peek("!=") or self.peek("|~") or self.peek("!~"):
                operator = self.op(("|=", "!=", "|~", "!~"))
                column = self.pos + 1
                text = self.string()
                regex = (
                    compile_re2(text, anchored=False, column=column) if "~" in operator else None
                )
                pipeline.append(("line", operator, regex if regex is not None else text))
            elif self.peek("|"):
                self.take("|")
                word = self.name()
                if word in ("json", "logfmt"):
                    pipeline.append(("parser", word, None))
                else:
                    self.pos -= len(word)
                    pipeline.append(("label", "", self.matcher()))
            else:
                return Query(matchers, pipeline)

    def query(self) -> Query:
        self.space()
        aggregation = next((a for a in AGGREGATIONS if self.peek_word(a)), None)
        by: list[str] | None = None
        if aggregation:
            self.take(aggregation)
            if self.peek_word("by"):
                by = self.grouping()
            self.take("(")
        function = next((f for f in RANGE_FUNCTIONS if self.peek_word(f)), None)
        if function:
            self.take(function)
            self.take("(")
            parsed = self.log_query()
            self.take("[")
            self.space()
            match = re.compile(r"(\d+(?:ms|s|m|h|d|w|y))+").match(self.text, self.pos)
            if not match:
                raise self.fail(f"unexpected {self.found()}, expecting DURATION")
            self.pos = match.end()
            self.take("]")
            self.take(")")
            parsed.metric, parsed.range_ns = function, duration_ns(match.group(0))
        elif aggregation:
            raise self.fail(f"unexpected {self.found()}, expecting range aggregation")
        else:
            parsed = self.log_query()
        if aggregation:
            self.take(")")
            if by is None and self.peek_word("by"):
                by = self.grouping()
            parsed.aggregation, parsed.aggregate_by = aggregation, by or []
        self.space()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos]}")
        return parsed

    def grouping(self) -> list[str]:
        self.take("by")
        self.take("(")
        names = [self.name()]
        while self.peek(","):
            self.take(",")
            names.append(self.name())
        self.take(")")
        return names


def parse(text: str) -> Query:
    return _Parser(text).query()


def _logfmt(line: str) -> dict[str, str]:
    return {
        key: value[1:-1] if value.startswith('"') else value
        for key, value in re.findall(r'([a-zA-Z_][a-zA-Z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)', line)
    }


def _flatten_json(value: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            name = re.sub(r"[^a-zA-Z0-9_]", "_", f"{prefix}{key}")
            if isinstance(item, dict):
                out.update(_flatten_json(item, f"{name}_"))
            elif not isinstance(item, list):
                out[name] = item if isinstance(item, str) else json.dumps(item)
    return out


# --- ingestion -------------------------------------------------------------------------------


def service_name(labels: Mapping[str, str]) -> str:
    """Loki's service_name discovery: the first label of the list present, else unknown."""
    return next(
        (labels[name] for name in SERVICE_NAME_SOURCES if labels.get(name)), "unknown_service"
    )


def _level_word(value: str) -> str:
    return LEVELS.get(value.lower(), value)


def _level_from_line(line: str) -> str:
    """Loki 3.4's detectLevelFromLogLine, for lines that are neither JSON nor logfmt."""
    if "info" in line or "INFO" in line:
        return "info"
    if "err:" in line or "ERR:" in line or "error" in line or "ERROR" in line:
        return "error"
    if "warn:" in line or "WARN:" in line or "warning" in line or "WARNING" in line:
        return "warn"
    if "CRITICAL:" in line or "critical:" in line:
        return "critical"
    if "debug:" in line or "DEBUG:" in line:
        return "debug"
    return "unknown"


def detected_level(labels: Mapping[str, str], metadata: Mapping[str, str], line: str) -> str:
    """Loki's discover_log_levels: a level label, level metadata, a level field, the words."""
    for source in (labels, metadata):
        for name in LEVEL_FIELDS:
            if name in source:
                return _level_word(source[name])
    stripped = line.strip()
    value = ""
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            value = next((str(document[n]) for n in LEVEL_FIELDS if n in document), "")
    elif "=" in line:
        fields = _logfmt(line)
        value = next((fields[n] for n in LEVEL_FIELDS if n in fields), "")
    if value and value.lower() in LEVELS:
        return LEVELS[value.lower()]
    return _level_from_line(line)


@dataclass
class Stream:
    labels: dict[str, str]
    times: list[int] = field(default_factory=list)  # sorted, parallel to entries
    entries: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)

    def add(self, ns: int, line: str, metadata: dict[str, str]) -> None:
        # An entry equal in time and line to one already stored is the same entry (Loki's
        # replica de-duplication); Loki keeps the first.
        at = bisect.bisect_left(self.times, ns)
        end = bisect.bisect_right(self.times, ns)
        if any(self.entries[i][1] == line for i in range(at, end)):
            return
        self.times.insert(end, ns)
        self.entries.insert(end, (ns, line, metadata))

    def between(self, start_ns: int, end_ns: int) -> list[tuple[int, str, dict[str, str]]]:
        """Entries in [start, end), oldest first."""
        low = bisect.bisect_left(self.times, start_ns)
        high = bisect.bisect_left(self.times, end_ns)
        return self.entries[low:high]


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _selector(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


def _point_time(ns: int) -> float | int:
    millis = ns // 1_000_000
    return millis // 1000 if millis % 1000 == 0 else millis / 1000


def _go_float(value: float) -> str:
    return str(np.format_float_positional(value, trim="-"))


class FakeLoki:
    def __init__(
        self,
        *,
        max_entries: int = 5000,
        max_query_length_s: float = 721 * 3600,
        max_line_size: int = 256 * 1024,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """`clock_ns` is the server's now (integer ns): the default query windows and the
        push age limits are measured from it, so recorded traffic replays at its own time."""
        self.clock_ns = clock_ns
        self.max_entries = max_entries
        self.max_query_length_ns = round(max_query_length_s * NS)
        self.max_line_size = max_line_size
        self.streams: dict[tuple[tuple[str, str], ...], Stream] = {}
        self.queries: list[dict[str, str]] = []
        self._refusals: list[tuple[int, str] | None] = []
        self._trickle: tuple[int, float] | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        router = self.app.router
        for method in ("GET", "POST"):
            router.add_route(method, "/loki/api/v1/query_range", self.query_range)
            router.add_route(method, "/loki/api/v1/query", self.query_instant)
            router.add_route(method, "/loki/api/v1/labels", self.labels)
            router.add_route(method, "/loki/api/v1/label/{name}/values", self.label_values)
            router.add_route(method, "/loki/api/v1/series", self.series)
        router.add_post("/loki/api/v1/push", self.push)
        router.add_get("/ready", self.ready)
        router.add_get("/loki/api/v1/status/buildinfo", self.buildinfo)

    # --- test set-up --------------------------------------------------------------------------

    def add(
        self,
        labels: dict[str, str],
        entries: Iterable[tuple[float, str] | tuple[float, str, dict[str, str]]],
    ) -> None:
        """Lines at unix-second times (optionally with structured metadata), ingested as Loki's
        distributor would ingest them (no age or size limits: this is test set-up)."""
        self.add_ns(
            labels,
            [(round(e[0] * NS), e[1], *(e[2:])) for e in entries],  # type: ignore[misc]
        )

    def add_ns(
        self,
        labels: dict[str, str],
        entries: Iterable[tuple[int, str] | tuple[int, str, dict[str, str]]],
    ) -> None:
        """Lines at exact integer-nanosecond times."""
        stream_labels = dict(labels)
        if "service_name" not in stream_labels:
            stream_labels["service_name"] = service_name(stream_labels)
        stream = self.streams.setdefault(_key(stream_labels), Stream(stream_labels))
        for entry in entries:
            ns, line = int(entry[0]), entry[1]
            metadata = dict(entry[2]) if len(entry) > 2 else {}  # type: ignore[misc]
            if "detected_level" not in metadata:
                metadata["detected_level"] = detected_level(stream_labels, metadata, line)
            stream.add(ns, line, metadata)

    def refuse_next(
        self, status: int = 429, text: str | None = None, *, times: int = 1, after: int = 0
    ) -> None:
        """After `after` queries answered normally, the next `times` are answered `status`
        (429: Loki's query queue is full; 504: the query timed out)."""
        body = text if text is not None else (OVERLOADED if status == 429 else TIMED_OUT)
        self._refusals += [None] * after + [(status, body)] * times

    def _refusal(self) -> web.Response | None:
        planned = self._refusals.pop(0) if self._refusals else None
        return _text(*planned) if planned else None

    def trickle(self, chunk_bytes: int, delay_s: float) -> None:
        """Answer queries `chunk_bytes` at a time, `delay_s` apart (a slow network or proxy)."""
        self._trickle = (chunk_bytes, delay_s)

    # --- evaluation --------------------------------------------------------------------------

    def _select(self, query: Query) -> list[Stream]:
        return [
            stream
            for stream in self.streams.values()
            if all(m.matches(stream.labels.get(m.name, "")) for m in query.matchers)
        ]

    @staticmethod
    def _pipeline(
        query: Query, stream: Stream, line: str, metadata: dict[str, str]
    ) -> dict[str, str] | None:
        """The labels parsers extracted, or None when the line is filtered out."""
        parsed: dict[str, str] = {}
        for kind, operator, value in query.pipeline:
            if kind == "line":
                if operator == "|=":
                    keep = value in line
                elif operator == "!=":
                    keep = value not in line
                else:
                    found = value.search(line) is not None
                    keep = found if operator == "|~" else not found
                if not keep:
                    return None
            elif kind == "parser":
                if operator == "json":
                    try:
                        extracted = _flatten_json(json.loads(line))
                    except json.JSONDecodeError:
                        parsed["__error__"] = "JSONParserErr"
                        continue
                else:
                    extracted = _logfmt(line)
                for name, text in extracted.items():
                    # A parsed label that collides with a stream label is renamed, as in Loki.
                    clash = name in stream.labels
                    parsed[f"{name}_extracted" if clash else name] = text
            else:
                matcher: Matcher = value
                current = parsed.get(
                    matcher.name, metadata.get(matcher.name, stream.labels.get(matcher.name, ""))
                )
                if not matcher.matches(current):
                    return None
        return parsed

    def _log_hits(
        self, query: Query, start_ns: int, end_ns: int
    ) -> list[tuple[int, int, str, Stream, dict[str, str], dict[str, str]]]:
        hits = []
        for order, stream in enumerate(self._select(query)):
            for ns, line, metadata in stream.between(start_ns, end_ns):
                parsed = self._pipeline(query, stream, line, metadata)
                if parsed is not None:
                    hits.append((ns, order, line, stream, metadata, parsed))
        return hits

    def _samples(
        self, query: Query, steps: list[int]
    ) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
        """Per series, per step `t`: the range aggregation over (t - range, t]."""
        assert query.metric is not None
        series: dict[tuple[tuple[str, str], ...], dict[int, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        range_s = query.range_ns / NS
        for stream in self._select(query):
            for at in steps:
                per_labels: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
                for _ns, line, metadata in stream.between(at - query.range_ns + 1, at + 1):
                    parsed = self._pipeline(query, stream, line, metadata)
                    if parsed is None:
                        continue
                    labels = {**stream.labels, **metadata, **parsed}
                    size = len(line.encode())
                    weight = size if query.metric.startswith("bytes") else 1
                    per_labels[_key(labels)] += weight
                for key, total in per_labels.items():
                    value = total / range_s if query.metric in ("rate", "bytes_rate") else total
                    labels = dict(key)
                    if query.aggregation is not None:
                        by = query.aggregate_by or []
                        labels = {k: v for k, v in labels.items() if k in by}
                    series[_key(labels)][at].append(value)
        combine = {
            None: lambda values: values[0],
            "sum": sum,
            "count": len,
            "min": min,
            "max": max,
            "avg": lambda values: sum(values) / len(values),
        }[query.aggregation]
        return {
            key: {at: float(combine(values)) for at, values in points.items()}
            for key, points in series.items()
        }

    # --- handlers ----------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.queries.append(params)
        return params

    async def _answer(self, request: web.Request, document: dict[str, Any]) -> web.StreamResponse:
        if self._trickle is None:
            return web.json_response(document)
        chunk_bytes, delay_s = self._trickle
        body = json.dumps(document).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for at in range(0, len(body), chunk_bytes):
            await response.write(body[at : at + chunk_bytes])
            await asyncio.sleep(delay_s)
        await response.write_eof()
        return response

    async def query_range(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        if refused := self._refusal():
            return refused
        try:
            return await self._query_range(request, params)
        except Refusal as refusal:
            return _text(refusal.status, refusal.text)

    async def _query_range(
        self, request: web.Request, params: dict[str, str]
    ) -> web.StreamResponse:
        now_ns = self.clock_ns()
        start_ns = parse_time(params.get("start"), now_ns - 3600 * NS)
        end_ns = parse_time(params.get("end"), now_ns)
        if end_ns < start_ns:
            raise Refusal(END_BEFORE_START)
        limit = parse_limit(params.get("limit"))
        direction = params.get("direction", "") or "backward"
        if direction.lower() not in ("backward", "forward"):
            raise Refusal(f"invalid direction '{direction}'")
        step_ns = parse_step(params.get("step"), start_ns, end_ns)
        if step_ns <= 0:
            raise Refusal(STEP_NOT_POSITIVE)
        if (end_ns - start_ns) // step_ns > 11000:
            raise Refusal(STEP_TOO_SMALL)
        query = parse(params.get("query", ""))
        if self.max_query_length_ns and end_ns - start_ns > self.max_query_length_ns:
            raise Refusal(
                "the query time range exceeds the limit (query length: "
                f"{go_duration(end_ns - start_ns)}, limit: {go_duration(self.max_query_length_ns)})"
            )
        if query.metric:
            # Metric queries are split by interval, which aligns start down and end up to the step.
            start_ns -= start_ns % step_ns
            if end_ns % step_ns:
                end_ns += step_ns - end_ns % step_ns
            steps = list(range(start_ns, end_ns + 1, step_ns))
            samples = self._samples(query, steps)
            result = [
                {
                    "metric": dict(key),
                    "values": [[_point_time(at), _go_float(v)] for at, v in sorted(points.items())],
                }
                for key, points in samples.items()
            ]
            data = {"resultType": "matrix", "result": result, "stats": STATS}
            return await self._answer(request, {"status": "success", "data": data})
        if limit > self.max_entries:
            raise Refusal(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {self.max_entries})"
            )
        categorize = "categorize-labels" in request.headers.get(
            "X-Loki-Response-Encoding-Flags", ""
        )
        hits = self._log_hits(query, start_ns, end_ns)
        backward = direction.lower() == "backward"
        hits.sort(key=lambda hit: (-hit[0] if backward else hit[0], hit[1]))
        grouped: dict[tuple[tuple[str, str], ...], list[list[Any]]] = defaultdict(list)
        for ns, _order, line, stream, metadata, parsed in hits[:limit]:
            if categorize:
                extra: dict[str, dict[str, str]] = {}
                if metadata:
                    extra["structuredMetadata"] = metadata
                if parsed:
                    extra["parsed"] = parsed
                value: list[Any] = [str(ns), line, extra] if extra else [str(ns), line]
                grouped[_key(stream.labels)].append(value)
            else:
                grouped[_key({**stream.labels, **metadata, **parsed})].append([str(ns), line])
        # Loki's query frontend merges its splits by stream and orders the streams by their
        # label string ({a="x", b="y"}): descending for backward queries, ascending for forward.
        keys = sorted(grouped, key=lambda key: _selector(dict(key)), reverse=backward)
        data = {
            "resultType": "streams",
            "result": [{"stream": dict(key), "values": grouped[key]} for key in keys],
            "stats": STATS,
        }
        if categorize:
            data = {"resultType": "streams", "encodingFlags": ["categorize-labels"], **data}
        return await self._answer(request, {"status": "success", "data": data})

    async def query_instant(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        if refused := self._refusal():
            return refused
        try:
            at_ns = parse_time(params.get("time"), self.clock_ns())
            parse_limit(params.get("limit"))
            query = parse(params.get("query", ""))
        except Refusal as refusal:
            return _text(refusal.status, refusal.text)
        if not query.metric:
            return _text(400, INSTANT_LOG)
        samples = self._samples(query, [at_ns])
        result = [
            {"metric": dict(key), "value": [_point_time(at_ns), _go_float(points[at_ns])]}
            for key, points in samples.items()
        ]
        data = {"resultType": "vector", "result": result, "stats": STATS}
        return await self._answer(request, {"status": "success", "data": data})

    def _streams_between(self, params: dict[str, str]) -> list[Stream]:
        now_ns = self.clock_ns()
        start_ns = parse_time(params.get("start"), now_ns - 3600 * NS)
        end_ns = parse_time(params.get("end"), now_ns)
        return [s for s in self.streams.values() if s.between(start_ns, end_ns + 1)]

    async def labels(self, request: web.Request) -> web.Response:
        try:
            streams = self._streams_between(await self._params(request))
        except Refusal as refusal:
            return _text(refusal.status, refusal.text)
        names = sorted({name for stream in streams for name in stream.labels})
        return web.json_response({"status": "success", "data": names})

    async def label_values(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            streams = self._streams_between(await self._params(request))
        except Refusal as refusal:
            return _text(refusal.status, refusal.text)
        values = sorted({s.labels[name] for s in streams if name in s.labels})
        return web.json_response({"status": "success", "data": values})

    async def series(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        selectors = request.query.getall("match[]", []) or request.query.getall("match", [])
        if request.method == "POST":
            form = await request.post()
            selectors += [str(v) for v in form.getall("match[]", [])]
        try:
            streams = self._streams_between(params)
            queries = [parse(selector) for selector in selectors]
        except Refusal as refusal:
            return _text(refusal.status, refusal.text)
        chosen = [
            s.labels
            for s in streams
            if not queries
            or any(all(m.matches(s.labels.get(m.name, "")) for m in q.matchers) for q in queries)
        ]
        return web.json_response({"status": "success", "data": chosen})

    async def push(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("application/json"):
            return _text(
                415, f"test server: only JSON push is modelled, not {request.content_type}"
            )
        try:
            document = json.loads(await request.read())
            streams = document["streams"]
            if not isinstance(streams, list):
                raise TypeError("streams")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            return _text(400, f"loghttp.PushRequest.Streams: {type(exc).__name__}: {exc}")
        now_ns = self.clock_ns()
        problems = []
        for item in streams:
            # An empty label set is accepted: the distributor adds service_name (here
            # "unknown_service") before it validates labels, as a real Loki 3.4.6 answered 204.
            labels = item.get("stream") or {}
            if any(not _LABEL_NAME.fullmatch(name) for name in labels):
                problems.append(f"error parsing labels {_selector(labels)}: invalid label name")
                continue
            accepted = []
            for value in item.get("values", []):
                ns, line = int(value[0]), str(value[1])
                if ns < now_ns - 168 * 3600 * NS:
                    problems.append(
                        f"entry for stream '{_selector(labels)}' has timestamp too old: {ns}"
                    )
                elif ns > now_ns + 600 * NS:
                    problems.append(
                        f"entry for stream '{_selector(labels)}' has timestamp too new: {ns}"
                    )
                elif len(line.encode()) > self.max_line_size:
                    problems.append(
                        f"Max entry size '{self.max_line_size}' bytes exceeded for stream "
                        f"'{_selector(labels)}' while adding an entry with length "
                        f"'{len(line.encode())}' bytes"
                    )
                else:
                    metadata = value[2] if len(value) > 2 else {}
                    accepted.append((ns, line, {str(k): str(v) for k, v in metadata.items()}))
            self.add_ns({str(k): str(v) for k, v in labels.items()}, accepted)
        if problems:
            return _text(400, "\n".join(problems))
        return web.Response(status=204)

    async def ready(self, request: web.Request) -> web.Response:
        return _text(200, "ready\n")

    async def buildinfo(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "version": "3.4.6",
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
            }
        )
