"""Reading dataset CSV files that are dirty, as real ones are: a row that cannot be read is
skipped and counted per file (`Problems`), never the whole run (I/O)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

MAX_REASONS = 5


@dataclass(slots=True)
class Problems:
    """What could not be read, per file: skipped rows and why (the first few reasons)."""

    rows: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, path: Path, reason: str, count: int = 1) -> None:
        name = str(path)
        self.rows[name] = self.rows.get(name, 0) + count
        notes = self.reasons.setdefault(name, [])
        if len(notes) < MAX_REASONS:
            notes.append(reason)

    def note(self, path: Path, reason: str) -> None:
        self.skip(path, reason, 0)

    def json(self) -> dict[str, dict[str, object]]:
        return {
            name: {"skipped_rows": self.rows[name], "reasons": self.reasons.get(name, [])}
            for name in sorted(self.rows)
        }


def read_table(
    path: Path, required: Sequence[str], problems: Problems, *, numeric: Sequence[str] = ()
) -> pd.DataFrame:
    """A CSV file as strings, its unreadable rows skipped and counted: rows with too many
    fields (two rows run together), too few, or an unreadable value in a `numeric` column.
    Bad bytes become U+FFFD. A file that cannot be read at all is noted and yields no rows."""
    try:
        if path.stat().st_size == 0:
            problems.note(path, "empty file")
            return pd.DataFrame(columns=list(required))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(
                path, dtype=str, on_bad_lines="warn", encoding_errors="replace", engine="c"
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        problems.note(path, f"unreadable: {str(exc).strip()[:200]}")
        return pd.DataFrame(columns=list(required))
    for warning in caught:
        for text in str(warning.message).strip().splitlines():
            if text.startswith("Skipping line"):
                problems.skip(path, text.strip().rstrip("."))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.note(path, f"no column {', '.join(missing)}: file skipped")
        return pd.DataFrame(columns=list(required))
    bad = frame[list(required)].isna().any(axis=1)
    for column in numeric:
        bad |= pd.to_numeric(frame[column], errors="coerce").isna()
    if bad.any():
        # Line numbers as in the file: the header is line 1.
        lines = [str(i + 2) for i in np.flatnonzero(bad.to_numpy())[:3]]
        problems.skip(
            path, f"lines {', '.join(lines)}…: missing or unreadable fields", int(bad.sum())
        )
        frame = frame[~bad]
    return frame.reset_index(drop=True)
