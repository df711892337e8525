"""The correlation report: what one analysis of an incident found (pure, no I/O).

The pipeline builds a `Report`, the store keeps it as JSON (`store/queries.py` is the one place
that dumps and validates it), the API serves it inside `IncidentDetail` and the OpenAPI
description is generated from these models, so the three cannot drift.

Reports written by earlier releases still load. The shape only ever grew: `changes` (deploys),
then `series` (the graphs), then `analysed_for` (replicas share analyses), then each suspect's
`confidence` and `weak` (calibrated evidence), then `app` and `inputs` (kept inputs). Missing
fields take their defaults, fields this release does not know are kept (`extra="allow"`) and
served back, and `_upgrade` fills what a default cannot (a suspect's rank is its place).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _none(value: object) -> bool:
    """A field that older reports lack, and that a report has only when it applies, is left
    out of the JSON when it is None (as the pipeline always did) rather than written as null."""
    return value is None


class Document(BaseModel):
    """A part of a stored document: frozen once built, unknown fields kept (a newer release
    wrote them), and in the response schema every field with a default is still required,
    since the JSON always has it."""

    model_config = ConfigDict(
        frozen=True, extra="allow", json_schema_serialization_defaults_required=True
    )


class Windows(Document):
    """The analysed time ranges (RFC 3339, UTC)."""

    baseline_start: datetime | None = Field(None, description="Start of the baseline window.")
    baseline_end: datetime | None = Field(None, description="End of the baseline window.")
    incident_start: datetime | None = Field(None, description="Start of the incident window.")
    incident_end: datetime | None = Field(None, description="End of the incident window.")
    onset: datetime | None = Field(None, description="When the first firing alert started.")


class Scope(Document):
    """Which services the analysis looked at."""

    alerting: list[str] = Field(default=[], description="The services the alerts name.")
    services: list[str] = Field(
        default=[], description="Every service analysed: the alerting ones and their neighbours."
    )


class Evidence(Document):
    """One piece of evidence about a suspect: a metric, log, trace or deploy that changed."""

    kind: str = Field(description='"metric", "log", "trace", "change" (a deploy), …')
    signal: str = Field(description="What changed: a metric signal, a log template, an operation…")
    detail: str = Field(description='In words: "error_ratio rose from 0.1% to 12%".')
    score: float = Field(0.0, description="How far from normal (robust z-like, ≥ 0).")
    before: float | None = Field(None, description="The baseline's value, when it has one.")
    after: float | None = Field(None, description="The incident's value, when it has one.")
    unit: str = Field("", description="The unit of `before` and `after`.")
    change_time: datetime | None = Field(None, description="When the change began.")
    query: str = Field("", description="The PromQL or LogQL it came from, or the deploy's source.")
    samples: list[str] = Field(default=[], description="Log lines that show it.")
    trace_ids: list[str] = Field(default=[], description="Traces that show it.")
    links: dict[str, str] = Field(
        default={}, description='Where to look: "explore" (Grafana), "trace_1"… (Jaeger).'
    )


class Suspect(Document):
    """A service that may have started the incident, ranked."""

    rank: int = Field(description="1 is the likeliest cause.")
    service: str = Field(description="The service (its WebApplication name, else its label).")
    score: float = Field(0.0, description="The ranking score (its own evidence and the graph's).")
    confidence: float | None = Field(
        None,
        description="How sure its own evidence is, 0 to 1; null in reports written before "
        "evidence was calibrated.",
    )
    weak: bool = Field(
        False, description="Listed only for a small deviation below every threshold."
    )
    reason: str = Field("", description="Why, in words.")
    change_time: datetime | None = Field(None, description="When it began to change.")
    caused_by: list[str] = Field(
        default=[], description="Services it calls that changed first (lower its score)."
    )
    affects: list[str] = Field(
        default=[], description="Services calling it that degraded after it (raise its score)."
    )
    evidence: list[Evidence] = Field(default=[], description="Strongest first.")


class Missing(Document):
    """What the analysis could not see, and why (the report is then partial)."""

    backend: str = Field(description='"prometheus", "loki", "jaeger", "analysis", "scope", …')
    what: str = Field("", description='What was not fetched: "metrics", "everything"…')
    reason: str = ""


class Change(Document):
    """A deploy of a service in scope."""

    service: str
    revision: str | None = Field(None, description="The deployed commit, when known.")
    deployed_at: datetime | None = None
    source: str = Field("", description="Where it is known from: an annotation, ReplicaSet…")
    repo: str | None = Field(None, description="The WebApplication's repository.")
    minutes_before_alert: float | None = None


class Series(Document):
    """The series behind a suspect's strongest metric evidence: one graph of the report."""

    title: str = Field(description='"service: signal"')
    service: str = ""
    signal: str = Field("", description="The metric signal drawn.")
    unit: str = ""
    change_time: datetime | None = Field(None, description="Where the graph marks the change.")
    points: list[tuple[datetime, float]] = Field(default=[], description="[time, value] pairs.")


class App(Document):
    """The app the incident is about (its WebApplication, else the first alerting service)."""

    name: str | None = Field(None, description="namespace/name")
    team: str | None = None


class Inputs(Document):
    """The analysis's inputs were kept (GET …/bundle); which kinds."""

    kinds: list[str] = []


class Report(Document):
    """The correlation report of an incident: ranked suspects with their evidence and links,
    what was missing, deploys and the graphs' series."""

    incident_id: int = Field(description="The incident this report is of.")
    generated_at: datetime = Field(description="When the analysis ran.")
    status: Literal["complete", "partial"] = Field(
        description="partial: something was missing (see `missing`)."
    )
    windows: Windows | None = Field(None, description="null when the correlation failed.")
    scope: Scope = Field(default=Scope(), description="The services analysed.")
    suspects: list[Suspect] = Field(default=[], description="At most 10, likeliest first.")
    missing: list[Missing] = Field(default=[], description="What could not be fetched.")
    changes: list[Change] = Field(default=[], description="Deploys, nearest to the alert first.")
    notes: list[str] = Field(default=[], description="What the analysis says of itself.")
    series: list[Series] = Field(default=[], description="The graphs (…/graphs/{n}.png).")
    timings_ms: dict[str, float] = Field(
        default={}, description="How long each part took (metrics, logs, analysis, total…)."
    )
    analysed_for: int | None = Field(
        None,
        exclude_if=_none,
        description="The incident whose analysis this is (another one when shared); absent "
        "from a failed correlation's report.",
    )
    app: App | None = Field(
        None, exclude_if=_none, description="Absent before the analysis knew apps."
    )
    inputs: Inputs | None = Field(
        None, exclude_if=_none, description="Present when the analysis's inputs were kept."
    )

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Older shapes: a suspect without a rank takes its place in the list, and a report
        without a status is partial exactly when something was missing."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        suspects = data.get("suspects")
        if isinstance(suspects, list):
            data["suspects"] = [
                {"rank": n, **s} if isinstance(s, dict) and "rank" not in s else s
                for n, s in enumerate(suspects, 1)
            ]
        if "status" not in data:
            data["status"] = "partial" if data.get("missing") else "complete"
        return data

    @property
    def owner(self) -> int:
        """The incident whose analysis (and kept inputs) this report is."""
        return self.analysed_for if self.analysed_for is not None else self.incident_id

    def suspect(self, service: str | None) -> Suspect | None:
        return next((s for s in self.suspects if s.service == service), None)
