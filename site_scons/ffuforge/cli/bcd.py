"""`ffuforge bcd dump FILE [--json]`: show what a BCD store boots.

FILE is a store (a regf hive, e.g. `EFI/Microsoft/Boot/BCD`), a FAT partition image holding one
at `\\EFI\\Microsoft\\Boot\\BCD` (`partitions/EFIESP.img`), or an FFU, whose first store's EFIESP
(GPT: the partition named EFIESP; MBR: the bootable FAT partition) is read through the FFU's
block map. The FAT file is read with mtools' `mcopy` (the tool the build writes EFIESP with), so
no FAT parser of ours is trusted here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import FFUError, FormatError, ToolError
from ..formats import fstools
from ..formats.bcd.dump import describe_store, format_store
from ..formats.ffu import FfuReader
from ..formats.hive import parse_hive
from ..formats.ptable.parse import read_partitions
from .files import input_file

BCD_IN_FAT = "::/EFI/Microsoft/Boot/BCD"
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
MAX_STORE = 64 << 20  # a BCD store is kilobytes; refuse to load anything absurd


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge bcd", description="inspect BCD stores")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("dump", help="objects and elements of a store, an EFIESP image or an FFU")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    data = load_store(Path(args.file))
    store = describe_store(parse_hive(data, args.file))
    if args.json:
        print(json.dumps(store, indent=1, sort_keys=True))
    else:
        print(format_store(store))
    return 0


def load_store(path: Path) -> bytes:
    """The store's bytes from whichever of the three inputs `path` is."""
    input_file(path, "a BCD store, an EFIESP image or an FFU")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise FFUError(f"cannot read: {e.strerror}", str(path)) from None
    if head[:4] == b"regf":
        if path.stat().st_size > MAX_STORE:
            raise FormatError(f"hive is larger than {MAX_STORE} bytes; not a BCD store", str(path))
        return path.read_bytes()
    if head[4:16] == b"SignedImage ":
        return _from_ffu(path)
    if len(head) == 512 and head[510:512] == b"\x55\xaa" and (b"FAT" in head[54:62] or b"FAT" in head[82:90]):
        return _from_fat(path, 0)
    raise FormatError(
        "not a BCD store (regf hive), a FAT partition image or an FFU; give one of those", str(path)
    )


def _from_ffu(path: Path) -> bytes:
    with FfuReader(path) as r:
        st = r.stores[0]
        read = r.disk_reader(0)
        disk, ss = st.disk_bytes, st.sector_size
        if not disk or not ss:
            raise FormatError(
                "the FFU's store has no SectorSize/MinSectorCount; its disk size is unknown", str(path)
            )
        total = disk // ss
        style, _head, parts = read_partitions(read, total, ss)
        if style == "gpt":
            found = [(e.first_lba, e.last_lba - e.first_lba + 1) for e in parts if e.name.lower() == "efiesp"]
        else:
            found = [(p.first_lba, p.sectors) for p in parts if p.bootable and p.type in FAT_TYPES]
        if not found:
            raise FormatError(f"the FFU's {style.upper()} table has no EFIESP partition", str(path))
        first, count = found[0]
        with tempfile.TemporaryDirectory(prefix="ffuforge-bcd-") as tmp:
            img = Path(tmp) / "EFIESP.img"
            with open(img, "wb") as out:
                step = 1 << 20
                for off in range(0, count * ss, step):
                    out.write(read(first * ss + off, min(step, count * ss - off)))
            return _from_fat(img, 0, display=f"{path} (EFIESP)")


def _from_fat(img: Path, offset: int, display: str | None = None) -> bytes:
    mcopy = fstools.find_tool("mcopy", "mtools")
    with tempfile.TemporaryDirectory(prefix="ffuforge-mtools-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "MTOOLSRC": os.devnull,
            "MTOOLS_SKIP_CHECK": "1",
        }
        res = subprocess.run(
            [mcopy, "-n", "-i", f"{img}@@{offset}", BCD_IN_FAT, "-"],
            capture_output=True,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    where = display or str(img)
    if res.returncode != 0:
        err = (res.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        if any("not found" in ln.lower() for ln in err):
            raise FormatError("the FAT volume has no \\EFI\\Microsoft\\Boot\\BCD", where)
        raise ToolError(f"mcopy failed: {err[-1] if err else f'exit status {res.returncode}'}", where)
    if len(res.stdout) > MAX_STORE or res.stdout[:4] != b"regf":
        raise FormatError("\\EFI\\Microsoft\\Boot\\BCD is not a registry hive", where)
    return res.stdout
