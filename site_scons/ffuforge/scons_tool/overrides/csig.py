"""Content signatures SCons takes from ffuforge instead of hashing files itself.

Partition images and FFUs are signed block by block, holes unread (contentsig), whatever their
size: SCons' whole-file hash of the sparse 8 GiB Data volume took longer than building the
image. CABs are signed by cab.content_signature. The action that wrote the file has usually
computed the signature already (a CAB's writer in passing, in its worker process), and SCons'
one taskmaster thread takes it instead of reading the file again; payload files likewise from
the package build that read them.
"""

from __future__ import annotations

import os

import SCons.Node.FS
import SCons.Util

from ..actions import PACKAGE_BUILDER
from ..contentsig import content_signature
from ..state import PRESIGNED, SOURCE_SIGS


def _get_csig(node) -> str:
    """SCons' File.get_csig, with the signatures described above."""
    if not _block_signed(node):
        return _source_csig(node) or _FILE_GET_CSIG(node)
    ninfo = node.get_ninfo()
    try:
        return ninfo.csig
    except AttributeError:
        pass
    csig = node.get_max_drift_csig()
    if not csig:
        if not node.rexists():
            return _FILE_GET_CSIG(node)
        path = node.rfile().get_abspath()
        try:
            st = os.stat(path)
        except OSError:
            return _FILE_GET_CSIG(node)
        csig = (
            _unchanged(st, PRESIGNED.get(path))
            or content_signature(path, cab_file=not getattr(node.attributes, "ffuforge_blocks", False))[2]
        )
    ninfo.csig = csig
    return csig


def _source_csig(node) -> str | None:
    """A payload file's content signature from the package build that read it (SCons' own, the
    SHA-256 of the file, when SCons uses SHA-256): one read per payload instead of two, and the
    hashing done in the worker processes rather than on the taskmaster thread."""
    if not SOURCE_SIGS or node.has_builder() or SCons.Util.get_current_hash_algorithm_used() != "sha256":
        return None
    known = SOURCE_SIGS.get(node.get_abspath())
    if known is None:
        return None
    ninfo = node.get_ninfo()
    try:
        return ninfo.csig
    except AttributeError:
        pass
    try:
        st = os.stat(node.get_abspath())
    except OSError:
        return None
    csig = _unchanged(st, known)
    if csig is not None:
        ninfo.csig = csig
    return csig


def _unchanged(st: os.stat_result, known: tuple[int, int, str] | None) -> str | None:
    """The signature in `known` (size, mtime_ns, signature) if the file still has that size and mtime."""
    if known is not None and (st.st_size, st.st_mtime_ns) == known[:2]:
        return known[2]
    return None


def _block_signed(node) -> bool:
    return getattr(node.attributes, "ffuforge_blocks", False) or (
        node.has_builder() and node.get_builder() is PACKAGE_BUILDER
    )


_FILE_GET_CSIG = getattr(SCons.Node.FS.File.get_csig, "ffuforge_original", SCons.Node.FS.File.get_csig)


def install() -> None:
    _get_csig.ffuforge_original = _FILE_GET_CSIG  # type: ignore[attr-defined]
    SCons.Node.FS.File.get_csig = _get_csig
