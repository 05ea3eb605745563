"""The FFU reader: parses and bounds-checks the headers, manifest and descriptors, verifies
chunk hashes and the catalog, replays a store onto a raw disk and describes the file.

The reader treats the file as hostile: every size, count and offset is checked against the
file before use and problems are FFUError, never an exception from deep inside. It does not
check catalog signatures itself (a format does not depend on signing): `verify` takes the
check as a callable, e.g. from `ffuforge.signing.verify`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

from ...errors import ConfigError, FFUError, FormatError
from ...util.atomic import atomic_output
from ...util.paths import open_regular
from .. import catalog, ptable
from .manifest import parse_manifest
from .structs import (
    ALG_SHA1,
    ALG_SHA256,
    DISK_BEGIN,
    DISK_END,
    HASHTABLE_MEMBER,
    IMAGE_HEADER,
    IMAGE_SIGNATURE,
    MAX_BLOCK_SIZE,
    MAX_CATALOG,
    MAX_DEVICE_PATH,
    MAX_MANIFEST,
    MAX_STORES,
    SECURITY_HEADER,
    SECURITY_SIGNATURE,
    STORE_HEADER,
    STORE_HEADER_V2,
    U32X2,
    FfuStoreInfo,
    FfuVerifyResult,
    Progress,
    align,
    lookup,
)

_PAGE = 4096


def _write_changed(fd: int, data: bytes, offset: int, old: bytes) -> None:
    """Write the 4 KiB pages of `data` that differ from `old` (what is there now), in runs, so
    zero pages written onto holes stay holes."""
    start = None
    for o in range(0, len(data), _PAGE):
        if data[o : o + _PAGE] != old[o : o + _PAGE]:
            if start is None:
                start = o
        elif start is not None:
            os.pwrite(fd, data[start:o], offset + start)
            start = None
    if start is not None:
        os.pwrite(fd, data[start:], offset + start)


CatalogCheck = Callable[[bytes, list[str]], list[str]]
"""`check(catalog_der, signers) -> problems` with a signed catalog's signature, each starting
"catalog: "; it appends the signers' names to `signers`. `ffuforge.signing.verify`'s
`catalog_signature_problems(der, roots, where="catalog", signers=signers)` is the usual one."""


class FfuReader:
    """Open and check an FFU's structure (bounded: every offset/count against the file size)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f = os.fdopen(open_regular(self.path), "rb")  # closed by close()
        except OSError as e:
            raise FormatError(f"cannot open FFU: {e.strerror}", file=str(path)) from e
        try:
            self.size = os.fstat(self._f.fileno()).st_size
            self._parse()
        except FFUError as e:
            self._f.close()
            raise e.at(str(path)) from None
        except BaseException:
            self._f.close()
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> FfuReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parsing -----------------------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(
                f"{what} at offset {offset:#x} (+{length}) lies beyond the end of the file "
                f"({self.size} bytes): truncated or corrupt"
            )
        data = os.pread(self._f.fileno(), length, offset)
        if len(data) != length:
            raise FormatError(f"{what}: short read")
        return data

    def _parse(self) -> None:
        sh = SECURITY_HEADER.parse(self._read(0, 32, "security header"))
        if sh.cbSize != 32 or sh.signature != SECURITY_SIGNATURE:
            raise FormatError("not an FFU (no 'SignedImage ' security header)")
        if not 1 <= sh.chunk_kb <= 1024:
            raise FormatError(f"chunk size {sh.chunk_kb} KiB out of range")
        if sh.alg_id not in (ALG_SHA256, ALG_SHA1):
            raise FormatError(f"hash algorithm {sh.alg_id:#x} unknown (0x800c SHA-256 expected)")
        self.security = dict(sh)
        self.security.pop("_io", None)
        self.chunk = sh.chunk_kb * 1024
        self.digest_size = 32 if sh.alg_id == ALG_SHA256 else 20
        if sh.catalog_size == 0 or sh.catalog_size > MAX_CATALOG:
            raise FormatError(f"catalog size {sh.catalog_size} out of range")
        if sh.hash_table_size % self.digest_size:
            raise FormatError(f"hash table size {sh.hash_table_size} is not a multiple of {self.digest_size}")
        self.catalog = self._read(32, sh.catalog_size, "catalog")
        self.hash_table = self._read(32 + sh.catalog_size, sh.hash_table_size, "hash table")
        self.image_offset = img = align(32 + sh.catalog_size + sh.hash_table_size, self.chunk)
        ih = IMAGE_HEADER.parse(self._read(img, 24, "image header"))
        if ih.signature != IMAGE_SIGNATURE:
            raise FormatError(f"no 'ImageFlash  ' image header at offset {img:#x}")
        if ih.cbSize != 24:
            raise FormatError(f"image header size {ih.cbSize} unsupported (only the 24-byte header is)")
        if ih.chunk_kb != sh.chunk_kb:
            raise FormatError(f"image header chunk size {ih.chunk_kb} KiB differs from the security header's")
        if ih.manifest_length > MAX_MANIFEST:
            raise FormatError(f"manifest length {ih.manifest_length} out of range")
        self.image_header = dict(ih)
        self.image_header.pop("_io", None)
        raw = self._read(img + 24, ih.manifest_length, "manifest")
        try:
            self.manifest_text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise FormatError(f"manifest is not ASCII (byte {e.start})") from None
        self.manifest = parse_manifest(self.manifest_text)
        store_sections = [d for name, d in self.manifest if name.lower() == "store"]
        parts_by_store: list[list[dict[str, str]]] = []
        for name, d in self.manifest:
            if name.lower() == "store":
                parts_by_store.append([])
            elif name.lower() == "partition" and parts_by_store:
                parts_by_store[-1].append(d)

        self.stores: list[FfuStoreInfo] = []
        off = align(img + 24 + ih.manifest_length, self.chunk)
        nstores = 1
        while len(self.stores) < nstores:
            st = self._parse_store(off, len(self.stores))
            if len(self.stores) == 0:
                nstores = st.num_stores
            elif st.num_stores != nstores:
                raise FormatError(f"store {st.index + 1} says {st.num_stores} stores, store 1 says {nstores}")
            if len(self.stores) < len(store_sections):
                st.manifest = store_sections[len(self.stores)]
                st.partitions = parts_by_store[len(self.stores)]
            self.stores.append(st)
            off = align(st.meta_end, st.block_size)
        self.payload_offset = off
        for st in self.stores:
            st.payload_offset = off
            off += st.payload_blocks * st.block_size
            if st.compression is None:
                self._check_locations(st)
        self.eof = off
        if any(st.compression is not None for st in self.stores):
            return  # compressed payload blocks are variable-length; sizes not checked
        if self.eof != self.size:
            raise FormatError(
                f"file is {self.size} bytes but its headers describe {self.eof} "
                f"({'truncated' if self.size < self.eof else 'extra bytes at the end'})"
            )

    def _parse_store(self, off: int, k: int) -> FfuStoreInfo:
        h = STORE_HEADER.parse(self._read(off, 248, f"store {k + 1} header"))
        version = (h.major, h.ff_major)
        if version not in ((1, 2), (2, 2), (1, 3)):
            raise FormatError(
                f"store header version {h.major}.{h.minor} / full flash {h.ff_major}.{h.ff_minor} unsupported"
            )
        bs = h.block_size
        if not (512 <= bs <= MAX_BLOCK_SIZE and bs % 512 == 0):
            raise FormatError(f"block size {bs} out of range")
        pos = off + 248
        num_stores, device_path, compression = 1, None, None
        if h.major == 2:
            ext = STORE_HEADER_V2.parse(self._read(pos, 14, f"store {k + 1} v2 header"))
            if not 1 <= ext.num_stores <= MAX_STORES or ext.store_index != k + 1:
                raise FormatError(f"store {k + 1}: store index {ext.store_index} of {ext.num_stores} invalid")
            if ext.device_path_length > MAX_DEVICE_PATH:
                raise FormatError(f"store {k + 1}: device path length {ext.device_path_length} out of range")
            raw = self._read(pos + 14, 2 * ext.device_path_length, "device path")
            device_path = raw.decode("utf-16-le", errors="replace")
            num_stores = ext.num_stores
            pos += 14 + 2 * ext.device_path_length
        elif h.ff_major == 3:
            compression = struct.unpack("<I", self._read(pos, 4, "compression field"))[0]
            pos += 4
        header_length = pos - off
        vlen, wlen, count = h.validate_descriptor_length, h.write_descriptor_length, h.write_descriptor_count
        if pos + vlen + wlen > self.size:
            raise FormatError(f"store {k + 1}: descriptors ({vlen}+{wlen} bytes) beyond the end of the file")
        entry = 12 if compression is not None else 8
        if count * entry > wlen:
            raise FormatError(f"store {k + 1}: {count} write descriptors cannot fit {wlen} bytes")
        raw = self._read(pos + vlen, wlen, "write descriptors")
        loc_start, counts, payload = array("Q", [0]), array("I"), array("Q")
        methods, indices = array("B"), array("I")
        p, nblocks = 0, 0
        for i in range(count):
            if p + entry > wlen:
                raise FormatError(f"store {k + 1}: write descriptor {i} runs past the descriptor area")
            nloc, nblk = U32X2.unpack_from(raw, p)
            p += entry
            if nloc > (wlen - p) // 8:
                raise FormatError(f"store {k + 1}: write descriptor {i} claims {nloc} locations")
            if nblk == 0:
                raise FormatError(f"store {k + 1}: write descriptor {i} has BlockCount 0")
            for j in range(nloc):
                method, index = U32X2.unpack_from(raw, p + 8 * j)
                if method not in (DISK_BEGIN, DISK_END):
                    raise FormatError(f"store {k + 1}: descriptor {i} disk access method {method} unknown")
                methods.append(method)
                indices.append(index)
            p += 8 * nloc
            loc_start.append(len(methods))
            counts.append(nblk)
            payload.append(nblocks)
            nblocks += nblk
            if compression is None and nblocks * bs > self.size:
                raise FormatError(f"store {k + 1}: descriptors need more payload than the file holds")
        if p != wlen:
            raise FormatError(f"store {k + 1}: write descriptors take {p} bytes, header says {wlen}")
        ids = tuple(x.decode("ascii", errors="replace") for x in h.platform_id.split(b"\0") if x)
        header = dict(h)
        header.pop("_io", None)
        if h.major == 2:
            header.update(
                num_stores=num_stores,
                store_index=k + 1,
                store_payload_size=ext.store_payload_size,
                device_path_length=ext.device_path_length,
            )
        return FfuStoreInfo(
            k,
            header,
            off,
            header_length,
            pos + vlen + wlen,
            bs,
            ids,
            device_path,
            num_stores,
            compression,
            loc_start,
            counts,
            payload,
            methods,
            indices,
            nblocks,
        )

    def _check_locations(self, st: FfuStoreInfo) -> None:
        disk = st.disk_bytes
        if disk is None:
            return
        nb = disk // st.block_size
        for i in range(st.descriptor_count):
            blk = st.block_counts[i]
            for j in range(st.loc_start[i], st.loc_start[i + 1]):
                if st.loc_index[j] + blk > nb:
                    raise FormatError(
                        f"store {st.index + 1}: descriptor {i} writes block "
                        f"{st.loc_index[j]} ({'DISK_END' if st.loc_method[j] else 'DISK_BEGIN'}) "
                        f"outside the {nb}-block disk"
                    )

    # -- disk view ---------------------------------------------------------------------------

    def _disk_size(self, st: FfuStoreInfo) -> int:
        disk = st.disk_bytes
        if disk is None:
            raise FormatError(
                f"store {st.index + 1}: manifest lacks a valid SectorSize/MinSectorCount; disk size unknown"
            )
        if disk % st.block_size:
            raise FormatError(f"store {st.index + 1}: disk size {disk} is not a multiple of the block size")
        return disk

    def _final_map(self, st: FfuStoreInfo) -> dict[int, int]:
        """disk block → file offset of the payload block that ends up there (replay order)."""
        out: dict[int, int] = {}
        self._disk_size(st)
        for i in range(st.descriptor_count):
            nblk = st.block_counts[i]
            src = st.payload_offset + st.payload_start[i] * st.block_size
            for j in range(st.loc_start[i], st.loc_start[i + 1]):
                first = st.disk_offset(st.loc_method[j], st.loc_index[j], nblk) // st.block_size
                for b in range(nblk):
                    out[first + b] = src + b * st.block_size
        return out

    def stored_blocks(self, store: int = 0) -> list[tuple[int, int]]:
        """(disk block, file offset of its final content), sorted: what replaying the store writes
        (every stored block, all-zero ones too), each block once, as a device must receive it."""
        st = self._store(store)
        if st.compression is not None:
            raise FormatError("compressed FFU payload is not supported")
        self._check_locations(st)
        return sorted(self._final_map(st).items())

    def disk_reader(self, store: int = 0) -> Callable[[int, int], bytes]:
        """read(offset, length) of the disk this store produces (unwritten bytes read as zero)."""
        st = self._store(store)
        if st.compression is not None:
            raise FormatError("compressed FFU payload is not supported")
        fmap = self._final_map(st)
        disk, bs = self._disk_size(st), st.block_size  # checked by _final_map already

        def read(offset: int, length: int) -> bytes:
            if offset < 0 or length < 0 or offset + length > disk:
                return b""
            out = bytearray()
            while length > 0:
                b, o = divmod(offset, bs)
                n = min(length, bs - o)
                src = fmap.get(b)
                out += self._read(src + o, n, "payload") if src is not None else bytes(n)
                offset += n
                length -= n
            return bytes(out)

        return read

    def _store(self, k: int) -> FfuStoreInfo:
        if not 0 <= k < len(self.stores):
            raise ConfigError(f"store {k + 1} does not exist (the FFU has {len(self.stores)})")
        return self.stores[k]

    # -- verify --------------------------------------------------------------------------------

    def _where(self, offset: int) -> str:
        if offset < self.stores[0].offset:
            return "image header/manifest"
        if offset < self.payload_offset:
            k = max(i for i, s in enumerate(self.stores) if s.offset <= offset)
            return f"store {k + 1} header/descriptors"
        for st in self.stores:
            end = st.payload_offset + st.payload_blocks * st.block_size
            if offset < end and st.compression is None:
                pb = (offset - st.payload_offset) // st.block_size
                i = bisect_right(st.payload_start, pb) - 1
                locs = (
                    ", ".join(f"{'END' if m else 'BEGIN'} {x}" for m, x in st.locations(i)) or "no location"
                )
                return f"store {st.index + 1} payload block {pb}, descriptor {i} → disk block {locs}"
        return "payload"

    def verify(
        self, *, catalog_check: CatalogCheck | None = None, progress: Progress | None = None
    ) -> FfuVerifyResult:
        """Check every chunk against the hash table, the catalog against the hash table, the
        catalog signature (when signed, through `catalog_check`; without one the signature is
        not checked) and the rules Microsoft's tools enforce."""
        problems: list[str] = []
        chunk, ds = self.chunk, self.digest_size
        body = self.size - self.image_offset
        nchunks = -(-body // chunk)
        if body % chunk:
            problems.append(f"file does not end on a chunk boundary ({body % chunk} bytes over)")
        if len(self.hash_table) != ds * nchunks:
            problems.append(
                f"hash table has {len(self.hash_table) // ds} entries, the image has {nchunks} chunks"
            )
        algo = hashlib.sha256 if ds == 32 else hashlib.sha1
        bad: list[int] = []
        buf = memoryview(bytearray(64 * chunk))
        fd = self._f.fileno()
        off, c = self.image_offset, 0
        while off < self.size:
            n = os.preadv(fd, [buf[: min(len(buf), self.size - off)]], off)
            if n <= 0:
                problems.append("file shrank while being verified")
                break
            for o in range(0, n, chunk):
                piece = buf[o : min(o + chunk, n)]
                h = algo(piece.tobytes().ljust(chunk, b"\0") if len(piece) < chunk else piece).digest()
                if self.hash_table[c * ds : (c + 1) * ds] != h:
                    bad.append(c)
                c += 1
            off += n
            if progress:
                progress(off - self.image_offset, body)
        for c in bad[:10]:
            problems.append(
                f"chunk {c} (file offset {self.image_offset + c * chunk:#x}, "
                f"{self._where(self.image_offset + c * chunk)}): SHA-256 does not match the hash table"
            )
        if len(bad) > 10:
            problems.append(f"… and {len(bad) - 10} more chunks do not match the hash table")

        signed = False
        signers: list[str] = []
        try:
            parsed = catalog.parse_catalog(self.catalog)
            signed = parsed.signed
            ident = HASHTABLE_MEMBER.encode("utf-16-le") + b"\0\0"
            subj = parsed.subjects.get(ident)
            if parsed.version != 1:
                problems.append("catalog: not a version-1 (SHA-1 member) catalog")
            if subj is None:
                problems.append(f"catalog: no {HASHTABLE_MEMBER} member")
            elif subj.digest != hashlib.sha1(self.hash_table).digest():
                problems.append(f"catalog: {HASHTABLE_MEMBER} digest does not match the hash table (SHA-1)")
        except FFUError as e:
            problems.append(f"catalog: {e.message}")
        if signed and catalog_check is not None:
            problems += catalog_check(self.catalog, signers)

        problems += self._rule_problems()
        return FfuVerifyResult(problems, nchunks, signed, signers)

    def _rule_problems(self) -> list[str]:
        out = []
        ff = next((d for n, d in self.manifest if n.lower() == "fullflash"), None)
        if ff is None:
            out.append("manifest: no [FullFlash] section")
        elif lookup(ff, "Version") != "2.0":
            out.append(f"manifest: [FullFlash] Version is {lookup(ff, 'Version')!r}, must be 2.0")
        extra = {n for n, _ in self.manifest} - {"FullFlash", "Store", "Partition"}
        if extra:
            out.append(f"manifest: unexpected sections {sorted(extra)}")
        if self.security["chunk_kb"] * 1024 != self.stores[0].block_size:
            out.append("chunk size differs from the block size (ImgGen hashes per block)")
        for st in self.stores:
            name = f"store {st.index + 1}"
            if not st.manifest:
                out.append(f"{name}: no [Store] section in the manifest")
            elif st.sector_size is None:
                out.append(f"{name}: manifest lacks SectorSize")
            if st.disk_bytes is not None and st.disk_bytes % st.block_size:
                out.append(f"{name}: disk size is not a multiple of the block size")
            if (st.meta_end - st.offset) % st.block_size == 0:
                out.append(
                    f"{name}: metadata ends exactly on a block boundary (Microsoft's reader skips a block)"
                )
            if any(x != 1 for x in st.block_counts):
                out.append(f"{name}: descriptors with BlockCount ≠ 1 (Microsoft's reader rejects them)")
            h = st.header
            fo_end, fin_end = (
                h["flash_only_index"] + h["flash_only_count"],
                h["final_index"] + h["final_count"],
            )
            if not (
                h["initial_index"] + h["initial_count"]
                <= h["flash_only_index"]
                <= fo_end
                <= h["final_index"]
                <= fin_end
                <= st.descriptor_count
            ):
                out.append(f"{name}: phase table indices out of order or beyond the descriptors")
            if st.header.get("store_payload_size") not in (None, st.payload_blocks * st.block_size):
                out.append(f"{name}: StorePayloadSize does not match its descriptors")
        return out

    # -- to raw --------------------------------------------------------------------------------

    def to_raw(
        self, out_path: str | os.PathLike, store: int = 0, *, progress: Progress | None = None
    ) -> Path:
        """Replay the store's descriptors onto a sparse raw disk (size from the manifest)."""
        st = self._store(store)
        if st.compression is not None:
            raise FormatError("compressed FFU payload is not supported")
        disk, bs = self._disk_size(st), st.block_size
        self._check_locations(st)
        written: set[int] = set()  # disk blocks holding data (O(stored blocks), not O(disk))
        zero = bytes(bs)
        out_path = Path(out_path)
        run = 64
        buf = memoryview(bytearray(run * bs))
        fd = self._f.fileno()
        total = st.payload_blocks
        firsts: list[int] = []
        with contextlib.ExitStack() as stack:
            try:
                f = stack.enter_context(atomic_output(out_path))
                f.truncate(disk)
                f.flush()
            except OSError as e:
                raise ConfigError(
                    f"cannot create the {disk}-byte raw disk: {e.strerror or e}", file=str(out_path)
                ) from e
            ofd = f.fileno()
            d, pb = -1, 0
            d_end = 0
            while pb < total:
                cnt = min(run, total - pb)
                data = buf[: cnt * bs]
                if os.preadv(fd, [data], st.payload_offset + pb * bs) != len(data):
                    raise FormatError("payload truncated")
                for k in range(cnt):
                    while pb + k >= d_end:  # next descriptor owning this payload block
                        d += 1
                        d_end = st.payload_start[d] + st.block_counts[d]
                        nblk = st.block_counts[d]
                        firsts = [
                            st.disk_offset(st.loc_method[li], st.loc_index[li], nblk) // bs
                            for li in range(st.loc_start[d], st.loc_start[d + 1])
                        ]
                    if not firsts:
                        continue
                    piece = data[k * bs : (k + 1) * bs]
                    raw = piece.tobytes()
                    b = pb + k - st.payload_start[d]
                    for first in firsts:
                        db = first + b
                        if db in written:
                            _write_changed(ofd, raw, db * bs, os.pread(ofd, bs, db * bs))
                        elif raw != zero:
                            _write_changed(ofd, raw, db * bs, zero)  # onto a hole: zero pages stay holes
                            written.add(db)
                pb += cnt
                if progress:
                    progress(pb * bs, total * bs)
        return out_path

    # -- info ----------------------------------------------------------------------------------

    def info(self) -> str:
        sh = self.security
        lines = [f"FFU {self.path}: {self.size} bytes, {len(self.stores)} store(s)"]
        try:
            parsed = catalog.parse_catalog(self.catalog)
            cat = (
                f"{'signed' if parsed.signed else 'unsigned'} v{parsed.version} catalog, members "
                + ", ".join(
                    k.decode("utf-16-le", errors="replace").rstrip("\0") for k in parsed.subject_order
                )
            )
        except FFUError as e:
            cat = f"unreadable catalog ({e.message})"
        lines += [
            f"security header: chunk {sh['chunk_kb']} KiB, algorithm {sh['alg_id']:#06x}, "
            f"catalog {sh['catalog_size']} B ({cat}), hash table {sh['hash_table_size']} B",
            f"image header at {self.image_offset:#x}: {self.image_header['cbSize']} B, manifest "
            f"{self.image_header['manifest_length']} B",
            "manifest:",
        ]
        lines += ["  " + line for line in self.manifest_text.replace("\r\n", "\n").rstrip("\n").split("\n")]
        for st in self.stores:
            h = st.header
            lines.append(
                f"store {st.index + 1}/{st.num_stores} at {st.offset:#x}: version {h['major']}.{h['minor']}, "
                f"full flash {h['ff_major']}.{h['ff_minor']}, block {st.block_size} B, "
                f"platform {', '.join(st.platform_ids) or '-'}"
                + (f", device path {st.device_path}" if st.device_path else "")
                + (f", compression {st.compression}" if st.compression is not None else "")
            )
            lines.append(
                f"  {st.descriptor_count} write descriptors ({h['write_descriptor_length']} B), "
                f"{h['validate_descriptor_count']} validation; initial {h['initial_index']}+{h['initial_count']}, "
                f"flash-only {h['flash_only_index']}+{h['flash_only_count']}, final {h['final_index']}+"
                f"{h['final_count']}; payload {st.payload_blocks} blocks at {st.payload_offset:#x}"
            )
            disk, ss = st.disk_bytes, st.sector_size
            if disk is None or ss is None or st.compression is not None:  # ss is set when disk is
                lines.append("  partition table: not available")
                continue
            lines.append(f"  disk {disk} bytes ({disk // ss} sectors of {ss} B); partition table:")
            try:
                text = ptable.describe_table(self.disk_reader(st.index), disk // ss, ss)
            except FFUError as e:
                text = f"unreadable ({e.message})"
            lines += ["    " + line for line in text.split("\n")]
        return "\n".join(lines)
