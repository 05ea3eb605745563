"""A staged tree written into a fresh NTFS volume file through libntfs-3g (ctypes).

Runs as a script in its own process, under eatmydata (``ntfs_umount`` fsyncs the volume), so that
a fault in the C library cannot take the build down; it reads on stdin the job that
:mod:`ffuforge.formats.ntfs` prepared: the descriptors, and every entry in creation order (parents
before children, siblings sorted) with its source file, attributes and descriptor, and the
root directory's descriptor.

The calls are those of wimlib's ``src/ntfs-3g_apply.c`` (v1.14.5): ``ntfs_create``,
``ntfs_attr_truncate_solid`` + ``ntfs_attr_pwrite``, ``ntfs_set_ntfs_acl`` (stores each distinct
descriptor once in ``$Secure`` and gives the inode a v3 ``$STANDARD_INFORMATION`` with its
security id), ``ntfs_set_ntfs_attrib``, ``ntfs_inode_close_in_dir`` (which also refreshes the
``$FILE_NAME`` copy in the parent's index, so attributes agree in both places). Their prototypes
and ``struct SECURITY_CONTEXT`` (of which only the first member, the volume, is read) are the same
in ntfs-3g 2017.3.23, 2017.3.23AR.3/.6 and 2022.10.3; only the SONAME differs, so each is tried.
Times are not set here: :func:`ffuforge.formats.ntfs.normalize_ntfs` rewrites every one afterwards.

Errors go to stderr as one line (ENOSPC as "No space left on device", which the caller turns into
a "does not fit" error); exit status UNAVAILABLE when no libntfs-3g can be loaded.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

SONAMES = ("libntfs-3g.so.89", "libntfs-3g.so.886", "libntfs-3g.so.883", "libntfs-3g.so.88")
UNAVAILABLE = 3
_FILE_ROOT = 5
_AT_DATA = 0x80
_S_IFDIR, _S_IFREG = 0o040000, 0o100000
_CHUNK = 8 << 20
FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_SYSTEM = 0x02, 0x04


class Failed(Exception):
    pass


def _load():
    errors = []
    for name in SONAMES:
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            errors.append(str(exc))
    print(f"libntfs-3g is not usable ({'; '.join(errors)}); install ntfs-3g", file=sys.stderr)
    raise SystemExit(UNAVAILABLE)


def _bind(lib):
    vp, i64, u32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32
    for name, res, args in (
        ("ntfs_mount", vp, [ctypes.c_char_p, ctypes.c_ulong]),
        ("ntfs_umount", ctypes.c_int, [vp, ctypes.c_int]),
        ("ntfs_inode_open", vp, [vp, ctypes.c_uint64]),
        ("ntfs_inode_close", ctypes.c_int, [vp]),
        ("ntfs_inode_close_in_dir", ctypes.c_int, [vp, vp]),
        ("ntfs_create", vp, [vp, u32, ctypes.c_char_p, ctypes.c_uint8, u32]),
        ("ntfs_attr_open", vp, [vp, u32, vp, u32]),
        ("ntfs_attr_close", None, [vp]),
        ("ntfs_attr_truncate_solid", ctypes.c_int, [vp, i64]),
        ("ntfs_attr_pwrite", i64, [vp, i64, i64, vp]),
        ("ntfs_set_ntfs_acl", ctypes.c_int, [vp, vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]),
        ("ntfs_set_ntfs_attrib", ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]),
        ("ntfs_log_set_handler", None, [vp]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    lib.ntfs_log_set_handler(ctypes.cast(lib.ntfs_log_handler_stderr, vp))
    return ctypes.c_void_p(ctypes.addressof(ctypes.c_uint16.in_dll(lib, "AT_UNNAMED")))


def _why(what: str, path: str) -> Failed:
    err = ctypes.get_errno()
    return Failed(f"{what} {path}: {os.strerror(err) if err else 'libntfs-3g failed'}")


def write(job: dict, volume: str) -> None:
    lib = _load()
    unnamed = _bind(lib)
    sds = [bytes.fromhex(h) for h in job["descriptors"]]
    vol = lib.ntfs_mount(volume.encode(), 0)
    if not vol:
        raise _why("cannot open the NTFS volume", volume)
    scx = (ctypes.c_void_p * 8)(vol)  # struct SECURITY_CONTEXT: only ->vol (offset 0) is read
    buf = bytearray(_CHUNK)
    cbuf = (ctypes.c_char * _CHUNK).from_buffer(buf)
    root = lib.ntfs_inode_open(vol, _FILE_ROOT)
    blob = sds[job["root"]]
    if lib.ntfs_set_ntfs_acl(scx, root, blob, len(blob), 0):
        raise _why("cannot set the security descriptor of", "the root directory")
    stack: list[tuple[str, int]] = [("", root)]
    # On an error the process exits without unmounting: the caller discards the volume file.
    for rel, source, is_dir, sd, attrib in job["entries"]:
        parent = rel.rpartition("/")[0]
        while stack[-1][0] != parent:
            done, ni = stack.pop()
            if lib.ntfs_inode_close_in_dir(ni, stack[-1][1]):
                raise _why("cannot close directory", done)
        dir_ni = stack[-1][1]
        name = rel.rpartition("/")[2].encode("utf-16-le")
        if not 0 < len(name) <= 510:
            raise Failed(f"name of {rel} is longer than 255 UTF-16 units")
        ni = lib.ntfs_create(dir_ni, 0, name, len(name) // 2, _S_IFDIR if is_dir else _S_IFREG)
        if not ni:
            raise _why("cannot create", rel)
        if source is not None:
            _copy(lib, ni, unnamed, source, rel, buf, cbuf)
        blob = sds[sd]
        if lib.ntfs_set_ntfs_acl(scx, ni, blob, len(blob), 0):
            raise _why("cannot set the security descriptor of", rel)
        value = attrib.to_bytes(4, "little")
        if lib.ntfs_set_ntfs_attrib(ni, value, 4, 0):
            raise _why("cannot set the attributes of", rel)
        if is_dir:
            stack.append((rel, ni))
        elif lib.ntfs_inode_close_in_dir(ni, dir_ni):
            raise _why("cannot close", rel)
    while len(stack) > 1:
        done, ni = stack.pop()
        if lib.ntfs_inode_close_in_dir(ni, stack[-1][1]):
            raise _why("cannot close directory", done)
    root_attrib = (FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM).to_bytes(4, "little")
    if lib.ntfs_set_ntfs_attrib(root, root_attrib, 4, 0):  # Windows' root: HIDDEN|SYSTEM, no ARCHIVE
        raise _why("cannot set the attributes of", "the root directory")
    if lib.ntfs_inode_close(root):
        raise _why("cannot close", "the root directory")
    if lib.ntfs_umount(vol, 0):
        raise _why("cannot close the NTFS volume", volume)


def _copy(lib, ni, unnamed, source: str, rel: str, buf: bytearray, cbuf) -> None:
    fd = os.open(source, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if not size:
            return
        na = lib.ntfs_attr_open(ni, _AT_DATA, unnamed, 0)
        if not na:
            raise _why("cannot open the data of", rel)
        try:
            if lib.ntfs_attr_truncate_solid(na, size):
                raise _why("cannot allocate", rel)
            pos = 0
            while pos < size:
                n = os.readv(fd, [memoryview(buf)[: min(_CHUNK, size - pos)]])
                if n <= 0:
                    raise Failed(f"{source} changed while it was being written (shorter than {size} bytes)")
                if lib.ntfs_attr_pwrite(na, pos, n, cbuf) != n:
                    raise _why("cannot write", rel)
                pos += n
        finally:
            lib.ntfs_attr_close(na)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    job_path, volume = argv  # job "-": stdin
    if job_path == "-":
        job = json.load(sys.stdin.buffer)
    else:
        with open(job_path, encoding="utf-8") as fh:
            job = json.load(fh)
    try:
        write(job, volume)
    except (Failed, OSError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
