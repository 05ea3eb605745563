"""Authenticode support for CABs: the signed-layout digest a signer embeds, the content signature
the build tool uses instead of re-hashing, inserting the 24-byte signature reserve into an
unsigned cabinet and appending a PKCS#7 signature.

Separate because it patches existing cabinets rather than reading or writing their members.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from construct import ConstructError, Container

from ...errors import ConfigError, FFUError, FormatError, SigningError
from .structs import (
    CFFOLDER,
    CFFOLDER_SIZE,
    CFHEADER,
    CFHEADER_FIXED_SIZE,
    FLAG_RESERVE_PRESENT,
    MAX_CABINET_SIZE,
    MAX_HEADER_RESERVE,
    SIG_INSERT_SIZE,
    SIG_OFFSET_POS,
    SIG_RESERVE,
    SIG_RESERVE_SIZE,
    temp_name,
    unlink_quietly,
)

# --- Authenticode helpers ---------------------------------------------------------------------


def _read_header(f, path: str) -> tuple[bytes, Container, int]:
    """(raw header bytes, parsed CFHEADER, file size) for the signature helpers."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(CFHEADER_FIXED_SIZE + 4 + MAX_HEADER_RESERVE + 4 * 256)
    if head[:4] != b"MSCF":
        raise FormatError("not a cabinet file (signature is not 'MSCF')", path)
    try:
        h = CFHEADER.parse(head)
    except ConstructError:
        raise FormatError("file is truncated or has a corrupt header", path) from None
    if h.cbCabinet > size or h.cbCabinet < h.end:
        raise FormatError(f"cbCabinet {h.cbCabinet} is inconsistent with the file size {size}", path)
    return head, h, size


def _sig_reserve(h, path: str):
    r = h.reserve
    if r.cbCFHeader != SIG_RESERVE_SIZE or r.cbCFFolder or r.cbCFData:
        raise FormatError(
            f"reserve ({r.cbCFHeader}/{r.cbCFFolder}/{r.cbCFData}) is not an Authenticode signature reserve",
            path,
        )
    try:
        return SIG_RESERVE.parse(r.abReserve)
    except ConstructError:
        raise FormatError("header reserve is not an Authenticode signature reserve", path) from None


def _hash_range(h, f, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        h.update(chunk)
        left -= len(chunk)


def signed_layout_header(head: bytes) -> bytes:
    """The header bytes the signed-layout digest covers: all but reserved1 and
    the 24-byte reserve fields; prev/next cabinet strings are not used by our writer."""
    return head[0:4] + head[8:34] + head[56:60]


_SIGNED_TAG = b"ffuforge-signed-cab-sha256-v1\0"
_PLAIN_TAG = b"ffuforge-cab-sha256-v1\0"


def plain_content_signature(sha256: bytes, size: int) -> str:
    h = hashlib.sha256(_PLAIN_TAG)
    h.update(sha256)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def signed_content_hash(digest: bytes, head: bytes):
    """Start of :func:`content_signature`: the tag, the signed-layout SHA-256 and the
    header bytes that digest leaves out (reserved1, iCabinet, the reserve's sizes and offsets)."""
    h = hashlib.sha256(_SIGNED_TAG)
    h.update(digest)
    h.update(head[4:8])
    h.update(head[34:56])
    return h


def content_signature(path: str | os.PathLike) -> str | None:
    """A content signature of a CAB that its writer gets for free (:attr:`CabInfo.content_signature`),
    so the build tool does not read and hash the file again. With the signature reserve: the
    signed-layout SHA-256 (the Authenticode digest a signer computes anyway) plus every byte that
    digest leaves out — the header fields above, the appended signature and padding — and the
    size; as strong as a hash of the whole file. Without: the SHA-256 of the whole file. None for
    a file that does not parse as a CAB (the caller signs it some other way)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            if not hdr.flags & FLAG_RESERVE_PRESENT:
                plain = hashlib.sha256()
                _hash_range(plain, f, 0, size)
                return plain_content_signature(plain.digest(), size)
        digest = cab_hash(path)
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            h = signed_content_hash(digest, head)
            _hash_range(h, f, hdr.cbCabinet, size)
    except (FFUError, OSError, EOFError, ConstructError):
        return None
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def cab_hash(path: str | os.PathLike, algo: str = "sha256") -> bytes:
    """Authenticode/catalog digest of a CAB (the one osslsigncode embeds), signed or unsigned layout.

    With the signature reserve (signed, or reserved with sigOffset 0) the signed-layout rule is
    used, so the result is the digest a signer embeds; it ignores sigOffset/sigLen and any
    appended signature.
    """
    path = str(path)
    h = hashlib.new(algo)
    try:
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            if not hdr.flags & FLAG_RESERVE_PRESENT:
                h.update(head[0:4])
                _hash_range(h, f, 8, size)
                return h.digest()
            sig = _sig_reserve(hdr, path)
            if sig.sigOffset not in (0, hdr.cbCabinet):
                raise FormatError(
                    f"signature offset {sig.sigOffset} differs from cbCabinet {hdr.cbCabinet}", path
                )
            h.update(signed_layout_header(head))
            pos = CFHEADER_FIXED_SIZE + SIG_INSERT_SIZE
            h.update(head[pos : hdr.end])  # prev/next cabinet strings with their NULs
            folders_end = hdr.end + CFFOLDER_SIZE * hdr.cFolders
            if folders_end != hdr.coffFiles or hdr.coffFiles > hdr.cbCabinet:
                raise FormatError(
                    f"corrupt coffFiles {hdr.coffFiles} (folder table ends at {folders_end})", path
                )
            _hash_range(h, f, hdr.end, hdr.cbCabinet)
    except OSError as exc:
        raise FFUError(f"cannot read cabinet: {exc.strerror}", path) from None
    except EOFError:
        raise FormatError("file is truncated", path) from None
    return h.digest()


def _atomic_copy_patch(src: str, dst: str, build) -> None:
    """Write ``dst`` via a temp file; ``build(fin, fout)`` produces the content."""
    out = Path(dst)
    tmp = temp_name(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise FFUError(f"cannot create file: {exc.strerror}", dst) from None
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb", buffering=1 << 20) as fout:
            build(fin, fout)
        os.replace(tmp, out)
    except BaseException as exc:
        unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise FFUError(f"cannot write {dst}: {exc.strerror or exc}", src) from None
        raise


def _copy_range(fin, fout, start: int, end: int, path: str) -> None:
    fin.seek(start)
    left = end - start
    while left > 0:
        chunk = fin.read(min(left, 1 << 20))
        if not chunk:
            raise FormatError("file is truncated", path)
        fout.write(chunk)
        left -= len(chunk)


def insert_signature_reserve(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy an unsigned CAB without reserve to ``dst`` with the 24-byte signature reserve inserted
    after offset 36 (as osslsigncode does); every absolute offset moves by +24."""
    src, dst = str(src), str(dst)

    def build(fin, fout) -> None:
        head, h, size = _read_header(fin, src)
        if h.flags & FLAG_RESERVE_PRESENT:
            raise FormatError("cabinet already has a reserve area", src)
        if size != h.cbCabinet:
            raise FormatError(f"file size {size} differs from cbCabinet {h.cbCabinet}", src)
        if h.cbCabinet + SIG_INSERT_SIZE > MAX_CABINET_SIZE:
            raise ConfigError(
                f"cabinet would exceed {MAX_CABINET_SIZE} bytes with the signature reserve", src
            )
        folders_end = h.end + CFFOLDER_SIZE * h.cFolders
        if folders_end > h.cbCabinet:
            raise FormatError("folder table extends past the end of the cabinet", src)
        fin.seek(h.end)
        table = fin.read(CFFOLDER_SIZE * h.cFolders)
        new = dict(h)
        new.update(
            cbCabinet=h.cbCabinet + SIG_INSERT_SIZE,
            coffFiles=h.coffFiles + SIG_INSERT_SIZE,
            flags=h.flags | FLAG_RESERVE_PRESENT,
            reserve=dict(
                cbCFHeader=SIG_RESERVE_SIZE,
                cbCFFolder=0,
                cbCFData=0,
                abReserve=SIG_RESERVE.build(dict(sigOffset=0, sigLen=0, tail=bytes(8))),
            ),
        )
        fout.write(CFHEADER.build(new))
        for i in range(h.cFolders):
            fo = CFFOLDER.parse(table[i * CFFOLDER_SIZE : (i + 1) * CFFOLDER_SIZE])
            fout.write(CFFOLDER.build(dict(fo, coffCabStart=fo.coffCabStart + SIG_INSERT_SIZE)))
        _copy_range(fin, fout, folders_end, size, src)

    _atomic_copy_patch(src, dst, build)


def append_signature(path: str | os.PathLike, blob: bytes, out_path: str | os.PathLike | None = None) -> None:
    """Append a PKCS#7 ``blob`` (zero-padded to a multiple of 8) to a CAB with the signature
    reserve and set sigOffset = cbCabinet, sigLen = padded length. Replaces an existing signature.
    Writes ``out_path`` (atomically) or patches ``path`` in place."""
    path = str(path)
    if not blob:
        raise SigningError("empty signature blob", path)
    padded = bytes(blob) + bytes(-len(blob) % 8)
    with open(path, "rb") as f:
        _head, h, _size = _read_header(f, path)
    if not h.flags & FLAG_RESERVE_PRESENT:
        raise FormatError("cabinet has no signature reserve (use insert_signature_reserve first)", path)
    sig = _sig_reserve(h, path)
    if sig.sigOffset not in (0, h.cbCabinet):
        raise FormatError(f"signature offset {sig.sigOffset} differs from cbCabinet {h.cbCabinet}", path)
    fields = h.cbCabinet.to_bytes(4, "little") + len(padded).to_bytes(4, "little")

    def patch(f) -> None:
        f.seek(SIG_OFFSET_POS)
        f.write(fields)
        f.seek(h.cbCabinet)
        if os.fstat(f.fileno()).st_size != h.cbCabinet:  # truncating costs ~5 ms on ext4 even as a no-op
            f.flush()
            f.truncate()
        f.write(padded)

    if out_path is None or os.path.abspath(out_path) == os.path.abspath(path):
        with open(path, "r+b") as fw:
            patch(fw)
        return

    def build(fin, fout) -> None:
        _copy_range(fin, fout, 0, h.cbCabinet, path)
        fout.flush()
        patch(fout)

    _atomic_copy_patch(path, str(out_path), build)
