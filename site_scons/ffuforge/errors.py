"""One error type for every user mistake, rendered as a single `file:line: message` line.

SCons glue, the CLI and tests all catch :class:`FFUError`; anything else escaping is a bug
in ffuforge, not in the user's input.
"""

from __future__ import annotations


class FFUError(Exception):
    """A user-facing error: bad input, missing file, failed external step."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line

    def __str__(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: {self.message}"
        if self.file:
            return f"{self.file}: {self.message}"
        return self.message

    def at(self, file: str | None, line: int | None = None) -> FFUError:
        """Return this error located at file/line unless it already has a location."""
        if self.file is None:
            self.file = str(file) if file is not None else None
            self.line = line
        return self
