"""The one way correlator speaks to other systems over HTTP, and the one translation of their
failures into the error tree (`correlator.errors`).

- `status.py`: an answer (status, headers, body) or a transport failure becomes
  `RemoteUnavailable` (temporary, with the Retry-After the other side gave as `delay_s`) or
  `RemoteRefused` (permanent), or the caller's subclasses of them. Pure.
- `client.py`: `OutboundClient`, the one httpx stack (backends and sinks): the in-flight budget,
  retries of idempotent requests, sharing of identical GETs, the client span, and the body cap.
- `kube.py`: kubernetes_asyncio's `ApiException` translated with the same mapping, plus what
  the Kubernetes API means by 401/403, 404, 409 and 410.

Grafana, through grafana-client, uses `status.py` and `client.traced` (provisioning/grafana.py).
"""
