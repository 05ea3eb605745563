"""Windows Imaging (WIM) files written through libwim (wimlib) with ctypes, reproducibly.

Why wimlib, and in-process: it is the one free WIM writer with Microsoft-compatible XPRESS/LZX/LZMS
compressors (Debian ``libwim15``, the library behind ``wimtools``), and its C API lets us set what
``wimlib-imagex capture`` cannot: the WIM GUID and the image's XML times. The calls and constants
are those of ``wimlib.h`` 1.13 (``wimlib_create_new_wim``, ``wimlib_add_image``,
``wimlib_set_image_property``, ``wimlib_set_wim_info`` with ``WIMLIB_CHANGE_GUID`` |
``WIMLIB_CHANGE_BOOT_INDEX``, ``wimlib_write`` with ``WIMLIB_WRITE_FLAG_RETAIN_GUID``).

What a capture would take from the host, and how it is kept out:

* file times: the tree is always staged into a private folder (files copied, never linked, so no
  host hard-link groups) and every file and directory gets ``timestamp`` as its modification and
  access time, directories last, before wimlib scans it (it reads times with ``stat`` before it
  reads any data, so the scan itself cannot move an access time);
* the image's ``CREATIONTIME``/``LASTMODIFICATIONTIME``: wimlib stamps the clock while writing a
  modified image, so the WIM is written once, reopened, given ``timestamp`` and written again (the
  second write copies the compressed resources, it does not compress again);
* the GUID (random per write in wimlib): the SHA-256 of the first write (all-zero GUID) without
  its XML info, and of the settings the second write applies, so it changes exactly when the
  content does;
* owners and modes: not captured (no ``WIMLIB_ADD_FLAG_UNIX_DATA``); names are sorted by wimlib.

A capture from a host folder gives Windows attributes ``NORMAL``/``DIRECTORY`` and no security
descriptors. ``ntfs=True`` captures from an NTFS volume file instead (``WIMLIB_ADD_FLAG_NTFS``,
through libntfs-3g): attributes, descriptors and times are then the volume's own, as Windows'
capture of a mounted folder would record them.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from construct import Bytes, BytesInteger, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from ..errors import ConfigError, ToolError
from ..util.atomic import atomic_path

SONAME = "libwim.so.15"
COMPRESSION = {"none": 0, "xpress": 1, "lzx": 2, "lzms": 3}  # enum wimlib_compression_type
FILETIME_EPOCH_OFFSET = 11644473600  # seconds from 1601-01-01 to 1970-01-01

_ALL_IMAGES = -1
_ADD_FLAG_NTFS = 0x1
_ADD_FLAG_RPFIX = 0x100  # the header's RP_FIX flag, as Windows' own captures (and .ppkg files) carry it
_ADD_FLAG_NORPFIX = 0x200  # no symlinks reach a capture; keep the header's RP_FIX flag off
_CHANGE_GUID, _CHANGE_BOOT_INDEX = 0x2, 0x4
_WRITE_FLAG_RETAIN_GUID = 0x800
_INFO_SIZE = 88  # sizeof(struct wimlib_wim_info): guid[16], u32 x4, u16 x2, i32, u64, u32 bits, u32[9]
_INFO_BOOT_INDEX = 20
_WIN_BAD = set('<>:"|?*')
_RESERVED_PROPERTIES = {"CREATIONTIME", "LASTMODIFICATIONTIME", "NAME", "DESCRIPTION", "FLAGS"}

# The header fields read back (wimlib's include/wimlib/header.h; Microsoft's WIM format document).
_RESHDR = Struct(
    "size_in_wim" / BytesInteger(7, swapped=True),
    "flags" / Int8ul,
    "offset" / Int64ul,
    "original_size" / Int64ul,
)
_HEADER = Struct(
    "magic" / Const(b"MSWIM\0\0\0"),
    "header_size" / Int32ul,
    "version" / Int32ul,
    "flags" / Int32ul,
    "chunk_size" / Int32ul,
    "guid" / Bytes(16),
    "part_number" / Int16ul,
    "total_parts" / Int16ul,
    "image_count" / Int32ul,
    "blob_table" / _RESHDR,
    "xml" / _RESHDR,
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


@dataclass(frozen=True)
class WimEntry:
    """One item of an image: ``name`` is its path in the image ('/' or '\\' separated);
    ``data`` the file's bytes or a host file to copy, ``None`` for a directory. Parent
    directories are implied."""

    name: str
    data: bytes | str | Path | None = None


@dataclass(frozen=True)
class WimResult:
    path: Path
    guid: bytes
    size: int


def _library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(SONAME)
            except OSError as exc:
                raise ToolError(
                    f"libwim is not usable ({exc}); install the Debian package libwim15 (apt-get install libwim15)"
                ) from None
            vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
            for name, res, args in (
                ("wimlib_global_init", i, [i]),
                ("wimlib_create_new_wim", i, [i, ctypes.POINTER(vp)]),
                ("wimlib_open_wim", i, [cp, i, ctypes.POINTER(vp)]),
                ("wimlib_add_image", i, [vp, cp, cp, cp, i]),
                ("wimlib_set_image_property", i, [vp, i, cp, cp]),
                ("wimlib_set_wim_info", i, [vp, cp, i]),
                ("wimlib_write", i, [vp, cp, i, i, ctypes.c_uint]),
                ("wimlib_free", None, [vp]),
                ("wimlib_get_error_string", cp, [i]),
            ):
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = res, args
            _check(lib, lib.wimlib_global_init(0), "initialise wimlib", None)
            _lib = lib
        return _lib


def _check(lib: ctypes.CDLL, code: int, what: str, where: Path | str | None) -> None:
    if code:
        msg = lib.wimlib_get_error_string(code)
        text = msg.decode("utf-8", "replace") if msg else f"error {code}"
        raise ToolError(f"wimlib could not {what}: {text}", str(where) if where is not None else None)


def filetime(timestamp: int) -> int:
    """A Unix time as a Windows FILETIME (100 ns units since 1601)."""
    return (int(timestamp) + FILETIME_EPOCH_OFFSET) * 10_000_000


def _parts(name: str) -> tuple[str, ...]:
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p != "")
    if not parts:
        raise ConfigError(f"WIM entry name {name!r} is empty; give a path inside the image")
    for p in parts:
        if p in (".", "..") or p.endswith((" ", ".")) or any(c in _WIN_BAD or ord(c) < 32 for c in p):
            raise ConfigError(f"WIM entry name {name!r}: {p!r} is not a valid Windows file name; rename it")
        if len(p.encode("utf-16-le")) > 510:
            raise ConfigError(f"WIM entry name {name!r}: a component is longer than 255 UTF-16 units")
    return parts


def _tree_entries(root: Path) -> list[WimEntry]:
    """A host folder as entries (sorted); symbolic links and special files are refused."""
    if not root.is_dir():
        raise ConfigError("WIM source is not a directory", str(root))
    out: list[WimEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root)
        for name in dirnames + sorted(filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            relname = (rel / name).as_posix()
            if stat.S_ISDIR(st.st_mode):
                out.append(WimEntry(relname))
            elif stat.S_ISREG(st.st_mode):
                out.append(WimEntry(relname, path))
            else:
                raise ConfigError(
                    "not a regular file or directory (links are not captured); remove it", str(path)
                )
    return out


def _stage(entries: Iterable[WimEntry], stage: Path, timestamp: int) -> None:
    seen: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}  # folded path -> (spelling, is dir)

    def claim(parts: tuple[str, ...], is_dir: bool, name: str) -> None:
        key = tuple(p.casefold() for p in parts)
        prior = seen.get(key)
        if prior is not None and (prior[0] != parts or not (prior[1] and is_dir)):
            raise ConfigError(
                f"WIM entry {name!r} collides with {'/'.join(prior[0])!r} (Windows names ignore case); keep one"
            )
        seen[key] = (parts, is_dir)

    dirs: set[tuple[str, ...]] = set()
    for entry in entries:
        parts = _parts(entry.name)
        for i in range(1, len(parts)):
            claim(parts[:i], True, entry.name)
            dirs.add(parts[:i])
        claim(parts, entry.data is None, entry.name)
        target = stage.joinpath(*parts)
        if entry.data is None:
            dirs.add(parts)
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(entry.data, bytes):
            target.write_bytes(entry.data)
        else:
            try:
                shutil.copyfile(entry.data, target)
            except OSError as exc:
                raise ConfigError(
                    f"cannot read WIM entry {entry.name!r}: {exc.strerror}", str(entry.data)
                ) from None
        os.utime(target, (timestamp, timestamp))
    for parts in sorted(dirs, key=len, reverse=True):  # children before parents
        os.utime(stage.joinpath(*parts), (timestamp, timestamp))
    os.utime(stage, (timestamp, timestamp))


def _set_info(lib: ctypes.CDLL, wim: ctypes.c_void_p, guid: bytes, boot_index: int, where: Path) -> None:
    info = bytearray(_INFO_SIZE)
    info[0:16] = guid
    info[_INFO_BOOT_INDEX : _INFO_BOOT_INDEX + 4] = boot_index.to_bytes(4, "little")
    _check(
        lib,
        lib.wimlib_set_wim_info(wim, bytes(info), _CHANGE_GUID | _CHANGE_BOOT_INDEX),
        "set the GUID",
        where,
    )


def _rewrite(
    lib: ctypes.CDLL, src: Path, dst: Path, guid: bytes, boot_index: int, props: list[tuple[str, str]]
) -> None:
    wim = ctypes.c_void_p()
    _check(lib, lib.wimlib_open_wim(os.fsencode(src), 0, ctypes.byref(wim)), "reopen the WIM", src)
    try:
        for key, value in props:
            _check(
                lib, lib.wimlib_set_image_property(wim, 1, key.encode(), value.encode()), f"set {key}", src
            )
        _set_info(lib, wim, guid, boot_index, src)
        _check(
            lib,
            lib.wimlib_write(wim, os.fsencode(dst), _ALL_IMAGES, _WRITE_FLAG_RETAIN_GUID, 1),
            "write",
            dst,
        )
    finally:
        lib.wimlib_free(wim)


def write_wim(
    out_path: str | Path,
    source: str | Path | Iterable[WimEntry],
    *,
    image_name: str,
    timestamp: int,
    compression: str = "lzx",
    image_description: str = "",
    image_properties: Mapping[str, str] | None = None,
    flags: str | None = None,
    boot: bool = False,
    ntfs: bool = False,
    threads: int = 0,
    rpfix: bool = False,
) -> WimResult:
    """Write a one-image WIM of `source` (a folder, entries, or with ``ntfs=True`` an NTFS volume
    file) to `out_path`, atomically. `image_properties`: extra elements of the image's XML info
    (wimlib's property paths, e.g. ``WINDOWS/EDITIONID``); `flags`: the image's ``FLAGS``;
    `boot`: make image 1 the boot image; `rpfix`: set the header's reparse-point-fixup flag (no
    reparse points are captured either way). The same inputs give the same bytes."""
    if compression not in COMPRESSION:
        raise ConfigError(f"WIM compression {compression!r} is not one of {', '.join(COMPRESSION)}")
    if not image_name or any(ord(c) < 32 for c in image_name):
        raise ConfigError(f"WIM image name {image_name!r} must be non-empty text on one line")
    extra = dict(image_properties or {})
    for key in extra:
        if key.split("/")[0].split("[")[0].upper() in _RESERVED_PROPERTIES or not key:
            raise ConfigError(f"WIM image property {key!r} is set by write_wim itself; use its parameters")
    ft = filetime(timestamp)
    props = [
        (f"{k}/{half}", f"0x{v:08X}")
        for k in ("CREATIONTIME", "LASTMODIFICATIONTIME")
        for half, v in (("HIGHPART", ft >> 32), ("LOWPART", ft & 0xFFFFFFFF))
    ]
    lib = _library()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmpdir:
        tmp = Path(tmpdir)
        if ntfs:
            if not isinstance(source, (str, Path)):
                raise ConfigError("an NTFS capture takes a volume file, not entries")
            capture = Path(source)
            if not capture.is_file():
                raise ConfigError("NTFS volume to capture not found", str(capture))
        else:
            items = _tree_entries(Path(source)) if isinstance(source, (str, Path)) else list(source)
            capture = tmp / "tree"
            capture.mkdir()
            _stage(items, capture, timestamp)
        wim = ctypes.c_void_p()
        _check(
            lib, lib.wimlib_create_new_wim(COMPRESSION[compression], ctypes.byref(wim)), "create a WIM", out
        )
        try:
            add_flags = (_ADD_FLAG_RPFIX if rpfix else _ADD_FLAG_NORPFIX) | (_ADD_FLAG_NTFS if ntfs else 0)
            rc = lib.wimlib_add_image(wim, os.fsencode(capture), image_name.encode(), None, add_flags)
            _check(lib, rc, "capture the image", capture if ntfs else out)
            if image_description:
                rc = lib.wimlib_set_image_property(wim, 1, b"DESCRIPTION", image_description.encode())
                _check(lib, rc, "set DESCRIPTION", out)
            for key, value in [*sorted(extra.items()), *([("FLAGS", flags)] if flags else [])]:
                _check(
                    lib,
                    lib.wimlib_set_image_property(wim, 1, key.encode(), str(value).encode()),
                    f"set {key}",
                    out,
                )
            _set_info(lib, wim, bytes(16), 0, out)
            rc = lib.wimlib_write(
                wim, os.fsencode(tmp / "1.wim"), _ALL_IMAGES, _WRITE_FLAG_RETAIN_GUID, threads
            )
            _check(lib, rc, "write", out)
        finally:
            lib.wimlib_free(wim)
        boot_index = 1 if boot else 0
        guid = _content_guid(tmp / "1.wim", [*props, ("BOOT", str(boot_index))])
        with atomic_path(out) as final:
            os.unlink(final)
            _rewrite(lib, tmp / "1.wim", final, guid, boot_index, props)
        return WimResult(out, guid, out.stat().st_size)


def _content_guid(path: Path, settings: list[tuple[str, str]]) -> bytes:
    """SHA-256 of a first write except its XML info (the one part wimlib stamps with the clock),
    plus what the final write changes: every byte the image's content decides, nothing else."""
    digest = hashlib.sha256(repr(settings).encode())
    with open(path, "rb") as fh:
        header = _HEADER.parse(fh.read(_HEADER.sizeof()))
        fh.seek(0)
        xml_start, xml_end = header.xml.offset, header.xml.offset + header.xml.size_in_wim
        pos = 0
        while chunk := fh.read(1 << 20):
            lo, hi = pos, pos + len(chunk)
            pos = hi
            for a, b in ((lo, min(hi, xml_start)), (max(lo, xml_end), hi)):
                if a < b:
                    digest.update(chunk[a - lo : b - lo])
    return digest.digest()[:16]
