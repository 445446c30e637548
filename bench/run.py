"""Run every benchmark of issue 8 in one go; print a table, write results and a chart.

    salewatch bench [--quick] [--events N] [--only STEP ...] [--skip STEP ...]
    python -m bench.run  (same options)

Steps (``bench.options.STEPS``), in order, on the running local stack:

1. ``throughput`` — one set of pre-produced events (default 1M), copied byte for byte
   into fresh topics for each consumer: the ceiling, the Faust floor, ``salewatch worker``;
2. ``variants``   — the same for each settings variant of the worker (``bench.variants``);
3. ``scaleout``   — 1 vs 2 workers on the 4-partition copies;
4. ``freshness``  — 2 workers under 5,000 events/s, a 20,000 events/s burst and 50,000
   events/s, with markers (``bench.freshness``);
5. ``memory``     — one worker's RSS after 1M, 5M, 10M events of 1M users;
6. ``rebuild``    — peak RSS of one state rebuild per catch-up length (5, 10, 20, 60 minutes
   at 5,000 events/s), this tree's against ``--rebuild-baseline``'s (``bench.rebuild_memory``).

Each figure carries the machine's load (1-minute load average at start and end, busy
cores) since the machine is shared. Results go to ``--out`` (JSON) and ``--chart`` (PNG).
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import freshness, memory, rebuild_memory, report, throughput
from bench.committed import versus_committed
from bench.options import STEPS, add_arguments
from bench.throughput import WorkerSpec
from bench.variants import FRESHNESS_RUNS, FRESHNESS_RUNS_QUICK, VARIANTS
from bench.workers import BenchEnv
from bench.workload import Message, WorkloadConfig, pre_produced
from streams.settings import Settings, load_settings

PEAK_RATE = 20_000  # event-time rate of the pre-produced sale peak (events/s)
INVALID_SHARE = 0.001


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {}
    for package in ("faust-streaming", "aiokafka", "orjson", "clickhouse-driver", "uvloop"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit,
        "broker": "tansu 0.6.0 (memory storage)",
        "clickhouse": "18.16.1",
    }


class Runner:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.quick: bool = args.quick
        self.events: int = args.events or (50_000 if self.quick else 1_000_000)
        self.log_dir = Path(settings.state_dir) / "bench" / "logs"
        self.port = args.port_base
        self.results: dict[str, Any] = {
            "command": " ".join(["salewatch bench", *sys.argv[1:]]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": machine_info(),
            "events": self.events,
            "quick": self.quick,
            "max_array": args.max_array,
        }
        self._messages: list[Message] | None = None

    def messages(self) -> list[Message]:
        if self._messages is None:
            log(f"generating {self.events:,} mixed events (seeded)")
            start_ms = int(time.time() * 1000) - self.events * 1000 // PEAK_RATE - 1000
            config = WorkloadConfig(invalid_share=INVALID_SHARE, max_array=self.args.max_array)
            self._messages = list(pre_produced(config, self.events, start_ms, PEAK_RATE))
            self.results["workload"] = report.workload_summary(self._messages)
        return self._messages

    def copy(self, **overrides: Any) -> BenchEnv:
        return throughput.produce_copy(
            self.settings, self.log_dir, self.messages(), log, **overrides
        )

    def step(self, name: str, action: Callable[[], Any]) -> None:
        wanted = self.args.only or STEPS
        if name not in wanted or name in self.args.skip:
            return
        log(f"== {name}")
        started = time.monotonic()
        try:
            self.results[name] = action()
        except Exception as exc:
            log(f"   {name} failed: {exc!r}")
            self.results[name] = {"error": repr(exc)}
        log(f"   {name} took {time.monotonic() - started:.0f} s")
        self.save()

    def save(self) -> None:
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(json.dumps(self.results, indent=1, default=str))

    # ---------------------------------------------------------------- steps

    def throughput(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        env = self.copy(window_clock="event")
        try:
            log("   ceiling: aiokafka getmany + orjson")
            out["ceiling"] = throughput.measure_ceiling(env, self.events)
            log(f"   ceiling: {out['ceiling']['rate']:,.0f} events/s")
            log("   Faust floor: bare agent, decode only")
            out["floor"] = throughput.measure_floor(env, self.events, log)
            log(f"   Faust floor: {out['floor']['rate']:,.0f} events/s")
        finally:
            env.cleanup()
        if self.wanted(["worker"]):
            out["worker"] = self.worker_run("worker", workers=1)
        return out

    def worker_run(self, variant: str, workers: int) -> dict[str, Any]:
        log(f"   {variant}, {workers} worker(s)")
        env = self.copy(window_clock="event")
        try:
            result = throughput.measure_workers(
                env, self.events, log, workers=workers, port_base=self.port, spec=VARIANTS[variant]
            )
        finally:
            env.cleanup()
        log(
            f"   {variant}, {workers} worker(s): {result['rate']:,.0f} events/s, "
            f"{result['cpu_us_per_event']} µs CPU/event"
        )
        return result

    def wanted(self, names: list[str]) -> list[str]:
        chosen: list[str] | None = self.args.variants
        return [n for n in names if chosen is None or n in chosen]

    def variants(self) -> dict[str, Any]:
        names = [] if self.quick else [v for v in VARIANTS if v != "worker" and "probe" not in v]
        return {name: self.worker_run(name, workers=1) for name in self.wanted(names)}

    def scaleout(self) -> dict[str, Any]:
        """2 workers of the shipped worker, and of the variants ``--variants`` names."""
        asked = [v for v in self.args.variants or [] if v != "worker" and "probe" not in v]
        names = self.wanted(["worker"]) + [v for v in asked if v in VARIANTS]
        return {name: self.worker_run(name, workers=2) for name in names}

    def freshness(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        runs = FRESHNESS_RUNS_QUICK if self.quick else FRESHNESS_RUNS
        if self.args.freshness_rates:
            runs = tuple(
                ("worker", int(rate), float(seconds))
                for rate, seconds in (spec.split(":") for spec in self.args.freshness_rates)
            )
        for variant, rate, seconds in runs:
            if variant not in self.wanted([variant]):
                continue
            key = f"{variant}@{rate}"
            spec = VARIANTS[variant]
            log(f"   {variant}: {rate:,} events/s for {seconds:.0f} s, 2 workers")
            env = BenchEnv.create(self.settings, self.log_dir)
            env.create_topics()
            env.migrate()
            try:
                result = freshness.measure(
                    env,
                    rate,
                    seconds,
                    log,
                    workers=2,
                    port_base=self.port,
                    spec=spec,
                    max_array=self.args.max_array,
                )
                result["settings"] = spec.extra_env
            except Exception as exc:
                log(f"   {key} failed: {exc!r}")
                result = {"error": repr(exc)}
            finally:
                env.cleanup()
            out[key] = result
            if "to_metrics" in result:
                m, c = result["to_metrics"], result["to_clickhouse"]
                log(
                    f"   {key}: produced {result['rate_produced']:,.0f}/s; /metrics p50 "
                    f"{m['p50']:.2f} p99 {m['p99']:.2f} s; ClickHouse p50 {c['p50']:.2f} "
                    f"p99 {c['p99']:.2f} s; backlog at end {result['backlog_at_load_end']:,.0f}"
                )
        return out

    def memory(self) -> dict[str, Any]:
        default = [50_000, 100_000, 200_000] if self.quick else [1_000_000, 5_000_000, 10_000_000]
        checkpoints = self.args.memory_events or default
        base = VARIANTS[self.args.memory_variant]
        extra = dict(item.split("=", 1) for item in self.args.memory_env)
        spec = WorkerSpec(base.command, {**(base.extra_env or {}), **extra})
        result = memory.measure(
            self.settings, self.log_dir, checkpoints, log, port=self.port, spec=spec
        )
        return {**result, "variant": self.args.memory_variant, "env": extra}

    def rebuild(self) -> dict[str, Any]:
        default = [1.0, 2.0, 4.0] if self.quick else [5.0, 10.0, 20.0, 60.0]
        result = rebuild_memory.measure(
            self.settings,
            self.log_dir,
            self.args.rebuild_minutes or default,
            log,
            baseline=self.args.rebuild_baseline,
            baseline_up_to=self.args.rebuild_baseline_up_to,
        )
        print(rebuild_memory.table(result), flush=True)
        return result


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # unwind through the ``finally`` blocks: workers stopped, topics and databases dropped
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    settings = load_settings()
    runner = Runner(args, settings)
    log(
        f"salewatch bench: {runner.events:,} events, {'quick' if args.quick else 'full'} run; "
        f"results → {args.out}"
    )
    runner.step("throughput", runner.throughput)
    runner.step("variants", runner.variants)
    runner.step("scaleout", runner.scaleout)
    runner.step("freshness", runner.freshness)
    runner.step("memory", runner.memory)
    runner.step("rebuild", runner.rebuild)
    runner.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    runner.save()
    print(report.table(runner.results))
    compared = versus_committed(runner.results)
    if compared is not None:
        print(f"\n{compared}")
    try:
        report.chart(runner.results, args.chart)
        log(f"chart → {args.chart}")
    except ImportError:
        log("matplotlib is not installed: no chart (pip install matplotlib)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
