"""Alert state per evaluation step, as Prometheus 2.42's ``AlertingRule.Eval`` does it.

For each label set of an alert (the result labels of its expression without ``__name__``,
plus the rule's labels and ``alertname``), step by step:

* present in the result and not active → *pending*, ``active_at`` = this step;
* pending and ``step - active_at >= for`` → *firing* at this step (``for: 0`` fires at the
  step it appears): this is ``starts_at``, what Alertmanager receives;
* pending and absent → forgotten (never fired);
* firing and absent → *resolved* at this step (``ends_at``), unless ``keep_firing_for``:
  then it keeps firing until it has been absent for that long (counted from the first
  step it was missing), and a return of the condition resets that count;
* after resolving, a new presence starts a new episode from *pending*.

Label sets are independent, so each is tracked alone over the sorted steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Episode:
    """One firing of one alert label set; ``resolved_at_ms`` None = still firing at the end."""

    labels: tuple[tuple[str, str], ...]
    active_at_ms: int
    fired_at_ms: int
    resolved_at_ms: int | None


def episodes(
    labels: tuple[tuple[str, str], ...],
    steps: Sequence[int],
    present: Iterable[int],
    for_ms: int,
    keep_firing_for_ms: int = 0,
) -> list[Episode]:
    """Firing episodes of one label set present at ``present`` among the sorted ``steps``."""
    here = set(present)
    found: list[Episode] = []
    pending = firing = False
    active_at = fired_at = 0
    missing_since: int | None = None
    for ts in steps:
        if ts in here:
            missing_since = None
            if not pending and not firing:
                pending, active_at = True, ts
        elif pending:
            pending = False
            continue
        elif firing:
            if missing_since is None:
                missing_since = ts
            if ts - missing_since >= keep_firing_for_ms:
                found.append(Episode(labels, active_at, fired_at, ts))
                firing, missing_since = False, None
            continue
        else:
            continue
        if pending and ts - active_at >= for_ms:
            pending, firing, fired_at = False, True, ts
    if firing:
        found.append(Episode(labels, active_at, fired_at, None))
    return found
