"""OpenMetrics text → Prometheus TSDB blocks, with ``promtool tsdb create-blocks-from``.

``promtool`` reads its whole input into memory and parses it once per 2-hour block, so
one big file costs memory and many passes. :class:`BlockWriter` therefore splits the text
into files of one time window each (aligned to the window size, at most 2 h, so a file
is one block) and converts every finished window at once in the background, at most
``parallel`` ``promtool`` processes at a time, while the caller keeps producing the next
windows (the replay is one Python thread; ``promtool`` uses the other cores). Each
``promtool`` writes into its own directory; finished blocks are moved into ``data_dir``,
the text file is deleted.

Within a file, the samples of one series must be in increasing time (``promtool``
refuses out-of-order samples); series may interleave freely.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streams.backtest.errors import BacktestError
from streams.backtest.openmetrics import EOF_LINE

MAX_WINDOW_MS = 2 * 3600 * 1000


@dataclass
class _Job:
    proc: subprocess.Popen[bytes]
    text: Path
    out: Path
    log: Path


class BlockWriter:
    """Window files of OpenMetrics text, each turned into a block as soon as it is sealed.

    ``write(ts_ms, text)`` appends text whose samples all lie in the window of ``ts_ms``;
    ``seal_before(ts_ms)`` finishes every window that ends at or before ``ts_ms`` (the
    caller promises no more samples there); ``close()`` finishes the rest and waits for
    every ``promtool``. Raises :class:`BacktestError` when ``promtool`` fails.
    """

    def __init__(
        self,
        work_dir: Path,
        data_dir: Path,
        name: str,
        window_ms: int = MAX_WINDOW_MS,
        parallel: int = 2,
        promtool: str = "promtool",
    ) -> None:
        if not 0 < window_ms <= MAX_WINDOW_MS or MAX_WINDOW_MS % window_ms:
            raise ValueError("window_ms must divide 2 h")
        self.work_dir = work_dir
        self.data_dir = data_dir
        self.name = name
        self.window_ms = window_ms
        self.parallel = max(1, parallel)
        self.promtool = promtool
        self._open: dict[int, IO[str]] = {}
        self._running: list[_Job] = []
        self._count = 0
        self.blocks = 0
        self.bytes_written = 0

    def write(self, ts_ms: int, text: str) -> None:
        start = ts_ms - ts_ms % self.window_ms
        out = self._open.get(start)
        if out is None:
            path = self.work_dir / f"{self.name}-{start}.om"
            out = self._open[start] = path.open("w", encoding="utf-8", buffering=1 << 20)
        out.write(text)
        self.bytes_written += len(text)

    def seal_before(self, ts_ms: int) -> None:
        for start in sorted(self._open):
            if start + self.window_ms <= ts_ms:
                self._seal(start)

    def close(self) -> None:
        for start in sorted(self._open):
            self._seal(start)
        while self._running:
            self._finish(self._running.pop(0))

    def abort(self) -> None:
        """Stop every ``promtool`` still running and close the files (after an error)."""
        for out in self._open.values():
            out.close()
        self._open.clear()
        for job in self._running:
            job.proc.kill()
            job.proc.wait()
        self._running.clear()

    def _seal(self, start: int) -> None:
        out = self._open.pop(start)
        out.write(EOF_LINE)
        out.close()
        while len(self._running) >= self.parallel:
            self._finish(self._running.pop(0))
        self._count += 1
        text = Path(out.name)
        blocks_dir = self.work_dir / f"{self.name}-blocks-{self._count}"
        log = self.work_dir / f"{self.name}-promtool-{self._count}.log"
        blocks_dir.mkdir()
        argv = [self.promtool, "tsdb", "create-blocks-from", "openmetrics", str(text)]
        with log.open("wb") as log_out:
            try:
                proc = subprocess.Popen(
                    [*argv, str(blocks_dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_out,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                raise BacktestError(f"cannot run {self.promtool}: {exc.strerror}") from None
        self._running.append(_Job(proc, text, blocks_dir, log))

    def _finish(self, job: _Job) -> None:
        code = job.proc.wait()
        if code != 0:
            tail = job.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise BacktestError(
                f"promtool could not turn {job.text.name} into blocks (exit {code}): "
                + " / ".join(tail)
            )
        for block in job.out.iterdir():
            shutil.move(str(block), self.data_dir / block.name)
            self.blocks += 1
        job.out.rmdir()
        job.text.unlink()
        job.log.unlink()
