"""A test-only writer of LZX-compressed cabinets, so that Microsoft-form packages in the compression
Microsoft's packaging defaults to (FastLZX) can be fed to the installer.

ffuforge writes no LZX (it never needs to), and no Debian tool compresses LZX. LZX has an
*uncompressed* block type, though, and a stream of such blocks is valid LZX that every decoder must
accept. This writes one uncompressed block per 32 KiB frame, one frame per CFDATA, with plain
`struct` (no ffuforge code), so the tests that use it check our reader against `cabextract`.

Facts (the LZX stream as the CAB format carries it; libmspack ``lzxd.c`` reads it this way):
- the bit stream is 16-bit little-endian words, bits taken most significant first;
- the stream starts with one bit: Intel E8 translation (0 here: none);
- a block starts with 3 bits of type (3 = uncompressed) and 24 bits of length (16 then 8);
- an uncompressed block then pads to the next 16-bit boundary (1 to 16 bits, never 0), stores
  R0, R1, R2 as three little-endian 32-bit values, the raw bytes, and one pad byte if the length
  is odd;
- each CFDATA decompresses to 32768 bytes (the last to what is left).
CFFOLDER.typeCompress = 3 | window_bits << 8 (0x1503 for a 2 MiB window).
"""

from __future__ import annotations

import struct
from pathlib import Path

FRAME = 32768
WINDOW_BITS = 21


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, count: int) -> None:
        for i in range(count - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 16:
                self.out += struct.pack("<H", self.acc)
                self.acc = self.n = 0

    def align(self) -> None:
        """Pad to the next word: 1-16 bits, as the decoder skips (a full word when aligned)."""
        self.put(0, 16 - self.n)


def lzx_frame(data: bytes, first: bool) -> bytes:
    """One CFDATA payload: an uncompressed LZX block holding `data` (at most one frame)."""
    assert 0 < len(data) <= FRAME
    bits = _Bits()
    if first:
        bits.put(0, 1)  # no E8 translation
    bits.put(3, 3)  # uncompressed block
    bits.put(len(data) >> 8, 16)
    bits.put(len(data) & 0xFF, 8)
    bits.align()
    raw = bytes(bits.out) + struct.pack("<III", 1, 1, 1) + data
    return raw + (b"\0" if len(data) & 1 else b"")


def write_lzx_cab(out: Path, members: list[tuple[str, bytes]], timestamp: int = 0) -> Path:
    """A one-folder cabinet of `members` (name with backslashes, bytes), LZX-compressed."""
    stream = b"".join(data for _, data in members)
    frames = [stream[i : i + FRAME] for i in range(0, len(stream), FRAME)] or [b""]
    blocks = []
    for i, chunk in enumerate(frames):
        payload = lzx_frame(chunk, i == 0) if chunk else b""
        blocks.append(struct.pack("<IHH", 0, len(payload), len(chunk)) + payload)  # checksum 0: unset
    files = b""
    offset = 0
    date, time_ = _dos_datetime(timestamp)
    for name, data in members:
        files += struct.pack("<IIHHHH", len(data), offset, 0, date, time_, 0x20) + name.encode() + b"\0"
        offset += len(data)
    header_size = 36
    folder_size = 8
    first_file = header_size + folder_size
    data_start = first_file + len(files)
    total = data_start + sum(len(b) for b in blocks)
    header = struct.pack(
        "<4sIIIIIBBHHHHH", b"MSCF", 0, total, 0, first_file, 0, 3, 1, 1, len(members), 0, 0, 0
    )
    folder = struct.pack("<IHH", data_start, len(blocks), 3 | WINDOW_BITS << 8)
    out.write_bytes(header + folder + files + b"".join(blocks))
    return out


def _dos_datetime(epoch: int) -> tuple[int, int]:
    import time

    t = time.gmtime(max(epoch, 315532800))
    return ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday, (t.tm_hour << 11) | (t.tm_min << 5) | (
        t.tm_sec // 2
    )
