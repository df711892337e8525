"""helm test: post a test notification to correlator's webhook, read its incident back through
the API, then resolve it. Standard library only: it runs with the correlator image's Python."""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

BASE = os.environ["CORRELATOR_URL"].rstrip("/")
RELEASE = os.environ.get("CORRELATOR_RELEASE", "correlator")
NAMESPACE = os.environ.get("CORRELATOR_NAMESPACE", "")
ATTEMPTS = int(os.environ.get("CORRELATOR_TEST_ATTEMPTS", "30"))


def credential(*, read: bool) -> str:
    token = os.environ.get("CORRELATOR_AUTH_BEARER_TOKEN")
    reader = os.environ.get("CORRELATOR_AUTH_READ_BEARER_TOKEN")
    user = os.environ.get("CORRELATOR_AUTH_BASIC_USERNAME")
    password = os.environ.get("CORRELATOR_AUTH_BASIC_PASSWORD")
    if read and reader:
        return f"Bearer {reader}"
    if token:
        return f"Bearer {token}"
    if user and password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    sys.exit("no credential: the Secret holds neither CORRELATOR_AUTH_BEARER_TOKEN nor basic auth")


def call(method: str, path: str, body: object = None, *, read: bool = False) -> dict:
    """One request, retried while the service starts (connection refused, 503)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(ATTEMPTS):
        request = urllib.request.Request(f"{BASE}{path}", data=data, method=method)  # noqa: S310
        request.add_header("Authorization", credential(read=read))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == ATTEMPTS - 1:
                sys.exit(f"{method} {path}: {exc.code} {exc.read()[:500]!r}")
        except OSError as exc:
            if attempt == ATTEMPTS - 1:
                sys.exit(f"{method} {path}: {exc}")
        time.sleep(2)
    raise AssertionError("unreachable")


def notification(status: str, started: str) -> dict:
    labels = {"alertname": "CorrelatorHelmTest", "severity": "none", "release": RELEASE}
    if NAMESPACE:
        labels["namespace"] = NAMESPACE
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "helm test: correlator receives and stores notifications"},
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else started,
        "generatorURL": "",
        "fingerprint": "0000000000000001",
    }
    return {
        "receiver": "helm-test",
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": "CorrelatorHelmTest"},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://helm-test",
        "version": "4",
        "groupKey": '{}:{alertname="CorrelatorHelmTest"}',
        "truncatedAlerts": 0,
    }


def main() -> None:
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stored = call("POST", "/api/v1/alerts", notification("firing", started))
    incident = call("GET", stored["incident_url"], read=True)
    names = {a.get("labels", {}).get("alertname") for a in incident.get("alerts", [])}
    if "CorrelatorHelmTest" not in names:
        sys.exit(f"incident {stored['incident_id']} does not hold the test alert: {incident}")
    call("POST", "/api/v1/alerts", notification("resolved", started))
    print(f"ok: notification stored as incident {stored['incident_id']} and read back")


main()
