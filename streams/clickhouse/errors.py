"""Which ClickHouse insert errors are worth retrying, which are the rows' fault, which are ours.

``streams.clickhouse.sink`` used to retry every error forever: one row ClickHouse cannot
take (a ``quantity`` beyond ``UInt32``, which validation allows) stopped a worker for good
while it looked alive. Each failure is now one of:

* **transient** — the server is unreachable, slow or busy (network errors, timeouts, too
  many parts 252, memory 241, too many queries 202, replica trouble, …) and any server code
  not listed below: retried with backoff, forever, as before (nothing is dropped because
  a server is down);
* **rows** — the batch holds values that can never be inserted: type mismatch (53,
  raised by clickhouse-driver itself while serialising a value out of a column's range),
  cannot parse (6, 26, 27, 38, 41, 72, 117), out of range (69, 321), too large (131), NULL
  in a non-Nullable column (349), or a Python error serialising a value (``TypeError``,
  ``ValueError``, ``ArithmeticError``, ``AttributeError``, ``struct.error``): the sink
  bisects the batch, stores the rest and dead-letters the rows that fail alone;
* **fatal** — the schema or the credentials are wrong (unknown table 60, unknown database
  81, no such column 16/47/10, authentication 192-194/516, read-only user 164, access
  denied 291/497): nothing can be stored; the inserter raises and the worker exits with
  one line (``streams.worker.app.exit_because``), so a supervisor restarts it and its start-up
  check names the problem. Bisecting would dead-letter every row.
"""

from __future__ import annotations

import struct
from typing import Literal

from clickhouse_driver.errors import Error as DriverError

Kind = Literal["transient", "rows", "fatal"]

# ClickHouse error codes (src/Common/ErrorCodes.cpp) -> reason label of a refused row
ROW_ERROR_CODES: dict[int, str] = {
    53: "type_mismatch",  # TYPE_MISMATCH (also clickhouse-driver's own, client side)
    70: "type_mismatch",  # CANNOT_CONVERT_TYPE
    349: "type_mismatch",  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    6: "cannot_parse",  # CANNOT_PARSE_TEXT
    26: "cannot_parse",  # CANNOT_PARSE_QUOTED_STRING
    27: "cannot_parse",  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38: "cannot_parse",  # CANNOT_PARSE_DATE
    41: "cannot_parse",  # CANNOT_PARSE_DATETIME
    72: "cannot_parse",  # CANNOT_PARSE_NUMBER
    117: "cannot_parse",  # INCORRECT_DATA
    69: "out_of_range",  # ARGUMENT_OUT_OF_BOUND
    321: "out_of_range",  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    131: "too_large",  # TOO_LARGE_STRING_SIZE
}
FATAL_CODES = frozenset(
    {
        60,  # UNKNOWN_TABLE
        81,  # UNKNOWN_DATABASE
        16,  # NO_SUCH_COLUMN_IN_TABLE
        47,  # UNKNOWN_IDENTIFIER
        10,  # NOT_FOUND_COLUMN_IN_BLOCK
        164,  # READONLY
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        516,  # AUTHENTICATION_FAILED
        291,  # DATABASE_ACCESS_DENIED
        497,  # ACCESS_DENIED
    }
)
# Python errors clickhouse-driver raises while serialising a bad value (seen on 0.2.11:
# a str in a String column given an int -> AttributeError; a bad Decimal -> InvalidOperation)
_VALUE_ERRORS = (TypeError, ValueError, ArithmeticError, AttributeError, struct.error)

# the ``reason`` label of salewatch_clickhouse_rows_rejected_total
REJECT_REASONS = frozenset(set(ROW_ERROR_CODES.values()) | {"bad_value", "other"})


def classify(exc: BaseException) -> Kind:
    """What to do about an insert that raised ``exc`` (see the module docstring)."""
    if isinstance(exc, DriverError):
        code = getattr(exc, "code", None)
        if code in FATAL_CODES:
            return "fatal"
        if code in ROW_ERROR_CODES:
            return "rows"
        return "transient"
    if isinstance(exc, OSError | EOFError):
        return "transient"
    if isinstance(exc, _VALUE_ERRORS):
        return "rows"
    return "fatal"  # not from the driver nor the network: a bug of ours, do not hide it


def reject_reason(exc: BaseException) -> str:
    """The ``reason`` label of a row refused with ``exc``."""
    if isinstance(exc, DriverError):
        return ROW_ERROR_CODES.get(getattr(exc, "code", None) or 0, "other")
    return "bad_value" if isinstance(exc, _VALUE_ERRORS) else "other"
