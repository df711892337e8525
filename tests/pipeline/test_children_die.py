"""The analysis processes end with their server, even when it is SIGKILLed: none is left behind,
reparented and idle. The portable watchdog does it alone where Linux's parent-death signal is
absent, and a child whose parent died before it could ask for the signal ends at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.payloads import alert, payload
from tests.support.processes import Service, wait_until

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child its new parent has not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def niceness(pid: int) -> list[int]:
    """The nice value of each thread of the process."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            values.append(int((task / "stat").read_text().rpartition(")")[2].split()[16]))
        except (OSError, IndexError):
            continue
    return values


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def report_stored(service: Service) -> bool:
    incidents = httpx.get(f"{service.url}/api/v1/incidents", timeout=5).json()["items"]
    if not incidents:
        return False
    detail = httpx.get(f"{service.url}/api/v1/incidents/{incidents[0]['id']}", timeout=5).json()
    return detail.get("report") is not None


def test_sigkill_of_the_server_ends_its_analysis_processes(tmp_path: Path) -> None:
    service = Service(
        tmp_path, env={"CORRELATOR_DATABASE_URL": f"sqlite:///{tmp_path}/correlator.db"}
    ).start()
    spawned: set[int] = set()
    try:
        assert service.process is not None
        server = service.process.pid
        # The pool starts with the first analysis: one alert, analysed once its report is stored.
        group = payload([alert("0123456789abcdef", labels={"alertname": "Orphans"})])
        httpx.post(f"{service.url}/api/v1/alerts", json=group, timeout=10).raise_for_status()
        wait_until(lambda: report_stored(service), timeout_s=60, what="the incident's report")
        spawned = children(server)
        analysis = {pid for pid in spawned if "spawn_main" in cmdline(pid)}
        assert analysis, f"no analysis process among {[cmdline(p) for p in spawned]}"
        # Below the server's priority, every thread (numpy's included) once initialized.
        wait_until(
            lambda: all(min(niceness(pid), default=0) >= 10 for pid in analysis),
            timeout_s=30,
            what="the analysis processes at nice 10",
        )

        service.kill()

        wait_until(
            lambda: not any(alive(pid) for pid in spawned),
            timeout_s=30,
            what=f"the server's children {sorted(spawned)} to end",
        )
    finally:
        service.kill()
        for pid in spawned:  # a failed run leaves no orphans either
            if alive(pid) and "multiprocessing" in cmdline(pid):
                os.kill(pid, signal.SIGKILL)


# A middle process starts a grandchild that binds its life to the middle one (named by pid: it
# may be gone before the grandchild asks), prints the grandchild's pid, and waits to be killed.
MIDDLE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(child.pid, flush=True)
time.sleep(600)
"""
WATCHDOG_ONLY = """
import sys, time
from correlator.lifetime import watch_parent
watch_parent(int(sys.argv[1]), interval_s=0.1)
time.sleep(600)
"""


def test_the_watchdog_alone_ends_a_child_whose_parent_was_killed() -> None:
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, WATCHDOG_ONLY],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert middle.stdout is not None
    grandchild = int(middle.stdout.readline())
    try:
        assert alive(grandchild)
        middle.send_signal(signal.SIGKILL)
        middle.wait(timeout=10)
        wait_until(lambda: not alive(grandchild), timeout_s=30, what="the orphan to end")
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_ends_at_once() -> None:
    # Its parent is not the pid it was started for: that parent died before prctl ran.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from correlator.lifetime import die_with_parent\n"
            "die_with_parent(1)\n"  # pid 1 is never this test's process
            "print('still running')",
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, b"")
