"""The long commands show progress on a terminal (stderr, what is being done and how far), and
print exactly what they printed before when piped or asked for JSON."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.rca.test_nezha import FAULTS, layout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# tqdm redraws with carriage returns and erases its bar with ESC[A / ESC[K when done.
CONTROL = re.compile(r"\r|\x1b\[[0-9;]*[A-Za-z]")
BAR = re.compile(r": \d+(/\d+)? (\|[^|]*\| )?\d+:\d\d")


def _environment() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    # A fixed hash seed: the ranking's reasons list set members, whose order it sets.
    return {**clean, "TERM": "xterm", "COLUMNS": "120", "PYTHONHASHSEED": "0"}


def in_terminal(*args: str) -> tuple[int, str, str]:
    """Run correlator with stdout and stderr on two terminals (ptys); what each showed."""
    masters, slaves = [], []
    for _ in range(2):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        masters.append(master)
        slaves.append(slave)
    process = subprocess.Popen(
        [sys.executable, "-m", "correlator", *args],
        stdin=subprocess.DEVNULL,
        stdout=slaves[0],
        stderr=slaves[1],
        env=_environment(),
    )
    for slave in slaves:
        os.close(slave)
    shown = {master: b"" for master in masters}
    reading = set(masters)
    while reading:
        ready, _, _ = select.select(list(reading), [], [], 300)
        assert ready, "the command neither printed nor ended in 300 s"
        for master in ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every end of the terminal is closed
                chunk = b""
            if chunk:
                shown[master] += chunk
            else:
                reading.discard(master)
                os.close(master)
    code = process.wait(timeout=60)
    out, err = (shown[m].decode(errors="replace").replace("\r\n", "\n") for m in masters)
    return code, out, err


def piped(*args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "correlator", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


def _commands(tmp_path: Path) -> dict[str, tuple[list[str], str, bool]]:
    """Each command: its arguments, what its progress says, and whether it takes --json."""
    dataset = layout(tmp_path / "bench", FAULTS[:1])
    return {
        "validate": ([str(EXAMPLES)], "reading WebApplication manifests", False),
        "provision": (
            ["--source", str(EXAMPLES), "--target", "files", "--out", str(tmp_path), "--dry-run"],
            "rendering files",
            False,
        ),
        "analyze": ([str(EXAMPLES / "bundle")], "ranking", True),
        "bench": (["rca", str(dataset)], "reading and analysing cases", True),
    }


def timeless(text: str) -> str:
    """Output without the wall-clock figures that differ between any two runs."""
    text = re.sub(r'("(ranking_)?seconds": )[\d.]+', r"\1N", text)
    return re.sub(r"\d+(\.\d+)? s\b", "N s", text)


def _own_lines(stderr: str) -> list[str]:
    """What a terminal's stderr showed of the command's own output: its lines without the
    progress bars (`what: 3/12 |███   | 00:01<00:03`, `what: 3 00:01`)."""
    segments = CONTROL.sub("\n", stderr).split("\n")
    return [s for s in segments if s.strip() and not BAR.search(s)]


@pytest.mark.timeout(900)
def test_progress_shows_on_a_terminal_and_nowhere_else(tmp_path: Path) -> None:
    for command, (args, says, takes_json) in _commands(tmp_path).items():
        code, out, err = in_terminal(command, *args)
        plain_code, plain_out, plain_err = piped(command, *args)
        # On a terminal: a progress line on stderr, saying what and how far.
        progress = [line for line in CONTROL.split(err) if says in line and BAR.search(line)]
        assert progress, (command, err)
        print(f"{command}: {progress[-1].strip()}")
        # Piped: exactly the command's own output, nothing of the progress; and on the
        # terminal the same output besides the bars.
        assert code == plain_code, (command, err, plain_err)
        assert says not in plain_err and not CONTROL.search(plain_err + plain_out), command
        assert timeless(out) == timeless(plain_out), command
        assert _own_lines(err) == [line for line in plain_err.split("\n") if line.strip()]
        if takes_json:
            code, out, err = in_terminal(command, *args, "--json")
            assert code == 0 and err == "", (command, err)  # --json: nothing extra, even here
            assert timeless(piped(command, *args, "--json")[1]) == timeless(out)
