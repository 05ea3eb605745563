"""The deterministic CAB writer: plans members into folders, streams stored or MSZIP blocks to a temp
file and renames it into place; optionally signs the cabinet while it is written.

Separate from the reader: writing never parses untrusted input, reading never writes a cabinet.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ...errors import ConfigError, FFUError
from .authenticode import cab_hash, plain_content_signature, signed_content_hash, signed_layout_header
from .structs import (
    ATTR_NAME_IS_UTF,
    BLOCK_SIZE,
    CFDATA_C,
    CFDATA_SIZE,
    CFFILE,
    CFFOLDER,
    CFFOLDER_SIZE,
    CFHEADER,
    CFHEADER_FIXED_SIZE,
    COMP_MSZIP,
    COMP_NONE,
    FLAG_RESERVE_PRESENT,
    MAX_BLOCKS_PER_FOLDER,
    MAX_CABINET_SIZE,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_FOLDERS,
    MAX_NAME_BYTES,
    SIG_INSERT_SIZE,
    SIG_OFFSET_POS,
    SIG_RESERVE,
    SIG_RESERVE_SIZE,
    CabEntry,
    CabInfo,
    CabMember,
    cfdata_checksum,
    dos_datetime_of,
    name_problem,
    temp_name,
    unlink_quietly,
)

# --- writer -----------------------------------------------------------------------------------


@dataclass
class _Planned:
    name: str
    raw_name: bytes
    attribs: int
    size: int
    source: str | None
    data: bytes | None
    folder: int = 0
    offset: int = 0


def _plan_members(members: list[CabMember]) -> list[_Planned]:
    if not members:
        raise ConfigError("a cabinet needs at least one member")
    if len(members) > MAX_FILES:
        raise ConfigError(f"{len(members)} members exceed the CAB limit of {MAX_FILES} files")
    seen: dict[str, str] = {}
    out: list[_Planned] = []
    for m in members:
        problem = name_problem(m.name)
        if problem:
            raise ConfigError(f"CAB member name {m.name!r} {problem}")
        key = m.name.casefold()
        if key in seen:
            raise ConfigError(f"duplicate CAB member name {m.name!r} (clashes with {seen[key]!r})")
        seen[key] = m.name
        attribs = m.attribs
        if m.name.isascii():
            raw = m.name.encode("ascii")
        else:
            raw = m.name.encode("utf-8")
            attribs |= ATTR_NAME_IS_UTF
        if len(raw) > MAX_NAME_BYTES:
            raise ConfigError(f"CAB member name {m.name!r} is longer than {MAX_NAME_BYTES} bytes")
        if not 0 <= attribs <= 0xFFFF:
            raise ConfigError(f"CAB member {m.name!r}: attributes {attribs:#x} do not fit 16 bits")
        if (m.source is None) == (m.data is None):
            raise ConfigError(f"CAB member {m.name!r} needs exactly one of source= or data=")
        if m.data is not None:
            size, source = len(m.data), None
        else:
            source = os.fspath(cast("str | os.PathLike[str]", m.source))  # not None: data is None
            try:
                st = os.stat(source)
            except OSError as exc:
                raise FFUError(f"cannot read {m.name!r}: {exc.strerror}", source) from None
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"CAB member source for {m.name!r} is not a regular file", source)
            size = st.st_size
        if size > MAX_FILE_SIZE:
            raise ConfigError(
                f"CAB member {m.name!r} is {size} bytes; a cabinet file is limited to {MAX_FILE_SIZE} bytes",
                source,
            )
        out.append(_Planned(m.name, raw, attribs, size, source, m.data))
    return out


def _plan_folders(planned: list[_Planned], max_blocks: int) -> list[tuple[int, int, int]]:
    """Assign members to folders; returns (first, end, stream_size) per folder."""
    if not 1 <= max_blocks <= MAX_BLOCKS_PER_FOLDER:
        raise ValueError(f"max_blocks_per_folder must be in 1..{MAX_BLOCKS_PER_FOLDER}")
    cap = min(max_blocks * BLOCK_SIZE, 0xFFFFFFFF)
    folders: list[tuple[int, int, int]] = []
    first, cur = 0, 0
    for i, p in enumerate(planned):
        if p.size > cap:
            raise ConfigError(
                f"CAB member {p.name!r} ({p.size} bytes) does not fit in one folder ({cap} bytes)"
            )
        if cur + p.size > cap and i > first:
            folders.append((first, i, cur))
            first, cur = i, 0
        p.folder, p.offset = len(folders), cur
        cur += p.size
    folders.append((first, len(planned), cur))
    if len(folders) > MAX_FOLDERS:
        raise ConfigError(f"payload needs {len(folders)} folders; the CAB limit is {MAX_FOLDERS}")
    return folders


def _folder_stream(planned: list[_Planned], out_label: str) -> Iterator[memoryview]:
    """The folder's uncompressed stream in BLOCK_SIZE pieces (the last one may be short)."""
    buf = bytearray(BLOCK_SIZE)
    view = memoryview(buf)
    fill = 0
    for p in planned:
        if p.data is not None:
            src = memoryview(p.data)
            pos = 0
            while pos < p.size:
                n = min(BLOCK_SIZE - fill, p.size - pos)
                view[fill : fill + n] = src[pos : pos + n]
                fill += n
                pos += n
                if fill == BLOCK_SIZE:
                    yield view
                    fill = 0
            continue
        try:
            with open(cast(str, p.source), "rb", buffering=0) as f:  # not None: data is None
                remaining = p.size
                while remaining:
                    n = f.readinto(view[fill : fill + min(BLOCK_SIZE - fill, remaining)])
                    if not n:
                        raise FFUError(
                            f"{p.name!r}: file shrank while it was being written to {out_label}", p.source
                        )
                    fill += n
                    remaining -= n
                    if fill == BLOCK_SIZE:
                        yield view
                        fill = 0
                if f.read(1):
                    raise FFUError(
                        f"{p.name!r}: file grew while it was being written to {out_label}", p.source
                    )
        except OSError as exc:
            raise FFUError(f"cannot read {p.name!r}: {exc.strerror or exc}", p.source) from None
    if fill:
        yield view[:fill]


def write_cab(
    out_path: str | os.PathLike,
    members: list[CabMember],
    *,
    compression: str = "none",
    level: int = 6,
    dos_datetime: tuple[int, int] | None = None,
    timestamp: int | None = None,
    reserve_signature: bool = False,
    max_blocks_per_folder: int = MAX_BLOCKS_PER_FOLDER,
    mszip_history: bool = False,
    finish: Callable[[Path], None] | None = None,
    authenticode: Callable[[bytes], bytes] | None = None,
    signature_size_hint: int | None = None,
) -> CabInfo:
    """Write ``members`` (in the given order) to a deterministic single-cabinet CAB, atomically.

    ``dos_datetime`` (date, time) or ``timestamp`` (Unix seconds, UTC) fixes every file's stamp;
    default 2020-01-01 00:00. ``reserve_signature`` writes the 20-byte Authenticode reserve
    (sigOffset/sigLen zero) for :func:`append_signature`. ``mszip_history`` lets MSZIP blocks
    reference the previous block (smaller; readers must keep the window; off by default).
    ``finish(temp_path)`` runs on the complete file before it is renamed into place (a signer
    signs it there: no second temp file and rename per signed package).
    ``authenticode(digest) -> PKCS#7 blob`` signs the CAB as it is written (needs
    ``reserve_signature``): the signed-layout digest of an uncompressed CAB is computed while its
    bytes are written, since its header is known in advance, so the file is not read back.
    ``signature_size_hint``: the padded size the signature is expected to have (the last one of
    the same signer: the PKCS#7 blob of an RSA signer has a fixed size); the final header is then
    known in advance too, and the file's own SHA-256 is computed as it is written
    (:attr:`CabInfo.sha256`, for the SBOM), else only when the prediction held. Unsigned
    uncompressed CABs always get it.
    """
    out = Path(out_path)
    if compression not in ("none", "mszip"):
        raise ConfigError(f"unknown CAB compression {compression!r} (use 'none' or 'mszip')")
    if not 0 <= level <= 9:
        raise ConfigError(f"MSZIP level {level} is not in 0..9")
    if dos_datetime is not None and timestamp is not None:
        raise ValueError("give dos_datetime or timestamp, not both")
    date, tm = dos_datetime if dos_datetime is not None else dos_datetime_of(timestamp)
    if not (0 <= date <= 0xFFFF and 0 <= tm <= 0xFFFF):
        raise ConfigError(f"DOS date/time {date:#x}/{tm:#x} does not fit 16 bits")

    if authenticode is not None and not reserve_signature:
        raise ValueError("authenticode signing needs reserve_signature=True")
    planned = _plan_members(members)
    folders = _plan_folders(planned, max_blocks_per_folder)

    header_size = CFHEADER_FIXED_SIZE + (SIG_INSERT_SIZE if reserve_signature else 0)
    coff_files = header_size + CFFOLDER_SIZE * len(folders)
    file_table = b"".join(
        CFFILE.build(
            dict(
                cbFile=p.size,
                uoffFolderStart=p.offset,
                iFolder=p.folder,
                date=date,
                time=tm,
                attribs=p.attribs,
                szName=p.raw_name,
            )
        )
        for p in planned
    )
    data_start = coff_files + len(file_table)
    nblocks = [-(-size // BLOCK_SIZE) for _first, _end, size in folders]
    if compression == "none":
        total = data_start + sum(n * CFDATA_SIZE for n in nblocks) + sum(f[2] for f in folders)
        if total > MAX_CABINET_SIZE:
            raise ConfigError(
                f"the cabinet would be {total} bytes; a CAB is limited to {MAX_CABINET_SIZE} bytes "
                "(split the package)",
                str(out),
            )

    def header_of(size: int, folder_entries: list[bytes]) -> bytes:
        reserve = None
        if reserve_signature:
            reserve = dict(
                cbCFHeader=SIG_RESERVE_SIZE,
                cbCFFolder=0,
                cbCFData=0,
                abReserve=SIG_RESERVE.build(dict(sigOffset=0, sigLen=0, tail=bytes(8))),
            )
        header = CFHEADER.build(
            dict(
                reserved1=0,
                cbCabinet=size,
                reserved2=0,
                coffFiles=coff_files,
                reserved3=0,
                versionMinor=3,
                versionMajor=1,
                cFolders=len(folders),
                cFiles=len(planned),
                flags=FLAG_RESERVE_PRESENT if reserve_signature else 0,
                setID=0,
                iCabinet=0,
                reserve=reserve,
                prev=None,
                next=None,
            )
        )
        assert len(header) == header_size
        return header + b"".join(folder_entries)

    type_compress = COMP_NONE if compression == "none" else COMP_MSZIP
    hasher = whole = None  # whole: the file's own SHA-256, when its header is known in advance
    if compression == "none":  # the whole layout is known before any data is written
        planned_entries, start = [], data_start
        for fi, (_first, _end, size) in enumerate(folders):
            planned_entries.append(
                CFFOLDER.build(dict(coffCabStart=start, cCFData=nblocks[fi], typeCompress=type_compress))
            )
            start += nblocks[fi] * CFDATA_SIZE + size
        head = header_of(total, planned_entries)
        if authenticode is not None:
            hasher = hashlib.sha256(signed_layout_header(head))
            hasher.update(head[header_size:])
            if signature_size_hint is not None and finish is None:  # the header as it will be
                offsets = total.to_bytes(4, "little") + signature_size_hint.to_bytes(4, "little")
                whole = hashlib.sha256(head[:SIG_OFFSET_POS] + offsets + head[SIG_OFFSET_POS + 8 :])
        elif not reserve_signature:  # the file's own SHA-256, for content_signature()
            hasher = hashlib.sha256(head)
            if finish is None:
                whole = hasher
        if hasher is not None:
            hasher.update(file_table)
        if whole is not None and whole is not hasher:
            whole.update(file_table)
    else:
        head = bytes(coff_files)
    content_sig = sha256 = signature_size = None
    tmp = temp_name(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise FFUError(f"cannot create cabinet: {exc.strerror}", str(out)) from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            f.write(head)
            f.write(file_table)
            pos = data_start
            folder_entries = []
            for fi, (first, end, _size) in enumerate(folders):
                start = pos
                count = 0
                hist = None
                for block in _folder_stream(planned[first:end], str(out)):
                    n = len(block)
                    ab: bytes | memoryview
                    if compression == "none":
                        ab = block
                    else:
                        if hist is not None:
                            c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=hist)
                        else:
                            c = zlib.compressobj(level, zlib.DEFLATED, -15)
                        ab = b"CK" + c.compress(block) + c.flush()
                        if mszip_history:
                            hist = bytes(block)
                    cb = len(ab)
                    cfdata = CFDATA_C.build(dict(csum=cfdata_checksum(ab, cb, n), cbData=cb, cbUncomp=n))
                    f.write(cfdata)
                    f.write(ab)
                    if hasher is not None:
                        hasher.update(cfdata)
                        hasher.update(ab)
                    if whole is not None and whole is not hasher:
                        whole.update(cfdata)
                        whole.update(ab)
                    pos += CFDATA_SIZE + cb
                    count += 1
                    if pos > MAX_CABINET_SIZE:
                        raise ConfigError(
                            f"the compressed cabinet exceeds {MAX_CABINET_SIZE} bytes (split the package)",
                            str(out),
                        )
                if count != nblocks[fi]:  # pragma: no cover - guarded by _folder_stream
                    raise FFUError(f"folder {fi} has {count} blocks, expected {nblocks[fi]}", str(out))
                folder_entries.append(
                    CFFOLDER.build(dict(coffCabStart=start, cCFData=count, typeCompress=type_compress))
                )
            if compression != "none":
                f.seek(0)
                f.write(header_of(pos, folder_entries))
            elif pos != total or folder_entries != planned_entries:  # pragma: no cover - planned exactly
                raise FFUError("the cabinet's layout differs from its plan", str(out))
            if authenticode is not None:
                if hasher is None:  # compressed: the folder table was only known at the end
                    f.flush()
                    digest = cab_hash(tmp)
                else:
                    digest = hasher.digest()
                blob = authenticode(digest)
                f.seek(SIG_OFFSET_POS)
                padded = bytes(blob) + bytes(-len(blob) % 8)
                offsets = pos.to_bytes(4, "little") + len(padded).to_bytes(4, "little")
                f.write(offsets)
                f.seek(pos)
                f.write(padded)
                signature_size = len(padded)
                if whole is not None and len(padded) == signature_size_hint:
                    whole.update(padded)
                    sha256 = whole.hexdigest()
                if finish is None:  # the header as it now is on disk; its first 60 bytes are ours
                    final = header_of(pos, folder_entries)
                    final = final[:SIG_OFFSET_POS] + offsets + final[SIG_OFFSET_POS + 8 :]
                    h = signed_content_hash(digest, final)
                    h.update(padded)
                    h.update((pos + len(padded)).to_bytes(8, "little"))
                    content_sig = h.hexdigest()
            elif hasher is not None and finish is None:
                content_sig = plain_content_signature(hasher.digest(), pos)
                sha256 = hasher.hexdigest()
        if finish is not None:
            finish(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise FFUError(f"cannot write cabinet: {exc.strerror or exc}", str(out)) from None
        raise
    return CabInfo(
        num_folders=len(folders),
        num_files=len(planned),
        cb_cabinet=pos,
        members=tuple(CabEntry(p.name, p.size, p.folder, p.offset, date, tm, p.attribs) for p in planned),
        content_signature=content_sig,
        sha256=sha256,
        signature_size=signature_size,
    )
