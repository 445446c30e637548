"""``salewatch worker`` that logs its largest containers now and then (memory step only).

For the question the memory step raises: is RSS growth Python state (a dict, set or
deque that keeps growing) or the allocator? Every ``SECONDS`` a daemon thread logs
``sys.getallocatedblocks()`` and the eight largest dicts, sets, lists and deques, each
with the type of the object holding it. Containers of atomic values are not tracked by
the garbage collector, so the probe looks at the referents of tracked objects too.

    python -m bench.probed_worker SECONDS   (SALEWATCH_* settings as for the worker)
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from collections import deque

CONTAINERS = (dict, set, frozenset, list, deque)


def largest_containers(top: int = 8) -> list[tuple[int, str, str]]:
    """(length, container type, holder type) of the ``top`` largest containers."""
    seen: set[int] = set()
    found: list[tuple[int, str, str]] = []
    for holder in gc.get_objects():
        for obj in (holder, *gc.get_referents(holder)):
            if not isinstance(obj, CONTAINERS) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if len(obj) >= 1000:
                found.append((len(obj), type(obj).__name__, type(holder).__name__))
    return sorted(found, reverse=True)[:top]


def probe(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        top = ", ".join(f"{kind} {n:,} in {holder}" for n, kind, holder in largest_containers())
        print(f"[memory-probe] blocks={sys.getallocatedblocks():,} {top}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probed_worker")
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    threading.Thread(target=probe, args=(args.seconds,), name="memory-probe", daemon=True).start()
    from streams.cli.worker import run

    return run(argparse.Namespace(metrics_port=None, app_id=None, loglevel="info"))


if __name__ == "__main__":
    sys.exit(main())
