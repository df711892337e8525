"""Backoff for background loops: how long to wait after a refusal before trying again."""

from __future__ import annotations

import random
from dataclasses import dataclass


def retry_delay_s(attempt: int, base_s: float, max_s: float) -> float:
    """The one backoff: exponential from `base_s` per attempt (1, 2, ...), capped at `max_s`,
    with full jitter over its upper half so that replicas that failed together spread out."""
    ceiling = min(max_s, base_s * 2 ** (max(attempt, 1) - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter, reset by the first success after refusals."""

    base_s: float = 0.5
    max_s: float = 30.0
    failures: int = 0

    def next_delay_s(self) -> float:
        """The wait before the next try; each call counts one more refusal."""
        self.failures += 1
        return retry_delay_s(self.failures, self.base_s, self.max_s)

    def reset(self) -> None:
        self.failures = 0
