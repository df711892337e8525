"""correlator: Alertmanager webhook receiver that correlates alerts with telemetry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("correlator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
