"""A py-spy profile of one ``salewatch worker`` replaying pre-produced events.

The same set-up as a throughput run (``bench.throughput``: a fresh copy of the seeded
events, ``SALEWATCH_WINDOW_CLOCK=event``, one worker), with ``py-spy record`` attached to
the worker once it is ready: raw collapsed stacks, gzip-compressed, for
``python -m bench.profile`` (how ``bench/profiles/*.txt.gz`` were made).

    python -m bench.record_profile OUT.txt.gz [--events 300000] [--seconds 25] [--rate 200]
        [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import PEAK_RATE, log
from bench.throughput import produce_copy
from bench.workers import WorkerProc, events_done
from bench.workload import WorkloadConfig, pre_produced
from streams.settings import load_settings


def record(
    out: Path, events: int, seconds: float, rate: int, port: int, env: dict[str, str]
) -> dict[str, float]:
    """Profile a worker for ``seconds`` while it works through ``events``; write ``out``."""
    settings = load_settings()
    log_dir = Path(settings.state_dir) / "bench" / "logs"
    start_ms = int(time.time() * 1000) - events * 1000 // PEAK_RATE - 1000
    messages = list(pre_produced(WorkloadConfig(invalid_share=0.001), events, start_ms, PEAK_RATE))
    copy = produce_copy(settings, log_dir, messages, log, window_clock="event")
    worker = WorkerProc(copy, port, extra_env=env)
    try:
        worker.start()
        worker.wait_ready()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "profile.txt"
            before = events_done(worker.metrics_text())
            command = ["py-spy", "record", "--pid", str(worker.pid), "--rate", str(rate)]
            command += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(raw)]
            subprocess.run(
                command,
                check=True,
                capture_output=True,
            )
            after = events_done(worker.metrics_text())
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(gzip.compress(raw.read_bytes()))
    finally:
        worker.stop()
        copy.cleanup()
    done = after - before
    log(f"profile → {out}: {done:,.0f} events stored while sampling")
    return {"events_while_sampling": done}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.record_profile", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--port", type=int, default=9290, help="the worker's /metrics port")
    parser.add_argument("--env", nargs="+", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    record(args.out, args.events, args.seconds, args.rate, args.port, env)


if __name__ == "__main__":
    main()
