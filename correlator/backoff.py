"""Backoff for background loops: how long to wait after a refusal before trying again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter, reset by the first success after refusals."""

    base_s: float = 0.5
    max_s: float = 30.0
    failures: int = 0

    def next_delay_s(self) -> float:
        """The wait before the next try; each call counts one more refusal."""
        self.failures += 1
        ceiling = min(self.max_s, self.base_s * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)

    def reset(self) -> None:
        self.failures = 0
