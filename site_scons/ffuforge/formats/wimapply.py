"""A staged tree applied straight into an NTFS volume file by libwim, wimlib's library.

`wimlib-imagex capture` wrote the whole tree into a WIM file (reading and hashing every byte) that
`wimlib-imagex apply` then read back into the volume: here the tree is added to an in-memory
image and extracted from it through libntfs-3g, with no WIM file (about 1.5–2 s less per GiB).
Same library, same extraction code: the volume is byte for byte what the two commands write.

Runs as a script in its own process — a fault in the C library must not take the build down —
with a C tool's signal behaviour. Exits with UNAVAILABLE when libwim cannot be loaded (the
caller then runs the commands). Errors go to stderr as from `wimlib-imagex`: wimlib's own
`[ERROR] …` lines (the cause), then a summary.
"""

from __future__ import annotations

import ctypes
import signal
import sys

SONAME = "libwim.so.15"  # the ABI written against below (wimlib 1.9 and later)
UNAVAILABLE = 3
_ASSUME_UTF8 = 0x1
_ADD_NO_ACLS, _ADD_NORPFIX = 0x20, 0x200
_EXTRACT_NTFS, _EXTRACT_NO_ACLS = 0x1, 0x40


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    source, volume = (a.encode() for a in argv)
    try:
        lib = ctypes.CDLL(SONAME)
        calls = {
            name: getattr(lib, name)
            for name in (
                "wimlib_global_init",
                "wimlib_set_print_errors",
                "wimlib_create_new_wim",
                "wimlib_add_image",
                "wimlib_extract_image",
                "wimlib_free",
                "wimlib_get_error_string",
            )
        }
    except (OSError, AttributeError) as exc:
        print(f"[ERROR] {SONAME} is not usable: {exc}", file=sys.stderr)
        return UNAVAILABLE
    c_void_pp = ctypes.POINTER(ctypes.c_void_p)
    for name, args in (
        ("wimlib_global_init", [ctypes.c_int]),
        ("wimlib_set_print_errors", [ctypes.c_bool]),
        ("wimlib_create_new_wim", [ctypes.c_int, c_void_pp]),
        (
            "wimlib_add_image",
            [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int],
        ),
        ("wimlib_extract_image", [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]),
        ("wimlib_get_error_string", [ctypes.c_int]),
    ):
        calls[name].argtypes = args
        calls[name].restype = ctypes.c_int
    calls["wimlib_free"].argtypes = [ctypes.c_void_p]
    calls["wimlib_free"].restype = None
    calls["wimlib_get_error_string"].restype = ctypes.c_char_p

    def check(code: int, what: str) -> None:
        if code:
            text = (calls["wimlib_get_error_string"](code) or b"").decode("utf-8", "replace")
            print(
                f"ERROR: {what}: {text} (wimlib error {code})", file=sys.stderr
            )  # after wimlib's [ERROR] cause
            raise SystemExit(1)

    check(calls["wimlib_global_init"](_ASSUME_UTF8), "initialising wimlib")
    calls["wimlib_set_print_errors"](True)
    wim = ctypes.c_void_p()
    check(calls["wimlib_create_new_wim"](0, ctypes.byref(wim)), "creating the image")
    try:
        check(
            calls["wimlib_add_image"](wim, source, b"", None, _ADD_NO_ACLS | _ADD_NORPFIX), "adding the tree"
        )
        check(
            calls["wimlib_extract_image"](wim, 1, volume, _EXTRACT_NTFS | _EXTRACT_NO_ACLS),
            "writing the NTFS volume",
        )
    finally:
        calls["wimlib_free"](wim)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
