"""FFU (Full Flash Update) v1/v2 writer and reader, following Microsoft's ImgGen write rules.

Writing is one streaming pass with the header area filled in last. Everything that decides
the file's layout is known before any payload byte is read: the descriptor list comes from
partition-image *extents* (SEEK_DATA), the catalog has a constant size for a given structure
(a signing hook is called once on a provisional catalog to learn the signed size). So the
image header, manifest, store headers, descriptors and payload are written straight to their
final offsets behind a reserved security region while each 128 KiB chunk is hashed (on a worker
thread, overlapping the I/O); then the hash table, catalog (+ signature) and security header
are written into the reserved space. Each source block is read once and hashed once (not at all
when the partition action's sidecar already gives its SHA-256: it is then copied file to file by
the kernel, see `payload`), and the FFU's content signature comes from the hash table; memory is
O(stored blocks) (8 B per block for the plan, 32 B per chunk for the hash table), never O(disk).
If a signer's final catalog no longer fits the reserved space, the body is moved by whole
chunks (a copy), which is what ImgGen's re-signing does too.

The reader treats the file as hostile: every size, count and offset is checked against the
file before use and problems are FFUError, never an exception from deep inside.

This package is a facade over `structs` (constants, header layouts, small data types),
`manifest` (manifest text), `writer`, `payload` (the writer's chunk stream) and `reader`.
"""

from __future__ import annotations

from .manifest import build_manifest, parse_manifest
from .reader import CatalogCheck, FfuReader
from .structs import (
    BLOCK_SIZE,
    DEVICE_PATH_EMMC_USER,
    DEVICE_PATH_UFS_LUN0,
    IMAGE_HEADER,
    SECURITY_HEADER,
    STORE_HEADER,
    STORE_HEADER_V2,
    FfuStore,
    FfuStoreInfo,
    FfuVerifyResult,
    FfuWriteResult,
    lookup,
)
from .writer import write_ffu

__all__ = [
    "BLOCK_SIZE",
    "DEVICE_PATH_EMMC_USER",
    "DEVICE_PATH_UFS_LUN0",
    "IMAGE_HEADER",
    "SECURITY_HEADER",
    "STORE_HEADER",
    "STORE_HEADER_V2",
    "CatalogCheck",
    "FfuReader",
    "FfuStore",
    "FfuStoreInfo",
    "FfuVerifyResult",
    "FfuWriteResult",
    "build_manifest",
    "lookup",
    "parse_manifest",
    "write_ffu",
]
