"""The CAB reader: a single (non-spanned) cabinet with stored, MSZIP, LZX and Quantum folders (the
last two decoded by libmspack, :mod:`.mspack`), every input treated as hostile (vendor CABs):
bounds, sizes, checksums and names are checked before use, and extraction never writes outside
its directory or through symlinks.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from construct import ConstructError

from ...errors import ConfigError, FFUError, FormatError
from ...util.paths import open_regular
from . import mspack
from .structs import (
    ATTR_NAME_IS_UTF,
    BLOCK_SIZE,
    CFDATA_S,
    CFDATA_SIZE,
    CFFILE,
    CFFILE_FIXED_SIZE,
    CFFOLDER,
    CFFOLDER_SIZE,
    CFHEADER,
    CFHEADER_FIXED_SIZE,
    COMP_LZX,
    COMP_MSZIP,
    COMP_NAMES,
    COMP_NONE,
    COMP_QUANTUM,
    DEFAULT_READ_MAX,
    FLAG_NEXT_CABINET,
    FLAG_PREV_CABINET,
    FLAG_RESERVE_PRESENT,
    LZX_WINDOWS,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_HEADER_RESERVE,
    MAX_MSZIP_CBDATA,
    MAX_NAME_BYTES,
    MAX_READ_NAME_BYTES,
    QUANTUM_WINDOWS,
    SEPARATORS,
    CabEntry,
    cfdata_checksum,
    name_problem,
)

# --- reader -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Folder:
    coff: int
    blocks: int
    comp: int


_INDEX_STRIDE = 64  # keep (file offset, uncompressed offset) of every 64th block
_IDLE_CURSORS = 4  # folders whose decoder state iter_chunks keeps between members (LZX: up to 2 MiB each)


@dataclass
class _FolderIndex:
    uoffs: array
    offsets: array
    total: int = 0
    end: int = 0  # file offset after the folder's last block


class _ChunkRaw(io.RawIOBase):
    def __init__(self, chunks: Iterator[memoryview]):
        self._chunks = chunks
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._cur:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._cur = memoryview(nxt)
        n = min(len(b), len(self._cur))
        b[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close:
            close()
        super().close()


class _FolderCursor:
    """Forward reader over one folder's uncompressed stream; restarts to go backwards."""

    def __init__(self, reader: CabReader, index: int):
        self._r = reader
        self._i = index
        self._gen: Iterator[tuple[int, bytes | bytearray | memoryview]] | None = None
        self._cur: tuple[int, bytes | bytearray | memoryview] | None = None

    def chunks(self, start: int, length: int, label: str) -> Iterator[memoryview]:
        end = start + length
        try:
            while start < end:
                if self._gen is None or self._cur is None or start < self._cur[0]:
                    self._gen = self._r._blocks(self._i, start)
                    self._cur = next(self._gen, None)
                while self._cur is not None and self._cur[0] + len(self._cur[1]) <= start:
                    self._cur = next(self._gen, None)
                if self._cur is None:
                    raise FormatError(f"data of folder {self._i} ends before the member does")
                base, data = self._cur
                a, b = start - base, min(len(data), end - base)
                yield memoryview(data)[a:b]
                start = base + b
        except FFUError as exc:
            self.close()
            raise type(exc)(f"member {label!r}: {exc.message}", self._r.path) from None  # keeps the kind

    def close(self) -> None:
        """Free the decoder state (an LZX window, libmspack's decompressor) now, not at collection."""
        gen, self._gen, self._cur = self._gen, None, None
        close = getattr(gen, "close", None)
        if close:
            close()


class CabReader:
    """Read a single (non-spanned) cabinet: none, MSZIP, LZX and Quantum folders, hostile input checked."""

    def __init__(self, path: str | os.PathLike, *, max_members: int = MAX_FILES):
        self.path = str(path)
        try:
            self._fd = open_regular(self.path)
        except OSError as exc:
            raise FFUError(f"cannot open cabinet: {exc.strerror}", self.path) from None
        try:
            self._parse(max_members)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise
        self._index: dict[int, _FolderIndex] = {}
        self._idle: dict[int, _FolderCursor] = {}

    @property
    def compressions(self) -> tuple[str, ...]:
        """Each folder's compression by name ("none", "MSZIP", "Quantum", "LZX"), in folder order."""
        return tuple(COMP_NAMES.get(f.comp & 0xF, f"#{f.comp & 0xF}") for f in self._folders)

    # context manager / lifetime
    def __enter__(self) -> CabReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for cursor in getattr(self, "_idle", {}).values():
            cursor.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _err(self, msg: str) -> FormatError:
        return FormatError(msg, self.path)

    def _pread(self, n: int, off: int) -> bytes:
        if off < 0 or off + n > self.cb_cabinet:
            raise self._err(f"{n} bytes at offset {off} lie outside the cabinet ({self.cb_cabinet} bytes)")
        data = os.pread(self._fd, n, off)
        if len(data) != n:
            raise self._err(f"file is truncated (wanted {n} bytes at offset {off})")
        return data

    def _parse(self, max_members: int) -> None:
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            raise self._err("not a regular file")
        size = st.st_size
        self.file_size = size
        if size < CFHEADER_FIXED_SIZE:
            raise self._err(f"file is truncated ({size} bytes; a CAB header needs {CFHEADER_FIXED_SIZE})")
        head = os.pread(self._fd, min(size, CFHEADER_FIXED_SIZE + 4 + MAX_HEADER_RESERVE + 4 * 256), 0)
        if head[:4] != b"MSCF":
            raise self._err("not a cabinet file (signature is not 'MSCF')")
        flags = int.from_bytes(head[30:32], "little")
        if flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET):
            raise self._err("multi-cabinet (spanned) sets are not supported; repack as a single cabinet")
        if flags & FLAG_RESERVE_PRESENT and len(head) >= 38:
            cb_reserve = int.from_bytes(head[36:38], "little")
            if cb_reserve > MAX_HEADER_RESERVE:
                raise self._err(f"header reserve of {cb_reserve} bytes exceeds {MAX_HEADER_RESERVE}")
        try:
            h = CFHEADER.parse(head)
        except ConstructError:
            raise self._err("file is truncated or has a corrupt header") from None
        if h.versionMajor != 1:
            raise self._err(f"unsupported cabinet version {h.versionMajor}.{h.versionMinor}")
        self.cb_cabinet = h.cbCabinet
        if h.cbCabinet > size:
            raise self._err(f"file is truncated (cbCabinet says {h.cbCabinet} bytes, file has {size})")
        if h.cbCabinet < h.end:
            raise self._err(f"cbCabinet {h.cbCabinet} is smaller than the header")
        self.flags = h.flags
        self.set_id = h.setID
        self.cb_cf_header = h.reserve.cbCFHeader if h.reserve else 0
        self.header_reserve = h.reserve.abReserve if h.reserve else b""
        self.cb_cf_folder = h.reserve.cbCFFolder if h.reserve else 0
        self.cb_cf_data = h.reserve.cbCFData if h.reserve else 0

        # folders
        fsize = CFFOLDER_SIZE + self.cb_cf_folder
        table = self._pread(fsize * h.cFolders, h.end)
        folders = []
        data_min = h.end + fsize * h.cFolders
        budget = 0
        for i in range(h.cFolders):
            f = CFFOLDER.parse(table[i * fsize : i * fsize + CFFOLDER_SIZE])
            if not data_min <= f.coffCabStart <= h.cbCabinet:
                raise self._err(f"folder {i}: data offset {f.coffCabStart} is outside the cabinet")
            need = f.cCFData * (CFDATA_SIZE + self.cb_cf_data)
            if f.coffCabStart + need > h.cbCabinet:
                raise self._err(f"folder {i}: {f.cCFData} data blocks cannot fit in the cabinet")
            budget += need
            folders.append(_Folder(f.coffCabStart, f.cCFData, f.typeCompress))
        if budget > h.cbCabinet - data_min:
            raise self._err("folders declare more data blocks than the cabinet can hold")
        self._folders = folders

        # files
        if h.cFiles == 0:
            raise self._err(
                "the cabinet lists no files ([MS-CAB] needs at least one; cabextract refuses it too)"
            )
        if h.cFiles > max_members:
            raise self._err(f"{h.cFiles} members exceed the limit of {max_members}")
        if h.cFiles and not data_min <= h.coffFiles <= h.cbCabinet:
            raise self._err(f"coffFiles {h.coffFiles} is outside the cabinet")
        if h.cFiles and h.cFiles * (CFFILE_FIXED_SIZE + 2) > h.cbCabinet - h.coffFiles:
            raise self._err(f"{h.cFiles} file entries cannot fit in the cabinet")
        members: list[CabEntry] = []
        pos = h.coffFiles
        buf = b""
        bufpos = pos
        for k in range(h.cFiles):
            want = CFFILE_FIXED_SIZE + MAX_READ_NAME_BYTES + 1
            rel = pos - bufpos
            if len(buf) - rel < want and bufpos + len(buf) < h.cbCabinet:
                n = min(max(65536, want), h.cbCabinet - pos)
                buf, bufpos, rel = self._pread(n, pos), pos, 0
            try:
                e = CFFILE.parse(buf[rel : rel + want])
            except ConstructError:
                raise self._err(f"file entry {k} is truncated or its name is too long") from None
            pos += CFFILE_FIXED_SIZE + len(e.szName) + 1
            if len(e.szName) > MAX_NAME_BYTES:  # CB_MAX_FILENAME; libmspack and Windows refuse longer
                raise self._err(
                    f"file entry {k}: name is {len(e.szName)} bytes, more than the {MAX_NAME_BYTES} allowed"
                )
            try:
                name = e.szName.decode("utf-8" if e.attribs & ATTR_NAME_IS_UTF else "latin-1")
            except UnicodeDecodeError:
                raise self._err(f"file entry {k}: name is not valid UTF-8") from None
            if e.iFolder >= 0xFFFD:
                raise self._err(
                    f"member {name!r} continues in another cabinet; spanned sets are not supported"
                )
            if e.iFolder >= len(folders):
                raise self._err(f"member {name!r}: folder index {e.iFolder} does not exist")
            if e.cbFile > MAX_FILE_SIZE:
                raise self._err(f"member {name!r}: size {e.cbFile} exceeds the CAB limit")
            if e.uoffFolderStart + e.cbFile > folders[e.iFolder].blocks * BLOCK_SIZE:
                raise self._err(f"member {name!r} extends past the end of folder {e.iFolder}")
            members.append(CabEntry(name, e.cbFile, e.iFolder, e.uoffFolderStart, e.date, e.time, e.attribs))
        self.members: list[CabEntry] = members
        self._folder_members: dict[int, list[CabEntry]] = {}
        for m in members:
            self._folder_members.setdefault(m.folder, []).append(m)
        self._by_name: dict[str, CabEntry | None] = {}
        for m in members:
            self._by_name[m.name] = None if m.name in self._by_name else m

    # data blocks
    def _block_header(
        self, fi: int, j: int, pos: int, comp: int, head: bytes | None = None
    ) -> tuple[int, int, int, int]:
        """Checked CFDATA header of block j at pos (`head`: its 8 bytes when already read)."""
        hl = CFDATA_SIZE + self.cb_cf_data
        csum, cb_data, cb_uncomp = CFDATA_S.unpack(
            head if head is not None else self._pread(CFDATA_SIZE, pos)
        )
        if cb_uncomp == 0 or cb_uncomp > BLOCK_SIZE:
            raise self._err(f"folder {fi} block {j}: cbUncomp {cb_uncomp} is not in 1..{BLOCK_SIZE}")
        if comp == COMP_NONE and cb_data != cb_uncomp:
            raise self._err(
                f"folder {fi} block {j}: stored block has cbData {cb_data} != cbUncomp {cb_uncomp}"
            )
        if comp == COMP_MSZIP and not 2 < cb_data <= MAX_MSZIP_CBDATA:
            raise self._err(f"folder {fi} block {j}: MSZIP cbData {cb_data} is out of range")
        if comp in (COMP_LZX, COMP_QUANTUM) and not 0 < cb_data <= MAX_MSZIP_CBDATA:
            # libmspack's CAB_INPUTMAX: 32768 + 6144 input bytes per block
            kind = COMP_NAMES[comp]
            raise self._err(f"folder {fi} block {j}: {kind} cbData {cb_data} is not in 1..{MAX_MSZIP_CBDATA}")
        if pos + hl + cb_data > self.cb_cabinet:
            raise self._err(f"folder {fi} block {j}: data extends past the end of the cabinet")
        return csum, cb_data, cb_uncomp, hl

    def _read_ahead(self, pos: int) -> bytes | None:
        """The bytes of a stored block's header and data in one read (None: read them apart)."""
        hl = CFDATA_SIZE + self.cb_cf_data
        if pos < 0 or pos + hl > self.cb_cabinet:
            return None
        buf = os.pread(self._fd, min(hl + BLOCK_SIZE, self.cb_cabinet - pos), pos)
        return buf if len(buf) >= hl else None

    def _check_folder(self, fi: int) -> _Folder:
        folder = self._folders[fi]
        comp, window = folder.comp & 0xF, (folder.comp >> 8) & 0x1F
        if comp not in COMP_NAMES:
            raise self._err(
                f"folder {fi}: compression type #{comp} is not supported; re-pack the CAB with LZX, MSZIP or none"
            )
        windows = {COMP_LZX: LZX_WINDOWS, COMP_QUANTUM: QUANTUM_WINDOWS}.get(comp)
        if windows is not None and window not in windows:
            raise self._err(
                f"folder {fi}: {COMP_NAMES[comp]} window 2^{window} is outside 2^{windows[0]}..2^{windows[-1]} "
                f"(typeCompress 0x{folder.comp:04x}); the cabinet is corrupt"
            )
        return folder

    def _folder_index(self, fi: int) -> _FolderIndex:
        """Walk folder ``fi``'s block headers once: bounds, total size, sparse seek index."""
        idx = self._index.get(fi)
        if idx is None:
            folder = self._check_folder(fi)
            comp = folder.comp & 0xF
            idx = _FolderIndex(array("Q"), array("Q"))
            pos, total = folder.coff, 0
            for j in range(folder.blocks):
                if j % _INDEX_STRIDE == 0:
                    idx.uoffs.append(total)
                    idx.offsets.append(pos)
                _c, cb, cu, hl = self._block_header(fi, j, pos, comp)
                pos += hl + cb
                total += cu
            idx.total, idx.end = total, pos
            for m in self._folder_members.get(fi, ()):
                if m.offset + m.size > total:
                    raise self._err(
                        f"member {m.name!r} (offset {m.offset}, {m.size} bytes) extends past the end of "
                        f"folder {fi} data ({total} bytes)"
                    )
            self._index[fi] = idx
        return idx

    def _blocks(self, fi: int, want: int) -> Iterator[tuple[int, bytes | bytearray | memoryview]]:
        """(uncompressed offset, data) of folder ``fi``'s blocks from the one holding ``want``
        (stored folders seek via the sparse index; MSZIP needs the history from block 0)."""
        folder = self._check_folder(fi)
        comp = folder.comp & 0xF
        idx = self._folder_index(fi)
        if comp in (COMP_LZX, COMP_QUANTUM):  # LZX/Quantum history spans the folder: from block 0
            yield from mspack.decode_folder(
                self._fd, self.path, fi, folder.comp, folder.blocks, folder.coff, idx.end - folder.coff,
                idx.total, self.cb_cf_data,
            )  # fmt: skip
            return
        k = max(bisect_right(idx.uoffs, want) - 1, 0) if comp == COMP_NONE else 0
        pos, uoff = (idx.offsets[k], idx.uoffs[k]) if idx.offsets else (folder.coff, 0)
        hist = b""
        for j in range(k * _INDEX_STRIDE, folder.blocks):
            ahead = self._read_ahead(pos) if comp == COMP_NONE and uoff + BLOCK_SIZE > want else None
            csum, cb, cu, hl = self._block_header(fi, j, pos, comp, ahead and ahead[:CFDATA_SIZE])
            if comp == COMP_NONE and uoff + cu <= want:
                pos += hl + cb
                uoff += cu
                continue
            ab = (
                memoryview(ahead)[hl : hl + cb]
                if ahead and len(ahead) >= hl + cb
                else self._pread(cb, pos + hl)
            )
            if csum and cfdata_checksum(ab, cb, cu) != csum:
                raise self._err(f"folder {fi} block {j}: checksum mismatch (corrupt data)")
            if comp == COMP_NONE:
                out = ab
            else:
                if ab[:2] != b"CK":
                    raise self._err(f"folder {fi} block {j}: MSZIP block does not start with 'CK'")
                d = zlib.decompressobj(-15, zdict=hist) if hist else zlib.decompressobj(-15)
                try:
                    out = d.decompress(memoryview(ab)[2:], cu + 1)
                except zlib.error as exc:
                    raise self._err(f"folder {fi} block {j}: corrupt MSZIP data ({exc})") from None
                if len(out) != cu:
                    raise self._err(
                        f"folder {fi} block {j}: MSZIP data inflates to "
                        f"{'more' if len(out) > cu else 'fewer'} than the declared {cu} bytes"
                    )
                hist = out if cu >= BLOCK_SIZE else (hist + out)[-BLOCK_SIZE:]
            yield uoff, out
            pos += hl + cb
            uoff += cu

    # public access
    def _entry(self, name: str | CabEntry) -> CabEntry:
        if isinstance(name, CabEntry):
            return name
        if name not in self._by_name:
            raise ConfigError(f"no member named {name!r}", self.path)
        e = self._by_name[name]
        if e is None:
            raise self._err(f"member name {name!r} occurs more than once")
        return e

    def iter_chunks(self, name: str | CabEntry) -> Iterator[memoryview]:
        """Stream a member's bytes in chunks of at most 32 KiB."""
        e = self._entry(name)
        if e.size:
            self._folder_index(e.folder)
        return self._member_chunks(e)

    def _member_chunks(self, e: CabEntry) -> Iterator[memoryview]:
        # Reuse an idle cursor of the folder so members read in order decode each block once.
        cursor = self._idle.pop(e.folder, None) or _FolderCursor(self, e.folder)
        try:
            yield from cursor.chunks(e.offset, e.size, e.name)
        finally:
            self._idle[e.folder] = cursor
            while len(self._idle) > _IDLE_CURSORS:  # bounded memory with many compressed folders
                self._idle.pop(next(iter(self._idle))).close()

    def open(self, name: str | CabEntry) -> io.BufferedReader:
        """A read-only binary stream over one member (bounded memory)."""
        return io.BufferedReader(_ChunkRaw(self.iter_chunks(name)), BLOCK_SIZE)

    def read(self, name: str | CabEntry, max_size: int | None = DEFAULT_READ_MAX) -> bytes:
        """A member's content; refuses members above ``max_size`` bytes (None: no limit)."""
        e = self._entry(name)
        if max_size is not None and e.size > max_size:
            raise self._err(
                f"member {e.name!r} is {e.size} bytes, more than the {max_size} allowed in memory"
            )
        return b"".join(self.iter_chunks(e))

    def extract_all(self, dest_dir: str | os.PathLike) -> list[Path]:
        """Extract every member below ``dest_dir``; never writes outside it or through symlinks."""
        dest = Path(dest_dir)
        seen: dict[str, str] = {}
        parts: list[list[str]] = []
        for m in self.members:
            problem = name_problem(m.name, slash_is_separator=True)
            if problem:
                raise self._err(f"refusing to extract member {m.name!r}: name {problem}")
            key = SEPARATORS.sub("\\\\", m.name).casefold()
            if key in seen:
                raise self._err(f"duplicate member name {m.name!r} (clashes with {seen[key]!r})")
            seen[key] = m.name
            parts.append(SEPARATORS.split(m.name))
        for fi in sorted({m.folder for m in self.members if m.size}):
            self._folder_index(fi)
        try:
            dest.mkdir(parents=True, exist_ok=True)
            root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise FFUError(f"cannot create extraction directory: {exc.strerror}", str(dest)) from None
        dirs: dict[tuple[str, ...], int] = {(): root}
        cursors: dict[int, _FolderCursor] = {}
        order = sorted(
            range(len(self.members)), key=lambda k: (self.members[k].folder, self.members[k].offset)
        )
        written: list[Path] = [dest] * len(self.members)
        try:
            for k in order:
                m, segs = self.members[k], parts[k]
                dfd = self._open_dirs(dirs, segs[:-1], dest)
                target = dest.joinpath(*segs)
                if m.folder not in cursors:
                    for done in cursors.values():  # members go folder by folder: free the last decoder
                        done.close()
                    cursors = {m.folder: _FolderCursor(self, m.folder)}
                cursor = cursors[m.folder]
                self._write_member(dfd, segs[-1], target, cursor.chunks(m.offset, m.size, m.name))
                written[k] = target
        finally:
            for cursor in cursors.values():
                cursor.close()
            for fd in dirs.values():
                os.close(fd)
        return written

    def _open_dirs(self, dirs: dict[tuple[str, ...], int], segs: list[str], dest: Path) -> int:
        for i in range(len(segs)):
            key = tuple(segs[: i + 1])
            if key in dirs:
                continue
            parent = dirs[key[:-1]]
            try:
                os.mkdir(segs[i], 0o777, dir_fd=parent)
            except FileExistsError:
                pass
            except OSError as exc:
                raise FFUError(f"cannot create directory: {exc.strerror}", str(dest.joinpath(*key))) from None
            try:
                dirs[key] = os.open(
                    segs[i], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
                )
            except OSError as exc:
                raise FFUError(
                    f"refusing to extract through {dest.joinpath(*key)}: not a plain directory ({exc.strerror})",
                    self.path,
                ) from None
        return dirs[tuple(segs)]

    def _write_member(self, dfd: int, leaf: str, target: Path, chunks: Iterator[memoryview]) -> None:
        try:
            st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise FFUError(f"cannot extract: {exc.strerror}", str(target)) from None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise FFUError("cannot extract a file over an existing directory", str(target))
            os.unlink(leaf, dir_fd=dfd)  # never write through an existing symlink or hard link
        try:
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dfd
            )
        except OSError as exc:
            raise FFUError(f"cannot extract: {exc.strerror}", str(target)) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        except BaseException:
            try:
                os.unlink(leaf, dir_fd=dfd)
            except OSError:
                pass
            raise
