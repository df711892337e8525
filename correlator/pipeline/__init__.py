"""Alert group → scope → fan-out to the backends → analysis → report stored with the incident.

One correlation runs under one overall deadline. The call graph is read first (Jaeger's
dependencies, Istio's source/destination metrics) to widen the scope to neighbours; then every
metric signal, both log windows and both trace windows are fetched concurrently, each service
queried as its WebApplication says (else by label heuristics). Whatever does not answer in
time, or answers with an error or garbage, is named in the report's `missing` list and the
analysis runs on the rest: a report always comes out.
"""

from correlator.pipeline.core import Pipeline
from correlator.pipeline.fetch import Fetch

__all__ = ["Fetch", "Pipeline"]
