"""The one base class of the errors a user can cause (bad config, bad input, a design that
does not fit, a missing tool, a failed check). The CLI reports these as one line; any
other exception is a bug and keeps its traceback."""

from __future__ import annotations


class SqzError(Exception):
    """An error in what the user asked for or provided; its message says what and why."""

    exit_code = 2


class CheckFailed(SqzError):
    """A verification ran and found a difference (e.g. C simulation vs golden model)."""

    exit_code = 1


class ToolNotFound(SqzError):
    """A tool the command needs (vendor HLS, Yosys, a simulator) is not installed."""

    exit_code = 1
