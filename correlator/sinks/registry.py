"""The sink plug-ins. Each kind of sink is one module of correlator.sinks that defines its
settings (a `SinkSettingsBase` with `type: Literal["kind"]`) and registers a factory for them:

    @register(DiscordSinkSettings)
    def build(spec: DiscordSinkSettings) -> Sink: ...

`kinds()` imports every module of the package once (so a new module needs no import line
anywhere), and the settings compose the registered models into `notify.sinks`. Small and
light on purpose: the settings import it while they are being built.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_args

if TYPE_CHECKING:
    from correlator.settings.base import SinkSettingsBase
    from correlator.sinks.base import Sink

S = TypeVar("S", bound="SinkSettingsBase")


@dataclass(frozen=True)
class Kind:
    settings: type[SinkSettingsBase]
    build: Callable[[Any], Sink]


_kinds: dict[str, Kind] = {}
_loaded = False


def register(settings: type[S]) -> Callable[[Callable[[S], Sink]], Callable[[S], Sink]]:
    """Register `settings` (its `type` literal names the kind) and the decorated factory."""

    def decorate(build: Callable[[S], Sink]) -> Callable[[S], Sink]:
        (kind,) = get_args(settings.model_fields["type"].annotation)
        if kind in _kinds and _kinds[kind].settings is not settings:
            raise RuntimeError(f"two sinks register type {kind!r}")
        _kinds[kind] = Kind(settings, build)
        return build

    return decorate


def kinds() -> dict[str, Kind]:
    """Every kind of sink, by its `type`, in alphabetical order."""
    global _loaded
    if not _loaded:
        import correlator.sinks as package

        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{module.name}")
        _loaded = True
    return dict(sorted(_kinds.items()))
