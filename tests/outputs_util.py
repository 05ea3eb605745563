"""What a build left under build/: output digests (sparse-aware), hidden temp entries, sparse copies.

Shared by the interrupted-build and fault tests, which compare a workspace after a kill or a fault
with one clean build of the same sources.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ffuforge.formats import blocksig
from ffuforge.image.extractcache import DIRNAME as EXTRACT_CACHE
from ffuforge.image.extractcache import TEMP_PREFIX
from ffuforge.util.atomic import sparse_copy  # copy2 keeping holes: a dense Data image makes another FFU

BLOCK = 1 << 20


def digest(path: Path) -> str:
    """SHA-256 over the size and the non-zero 1 MiB blocks; holes are never read, so the 7 GiB
    sparse Data image costs nothing. (A written zero block and a hole hash the same.)"""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        h.update(size.to_bytes(8, "little"))
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # only a hole is left
            end = os.lseek(fd, start, os.SEEK_HOLE)
            block = start // BLOCK
            while block * BLOCK < end:
                chunk = os.pread(fd, BLOCK, block * BLOCK)
                if chunk.count(0) != len(chunk):
                    h.update(block.to_bytes(8, "little") + hashlib.sha256(chunk).digest())
                block += 1
            pos = block * BLOCK
    return h.hexdigest()


def snapshot(ws: Path) -> tuple[dict[str, str], list[str]]:
    """(output path -> digest, hidden temp entries) under build/; the SCons database is left out."""
    outputs, temps = {}, []
    build = ws / "build"
    for dirpath, dirnames, filenames in os.walk(build):
        d = Path(dirpath)
        if d.parent.name == EXTRACT_CACHE or (
            d.name == EXTRACT_CACHE and d.parent.name != "partitions"
        ):  # kept extracted packages (a partition's, or those beside the CABs): only unfinished entries count
            temps += [f"{(d / n).relative_to(ws)}/" for n in sorted(dirnames) if n.startswith(TEMP_PREFIX)]
            dirnames.clear()
            continue
        for name in sorted(dirnames):
            if name == EXTRACT_CACHE:
                continue
            if d == build and name == ".ffuforge":  # ffuforge.scons_tool.plancache, kept between builds
                continue
            if name.startswith("."):
                temps.append(f"{(d / name).relative_to(ws)}/")
                dirnames.remove(name)
        for name in filenames:
            rel = str((d / name).relative_to(ws))
            if (
                d == build
                and name.startswith(".sconsign")
                or d.name == ".ffuforge"
                and name in ("plans", "cabfacts", "signers")
            ):
                continue
            if name.startswith(".") or name.endswith(".partial"):
                temps.append(rel)
            elif name.endswith(blocksig.SIDECAR_SUFFIX):
                check_sidecar(d / name)  # a cache tied to one file (inode, times): no output
            else:
                outputs[rel] = digest(d / name)
    return outputs, sorted(temps)


def check_sidecar(path: Path) -> None:
    """A partition image's chunk digests (blocksig sidecar) differ between builds by design (they
    name the image's inode and times) and are missing after a cache hit, so they are no output to
    compare. What must hold: one that claims to describe the image beside it is right."""
    image = path.with_name(path.name[: -len(blocksig.SIDECAR_SUFFIX)])
    if not image.exists():
        return
    with open(image, "rb") as fh:
        claimed = blocksig.read_sidecar(image, fh.fileno())
    if claimed is not None:
        assert claimed == blocksig.sign_file(image).digests, f"{path}: wrong chunk digests for its image"


def assert_no_lies(ws: Path, reference: dict[str, str], context: str) -> list[str]:
    """Every file under an output's name is the clean build's; returns the hidden temp entries."""
    outputs, temps = snapshot(ws)
    strangers = sorted(set(outputs) - set(reference))
    assert not strangers, f"{context}: unexpected files under build/: {strangers}"
    wrong = sorted(k for k, v in outputs.items() if reference[k] != v)
    assert not wrong, f"{context}: files differ from the clean build under their final name: {wrong}"
    return temps


def assert_complete(ws: Path, reference: dict[str, str], context: str, temps_allowed: bool = False) -> None:
    outputs, temps = snapshot(ws)
    missing = sorted(set(reference) - set(outputs))
    assert not missing, f"{context}: missing: {missing}"
    assert_no_lies(ws, reference, context)
    if not temps_allowed:
        assert not temps, f"{context}: temp files left after a complete build: {temps}"


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True, copy_function=sparse_copy)
    return dst
