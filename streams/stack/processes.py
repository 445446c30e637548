"""Daemon processes: start detached, track by PID file, recognise, stop. Linux only (/proc).

A process is *ours* when it runs, is not a zombie, its executable name is the expected one
and its command line contains the state-dir marker (``StateLayout.marker``). A PID file
whose PID is not ours is stale: the daemon died, or the PID was reused by someone else,
whom we must never signal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from streams.stack.errors import StackError

KILL_WAIT_S = 5.0
_POLL_S = 0.05

# daemons started by this process: polling them reaps them (no zombies) and keeps their
# exit status for error messages
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: Sequence[str], log_file: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session (it survives us and our terminal), stdout and
    stderr appended to ``log_file``; return its PID. Does not wait for readiness."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n=== {started} salewatch stack: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise StackError(f"cannot start {argv[0]}: {exc.strerror}") from None
    _children[proc.pid] = proc
    return proc.pid


def exit_code(pid: int) -> int | None:
    """Exit status of a daemon we started and that has exited, else None."""
    proc = _children.get(pid)
    return None if proc is None else proc.poll()


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """Arguments of a running process (empty if gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


def is_ours(pid: int, exe_name: str, marker: str) -> bool:
    args = cmdline(pid)
    return (
        bool(args)
        and os.path.basename(args[0]) == exe_name
        and any(marker in arg for arg in args)
        and is_running(pid)
    )


def find_ours(exe_name: str, marker: str) -> list[int]:
    """PIDs of our daemons running ``exe_name``, found by scanning /proc (covers a daemon
    whose PID file was lost)."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return sorted(pid for pid in pids if pid != os.getpid() and is_ours(pid, exe_name, marker))


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    partial = pid_file.with_suffix(".partial")
    partial.write_text(f"{pid}\n")
    partial.replace(pid_file)


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout_s
    while is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        # our daemons lead their own session: signal the group to reach helpers too
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop(pid: int, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL and wait ``KILL_WAIT_S``.
    Raises StackError if the process still exists after that."""
    _signal(pid, signal.SIGTERM)
    if wait_gone(pid, timeout_s):
        return
    _signal(pid, signal.SIGKILL)
    if not wait_gone(pid, KILL_WAIT_S):
        raise StackError(f"pid {pid} is still running after SIGTERM and SIGKILL")


def port_is_free(host: str, port: int) -> bool:
    """True if a server could bind ``host:port`` now (TIME_WAIT sockets do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise StackError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    return True


def _listening_inodes(port: int) -> Iterator[str]:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                    yield inode


def port_holder(port: int) -> str | None:
    """Best effort: ``"pid N (command line)"`` of the process listening on ``port``."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    args = " ".join(" ".join(cmdline(int(proc.name))).split())
                    return f"pid {proc.name} ({args[:120]})"
    return None
