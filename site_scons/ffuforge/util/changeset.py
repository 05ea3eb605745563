"""A set of file creations and edits checked whole before any is written.

The authoring commands (`ffuforge new …`, `ffuforge feature …`, `ffuforge convert`) touch several
files at once (a package project, its payload, an FM, OEMInputs). Planning every change first and
refusing on the first conflict means a refused command leaves the workspace as it was; each file is
then written atomically (:mod:`.atomic`). A file that already holds exactly the planned bytes is
"already present", which makes every command idempotent; an existing file with other bytes is never
overwritten by a creation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .atomic import write_bytes


@dataclass
class Change:
    path: Path
    data: bytes
    what: str  # "created" | "updated"
    note: str  # what the change is, for the one-line report


@dataclass
class ChangeSet:
    """Planned changes; :meth:`apply` writes them and returns one report line per file."""

    top: Path
    changes: list[Change] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.top.resolve()))
        except ValueError:
            return str(path)

    def pending(self, path: Path) -> bytes | None:
        """The bytes a change already planned for `path` would write (edits build on each other)."""
        for c in self.changes:
            if c.path.resolve() == path.resolve():
                return c.data
        return None

    def current(self, path: Path) -> bytes | None:
        planned = self.pending(path)
        if planned is not None:
            return planned
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", self.rel(path)) from None

    def create(self, path: Path, data: bytes, note: str = "") -> None:
        """A new file; identical bytes already there are "already present", other bytes a refusal."""
        path = Path(path)
        have = self.current(path)
        if have == data:
            self.present.append(f"already present {self.rel(path)}{f' ({note})' if note else ''}")
            return
        if have is not None:
            raise ConfigError(
                "exists with other content; not overwriting it (move it away or choose another name)",
                self.rel(path),
            )
        self.changes.append(Change(path, data, "created", note))

    def edit(self, path: Path, data: bytes, note: str) -> None:
        """New bytes for an existing (or planned) file; `note` says what changed in it."""
        path = Path(path)
        for c in self.changes:
            if c.path.resolve() == path.resolve():
                c.data = data
                c.note = f"{c.note}; {note}" if c.note else note
                return
        self.changes.append(Change(path, data, "updated", note))

    def already(self, path: Path, note: str) -> None:
        self.present.append(f"already present {self.rel(Path(path))}: {note}")

    def apply(self) -> list[str]:
        lines = []
        for c in self.changes:
            write_bytes(c.path, c.data)
            lines.append(f"{c.what} {self.rel(c.path)}{f': {c.note}' if c.note else ''}")
        return lines + self.present
