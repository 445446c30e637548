"""The soak test, short: the CI version of ``make soak`` (``tests/faults/soak.py``).

Two workers, a live stream, one fault of every kind (SIGKILL, ClickHouse restart, broker
restart, rebalance, poison: the deck deals each kind once before any twice), one every
``FAULT_EVERY_S`` over the 5 minutes; then the raw tables and the rollups must equal the
truth and every poison message must be on ``dead_letters`` with its reason. ~6.5 minutes in
all, setup included.

The rate is a fifth of the 30-minute soak's 5,000 events/s (``make soak``, figures in
docs/reliability.md): the short version is about the faults, and must pass on a shared CI
box next to the rest of the suite. The seed is random and printed (``SOAK_SEED=N`` replays
one).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.soak import FAULTS, Config, Result, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # the run is ~6.5 min

MINUTES = 5.0
RATE = 1000
FAULT_EVERY_S = 55  # the 5 kinds at 10, 65, 120, 175 and 230 s: the last one 70 s before the end
FIRST_FAULT_S = 10


@pytest.fixture(scope="module")
def soak(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """The run (the shared stack is only the settings' base and the installed binaries:
    every service here is a throwaway one)."""
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(2**31))
    workdir: Path = tmp_path_factory.mktemp("soak")
    return run(
        Config(
            MINUTES,
            RATE,
            FAULT_EVERY_S,
            workdir,
            seed,
            first_fault_s=FIRST_FAULT_S,
            max_faults=len(FAULTS),
        ),
        stack_settings,
    )


def test_every_kind_of_fault_was_applied(soak: Result) -> None:
    assert Counter(f.kind for f in soak.faults) == Counter(FAULTS), soak.summary


def test_the_stream_ran_at_the_rate(soak: Result) -> None:
    """A soak that produced little proves little: at least 90 % of rate × the minutes."""
    produced = sum(soak.produced.values())
    assert produced >= 0.9 * RATE * MINUTES * 60, soak.summary
    assert soak.delivery_failures == 0, soak.summary


def test_raw_tables_hold_every_valid_event_exactly_once(soak: Result) -> None:
    for topic, (final, distinct, _) in soak.raw.items():
        assert (final, distinct) == (soak.produced[topic], soak.produced[topic]), soak.summary


def test_rollups_equal_the_counts_of_the_produced_events(soak: Result) -> None:
    assert soak.rollups == soak.rollup_truth, soak.rollup_diff
    assert sum(soak.rollup_truth[0].values()) > 0 and sum(soak.rollup_truth[1].values()) > 0


def test_every_poison_message_is_a_dead_letter_with_its_reason(soak: Result) -> None:
    assert soak.poison, "no poison sent"
    missing = set(soak.poison) - set(soak.dead_letters)
    assert not missing, sorted(missing)[:5]
    wrong = {
        k: (want, soak.dead_letters[k])
        for k, want in soak.poison.items()
        if set(soak.dead_letters[k]) != {want}
    }
    assert not wrong, wrong
    assert not soak.unexpected_dead_letters, soak.unexpected_dead_letters[:5]


def test_workers_survived_every_fault_and_counted_nothing_late(soak: Result) -> None:
    assert soak.workers_alive, soak.summary
    assert not soak.problems, soak.summary
    assert soak.late == 0, soak.summary
    assert soak.tracebacks == 0, soak.summary
    assert all(f.recovered_s is not None for f in soak.faults), soak.summary
