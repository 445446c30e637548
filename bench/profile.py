"""Summaries of py-spy profiles (``py-spy record --format raw``: collapsed stacks).

``python -m bench.profile FILE [--top N] [--idle]`` prints the functions with the most
samples, self (the leaf frame) and inclusive (anywhere on the stack, counted once per
sample), as shares of all samples of the main thread — how RESULTS.md shows where a
worker's time goes.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# "process 123:"python -m streams.cli worker";thread (0x7f..);frame (file:line);... count"
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
IDLE = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio", "run (uvloop")


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    short = "/".join(path.split("/")[-2:]) if "/" in path else path
    return f"{match.group('func')} ({short})"


def summarize(
    text: str, thread: str | None = "MainThread"
) -> tuple[Counter[str], Counter[str], int]:
    """(self samples, inclusive samples, total samples) per frame name."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if thread is not None and not any(thread in f for f in frames[:3]):
            continue
        names = [frame_name(f) for f in frames if "(" in f and not f.startswith("thread")]
        if not names:
            continue
        count = int(count_text)
        total += count
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    return own, inclusive, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default="MainThread")
    args = parser.parse_args()
    own, inclusive, total = summarize(args.file.read_text(), args.thread or None)
    print(f"{total} samples")
    print("self:")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("inclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
