"""Log evidence: error-level lines and log templates that are new or surging (pure).

Templates are mined with drain3 (the Drain algorithm: a fixed-depth parse tree over tokens),
after masking what varies between occurrences of one statement — ids, numbers, addresses — so
"Order 42 not found" and "Order 43 not found" are one template. The baseline's lines are mined
first; an incident line then either matches a template the baseline knew or starts a new one.
A template counts as evidence when its rate in the incident window is surprising against its
baseline rate (a new template has a baseline rate of zero). Error-level templates weigh fully;
others a little, since a quiet service's rare INFO lines are not news.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections import Counter, defaultdict
from datetime import datetime

import pandas as pd
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from correlator.analysis.findings import Finding, poisson_surge
from correlator.analysis.windows import Windows

ERROR_LEVEL = re.compile(
    r"\b(ERROR|ERR|FATAL|CRITICAL|CRIT|SEVERE|PANIC|EXCEPTION|Exception|Traceback|error)\b"
)
_LEVEL_FIELDS = ("level", "severity", "lvl", "loglevel")
_MESSAGE_FIELDS = ("msg", "message", "log", "MESSAGE")
_ERROR_LEVELS = {"error", "err", "fatal", "critical", "crit", "panic", "severe", "alert", "emerg"}
# Leading timestamps ("19:19:08.554", "2023-01-29T11:19:08Z") differ on every line.
_LEADING_TIME = re.compile(
    r"^\s*(\d{4}-\d\d-\d\d[T ])?\d\d:\d\d:\d\d([.,]\d+)?(Z|[+-]\d\d:?\d\d)?\s*"
)
MASKS = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"\b[0-9a-fA-F]{12,}\b", "HEX"),
    (r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b", "IP"),
    (r"(?<![A-Za-z])[-+]?\d+(\.\d+)?(?![A-Za-z])", "NUM"),
)
# A non-error template's surge counts a tenth: INFO lines follow the traffic mix (a request
# type that is busier now writes more of them), error lines do not. Calibration cannot learn
# this where the fault-free history is short, so it is a stated prior, not a fitted weight.
NON_ERROR_WEIGHT = 0.1
MAX_SAMPLES = 3
# Drain compares a new line with the clusters of its tree leaf token by token: an app's own
# distinct, similar long lines made mining quadratic (400 lines of 2,000 tokens: 6 s). A
# template is shown to 300 characters, so no more is mined; and past MAX_CLUSTERS templates a
# line only joins one that exists (else it counts among OTHER_LINES).
MAX_MINED_CHARS = 300
MAX_CLUSTERS = 1000
OTHER_LINES = -1


# Pure in the line, and each line is read again by the calibration's null windows: cached
# (bounded, so a long-lived analysis process does not grow with every line it ever saw).
@functools.lru_cache(maxsize=1 << 16)
def normalise(line: str) -> tuple[str, bool]:
    """The message of a log line (unwrapping JSON), and whether it is error-level."""
    text = line.strip()
    level: str | None = None
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict):
            level = next((str(document[f]) for f in _LEVEL_FIELDS if f in document), None)
            text = next((str(document[f]) for f in _MESSAGE_FIELDS if f in document), text)
    text = _LEADING_TIME.sub("", text.strip())
    if level is not None:
        is_error = level.lower() in _ERROR_LEVELS
    else:
        is_error = ERROR_LEVEL.search(text[:200]) is not None
    return text, is_error


def _miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in MASKS]
    # Bracketed fields ("[getOrderById][Order not found]") are tokens of their own, and two
    # lines share a template only when most of their tokens agree.
    config.drain_extra_delimiters = ["[", "]", "=", ","]
    config.drain_sim_th = 0.6  # most tokens agree: more than half, so no line joins two
    logging.getLogger("drain3").setLevel(logging.WARNING)
    return TemplateMiner(config=config)


def _minutes(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds() / 60.0, 1 / 60)


def covered_minutes(times: pd.Series, start: datetime, end: datetime) -> float:
    """The part of a baseline window that data actually covers: a capped query or a sparse
    recording holds less than the window, and rates must be taken over what was seen."""
    if times.empty:
        return _minutes(start, end)
    first = max(times.min().floor("min"), start)
    last = min(times.max().ceil("min"), end)
    return _minutes(first, max(last, first + pd.Timedelta(minutes=1)))


class Templates:
    """The templates mined so far: one miner and the cluster of each distinct line. Repeated
    messages are common, so each distinct text is mined once (a cluster keeps its id as its
    template generalises, so a cached id stays right). Shared by the runs of one analysis: the
    calibration's null windows read lines the incident's run has mined already."""

    def __init__(self) -> None:
        self.miner = _miner()
        self.known: dict[str, tuple[int, bool]] = {}

    def mine(self, line: str) -> tuple[int, bool]:
        known = self.known
        if line not in known:
            text, is_error = normalise(line)
            text = text[:MAX_MINED_CHARS]
            miner = self.miner
            if len(miner.drain.clusters) < MAX_CLUSTERS:
                cluster = miner.add_log_message(text)["cluster_id"]
            else:
                matched = miner.match(text)
                cluster = matched.cluster_id if matched is not None else OTHER_LINES
            known[line] = (cluster, is_error)
        return known[line]


def log_findings(
    logs: pd.DataFrame,
    windows: Windows,
    *,
    threshold: float = 3.0,
    templates: Templates | None = None,
) -> list[Finding]:
    if logs.empty:
        return []
    t = logs["time"]
    baseline = logs[(t >= windows.baseline_start) & (t < windows.baseline_end)]
    incident = logs[(t >= windows.incident_start) & (t <= windows.incident_end)].sort_values("time")
    if incident.empty:
        return []
    mined = templates if templates is not None else Templates()
    miner, known, mine = mined.miner, mined.known, mined.mine

    base_counts: Counter[tuple[str, int]] = Counter()
    for service, line in zip(baseline["service"].tolist(), baseline["line"].tolist(), strict=True):
        base_counts[(service, mine(line)[0])] += 1
    counts: Counter[tuple[str, int]] = Counter()
    errors: dict[tuple[str, int], bool] = {}
    samples: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    traces: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    first: dict[tuple[str, int], datetime] = {}
    for service, line, trace_id, moment in zip(
        incident["service"].tolist(),
        incident["line"].tolist(),
        incident["trace_id"].tolist(),
        incident["time"].tolist(),
        strict=True,
    ):
        cluster, is_error = mine(line)
        key = (service, cluster)
        counts[key] += 1
        errors[key] = errors.get(key, False) or is_error
        first.setdefault(key, moment)
        if len(samples[key]) < MAX_SAMPLES:
            samples[key].append(line[:500])
        if trace_id and len(traces[key]) < MAX_SAMPLES and trace_id not in traces[key]:
            traces[key].append(trace_id)
    baseline_minutes = covered_minutes(
        baseline["time"], windows.baseline_start, windows.baseline_end
    )
    incident_minutes = _minutes(windows.incident_start, windows.incident_end)
    ratio = incident_minutes / baseline_minutes
    texts = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    texts[OTHER_LINES] = f"(lines of more than {MAX_CLUSTERS} other templates)"
    findings = _error_rates(counts, errors, base_counts, known, ratio, incident_minutes, threshold)
    findings += _templates(
        counts,
        errors,
        base_counts,
        texts,
        samples,
        traces,
        first,
        (baseline_minutes, incident_minutes),
        threshold,
    )
    findings.sort(key=lambda f: -f.score)
    return findings


def _error_rates(
    counts: Counter[tuple[str, int]],
    errors: dict[tuple[str, int], bool],
    base_counts: Counter[tuple[str, int]],
    known: dict[str, tuple[int, bool]],
    ratio: float,
    incident_minutes: float,
    threshold: float,
) -> list[Finding]:
    """Each service's error-level line rate, whatever the templates."""
    error_clusters = {cluster for cluster, is_error in known.values() if is_error}
    now: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for (service, cluster), count in counts.items():
        if errors[(service, cluster)]:
            now[service] += count
    for (service, cluster), count in base_counts.items():
        if cluster in error_clusters:
            before[service] += count
    findings = []
    for service, count in now.items():
        score = poisson_surge(count, before[service], ratio)
        if score < threshold:
            continue
        rate, was = count / incident_minutes, before[service] * ratio / incident_minutes
        findings.append(
            Finding(
                service=service,
                kind="log",
                signal="error-level lines",
                score=score,
                before=was,
                after=rate,
                unit="lines/min",
                change_time=None,
                detail=f"error-level lines at {rate:.3g}/min (baseline {was:.3g}/min)",
            )
        )
    return findings


def _templates(
    counts: Counter[tuple[str, int]],
    errors: dict[tuple[str, int], bool],
    base_counts: Counter[tuple[str, int]],
    templates: dict[int, str],
    samples: defaultdict[tuple[str, int], list[str]],
    traces: defaultdict[tuple[str, int], list[str]],
    first: dict[tuple[str, int], datetime],
    minutes: tuple[float, float],
    threshold: float,
) -> list[Finding]:
    """Templates new or surging against the baseline (`minutes`: baseline, incident)."""
    ratio = minutes[1] / minutes[0]
    findings = []
    for key, count in counts.items():
        service, cluster = key
        seen_before = base_counts.get(key, 0)
        score = poisson_surge(count, seen_before, ratio)
        if not errors[key]:
            score *= NON_ERROR_WEIGHT
        if score < threshold:
            continue
        novelty = (
            "new" if seen_before == 0 else f"{count / max(seen_before * ratio, 1e-9):.3g}x more"
        )
        level = "error" if errors[key] else "log"
        findings.append(
            Finding(
                service=service,
                kind="log",
                signal=templates.get(cluster, "")[:300],
                score=score,
                before=seen_before / minutes[0],
                after=count / minutes[1],
                unit="lines/min",
                change_time=first[key],
                detail=(
                    f"{novelty} {level} template ({count} lines): "
                    f"{templates.get(cluster, '')[:120]}"
                ),
                samples=samples[key],
                trace_ids=traces[key],
            )
        )
    return findings
