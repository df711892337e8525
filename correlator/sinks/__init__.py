"""Sinks: where developers hear about an incident. One module per kind of sink, a plug-in that
defines its settings and registers them with its factory (correlator/sinks/registry.py)."""

from __future__ import annotations

# The settings first, whichever sink module is imported: composing `notify.sinks` imports
# every sink module, and none of them may then be found half-imported.
import correlator.settings
from correlator.sinks.base import Sink, SinkRejected, SinkRetry
from correlator.sinks.registry import kinds

__all__ = ["Sink", "SinkRejected", "SinkRetry", "build_sinks"]


def build_sinks(settings: correlator.settings.Settings) -> dict[str, Sink]:
    """The configured sinks by name (settings validation already named any misconfiguration)."""
    factories = {kind.settings: kind.build for kind in kinds().values()}
    sinks: dict[str, Sink] = {}
    for spec in settings.notify.sinks:
        sink = factories[type(spec)](spec)
        sink.severities = frozenset(spec.severities)  # what every kind has, set once here
        sink.teams = frozenset(spec.teams)
        sinks[spec.name] = sink
    return sinks
