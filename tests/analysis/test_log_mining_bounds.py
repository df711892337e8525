"""Template mining is bounded whatever an app logs: each line is mined to a fixed length, and
past a number of templates a line only joins one that exists. Counted, not timed (drain3 is
quadratic in distinct, similar long lines: 400 of 2,000 tokens took 6 s)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from drain3 import TemplateMiner

from correlator.analysis import logs
from correlator.analysis.logs import MAX_MINED_CHARS, log_findings
from correlator.analysis.telemetry import log_frame
from tests.analysis.test_analysis import WINDOWS


def _hostile_lines(count: int, tokens: int) -> list[str]:
    """Distinct lines that look alike: one word in each differs (no number, nothing masked)."""
    rng = random.Random(7)
    words = [f"w{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}x" for n in range(tokens)]
    lines = []
    for _ in range(count):
        line = list(words)
        for _ in range(tokens // 10):
            line[rng.randrange(tokens)] = "".join(rng.choice("abcdefgh") for _ in range(5))
        lines.append("ERROR " + " ".join(line))
    return lines


@pytest.fixture
def mined(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    add = TemplateMiner.add_log_message

    def recording(self: TemplateMiner, message: str) -> Any:
        seen.append(message)
        return add(self, message)

    monkeypatch.setattr(TemplateMiner, "add_log_message", recording)
    return seen


def test_long_lines_are_mined_to_a_bounded_length(mined: list[str]) -> None:
    lines = _hostile_lines(40, 2000)
    rows = [(WINDOWS.incident_start + timedelta(seconds=i), "api", line, "")
            for i, line in enumerate(lines)]  # fmt: skip
    found = log_findings(log_frame(rows), WINDOWS)
    assert mined and max(len(text) for text in mined) <= MAX_MINED_CHARS
    # The evidence is still there: an app's error lines, with full-length samples.
    assert any(f.service == "api" for f in found)
    assert all(len(sample) <= 500 for f in found for sample in f.samples)


def test_past_the_cap_lines_join_existing_templates_only(
    mined: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_CLUSTERS", 5)
    rows = [(WINDOWS.incident_start + timedelta(seconds=i), "api", f"ERROR {w} {w}x {w}y {w}z", "")
            for i, w in enumerate(f"step{chr(97 + n)}" for n in range(20))]  # fmt: skip
    found = log_findings(log_frame(rows), WINDOWS)
    assert len(mined) == 5  # the other fifteen were matched, not mined
    assert any("other templates" in f.signal for f in found)
