"""``salewatch simulate``: write a simulated sale day to Kafka or to a JSON-lines file.

The stream comes from ``streams.simulation.generate`` (pure, reproducible by ``--seed``);
this module only paces it (``--speed``), sends it (``streams.kafka.producer`` or ``--out``), shows
a progress line about once a second on stderr and prints a closing summary, the ground
truth a correct pipeline must count (``--summary-json`` writes it as JSON as well).

Exit codes: 0 done, 1 Kafka unreachable or delivery failed (one line naming
``SALEWATCH_KAFKA_BOOTSTRAP``), 2 bad arguments, 130 interrupted (after flushing and
printing the summary of what was sent).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from streams.events.contract import MAX_BATCH_EVENTS
from streams.kafka.producer import ALL_TOPICS, EventProducer, ProducerError, ensure_topics
from streams.metrics.labels import PAYMENT_METHODS
from streams.settings import Settings, load_settings
from streams.simulation import (
    INCIDENT_KINDS,
    Incident,
    SimConfig,
    SpecError,
    generate,
    parse_duration,
    parse_incident,
    parse_time,
)
from streams.simulation.config import now_ms, parse_flash_sale
from streams.simulation.progress import Progress, format_summary
from streams.simulation.sinks import FileSink, KafkaSink

EXAMPLES = """examples:
  salewatch simulate --rate 200 --duration 10m          live demo to Kafka in real time
  salewatch simulate --start 2024-11-10T23:30:00+08:00 --duration 2h --rate 20 \\
      --speed 0 --seed 1 --out day.jsonl                the midnight sale, for a backtest
  salewatch simulate --speed 60 --duration 1h \\
      --incident payment_outage:alipay@20m+10m          an outage drill, a minute per second
"""
FLUSH_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


def _method_rate(text: str) -> tuple[str, float]:
    """``METHOD=P`` (a payment method and its normal success rate in (0, 1])."""
    method, eq, rate = text.partition("=")
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not eq or method.strip() not in PAYMENT_METHODS or not 0 < value <= 1:
        raise SpecError(f"bad payment success {text!r}: expected METHOD=P, e.g. card=0.93")
    return method.strip(), value


def _delay_range(text: str) -> tuple[float, float]:
    """``LOW-HIGH`` durations, e.g. ``2m-30m``."""
    low, dash, high = text.partition("-")
    if not dash:
        raise SpecError(f"bad delay range {text!r}: expected LOW-HIGH, e.g. 2m-30m")
    bounds = (parse_duration(low), parse_duration(high))
    if bounds[0] > bounds[1]:
        raise SpecError(f"bad delay range {text!r}: LOW must not exceed HIGH")
    return bounds


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` that keeps our error message (argparse drops ValueError's)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise SpecError(f"bad duration {text!r}: must be > 0")
    return seconds


def _non_negative(kind: type[int] | type[float], upper: float | None = None) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise SpecError(f"{text!r} is not {what}") from None
        if value < 0 or (upper is not None and value > upper):
            bound = f" and ≤ {upper:g}" if upper is not None else ""
            raise SpecError(f"{text!r} must be ≥ 0{bound}")
        return value

    parse.__name__ = kind.__name__
    return _arg(parse)


def _incident_kinds() -> str:
    """The incident table for ``--help``, from ``INCIDENT_KINDS`` (one source of truth)."""
    lines = ["incident kinds (--incident KIND[:ARG]@START+DURATION[:SEVERITY]):"]
    for k in INCIDENT_KINDS.values():
        lines.append(f"  {k.name}{':METHOD' if k.needs_arg else ''}: {k.effect}")
        lines.append(f"      SEVERITY: {k.severity_meaning} (default {k.default_severity:g})")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated sale day (with optional incidents) to Kafka or a file",
        description="Write a simulated sale day (traffic curve, shopper sessions, incidents)\n"
        "to Kafka in the EVENTS.md format, or to a JSON-lines file.",
        epilog=_incident_kinds() + "\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rate",
        type=_non_negative(float),
        default=100.0,
        metavar="N",
        help="base events/s, all topics, before the diurnal shape and the sale spike (default 100)",
    )
    p.add_argument(
        "--duration",
        type=_arg(_positive_duration),
        default=600.0,
        metavar="D",
        help="simulated time span: 90s, 10m, 2h, 1h30m (default 10m)",
    )
    p.add_argument(
        "--speed",
        type=_non_negative(float),
        default=1.0,
        metavar="S",
        help="simulated seconds per wall second: 1 real time, 60 a minute per"
        " second, 0 as fast as possible (default 1)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed; the same seed, start and options give the same"
        " events (default: random, printed in the summary)",
    )
    p.add_argument(
        "--start",
        type=_arg(parse_time),
        default=None,
        metavar="TIME",
        help="simulated start, ISO 8601 (naive = UTC) or epoch ms (default now)",
    )
    p.add_argument(
        "--spike",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sale-start spike at the first shop-local midnight at or after the"
        " start, ×--spike-multiplier, decaying over hours (default on)",
    )
    p.add_argument(
        "--spike-at",
        type=_arg(parse_duration),
        default=None,
        metavar="OFFSET",
        help="put the spike at this offset from the start instead, e.g. 5m",
    )
    p.add_argument(
        "--spike-multiplier",
        type=_non_negative(float),
        default=40.0,
        metavar="X",
        help="peak traffic multiplier of the spike (default 40)",
    )
    p.add_argument(
        "--spike-ramp",
        type=_arg(parse_duration),
        default=10.0,
        metavar="D",
        help="time the spike takes to reach its peak (default 10s)",
    )
    p.add_argument(
        "--spike-decay",
        type=_arg(parse_duration),
        default=None,
        metavar="D",
        help="the spike's extra traffic decays exponentially to 5 %% within D, e.g. 90m"
        " (default: a mix of a 20-minute and a 3-hour decay)",
    )
    p.add_argument(
        "--flash-sale",
        type=_arg(parse_flash_sale),
        action="append",
        default=[],
        metavar="SPEC",
        help="a flash sale, repeatable: START+DURATION:MULTIPLIER (offsets from the start),"
        " e.g. 60m+10m:6",
    )
    p.add_argument(
        "--sessions-per-min",
        type=_non_negative(float),
        default=None,
        metavar="N",
        help="base size in new sessions per minute (replaces --rate), before the diurnal"
        " shape, the spike and flash sales",
    )
    p.add_argument(
        "--payment-success",
        type=_arg(_method_rate),
        action="append",
        default=[],
        metavar="METHOD=P",
        help="normal payment success rate of a method, repeatable, e.g. card=0.93",
    )
    p.add_argument(
        "--ticket-delay",
        type=_arg(_delay_range),
        default=(300.0, 3600.0),
        metavar="LOW-HIGH",
        help="delay from a payment to its after-sales ticket, uniform (default 5m-60m)",
    )
    p.add_argument(
        "--diurnal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="daily traffic shape around --rate (mean 1 over the day; default on)",
    )
    p.add_argument(
        "--utc-offset",
        type=float,
        default=8.0,
        metavar="HOURS",
        help="the shop's local time zone for the diurnal shape and midnight (default 8, China)",
    )
    p.add_argument(
        "--warmup",
        type=_arg(parse_duration),
        default=600.0,
        metavar="D",
        help="start warm: simulate sessions from this long before the start and emit their"
        " events from the start on (default 10m; 15m+ also fills in the auto-cancels of"
        " orders created before the start)",
    )
    p.add_argument(
        "--users",
        type=_non_negative(int),
        default=100_000,
        metavar="N",
        help="user population (default 100000)",
    )
    p.add_argument(
        "--incident",
        type=_arg(parse_incident),
        action="append",
        default=[],
        metavar="SPEC",
        help="inject an incident, repeatable: KIND[:ARG]@START+DURATION[:SEVERITY], START"
        " and DURATION being offsets from the simulated start, e.g."
        " payment_outage:alipay@30m+10m (kinds below)",
    )
    p.add_argument(
        "--invalid-rate",
        type=_non_negative(float, 1.0),
        default=0.0,
        metavar="F",
        help="extra invalid messages per valid event (malformed JSON, wrong"
        " types, unknown types, absurd timestamps, ...) to test dead-lettering",
    )
    p.add_argument(
        "--batch",
        type=_non_negative(int, MAX_BATCH_EVENTS),
        default=1,
        metavar="N",
        help="send each session's clicks as JSON arrays of up to N"
        " events, like browser SDKs (Kafka only; default 1 = one event per"
        " message)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help='write one JSON object per line (the event plus "topic"; invalid'
        ' messages as {"topic", "raw"}) instead of sending to Kafka',
    )
    p.add_argument(
        "--summary-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the closing summary as JSON",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace, regions: tuple[str, ...]) -> SimConfig:
    start = args.start if args.start is not None else now_ms()
    spike_at = None if args.spike_at is None else start + round(args.spike_at * 1000)
    incidents: tuple[Incident, ...] = tuple(args.incident)
    return SimConfig(
        rate=args.rate,
        duration_s=args.duration,
        start_ms=start,
        users=args.users,
        regions=regions,
        diurnal=args.diurnal,
        spike=args.spike,
        spike_at_ms=spike_at,
        spike_multiplier=args.spike_multiplier,
        utc_offset_h=args.utc_offset,
        incidents=incidents,
        invalid_rate=args.invalid_rate,
        warmup_s=args.warmup,
        sessions_per_min=args.sessions_per_min,
        spike_ramp_s=args.spike_ramp,
        spike_decay_s=args.spike_decay,
        flash_sales=tuple(args.flash_sale),
        payment_success=tuple(args.payment_success),
        ticket_delay_s=args.ticket_delay,
    )


def event_time_warnings(config: SimConfig, speed: float, settings: Settings, now: int) -> list[str]:
    """Why a live worker would dead-letter valid simulated events for their time, if it would.

    The worker refuses events more than ``max_future_s`` ahead of its clock or older than
    ``max_event_age_days``; a fast run starting now, or a replay of an old day, hits that.
    """
    warnings = []
    wall_s = config.duration_s / speed if speed else 0.0
    ahead_ms = config.end_ms - (now + round(wall_s * 1000))
    if ahead_ms > settings.max_future_s * 1000:
        warnings.append(
            f"events up to {ahead_ms / 3_600_000:.1f} h ahead of the clock will be dead-lettered"
            f" as ts_in_future (limit {settings.max_future_s / 3600:g} h): lower --speed or"
            " start earlier"
        )
    if config.start_ms < now - settings.max_event_age_days * 86_400_000:
        warnings.append(
            f"events older than {settings.max_event_age_days} days will be dead-lettered as"
            " ts_too_old: use a later --start (or --out FILE for a backtest)"
        )
    return warnings


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    try:
        config = build_config(args, tuple(settings.regions))
    except ValueError as exc:
        print(f"salewatch simulate: error: {exc}", file=sys.stderr)
        return 2
    progress = Progress(config, args.speed, args.quiet)
    producer: EventProducer | None = None
    out: IO[bytes] | None = None
    sink: FileSink | KafkaSink
    status = 0
    try:
        if args.out is not None:
            if args.batch > 1:
                print(
                    "salewatch simulate: warning: --batch applies to Kafka only;"
                    " the file gets one event per line",
                    file=sys.stderr,
                )
            out = args.out.open("wb", buffering=1 << 20)
            sink = FileSink(out)
            target = str(args.out)
        else:
            bootstrap = settings.kafka_bootstrap
            for warning in event_time_warnings(config, args.speed, settings, now_ms()):
                print(f"salewatch simulate: warning: {warning}", file=sys.stderr)
            ensure_topics(
                bootstrap,
                settings.topic_partitions,
                [settings.kafka_topic(t) for t in ALL_TOPICS],
                connect_timeout_s=CONNECT_TIMEOUT_S,
            )
            producer = EventProducer(
                bootstrap,
                connect_timeout_s=CONNECT_TIMEOUT_S,
                compression=settings.kafka_compression_type,
            )
            sink = KafkaSink(producer, max(1, args.batch), settings)
            target = f"Kafka {bootstrap}"
        try:
            sink.write(progress.track(generate(config, seed)))
        except KeyboardInterrupt:
            status = 130
        if producer is not None:
            producer.flush(FLUSH_TIMEOUT_S)
    except ProducerError as exc:
        progress.end_line()
        print(f"salewatch simulate: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        progress.end_line()
        print(f"salewatch simulate: error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    finally:
        if producer is not None:
            producer.close()
        if out is not None:
            out.close()
    progress.end_line()
    wall_s = time.monotonic() - progress.wall_start
    result = progress.summary.as_dict()
    result.update(
        seed=seed,
        start_ms=config.start_ms,
        end_ms=config.end_ms,
        incidents=[inc.spec() for inc in config.incidents],
        messages=sink.messages,
        target=target,
        wall_s=round(wall_s, 3),
        interrupted=status == 130,
    )
    print(format_summary(result, progress))
    if args.summary_json is not None:
        args.summary_json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return status
