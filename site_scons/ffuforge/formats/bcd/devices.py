"""BCD device element blobs: boot device header, PartitionEx (GPT/MBR) and ramdisk devices.

The binary layouts a device element's value holds, built with construct; separate because they
are the only byte-level part of a store and need nothing of the XML.
"""

from __future__ import annotations

import uuid

from construct import Bytes as CBytes
from construct import Int32ul, Int64ul, Struct

__all__ = ["gpt_partition_device", "mbr_partition_device", "partition_device", "ramdisk_device"]

# --- device blobs -----------------------------------------------------------------------------

BOOT_DEVICE_HEADER = Struct("type" / Int32ul, "flags" / Int32ul, "size" / Int32ul, "reserved" / Int32ul)
HARD_DISK_ID = Struct("block_io_type" / Int32ul, "partition_style" / Int32ul, "disk" / CBytes(16))
RAMDISK_ID = Struct(
    "block_io_type" / Int32ul,
    "reserved" / Int32ul,
    "image_base" / Int32ul,
    "image_size" / Int64ul,
    "image_offset" / Int32ul,
)
FILE_ID = Struct("version" / Int32ul, "length" / Int32ul, "type" / Int32ul)

DEVICE_BLOCK_IO, DEVICE_PARTITION_EX = 0, 6
BLOCK_IO_HARD_DISK, BLOCK_IO_RAMDISK = 0, 3
STYLE_GPT, STYLE_MBR = 0, 1
BLOCK_IO_ID_SIZE = 40  # hard-disk identifier slot, padded
PARTITION_DEVICE_SIZE = 16 + 16 + BLOCK_IO_ID_SIZE


def partition_device(style: int, partition: bytes, disk: bytes) -> bytes:
    """Boot device (header + PartitionEx identifier), 72 bytes."""
    hd = HARD_DISK_ID.build({"block_io_type": BLOCK_IO_HARD_DISK, "partition_style": style, "disk": disk})
    return (
        BOOT_DEVICE_HEADER.build(
            {"type": DEVICE_PARTITION_EX, "flags": 0, "size": PARTITION_DEVICE_SIZE, "reserved": 0}
        )
        + partition
        + hd.ljust(BLOCK_IO_ID_SIZE, b"\0")
    )


def gpt_partition_device(disk: uuid.UUID, partition: uuid.UUID) -> bytes:
    return partition_device(STYLE_GPT, partition.bytes_le, disk.bytes_le)


def mbr_partition_device(signature: int, offset: int) -> bytes:
    return partition_device(
        STYLE_MBR, offset.to_bytes(8, "little") + bytes(8), signature.to_bytes(4, "little") + bytes(12)
    )


def ramdisk_device(path: str, parent: bytes) -> bytes:
    """Boot device for a ramdisk loaded from ``path`` on the partition ``parent``."""
    name = path.encode("utf-16-le")
    file_len = FILE_ID.sizeof() + 2 + len(name) + len(parent)
    ident = RAMDISK_ID.build(
        {
            "block_io_type": BLOCK_IO_RAMDISK,
            "reserved": 0,
            "image_base": 0,
            "image_size": 0,
            "image_offset": 0,
        }
    )
    body = ident + FILE_ID.build({"version": 1, "length": file_len, "type": 5}) + parent + name + bytes(4)
    return (
        BOOT_DEVICE_HEADER.build(
            {"type": DEVICE_BLOCK_IO, "flags": 1, "size": 16 + len(ident) + file_len, "reserved": 0}
        )
        + body
    )
