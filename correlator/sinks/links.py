"""The links a responder clicks next, in the formats their targets document (pure).

- Alertmanager's silence form, prefilled: `<externalURL>/#/silences/new?filter={a="x",b="y"}`
  (the UI's `filter` parameter takes a matcher list; percent-encoded as a whole).
- Kiali's graph around a workload: `<kiali>/console/graph/node/namespaces/<ns>/workloads/<w>`,
  or the namespace's graph `<kiali>/console/graph/namespaces/?namespaces=<ns>` (routes of
  Kiali's console; `<kiali>` includes its web root, `/kiali` by default).
- Grafana Explore on a query: `pipeline/report.EvidenceLinks` builds it (`/explore?schemaVersion=1&
  panes=…`, Grafana 10 and later).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

# Labels Alertmanager adds or that differ per alert of a group; a silence does not need them.
_NOT_MATCHERS = frozenset({"__name__"})


def _web(url: str | None) -> str | None:
    return url.rstrip("/") if url and url.startswith(("https://", "http://")) else None


def matcher_value(value: str) -> str:
    """A label value as a double-quoted matcher value (Prometheus' escaping)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alertmanager_silence(external_url: str | None, labels: Mapping[str, str]) -> str | None:
    """Alertmanager's new-silence form with one equality matcher per label; None without an
    http(s) external URL or labels."""
    base = _web(external_url)
    matchers = [
        f'{name}="{matcher_value(value)}"'
        for name, value in sorted(labels.items())
        if name not in _NOT_MATCHERS and value
    ]
    if base is None or not matchers:
        return None
    return f"{base}/#/silences/new?filter={quote('{' + ','.join(matchers) + '}', safe='')}"


def kiali_graph(kiali_url: str | None, namespace: str | None, workload: str | None) -> str | None:
    """Kiali's graph centred on the workload in its namespace (the namespace's graph when the
    workload is not known); None without Kiali or a namespace."""
    base = _web(kiali_url)
    if base is None or not namespace:
        return None
    if workload:
        path = f"namespaces/{quote(namespace, safe='')}/workloads/{quote(workload, safe='')}"
        return f"{base}/console/graph/node/{path}"
    return f"{base}/console/graph/namespaces/?{urlencode({'namespaces': namespace})}"
