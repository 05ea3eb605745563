"""One error family for every user mistake, rendered as a single `file:line: message` line.

SCons glue, the CLI and tests all catch :class:`FFUError`; anything else escaping is a bug
in ffuforge, not in the user's input. The subclasses say what kind of mistake it is, so that
callers and tests can tell a damaged file from a bad setting without reading message text:

- :class:`FormatError`: bytes in a file we read do not follow its format (CAB, FFU, hive, GPT, PE,
  catalog, INF encoding, …);
- :class:`ConfigError`: a setting, an XML document or a combination of them is wrong (projects,
  FMs, OEMInputs, layouts, build variables);
- :class:`SigningError`: a key, certificate or signature is missing, unusable or does not verify;
- :class:`ToolError`: an external program (mkntfs, mtools, a signing command) is missing or failed.
"""

from __future__ import annotations


class FFUError(Exception):
    """A user-facing error: bad input, missing file, failed external step."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        message = _one_line(message)
        super().__init__(message)
        self.message = message
        self.file = _one_line(str(file)) if file is not None else None
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
            self.file = _one_line(str(file)) if file is not None else None
            self.line = line
        return self


class FormatError(FFUError):
    """Bad bytes in a file we read: truncated, out of bounds, wrong magic or checksum."""


class ConfigError(FFUError):
    """A bad setting, XML document or combination of them: the user's input, not a file's bytes."""


class SigningError(FFUError):
    """Signing or verification failed: keys, certificates, passwords, signatures."""


class ToolError(FFUError):
    """An external program ffuforge drives is missing or failed."""


def _one_line(text: str) -> str:
    """Input echoed in a message (element text, names) may hold line breaks or control characters;
    the error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)
