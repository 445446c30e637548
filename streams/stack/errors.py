"""The one error type the stack commands raise for problems a user can act on."""

from __future__ import annotations


class StackError(Exception):
    """Starting, checking or stopping the local stack failed.

    The message is complete and meant for a person: it says what failed, why if known
    (port holder, log tail, install output) and what to do next. The CLI prints it as is,
    without a traceback, and exits non-zero.
    """
