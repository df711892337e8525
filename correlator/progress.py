"""Progress of the long commands (bench rca, analyze, provision, validate) on a terminal.

A bar on stderr says what is being done and how far along it is (tqdm). It is shown only when
both stdout and stderr are terminals and no machine-readable output (`--json`) was asked
for: piped, redirected or as JSON, a command prints exactly what it printed before. The bars
clear themselves when done, so the terminal keeps only the command's own output.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import Never, Protocol, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Steps(Protocol):
    """Wraps an iterable, reporting each item as a step of `what`."""

    def __call__(
        self, items: Iterable[T], what: str, *, total: int | None = None
    ) -> Iterable[T]: ...


def quiet(items: Iterable[T], what: str, *, total: int | None = None) -> Iterable[T]:
    """No progress: the items as they are."""
    return items


class Progress:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def on_terminal(cls, *, machine_output: bool = False) -> Progress:
        """Shown on a terminal only, never with machine-readable output."""
        return cls(enabled=not machine_output and sys.stdout.isatty() and sys.stderr.isatty())

    def steps(self, items: Iterable[T], what: str, *, total: int | None = None) -> Iterable[T]:
        if not self.enabled:
            return items
        if total is None and isinstance(items, Sized):
            total = len(items)
        return self._bar_over(items, what, total)

    def _bar_over(self, items: Iterable[T], what: str, total: int | None) -> Iterator[T]:
        with _bar(what, total) as bar:
            for item in items:
                yield item
                bar.update(1)

    @contextmanager
    def counter(self, what: str, total: int | None) -> Iterator[Callable[[], None]]:
        """A bar advanced by calling what it yields (for work done out of order)."""
        if not self.enabled:
            yield lambda: None
            return
        with _bar(what, total) as bar:

            def advance() -> None:
                bar.update(1)

            yield advance

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        """One step of unknown length: its name shown while it runs."""
        with self.counter(what, 1) as done:
            yield
            done()


def _bar(what: str, total: int | None) -> tqdm[Never]:
    # The terminal's size; one that reports none (a pty never sized) counts as 100 x 20: tqdm
    # would otherwise hide the bar as being below a screen of 0 lines.
    size = shutil.get_terminal_size((100, 20))
    return tqdm(
        desc=what,
        total=total,
        file=sys.stderr,
        leave=False,
        ncols=size.columns,
        nrows=size.lines,
        mininterval=0.2,
        bar_format="{desc}: {n_fmt}/{total_fmt} |{bar:24}| {elapsed}<{remaining}"
        if total
        else "{desc}: {n_fmt} {elapsed}",
    )
