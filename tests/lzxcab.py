"""A test-only writer of LZX-compressed cabinets: ffuforge writes no LZX (it never needs to) and
no Debian tool compresses LZX, but LZX has an *uncompressed* block type, and a stream of such
blocks is valid LZX that every decoder must accept. Used for a large LZX folder (bounded memory)
and for Microsoft-form packages in the compression Microsoft's packaging defaults to (FastLZX);
the tests that use it check the result with cabextract.

Facts ([MS-PATCH] 2.2 / 2.3.3; libmspack ``lzxd.c`` reads it this way): the bit stream is 16-bit
little-endian words, bits taken most significant first; one leading bit for Intel E8 translation;
a block is 3 bits of type (3 = uncompressed) and 24 bits of length, then 1-16 bits of padding to a
word, R0 R1 R2 as little-endian 32-bit values, the raw bytes and a pad byte when the length is odd;
each CFDATA decompresses to 32768 bytes (the last to what is left). typeCompress = 3 | window << 8.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ffuforge.formats.cab import CFDATA, CFFILE, CFFOLDER, CFHEADER, cfdata_checksum


class _Bits:
    """LZX bit writer: 16-bit little-endian words, bits from the most significant down."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = self.n = 0

    def put(self, value: int, bits: int) -> None:
        for i in range(bits - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 16:
                self.out += struct.pack("<H", self.acc)
                self.acc = self.n = 0

    def align(self) -> None:
        """LZX uncompressed blocks: 1..16 padding bits (a whole word when already aligned)."""
        self.put(0, 16 - self.n)


def lzx_stored(data: bytes, block: int = 1 << 20) -> bytes:
    """An LZX stream (no E8 translation) of uncompressed blocks: [MS-PATCH] 2.2 / 2.3.3."""
    bits = _Bits()
    bits.put(0, 1)  # E8 translation off
    for start in range(0, len(data), block):
        chunk = data[start : start + block]
        bits.put(3, 3)  # block type: uncompressed
        bits.put(len(chunk), 24)
        bits.align()
        bits.out += struct.pack("<III", 1, 1, 1)  # R0 R1 R2
        bits.out += chunk
        if len(chunk) & 1:
            bits.out += b"\0"
    return bytes(bits.out)


def lzx_cab(path: Path, members: list[tuple[str, bytes]], window: int = 21, csum: bool = True) -> None:
    """One LZX folder; the stream cut into CFDATA blocks of 32768 uncompressed bytes each.

    Uncompressed blocks cost 12 bytes of R0..R2 and a header per block, so the n-th CFDATA block
    carries the stream bytes up to the n-th frame end: frame k's bytes end at a known offset."""
    data = b"".join(d for _n, d in members)
    stream = lzx_stored(data)
    frames = -(-len(data) // 32768)
    # stored data maps 1:1 after each block header; place CFDATA cuts at the input offset of each
    # frame end (any cut works for libmspack, which concatenates CFDATA input; keep them near 32 KiB)
    cuts = [min(len(stream), round(len(stream) * (k + 1) / frames)) for k in range(frames)]
    cuts[-1] = len(stream)
    blocks, prev = [], 0
    for k, cut in enumerate(cuts):
        ab = stream[prev:cut]
        cu = min(32768, len(data) - k * 32768)
        sum_ = cfdata_checksum(ab, len(ab), cu) if csum else 0  # 0: "no checksum", never checked
        blocks.append(CFDATA.build(dict(csum=sum_, cbData=len(ab), cbUncomp=cu)) + ab)
        prev = cut
    table, off = b"", 0
    for name, d in members:
        table += CFFILE.build(
            dict(
                cbFile=len(d),
                uoffFolderStart=off,
                iFolder=0,
                date=0x5021,
                time=0,
                attribs=0x20,
                szName=name.encode(),
            )
        )
        off += len(d)
    coff_files = 36 + 8
    data_start = coff_files + len(table)
    body = b"".join(blocks)
    head = CFHEADER.build(
        dict(
            reserved1=0, cbCabinet=data_start + len(body), reserved2=0, coffFiles=coff_files, reserved3=0,
            versionMinor=3, versionMajor=1, cFolders=1, cFiles=len(members), flags=0, setID=0, iCabinet=0,
            reserve=None, prev=None, next=None,
        )
    )  # fmt: skip
    folder = CFFOLDER.build(
        dict(coffCabStart=data_start, cCFData=len(blocks), typeCompress=3 | (window << 8))
    )
    path.write_bytes(head + folder + table + body)
