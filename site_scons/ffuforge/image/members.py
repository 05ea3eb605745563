"""Writing CAB members to disk for an install: extracted into the package's store, then hard-linked
(or copied) into the staged partition tree.

Separate from :mod:`.install`, which decides *what* goes where, because this is the part that
touches the file system: never through a symbolic link or over an existing file, never more bytes
than update.mum declares, each member checked against its declared SHA-256, and every extracted
file read-only (staged files are links to it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from lxml import etree

from ..errors import ConfigError, FormatError
from ..formats.cab import CabReader

READ_ONLY = 0o444


def extract_member(
    cab: CabReader, member, out: Path, entry: etree._Element | None, where: str, root: Path | None = None
) -> tuple[str, str]:
    """Write one member to `out`, never through a symlink or over an existing file, never more bytes
    than update.mum declares (a decompression bomb stops there), checked against its declared hash.
    Returns its SHA-256 and SHA-1 (hex), taken in the same pass: the SBOM needs both (SPDX 2.3
    requires a SHA-1 for every file), and reading the staged files again would cost more."""
    size, digest = (entry.get("size"), entry.get("hash")) if entry is not None else (None, None)
    label = entry.get("name") if entry is not None else member.name
    try:
        declared = int(size) if size is not None else None
    except ValueError:
        raise FormatError(
            f"update.mum gives {label} the size {size!r}, which is not a number", where
        ) from None
    if declared is not None and declared != member.size:
        raise FormatError(
            f"{label}: update.mum declares {declared} bytes, the CAB member holds {member.size}", where
        )
    _make_parents(out, label, where, root)
    h, h1 = hashlib.sha256(), hashlib.sha1()
    written = 0
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot create {out}: {exc.strerror}", where) from None
    with os.fdopen(fd, "wb") as fh:
        for chunk in cab.iter_chunks(member):
            written += len(chunk)
            if written > member.size:
                raise FormatError(f"{label}: the CAB member yields more than its {member.size} bytes", where)
            h.update(chunk)
            h1.update(chunk)
            fh.write(chunk)
        os.fchmod(fh.fileno(), READ_ONLY)  # staged files are links to it: nothing may write through them
    if digest is not None and h.hexdigest().lower() != digest.lower():
        raise FormatError(
            f"{label}: the content does not match its SHA-256 in update.mum (corrupt or altered package)",
            where,
        )
    return h.hexdigest(), h1.hexdigest()


def _make_parents(
    out: Path, label: str, where: str, root: Path | None, made: set[Path] | None = None
) -> None:
    """`out`'s directories, made below `root` directory by directory: never through a symlink, never
    out of root. `made`: directories this staging has already checked (it is their only writer)."""
    if root is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        return
    if made is not None and out.parent in made:
        return
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in out.parent.relative_to(root).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if not stat.S_ISDIR(mode):
            raise ConfigError(
                f"{label}: {current.relative_to(root)} in the staged partition is not a directory "
                "(a file or symbolic link); refusing to write through it",
                where,
            )
    if made is not None:
        made.add(out.parent)


def place_member(
    src: Path, out: Path, label: str, where: str, root: Path | None = None, made: set[Path] | None = None
) -> None:
    """Put an extracted member at `out`, checked as :func:`extract_member` writes: a hard link to the
    extracted (read-only) file, or a copy where linking fails (another file system)."""
    _make_parents(out, label, where, root, made)
    try:
        os.link(src, out, follow_symlinks=False)
        return
    except FileExistsError as exc:
        raise ConfigError(f"{label}: cannot create {out}: {exc.strerror}", where) from None
    except OSError:
        pass
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, READ_ONLY)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot create {out}: {exc.strerror}", where) from None
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
