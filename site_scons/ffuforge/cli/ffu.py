"""`ffuforge ffu info|verify|to-raw FILE [OUT]`: inspect, verify and unpack FFU images.

`to-raw` writes a sparse raw disk image (temp file, renamed into place: never half an image under
OUT), or, when OUT is a block device (an SD card, a USB stick, a loop device), writes onto it in
place as `dd` would: only with `--force`, after a line naming the device and its size, refusing a
device smaller than the image or in use (O_EXCL: mounted, or open by another O_EXCL writer).
On a device it writes exactly the blocks the FFU stores, all-zero ones included (the device's
old bytes there must go), each block once with its final content; blocks the FFU does not store
keep what the device held, as a flashing tool leaves them. DISK_END locations resolve against
the FFU's disk size (MinSectorCount x SectorSize), as in the raw image file: the device gets the
image file's bytes at the image file's offsets. It never writes onto its own input.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence

from ..errors import ConfigError, FFUError
from ..formats.ffu import FfuReader
from .files import input_file, input_files, kind


def _out_kind(out: str, source: os.stat_result) -> str:
    """'file' or 'device' for to-raw's OUT; refuses its own input, directories, FIFOs, sockets."""
    try:
        st = os.stat(out)
    except FileNotFoundError:
        return "file"
    except OSError as e:
        raise ConfigError(f"cannot write: {e.strerror}", out) from None
    if (st.st_dev, st.st_ino) == (source.st_dev, source.st_ino):
        raise ConfigError("is the FFU being read; give another output path", out)
    if stat.S_ISBLK(st.st_mode):
        return "device"
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"is {kind(st.st_mode)}; give a file path or a block device", out)
    return "file"


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def to_device(r: FfuReader, store: int, device: str, force: bool) -> None:
    """Write the store's blocks onto the block device `device` in place (see the module docstring)."""
    blocks = r.stored_blocks(store)  # checks the store number and the locations first
    read = r.disk_reader(store)
    st = r.stores[store]
    disk, bs = st.disk_bytes or 0, st.block_size
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
    sizes = f"{size} bytes, {size / (1 << 30):.2f} GiB"
    if not force:
        raise ConfigError(
            f"is a block device ({sizes}): writing the image replaces what is on it; add --force to write it",
            device,
        )
    if size < disk:
        raise ConfigError(f"is a block device of {sizes}, smaller than the image's {disk}-byte disk", device)
    where = f"block device {device} ({sizes})"
    print(
        f"ffuforge: writing store {store + 1} of {r.path} ({len(blocks)} blocks of {bs} bytes, disk "
        f"{disk} bytes) onto {where}",
        file=sys.stderr,
        flush=True,
    )
    try:
        fd = os.open(device, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(f"cannot open the device for writing: {e.strerror} (mounted?)", device) from None
    try:
        for block, _ in blocks:
            _pwrite_all(fd, read(block * bs, bs), block * bs)
        os.fsync(fd)  # a card pulled after "done" must hold the image
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """`ffuforge ffu info|verify|to-raw FILE [OUT]`."""
    ap = argparse.ArgumentParser(prog="ffuforge ffu", description="inspect, verify and unpack FFU images")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("info", help="headers, manifest, stores and the partition table")
    p.add_argument("file")
    p = sub.add_parser("verify", help="check every chunk hash, the catalog and its signature")
    p.add_argument("file")
    p.add_argument("--root", action="append", default=[], help="trusted root certificate (PEM/DER)")
    p = sub.add_parser(
        "to-raw", help="write the (sparse) raw disk image of a store to a file, or onto a block device"
    )
    p.add_argument("file")
    p.add_argument("out", help="a file (written sparse, atomically) or a block device (needs --force)")
    p.add_argument("--store", type=int, default=1, help="store number (1-based, default 1)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write onto a block device (everything the FFU stores is replaced)",
    )
    args = ap.parse_args(argv)
    try:
        source = input_file(args.file, "an FFU file")
        input_files(getattr(args, "root", ()), "a certificate file")
        out_kind = _out_kind(args.out, source) if args.action == "to-raw" else ""
        with FfuReader(args.file) as r:
            if args.action == "info":
                print(r.info())
            elif args.action == "verify":
                from ..signing.verify import catalog_signature_problems, load_certificates

                roots = load_certificates(args.root) if args.root else None

                def check(der: bytes, signers: list[str]) -> list[str]:
                    return catalog_signature_problems(der, roots, where="catalog", signers=signers)

                res = r.verify(catalog_check=check)
                for line in res.problems:
                    print(f"{args.file}: {line}", file=sys.stderr)
                if not res.ok:
                    return 1
                print(
                    f"{args.file}: OK ({res.chunks} chunks, catalog {'signed' if res.signed else 'unsigned'})"
                )
            elif out_kind == "device":
                to_device(r, args.store - 1, args.out, args.force)
                print(args.out)
            else:
                r.to_raw(args.out, args.store - 1)
                print(args.out)
    except FFUError as e:
        print(f"ffuforge: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # no space, read-only, permission denied, I/O error: one line, no traceback
        target = args.out if args.action == "to-raw" else args.file
        print(f"ffuforge: {e.filename or target}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0
