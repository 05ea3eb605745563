"""The .ppkg container: a one-image WIM, XPRESS-compressed, reparse-point-fixup flag set, with the
package metadata as image properties (../shared/spec/provisioning.md §1.1-1.2: `file`/TrID reports
of Microsoft samples, PackageStack, sia-tolf; `wimlib-imagex info` and `7z l` read it).

libmagic (file 5.44) calls a WIM a "Windows provisioning package" when the bytes ``RunTime.xml``
are in its first 64 KiB (measured here); they are there as the MasterDatastore's text, which is too
small to compress and so stored as it is. wimlib writes file data in path order, the blobs it
could not compress after the others: large incompressible data assets (an appx) therefore come
before the MasterDatastore, and `file` then says only "WIM image". Windows does not use libmagic.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import FormatError
from ...formats import wim
from .compiler import PpkgTree

WIM_MAGIC = b"MSWIM\0\0\0"


def _order(name: str) -> tuple[int, str]:
    """XML first, then the data assets: the order staged (wimlib's own order decides the file's)."""
    return (1 if name.startswith("DataAsset/") and not name.endswith(".xml") else 0, name)


def write_ppkg(tree: PpkgTree, out_path: str | Path, timestamp: int) -> wim.WimResult:
    entries = [wim.WimEntry(name, tree.files[name]) for name in sorted(tree.files, key=_order)]
    return wim.write_wim(
        out_path,
        entries,
        image_name=tree.name,
        timestamp=timestamp,
        compression="xpress",
        image_properties=tree.properties,
        rpfix=True,
    )


def check_ppkg(path: str | Path, display: str | None = None) -> None:
    """A .ppkg used as it is (made by Windows Configuration Designer) must at least be a WIM."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise FormatError(
            f"cannot read the provisioning package: {exc.strerror}", display or str(path)
        ) from None
    if head != WIM_MAGIC:
        raise FormatError(
            "not a provisioning package (a .ppkg is a WIM image, starting with MSWIM); rebuild it",
            display or str(path),
        )
