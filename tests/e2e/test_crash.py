"""SIGKILL while notifications arrive: every acknowledged group survives, no work is lost."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.payloads import alert, payload
from tests.support.processes import Service, wait_until

SENDERS = 12


def send_until_refused(url: str, start: int, acked: list[str], stop: threading.Event) -> None:
    """Post distinct groups until the service is gone; remember which were acknowledged."""
    with httpx.Client(timeout=5) as client:
        n = start
        while not stop.is_set():
            key = f"crash-{n}"
            body = payload(
                [alert(f"{n:016x}", labels={"alertname": "Crash", "n": str(n)})], group_key=key
            )
            try:
                response = client.post(url, json=body)
            except httpx.HTTPError:
                return  # the process is gone
            if response.status_code == 200:
                acked.append(key)
            n += SENDERS


def stored_group_keys(service: Service) -> dict[str, int]:
    keys: dict[str, int] = {}
    url = f"{service.url}/api/v1/incidents?limit=500"
    while url:
        response = httpx.get(url, timeout=10)
        page = response.json()
        keys.update({item["group_key"]: item["alerts_total"] for item in page["items"]})
        url = (
            f"{service.url}{response.headers['Link'][1:].split('>')[0]}"
            if page["next_cursor"]
            else ""
        )
    return keys


def queue_depth(service: Service) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("correlator_work_queue_depth{")
    )


def test_sigkill_loses_no_acknowledged_group_and_no_work(
    e2e_database_url: str, tmp_path: Path
) -> None:
    # No consumer in the first life, so work items are certainly unfinished when it dies.
    service = Service(
        tmp_path, env={"CORRELATOR_DATABASE_URL": e2e_database_url, "CORRELATOR_QUEUE_WORKERS": "0"}
    ).start()
    acked: list[str] = []
    stop = threading.Event()
    with ThreadPoolExecutor(SENDERS) as pool:
        for start in range(SENDERS):
            pool.submit(send_until_refused, f"{service.url}/api/v1/alerts", start, acked, stop)
        try:
            wait_until(lambda: len(acked) >= 300, timeout_s=60, what="300 acknowledged groups")
            service.kill()  # mid-stream: requests are in flight and batches uncommitted
        finally:
            stop.set()  # else a failed wait leaves the senders, and the pool's exit, hanging
            service.kill()
    assert len(acked) >= 300

    service.start(CORRELATOR_QUEUE_WORKERS="2")
    try:
        stored = stored_group_keys(service)
        missing = [key for key in acked if key not in stored]
        assert missing == [], f"{len(missing)} acknowledged groups were lost"
        # Nothing is half-written: each stored group has its alert.
        assert set(stored.values()) == {1}
        # Every unfinished work item is processed after the restart.
        wait_until(lambda: queue_depth(service) == 0, timeout_s=60, what="an empty work queue")
        text = httpx.get(f"{service.url}/metrics", timeout=10).text
        done = next(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('correlator_work_items_processed_total{outcome="done"}')
        )
        assert done == len(stored)
        sample = httpx.get(f"{service.url}/api/v1/incidents/1", timeout=10).json()
        assert [w["state"] for w in sample["work_items"]] == ["done"]
    finally:
        service.stop()
