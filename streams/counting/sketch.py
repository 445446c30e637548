"""Distinct counting: a small HyperLogLog with a stable hash and a bias-free estimator.

Why our own: ``datasketch.HyperLogLog`` costs ~2.6 µs per update (SHA-1 plus numpy scalar
work), too slow for the hot path, and salewatch declares no sketch library. This one is
~1 µs per added value (a 64-bit BLAKE2b hash and one register compare) and, more
importantly, the pipeline adds each (user, channel) to it only once per window, when the
window closes: within an open window distinct users are kept exactly in sets.

Error bound: ``precision`` p gives m = 2**p registers of one byte and a relative standard
error of 1.04 / sqrt(m) across the whole range (Ertl's improved raw estimator, Ertl 2017,
"New cardinality estimation algorithms for HyperLogLog sketches", algorithm 6, has no
small- or mid-range bias, so no bias tables or linear-counting switch are needed). The
default p = 14 (16 KiB per sketch) gives σ = 0.81 %: 99.7 % of estimates are within
2.4 % (3σ) of the truth. ``tests/unit/counting/test_sketch.py`` checks that bound on
100k users.

The hash is BLAKE2b, not Python's ``hash()``, so that the same users give the same
estimate in every process (the live worker and a backtest replay agree exactly). A merge
of two sketches is the register-wise maximum and equals the sketch of the union: that is
how 5- and 15-minute distinct counts are built from 1-minute sketches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from hashlib import blake2b

DEFAULT_PRECISION = 14
_HASH_BITS = 64
_ALPHA_INF = 1 / (2 * math.log(2))


def relative_standard_error(precision: int = DEFAULT_PRECISION) -> float:
    """The estimator's relative standard error (1σ) for ``precision``."""
    return 1.04 / math.sqrt(1 << precision)


class HyperLogLog:
    """A mergeable distinct-count sketch of strings.

    Receives strings with :meth:`add`/:meth:`update`; :meth:`estimate` returns the
    approximate number of distinct strings added, within :func:`relative_standard_error`
    (1σ). Memory is fixed at 2**precision bytes whatever the number of values.
    """

    __slots__ = ("_q", "_registers", "precision")

    def __init__(self, precision: int = DEFAULT_PRECISION) -> None:
        if not 4 <= precision <= 18:
            raise ValueError(f"precision must be in 4..18, got {precision}")
        self.precision = precision
        self._q = _HASH_BITS - precision
        self._registers = bytearray(1 << precision)

    def add(self, value: str) -> None:
        """Add one value."""
        self.update((value,))

    def update(self, values: Iterable[str]) -> None:
        """Add many values (one loop, no per-value method call)."""
        registers = self._registers
        q = self._q
        low = (1 << q) - 1
        for value in values:
            h = int.from_bytes(blake2b(value.encode(), digest_size=8).digest(), "big")
            # rank = leading zeros of the low q bits + 1, in 1..q+1
            rank = q - (h & low).bit_length() + 1
            index = h >> q
            if rank > registers[index]:
                registers[index] = rank

    def merge(self, other: HyperLogLog) -> None:
        """Make this sketch the sketch of the union of both (register-wise maximum)."""
        if other.precision != self.precision:
            raise ValueError("cannot merge sketches of different precision")
        self._registers = bytearray(_bytewise_max(self._registers, other._registers))

    def copy(self) -> HyperLogLog:
        clone = HyperLogLog(self.precision)
        clone._registers[:] = self._registers
        return clone

    def estimate(self) -> float:
        """The estimated number of distinct values added."""
        registers = self._registers
        m = len(registers)
        q = self._q
        zeros = registers.count(0)
        if zeros == m:
            return 0.0
        z = m * _tau(1 - registers.count(q + 1) / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + registers.count(k))
        z += m * _sigma(zeros / m)
        return _ALPHA_INF * m * m / z


def _bytewise_max(a: bytes | bytearray, b: bytes | bytearray) -> bytes:
    """Element-wise max of two equal-length byte strings whose bytes are all < 128.

    SWAR on two big integers instead of 16k Python-level ``max`` calls (~50x faster): in
    each byte, (a | 0x80) - b keeps its high bit iff a >= b and never borrows from the
    next byte, since 0x80 + a - b > 0.
    """
    n = len(a)
    high = int.from_bytes(b"\x80" * n, "big")
    x = int.from_bytes(a, "big")
    y = int.from_bytes(b, "big")
    x_ge_y = ((((x | high) - y) & high) >> 7) * 0xFF
    return ((x & x_ge_y) | (y & ~x_ge_y)).to_bytes(n, "big")


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if z == previous:
            return z / 3
