"""Reading the ends of log files for error messages."""

from __future__ import annotations

from collections import deque
from pathlib import Path

TAIL_LINES = 20


def size(path: Path) -> int:
    """Current length of a file (0 if missing): pass it to ``tail`` as ``start``."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def tail(path: Path, lines: int = TAIL_LINES, start: int = 0) -> str:
    """The last ``lines`` lines of a text file written after byte ``start``, indented; a
    note if there are none."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            last = deque(f.read().decode(errors="replace").splitlines(keepends=True), lines)
    except FileNotFoundError:
        return "    (no log file)"
    if not last:
        return "    (log is empty)"
    return "".join("    " + line for line in last).rstrip("\n")
