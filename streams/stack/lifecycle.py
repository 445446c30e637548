"""``up``, ``status`` and ``down`` of the local stack: the Python API behind the CLI.

Contracts:

* ``up`` installs missing binaries, starts every service that is not running, waits (each
  wait bounded) until all four are healthy and returns their status. Services that already
  run with the same settings are left alone, so a second ``up`` only reports. A service
  whose PID file is stale is started again; one whose settings changed is restarted. If a
  service fails to start, the services this call started are stopped again and StackError
  carries the end of the failing service's log.
* ``status`` only looks: PID and health of each service, never starts or stops anything.
* ``down`` stops every daemon of this state dir (SIGTERM, bounded wait, SIGKILL), found by
  PID file and by command line, and checks that none is left. Nothing running is fine.

Commands on one state dir are serialised by a lock file (bounded wait).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings
from streams.stack import logs, processes
from streams.stack.cluster import ClusterShape
from streams.stack.endpoints import LISTEN_HOST
from streams.stack.errors import StackError
from streams.stack.health import Health
from streams.stack.install import ALL_BINARIES, ZOOKEEPER, ensure_installed
from streams.stack.layout import StateLayout
from streams.stack.services import ServiceSpec, build_specs

START_TIMEOUT_S = 60.0
LOCK_TIMEOUT_S = 120.0
_POLL_S = 0.1

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    """One service: our daemon's PID (None if not running), where it listens, whether its
    health probe passed and what the probe said."""

    name: str
    pid: int | None
    endpoint: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class StackStatus:
    """All services of one state dir, in start order."""

    state_dir: Path
    services: tuple[ServiceStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(service.healthy for service in self.services)

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.services if s.pid is not None]

    def __getitem__(self, name: str) -> ServiceStatus:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


@contextlib.contextmanager
def _locked(layout: StateLayout, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"another `salewatch stack` command has held {layout.lock_file} "
                        f"for {timeout_s:.0f} s; wait for it or stop it"
                    ) from None
                time.sleep(_POLL_S)
        yield  # the lock goes with the file descriptor


def _marker(spec: ServiceSpec, layout: StateLayout) -> str:
    return spec.marker or layout.marker


CLUSTER_FILE = "clickhouse-cluster"


def recorded_cluster(layout: StateLayout) -> ClusterShape | None:
    """The cluster shape the last ``up`` of this state dir started (None: one node)."""
    try:
        return ClusterShape.parse((layout.run_dir / CLUSTER_FILE).read_text())
    except FileNotFoundError:
        return None


def _refuse_other_shape(
    settings: Settings, layout: StateLayout, wanted: ClusterShape | None
) -> None:
    """StackError if this state dir runs ClickHouse in another shape (one node vs a
    cluster, or another cluster): starting the new one would orphan the old processes."""
    recorded = recorded_cluster(layout)
    if recorded == wanted:
        return
    running = [
        spec.name
        for spec in build_specs(settings, layout, cluster_shape=recorded)
        if spec.binary.name in ("clickhouse-server", "java") and _our_pid(spec, layout)
    ]
    if running:
        was = f"cluster {recorded}" if recorded else "one ClickHouse server"
        now = f"cluster {wanted}" if wanted else "one ClickHouse server"
        raise StackError(
            f"{layout.root} runs {was} ({', '.join(running)}); `salewatch stack down` "
            f"before starting {now}"
        )


def _our_pid(spec: ServiceSpec, layout: StateLayout) -> int | None:
    """PID of our running daemon for ``spec``: from its PID file, else from /proc."""
    pid = processes.read_pid(layout.pid_file(spec.name))
    if pid is not None and processes.is_ours(pid, spec.binary.name, _marker(spec, layout)):
        return pid
    found = processes.find_ours(spec.binary.name, _marker(spec, layout))
    return found[0] if found else None


def _reconcile_pid_file(spec: ServiceSpec, layout: StateLayout, echo: Echo) -> int | None:
    """Like ``_our_pid``, but makes the PID file agree: stale ones go, orphans are adopted."""
    pid_file = layout.pid_file(spec.name)
    recorded = processes.read_pid(pid_file)
    pid = _our_pid(spec, layout)
    if pid_file.exists() and recorded != pid:
        why = "unreadable" if recorded is None else f"pid {recorded} no longer runs it"
        echo(f"{spec.name}: stale PID file ({why})")
        pid_file.unlink()
    if pid is not None and recorded != pid:
        echo(f"{spec.name}: found pid {pid} running without PID file; adopting it")
        processes.write_pid(pid_file, pid)
    return pid


def _stop(spec: ServiceSpec, layout: StateLayout, pid: int, echo: Echo) -> None:
    echo(f"{spec.name}: stopping pid {pid}")
    processes.stop(pid, spec.stop_timeout_s)
    layout.pid_file(spec.name).unlink(missing_ok=True)


def _check_ports(specs: Sequence[ServiceSpec]) -> None:
    problems = []
    for spec in specs:
        for port in spec.ports:
            if processes.port_is_free(LISTEN_HOST, port.number):
                continue
            holder = processes.port_holder(port.number) or "another process"
            problems.append(
                f"port {port.number} ({port.purpose}) on {LISTEN_HOST} is already in use by "
                f"{holder}; stop it or choose another port with {port.setting}"
            )
    if problems:
        raise StackError("\n".join(problems))


def _failure(spec: ServiceSpec, headline: str, log_starts: Mapping[Path, int]) -> StackError:
    tails = "\n".join(
        f"  last lines of {log}:\n{logs.tail(log, start=log_starts.get(log, 0))}"
        for log in spec.logs
    )
    return StackError(f"{headline}\n{tails}")


def _wait_healthy(
    specs: Sequence[ServiceSpec],
    pids: Mapping[str, int],
    started: set[str],
    log_starts: Mapping[Path, int],
    timeout_s: float,
) -> dict[str, Health]:
    """Probe until every service is healthy; StackError on a crash or at the deadline,
    with the log lines written since ``log_starts``."""
    deadline = time.monotonic() + timeout_s
    results: dict[str, Health] = {}
    while True:
        for spec in specs:
            if spec.name in results and results[spec.name].healthy:
                continue
            pid = pids[spec.name]
            if not processes.is_running(pid):
                code = processes.exit_code(pid)
                how = f"exited with status {code}" if code is not None else "is gone"
                raise _failure(spec, f"{spec.name} (pid {pid}) {how} while starting", log_starts)
            results[spec.name] = spec.probe()
        if all(health.healthy for health in results.values()):
            return results
        if time.monotonic() >= deadline:
            spec = next(s for s in specs if not results[s.name].healthy)
            hint = "" if spec.name in started else "; it was already running: try down, then up"
            raise _failure(
                spec,
                f"{spec.name} (pid {pids[spec.name]}) not healthy after {timeout_s:.0f} s: "
                f"{results[spec.name].detail}{hint}",
                log_starts,
            )
        time.sleep(_POLL_S)


def up(
    settings: Settings,
    *,
    echo: Echo = print,
    timeout_s: float = START_TIMEOUT_S,
    cluster_shape: ClusterShape | None = None,
) -> StackStatus:
    """Bring the stack up (see module docstring); returns the status of all services.

    ``cluster_shape``: a local ClickHouse cluster instead of one server; recorded in the
    state dir, so ``status`` and ``down`` cover it."""
    layout = StateLayout.from_settings(settings)
    build_specs(settings, layout, cluster_shape=cluster_shape)  # config errors first
    layout.create()
    with _locked(layout):
        wanted = ALL_BINARIES if cluster_shape is None else (*ALL_BINARIES, ZOOKEEPER)
        _refuse_other_shape(settings, layout, cluster_shape)
        binaries = ensure_installed(wanted, layout, echo)
        specs = build_specs(settings, layout, binaries, cluster_shape=cluster_shape)
        if cluster_shape is None:
            (layout.run_dir / CLUSTER_FILE).unlink(missing_ok=True)
        else:
            (layout.run_dir / CLUSTER_FILE).write_text(f"{cluster_shape}\n")
        pids: dict[str, int] = {}
        for spec in specs:
            pid = _reconcile_pid_file(spec, layout, echo)
            if pid is None:
                continue
            if tuple(processes.cmdline(pid)) != spec.argv or not spec.files_current():
                echo(f"{spec.name}: settings changed; restarting")
                _stop(spec, layout, pid, echo)
                continue
            echo(f"{spec.name}: already running (pid {pid})")
            pids[spec.name] = pid
        to_start = [spec for spec in specs if spec.name not in pids]
        _check_ports(to_start)
        started: set[str] = set()
        log_starts = {log: logs.size(log) for spec in to_start for log in spec.logs}
        try:
            for spec in to_start:
                spec.write_files()
                pid = processes.spawn(spec.argv, layout.log_file(spec.name), spec.workdir)
                processes.write_pid(layout.pid_file(spec.name), pid)
                pids[spec.name] = pid
                started.add(spec.name)
                echo(f"{spec.name}: started (pid {pid})")
                if spec.ready_before_next:
                    _wait_healthy([spec], pids, started, log_starts, timeout_s)
            results = _wait_healthy(specs, pids, started, log_starts, timeout_s)
        except BaseException:  # includes Ctrl-C: leave no half-started daemons behind
            for spec in reversed(to_start):
                if spec.name in started:
                    _stop(spec, layout, pids[spec.name], echo)
            raise
    return StackStatus(
        layout.root,
        tuple(
            ServiceStatus(s.name, pids[s.name], s.endpoint, True, results[s.name].detail)
            for s in specs
        ),
    )


def status(settings: Settings) -> StackStatus:
    """Look at every service (PID, health probe); starts and stops nothing."""
    layout = StateLayout.from_settings(settings)
    services = []
    for spec in build_specs(settings, layout, cluster_shape=recorded_cluster(layout)):
        pid = _our_pid(spec, layout)
        if pid is not None:
            health = spec.probe()
        elif (recorded := processes.read_pid(layout.pid_file(spec.name))) is not None:
            health = Health(False, f"not running (stale PID file: pid {recorded})")
        else:
            health = Health(False, "not running")
        services.append(ServiceStatus(spec.name, pid, spec.endpoint, health.healthy, health.detail))
    return StackStatus(layout.root, tuple(services))


def down(settings: Settings, *, echo: Echo = print) -> None:
    """Stop every daemon of this state dir; StackError if one survives."""
    layout = StateLayout.from_settings(settings)
    if not layout.root.is_dir():
        echo(f"nothing to stop: {layout.root} does not exist")
        return
    specs = build_specs(settings, layout, cluster_shape=recorded_cluster(layout))
    with _locked(layout):
        for spec in reversed(specs):
            recorded = processes.read_pid(layout.pid_file(spec.name))
            running = processes.find_ours(spec.binary.name, _marker(spec, layout))
            if recorded is not None and recorded not in running:
                echo(f"{spec.name}: stale PID file (pid {recorded} is not running)")
            if not running:
                echo(f"{spec.name}: not running")
            for pid in running:
                _stop(spec, layout, pid, echo)
            layout.pid_file(spec.name).unlink(missing_ok=True)
        left = [
            f"{spec.name} (pid {pid})"
            for spec in specs
            for pid in processes.find_ours(spec.binary.name, _marker(spec, layout))
        ]
    if left:
        raise StackError(f"still running after down: {', '.join(left)}")
