"""A child process's life bound to its parent's: it ends when the parent dies, even by SIGKILL.

Two mechanisms, because one is not enough everywhere:
  - Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`): immediate, set in the child;
  - a watchdog thread that notices `os.getppid()` change (the child is reparented when its
    parent dies), where prctl is absent, and as a second line where it is.
The parent-death signal is sent when the *thread* that started the child ends, not the whole
process: start children from a thread that lives as long as the process (the event loop's).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `signum` to this process when its parent dies; False where it cannot
    (not Linux, no libc). Safe between fork and exec (`preexec_fn`): prctl is all it calls."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum)) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, *, interval_s: float = 1.0) -> threading.Thread:
    """A daemon thread that ends this process (exit status 1) once its parent is no longer
    `parent_pid`; it wakes every `interval_s`, and costs nothing in between."""

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval_s):
            if os.getppid() != parent_pid:
                os._exit(1)  # the parent is gone: nobody will read what this process does

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def die_with_parent(parent_pid: int, *, signum: int = signal.SIGTERM) -> None:
    """In a child started by `parent_pid` (a worker's initializer): end when that parent dies.

    The parent may already be gone before the signal was asked for (it would never come), so
    the parent is checked right after; the watchdog covers the rest, and platforms without
    prctl."""
    signal_on_parent_death(signum)
    if os.getppid() != parent_pid:
        os._exit(1)
    watch_parent(parent_pid)
