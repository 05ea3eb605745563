"""Partition images (FAT, NTFS, raw) from a staged directory tree, without root or FUSE.

Debian's own tools write the file systems, so their on-disk format is exactly what Linux and
fsck already trust: FAT with dosfstools + mtools, NTFS with mkntfs + libntfs-3g (driven through
ctypes by a helper process, writing into the volume *file*, with Windows' security descriptors). What they do not give us is reproducibility, so:

* FAT: ``mkfs.fat --invariant -i <id>`` fixes the serial and boot-sector constants; mtools
  honours ``SOURCE_DATE_EPOCH`` for every directory-entry time (files are copied without
  ``-m``), and directories/files are created in sorted order, never in readdir order.
* NTFS: ``mkntfs -T`` seeds its "random" values from a zero clock, so the bare volume is
  fixed; libntfs-3g then stamps the MFT-change time of every record it touches with the wall
  clock. After applying the files we rewrite all times in the MFT and in the ``$I30`` index
  entries to the build epoch (and replace the volume serial, otherwise equal for all volumes),
  re-applying NTFS update-sequence fix-ups — see :func:`normalize_ntfs`.

Images are sparse: the output is truncated to size and the tools write only metadata and file
data, so a hole is always a free cluster (or FAT file tail) that no file system structure reads.

The writers live in :mod:`.fat` and :mod:`.ntfs` (tools and the staged-tree scan they share in
:mod:`.fstools`); this module keeps the raw writer and the public names in one place.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..util.atomic import atomic_path
from .fat import FAT12_MAX_CLUSTERS, FAT16_MAX_CLUSTERS, fat_parameters, write_fat
from .fstools import ToolRunError
from .ntfs import FILETIME_EPOCH_OFFSET, normalize_ntfs, write_ntfs

__all__ = [
    "FAT12_MAX_CLUSTERS",
    "FAT16_MAX_CLUSTERS",
    "FILETIME_EPOCH_OFFSET",
    "ToolRunError",
    "fat_parameters",
    "normalize_ntfs",
    "write_fat",
    "write_ntfs",
    "write_raw",
]


# ------------------------------------------------------------------------------------------- raw


def write_raw(image_file: str | Path, out_path: str | Path, *, size_bytes: int) -> Path:
    """A raw (binaryPartition) image: the file's bytes at offset 0, the rest left unwritten.

    Every byte of the image is written, zeros included: for a raw partition they are content.
    """
    src = Path(image_file)
    out = Path(out_path)
    try:
        length = src.stat().st_size
    except OSError as exc:
        raise ConfigError(f"cannot read raw partition image: {exc.strerror}", str(src)) from None
    if length > size_bytes:
        raise ConfigError(
            f"raw image is {length} bytes, larger than its {size_bytes}-byte partition", str(src)
        )
    with atomic_path(out, mode=0o644) as tmp, open(src, "rb") as inp, open(tmp, "r+b") as dst:
        dst.truncate(size_bytes)
        copied = 0
        while True:
            chunk = inp.read(1 << 20)
            if not chunk:
                break
            dst.write(chunk)
            copied += len(chunk)
        if copied != length:
            raise ConfigError("raw partition image changed while it was being copied", str(src))
    return out
