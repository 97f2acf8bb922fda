"""The library's errors a command reports as one line: bad input (exit 2) and failures (exit 1); the commands translate them in one place (the command layer's run), the library never prints or exits."""
from __future__ import annotations


class CharRNNError(Exception):
    """An error whose message is one whole line, fit to show a user as it is.
    ``code`` is the exit status a command reports for it: 2 for bad input or
    usage (the default), 1 for a failure while running (a write that failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class InputError(CharRNNError, ValueError):
    """Input that cannot be used: a file to read, a text, a setting's value, a
    --grid, a results file."""


class OutputError(CharRNNError, ValueError):
    """An output the rules refuse (every command that writes, and training.run
    with a checkpoint file), or one that could not be written (code 1)."""
