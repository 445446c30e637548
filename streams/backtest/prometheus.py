"""A throwaway Prometheus over the backtest's blocks: start, query, restart, stop.

It listens on a free port of 127.0.0.1, keeps its data in the backtest's own directory,
scrapes nothing, evaluates no rules, and is stopped by its PID (the ``Popen`` we started).

Settings that make it read past data the way the live Prometheus would have seen it:

* ``--storage.tsdb.retention.time=100y``: blocks older than the default 15 days would be
  deleted at start (STACK.md);
* ``--query.lookback-delta`` = the scrape or evaluation interval (the smaller) minus 1 ms:
  live, a series that stops (a recording rule that returns nothing, a target gone) gets a
  staleness marker and vanishes at once; imported blocks have no markers, so with the
  default 5 minutes a sample would be seen for 5 minutes after its series stopped. All
  backtest samples lie on the scrape grid and queries run on it, so the shorter lookback
  sees exactly the latest sample, as live;
* no query timeout and a high sample limit: a range query covers the whole period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streams.backtest.errors import BacktestError

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 3600.0
MAX_POINTS = 10_000  # Prometheus refuses ranges of more than 11,000 steps


class Series(NamedTuple):
    """One series of a range query: labels (with ``__name__`` if kept) and samples."""

    labels: dict[str, str]
    samples: list[tuple[int, str]]  # (epoch ms, value as Prometheus printed it)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayPrometheus:
    """``prometheus`` on ``data_dir``; :meth:`start`, :meth:`restart`, :meth:`stop`."""

    def __init__(
        self, data_dir: Path, lookback_ms: int, binary: str = "prometheus", log: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.lookback_ms = lookback_ms
        self.binary = binary
        self.log = log or data_dir.parent / "prometheus.log"
        self.config = data_dir.parent / "prometheus.yml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.config.write_text("# salewatch backtest: no scrapes, no rules\nglobal: {}\n")
        self.port = free_port()
        argv = [
            self.binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--query.lookback-delta={self.lookback_ms}ms",
            "--query.timeout=1h",
            "--query.max-samples=1000000000",
            "--query.max-concurrency=8",
        ]
        with self.log.open("ab") as out:
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BacktestError(f"cannot run {self.binary}: {exc.strerror}") from None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise BacktestError("the backtest Prometheus did not start: " + " / ".join(tail))
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """Stop and start again: the TSDB loads blocks added to ``data_dir`` since."""
        self.stop()
        self.start()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(self.url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_S) as resp:
                answer = orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = orjson.loads(exc.read() or b"{}")
            raise BacktestError(
                f"Prometheus refused {params.get('query', '')!r}: {answer.get('error', exc)}"
            ) from None
        except OSError as exc:
            raise BacktestError(f"Prometheus query failed: {exc}") from None
        if answer.get("status") != "success":
            raise BacktestError(f"Prometheus query failed: {answer.get('error')}")
        return answer["data"]

    def query_range(self, expr: str, start_ms: int, end_ms: int, step_ms: int) -> list[Series]:
        """``expr`` at ``start_ms, start_ms + step_ms, …, ≤ end_ms``, in pieces of at most
        ``MAX_POINTS`` steps; series of all pieces merged by labels."""
        merged: dict[bytes, Series] = {}
        piece = MAX_POINTS * step_ms
        t = start_ms
        while t <= end_ms:
            upper = min(end_ms, t + piece - step_ms)
            data = self._get(
                "/api/v1/query_range",
                {
                    "query": expr,
                    "start": _seconds(t),
                    "end": _seconds(upper),
                    "step": _seconds(step_ms),
                },
            )
            for item in data["result"]:
                labels: dict[str, str] = item["metric"]
                key = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
                series = merged.get(key)
                if series is None:
                    series = merged[key] = Series(labels, [])
                series.samples.extend((round(float(ts) * 1000), v) for ts, v in item["values"])
            t = upper + step_ms
        return list(merged.values())

    def query(self, expr: str, at_ms: int) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each result series."""
        data = self._get("/api/v1/query", {"query": expr, "time": _seconds(at_ms)})
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def __enter__(self) -> ThrowawayPrometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"
