"""Packages kept extracted between builds, so that a partition rebuilt after one package changed
extracts only that package.

Installing MainOS meant reading, checksumming and hashing every member of every CAB again
(seconds per GiB) for a one-file edit. Here each CAB's parse result (:class:`install.Parsed`) and
its extracted members live in one directory per CAB, keyed by the CAB file's identity (device,
inode, size, mtime, ctime) and digest of its first and last 64 KiB: every rewrite of the CAB
misses. Staging hard-links the members, which are read-only; nothing writes to a staged file in
place (hives and the BCD are written beside and renamed).

An entry is written in a temp directory and renamed into place when complete; before use its
record and the size and mtime of each member are checked, so an entry cut short by a killed
build, or touched since, is extracted again. Entries the latest build of the partition did not
use are removed. With -jN the misses are extracted in worker processes; results are replayed in
package order, so the output and the errors are those of a sequential install.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..util import toolsig, workers
from . import install

DIRNAME = ".ffuforge-extract"  # beside a partition's image: one directory per partition in it
FORMAT = 2  # 2: file ops carry the SHA-1 too
RECORD = "record.json"
TEMP_PREFIX = ".tmp-"
_EDGE = 64 << 10


def cab_key(cab: Path, partition: str) -> str | None:
    """A digest that changes whenever the CAB's bytes may have changed; None for what is not a
    readable regular file (never cached: installing it reports the problem)."""
    try:
        fd = os.open(cab, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        h = hashlib.sha256(
            f"{FORMAT}\0{toolsig.fingerprint('image.install')}\0{partition.lower()}\0{cab.name}\0"
            f"{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0".encode()
        )
        h.update(os.pread(fd, _EDGE, 0))
        if st.st_size > _EDGE:
            h.update(os.pread(fd, _EDGE, max(_EDGE, st.st_size - _EDGE)))
        return h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def _entry_name(cab: Path, key: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', cab.name)[:100]}.{key[:32]}"


class ExtractCache:
    """The extracted packages of one partition, under `root` (created when needed)."""

    def __init__(self, root: Path, partition: str):
        self.root = Path(root)
        self.partition = partition
        self._used: set[str] = set()

    def parsed(self, cabs: list[Path], jobs: int = 1) -> Iterator[tuple[install.Parsed, Path]]:
        """(parse result, directory of its members) for each CAB, in order. Misses are extracted
        here in order (jobs 1) or all at once in `jobs` worker processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        for entry in os.listdir(self.root):  # a killed build's unfinished entries
            if entry.startswith(TEMP_PREFIX):
                shutil.rmtree(self.root / entry, ignore_errors=True)
        plan: list[tuple[Path, str | None, install.Parsed | None]] = []
        misses: dict[str | None, tuple] = {}
        for i, cab in enumerate(cabs):
            key = cab_key(cab, self.partition)
            name = _entry_name(cab, key) if key else None
            hit = self._load(name, key, cab) if name and name not in misses else None
            if hit is None:
                misses[name or i] = (str(cab), self.partition, str(self.root), name, key)
            plan.append((cab, name or i, hit))
        results = workers.imap(_fill, list(misses.values()), jobs=jobs)
        done: dict = {}
        order = iter(misses)
        try:
            for cab, name, hit in plan:
                if hit is not None:
                    self._used.add(name)
                    yield hit, self.root / name
                    continue
                while name not in done:
                    done[next(order)] = next(results)
                parsed, store = done[name]
                if parsed.cab != cab:  # the same CAB file listed twice: its record, this path
                    parsed = install.Parsed(cab, parsed.info, parsed.ops, parsed.error)
                if isinstance(name, str) and parsed.error is None:
                    self._used.add(name)
                yield parsed, Path(store)
        finally:
            results.close()

    def evict(self) -> None:
        """Remove every entry not used since this object was made (call after a successful build)."""
        for entry in os.listdir(self.root):
            if entry not in self._used:
                shutil.rmtree(self.root / entry, ignore_errors=True)

    def _load(self, name: str, key: str, cab: Path) -> install.Parsed | None:
        entry = self.root / name
        try:
            rec = json.loads((entry / RECORD).read_bytes())
            if rec["format"] != FORMAT or rec["key"] != key:
                raise ValueError("another key")
            for n, (size, mtime_ns) in rec["store"].items():
                st = os.lstat(entry / n)
                if not stat.S_ISREG(st.st_mode) or st.st_size != size or st.st_mtime_ns != mtime_ns:
                    raise ValueError(f"member {n} changed")
            return _from_json(rec, cab)
        except FileNotFoundError:
            if entry.exists():
                shutil.rmtree(entry, ignore_errors=True)
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            shutil.rmtree(entry, ignore_errors=True)
            return None


def _fill(
    cab: str, partition: str, root: str, name: str | None, key: str | None
) -> tuple[install.Parsed, str]:
    """Extract one CAB into a new entry `name` of `root` (None: a scratch directory, not kept).
    A module-level function of plain arguments: it may run in a worker process."""
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name or 'scratch'}-", dir=root)
    try:
        parsed = install.parse_package(Path(cab), partition, Path(tmp))
        if parsed.error is not None:  # never kept; replaying it only reports the error
            shutil.rmtree(tmp, ignore_errors=True)
            return parsed, tmp
        if name is None:
            return parsed, tmp  # removed with the other temps by evict()
        rec = _to_json(parsed, key)
        rec["store"] = {
            n: [(st := os.lstat(os.path.join(tmp, n))).st_size, st.st_mtime_ns]
            for n in sorted(os.listdir(tmp))
        }
        with open(os.path.join(tmp, RECORD), "x", encoding="utf-8") as fh:
            json.dump(rec, fh, separators=(",", ":"))
        final = os.path.join(root, name)
        try:
            os.rename(tmp, final)
        except OSError:  # a stale entry of that name: replace it
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        return parsed, final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _to_json(p: install.Parsed, key: str) -> dict:
    info = {k: v for k, v in vars(p.info).items() if k != "cab"}
    ops = [
        [op[0], op[1], op[2], [[k, n, t, d.hex(), a] for k, n, t, d, a in op[3]]]
        if op[0] == "reg"
        else list(op)
        for op in p.ops
    ]
    return {"format": FORMAT, "key": key, "info": info, "ops": ops}


def _from_json(rec: dict, cab: Path) -> install.Parsed:
    info = install.PackageInfo(cab=cab, **rec["info"])
    ops = [
        (op[0], op[1], op[2], [(k, n, t, bytes.fromhex(d), a) for k, n, t, d, a in op[3]])
        if op[0] == "reg"
        else tuple(op)
        for op in rec["ops"]
    ]
    return install.Parsed(cab, info, ops)
