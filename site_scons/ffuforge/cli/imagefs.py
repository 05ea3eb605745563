"""One partition's files, from an FFU, a raw disk image or a partition image, read in place.

NTFS is read by :mod:`ffuforge.formats.ntfsread` straight through the FFU's block map (or at the
partition's offset in a raw disk): no mount, no root, no temporary disk. FAT (EFIESP) is read with
mtools, the tool the build writes it with; mtools needs a file, so a FAT partition inside an FFU
is copied to a temporary image first (EFIESP is a few MiB). Owning packages come from
`partitions/<Name>.json` beside the image (what the build installed), used only where the file's
SHA-256 in the image is the one recorded there; the servicing manifests inside the image are not
read for this (not implemented).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FFUError, FormatError, ToolError
from ..formats import fstools
from ..formats.ffu import FfuReader
from ..formats.ntfsread import NtfsVolume
from ..formats.ptable.parse import read_partitions
from .files import input_file

ReadFn = Callable[[int, int], bytes]


@dataclass
class Entry:
    path: str  # `\`-separated, relative to the volume root
    size: int
    is_dir: bool


@dataclass
class Partition:
    name: str  # GPT name, or "partition N" (MBR), or the image's stem
    kind: str  # "ntfs" | "fat"
    read: ReadFn
    size: int
    label: str
    fat_file: Path | None = None  # a file mtools can open, with fat_offset
    fat_offset: int = 0
    build_dir: Path | None = None  # where partitions/<Name>.json may be

    # -- files

    def entries(self) -> list[Entry]:
        if self.kind == "ntfs":
            vol = self._ntfs()
            return sorted(
                (Entry(f.path, f.size, f.is_dir) for f in vol.files().values() if not f.path.startswith("$")),
                key=lambda e: e.path.upper(),
            )
        with self._fat_tree() as root:
            out = []
            for dirpath, dirs, files in os.walk(root):
                rel = os.path.relpath(dirpath, root)
                for d in dirs:
                    out.append(Entry(_win(os.path.join(rel, d)), 0, True))
                for f in files:
                    out.append(
                        Entry(_win(os.path.join(rel, f)), os.path.getsize(os.path.join(dirpath, f)), False)
                    )
            return sorted(out, key=lambda e: e.path.upper())

    def chunks(self, path: str) -> Iterator[bytes]:
        if self.kind == "ntfs":
            vol = self._ntfs()
            yield from vol.chunks(vol.lookup(path))
            return
        data = _mtools(
            "mcopy", ["-n", "-i", f"{self.fat_file}@@{self.fat_offset}", "::/" + _unix(path), "-"], self.label
        )
        yield data

    def sha256(self, path: str) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks(path):
            h.update(chunk)
        return h.hexdigest()

    def read_file(self, path: str, max_size: int = 256 << 20) -> bytes:
        data = b"".join(self.chunks(path))
        if len(data) > max_size:
            raise FormatError(f"{path} is larger than {max_size} bytes", self.label)
        return data

    def owners(self) -> dict[str, tuple[str, str]]:
        """upper-cased path -> (package, sha256) from partitions/<Name>.json, if the build left one."""
        if self.build_dir is None:
            return {}
        record = self.build_dir / f"{self.name}.json"
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {
            str(f["path"]).upper(): (str(f.get("package", "")), str(f.get("sha256", "")))
            for f in doc.get("files", [])
            if isinstance(f, dict) and "path" in f
        }

    # -- helpers

    def _ntfs(self) -> NtfsVolume:
        vol = getattr(self, "_vol", None)
        if vol is None:
            vol = self._vol = NtfsVolume(self.read, self.size, self.label)
        return vol

    @contextlib.contextmanager
    def _fat_tree(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="ffuforge-fat-") as tmp:
            out = Path(tmp) / "root"
            out.mkdir()
            _mtools(
                "mcopy",
                ["-s", "-n", "-i", f"{self.fat_file}@@{self.fat_offset}", "::/*", str(out)],
                self.label,
                ok_empty=True,
            )
            yield out


def _win(rel: str) -> str:
    return rel.replace(os.sep, "\\").removeprefix(".\\")


def _unix(path: str) -> str:
    return path.replace("\\", "/").strip("/")


def _mtools(tool: str, args: list[str], label: str, ok_empty: bool = False) -> bytes:
    exe = fstools.find_tool(tool, "mtools")
    with tempfile.TemporaryDirectory(prefix="ffuforge-mtools-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "MTOOLSRC": os.devnull,
            "MTOOLS_SKIP_CHECK": "1",
        }
        res = subprocess.run(
            [exe, *args], capture_output=True, env=env, check=False, stdin=subprocess.DEVNULL
        )
    if res.returncode != 0:
        err = (res.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        if ok_empty and any("no match" in ln.lower() for ln in err):
            return b""
        if any("not found" in ln.lower() for ln in err):
            raise FormatError(f"no such file in the FAT volume: {args[-2] if tool == 'mcopy' else ''}", label)
        raise ToolError(f"{tool} failed: {err[-1] if err else f'exit status {res.returncode}'}", label)
    return res.stdout


def _kind(head: bytes) -> str | None:
    if head[3:11] == b"NTFS    ":
        return "ntfs"
    if head[510:512] == b"\x55\xaa" and (b"FAT" in head[54:62] or b"FAT" in head[82:90]):
        return "fat"
    return None


@contextlib.contextmanager
def open_partition(image: str | os.PathLike, name: str | None = None) -> Iterator[Partition]:
    """The partition `name` (default MainOS) of an FFU or a raw disk, or a partition image itself."""
    path = Path(image)
    input_file(path, "an FFU, a raw disk image or a partition image")  # never blocks on a FIFO
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise FFUError(f"cannot read: {e.strerror or e}", str(path)) from None
    with fh:
        head = fh.read(4096)
        size = os.fstat(fh.fileno()).st_size
        kind = _kind(head)
        if kind is not None:
            if name and name.upper() != path.stem.upper():
                raise ConfigError(
                    f"a partition image holds one partition ({path.stem}); drop --partition {name}", str(path)
                )
            yield Partition(path.stem, kind, _pread(fh), size, str(path), path, 0, path.parent)
            return
        if head[4:16] == b"SignedImage ":
            with FfuReader(path) as r:
                st = r.stores[0]
                read = r.disk_reader(0)
                yield from _from_disk(read, st.disk_bytes, st.sector_size, path, name, in_ffu=True)
            return
        if len(head) < 512 or head[510:512] != b"\x55\xaa":
            raise FormatError(
                "not an FFU, a disk image (MBR/GPT) or an NTFS/FAT partition image; give one of those",
                str(path),
            )
        yield from _from_disk(_pread(fh), size, 512, path, name, in_ffu=False)


def _pread(fh) -> ReadFn:
    return lambda offset, length: os.pread(fh.fileno(), length, offset)


def _from_disk(
    read: ReadFn, disk: int, ss: int, path: Path, name: str | None, *, in_ffu: bool
) -> Iterator[Partition]:
    if not disk or not ss:
        raise FormatError("the disk size is unknown", str(path))
    style, _head, parts = read_partitions(read, disk // ss, ss)
    if style == "gpt":
        found = [(e.name, e.first_lba, e.last_lba - e.first_lba + 1) for e in parts]
    else:
        found = [(f"partition {i + 1}", p.first_lba, p.sectors) for i, p in enumerate(parts)]
    want = (name or "MainOS").upper()
    hits = [f for f in found if f[0].upper() == want]
    if not hits:
        names = ", ".join(f[0] for f in found) or "none"
        raise ConfigError(
            f"no partition named {name or 'MainOS'} (the disk has: {names}); choose one with --partition",
            str(path),
        )
    pname, first, count = hits[0]
    base, psize = first * ss, count * ss
    pread: ReadFn = lambda offset, length: read(base + offset, length)  # noqa: E731
    kind = _kind(pread(0, 4096))
    if kind is None:
        raise FormatError(f"partition {pname} holds neither NTFS nor FAT (a raw partition)", str(path))
    label = f"{path} ({pname})"
    build_dir = path.parent / "partitions"
    if kind == "ntfs" or not in_ffu:
        yield Partition(pname, kind, pread, psize, label, path, base, build_dir)
        return
    with tempfile.TemporaryDirectory(prefix="ffuforge-fat-") as tmp:
        img = Path(tmp) / f"{pname}.img"
        with open(img, "wb") as out:
            for off in range(0, psize, 1 << 20):
                out.write(pread(off, min(1 << 20, psize - off)))
        yield Partition(pname, kind, pread, psize, label, img, 0, build_dir)
