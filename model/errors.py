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


class InputError(SqzError, ValueError):
    """A file or value the user gave (a dataset, an image, a weights file, a command-line
    value) is malformed or out of range; the message names it. A ``ValueError`` too, so
    library callers that catch ``ValueError`` keep working."""


class InputNotFound(SqzError, FileNotFoundError):
    """A file or folder the user named (a dataset, a weights file, a project) is missing."""


class ToolFailed(SqzError, RuntimeError):
    """A tool the command runs (g++, a vendor HLS tool, pip) ran and failed; the message
    carries the end of its output. A ``RuntimeError`` too, as before."""

    exit_code = 1


class DoesNotFitError(SqzError, ValueError):
    """The configuration needs more on-chip resources (BRAM, DSP) than the chosen part has;
    the message gives the numbers."""
