"""File plumbing of the signers: whole-file reads and atomic writes, CAB signature reserves,
temporary files beside the output, and the PE layout check before embedding a signature.

Separate from :mod:`.signers` so that the signers hold only what is signed and how; every
failure here is a one-line error naming the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import FFUError, FormatError, SigningError
from ..formats import cab, pe
from ..util.atomic import atomic_output, write_bytes
from ..util.paths import open_regular


def read_file(path: str | os.PathLike) -> bytes:
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            return fh.read()
    except OSError as e:
        raise SigningError(f"cannot read file: {e.strerror or e}", file=str(path)) from None


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        with open(src, "rb") as fin, atomic_output(dst) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    except OSError as e:
        raise SigningError(f"cannot copy to {dst}: {e.strerror or e}", file=str(src)) from None


def signable_pe_layout(data: bytes, where: str) -> pe.PeLayout:
    try:
        layout = pe.pe_layout(data)
    except FFUError as e:
        raise e.at(where) from None
    if layout is None:
        raise FormatError("not a PE image (no MZ/PE signature); cannot embed a signature", file=where)
    return layout


def has_reserve(path: str | os.PathLike) -> bool:
    head = _read_head(path, 36)
    if len(head) < 36 or head[:4] != b"MSCF":
        raise FormatError("not a cabinet file (signature is not 'MSCF')", file=str(path))
    return bool(struct.unpack_from("<H", head, 30)[0] & cab.FLAG_RESERVE_PRESENT)


def _read_head(path: str | os.PathLike, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise SigningError(f"cannot read file: {e.strerror or e}", file=str(path)) from None


def write_file(dst: str | os.PathLike, data: bytes) -> None:
    try:
        write_bytes(dst, data)
    except OSError as e:
        raise SigningError(f"cannot write file: {e.strerror or e}", file=str(dst)) from None


@contextlib.contextmanager
def temp_beside(dst: Path, suffix: str) -> Iterator[Path]:
    """A temporary path in dst's directory (same file system), removed afterwards."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix, dir=dst.parent)
        os.close(fd)
    except OSError as e:
        raise SigningError(f"cannot write file: {e.strerror or e}", file=str(dst)) from None
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def cab_with_reserve(src: str | os.PathLike, tmp: Path) -> None:
    """Copy `src` to `tmp` with the Authenticode reserve (inserted unless already there)."""
    if has_reserve(src):
        try:
            shutil.copyfile(src, tmp)  # append_signature truncates any old signature at cbCabinet
        except OSError as e:
            raise SigningError(f"cannot copy file: {e.strerror or e}", file=str(src)) from None
    else:
        cab.insert_signature_reserve(src, tmp)
