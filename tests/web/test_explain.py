"""What the incident page says of a suspect's score (pure)."""

from __future__ import annotations

from typing import Any

from correlator.models.report import Suspect
from correlator.web.explain import confidence


def suspect(**fields: Any) -> Suspect:
    return Suspect(rank=1, service="api", **fields)


def test_a_suspect_with_evidence_is_banded_by_its_score() -> None:
    assert confidence(suspect(score=0.9))["band"] == "strong"
    assert confidence(suspect(score=0.3, caused_by=["db"]))["because"].startswith("how far")
    assert "lowered: db" in confidence(suspect(score=0.3, caused_by=["db"]))["because"]


def test_a_small_deviation_is_faint_and_says_why_whatever_its_score() -> None:
    said = confidence(suspect(score=0.9, weak=True))
    assert said["band"] == "faint"
    assert said["because"].startswith("only a small deviation of its metrics")
    assert said["title"] == "faint confidence that the incident started here"
