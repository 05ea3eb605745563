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

**Prepared entries.** A CAB this build writes is extracted by the package action that wrote it
(:func:`prepare`, in the package phase, which runs in parallel with -jN), into
``<CAB's folder>/.ffuforge-extract/<CAB name>``, so that the partition action, serial and after
every package, finds it ready and only links and replays. The partition is not known there (a CAB
in ``build/<cpu>/packages/`` serves several products and partitions), so the entry is made without
the partition check and keyed without the partition; the check is made where the entry is used
and gives the error a partition-bound extraction gives (:func:`install.partition_error`; the parse
result does not otherwise depend on the partition). The key is taken after the CAB's final rename
(a rename changes ctime), so a CAB written again by anything else, or fetched from CacheDir (a new
inode), misses and is extracted by the partition as before. One entry per CAB file: writing the
CAB again replaces it, ``scons -c`` removes the folder. The partition's own entries are looked up
first; a prepared entry is used in place (not copied), so it is never evicted by a partition.
What each partition build took from where is written to its cache's ``sources.json``.

**From the members in hand.** The package action knows what it just wrote: every member's bytes
(generated or signed) or the source file it copied, and that file's SHA-256. Its entry is made by
the same parsing code (:func:`install.parse_package`) over :class:`WrittenCab`, a reader with
CabReader's interface over those members, so no folder is inflated and no block checksummed
(at 1 GiB, 362 CABs: 0.43–0.49× the CPU of extracting MSZIP CABs, 0.63–0.72× for stored ones; what is left
is hashing, writing the store and parsing). The result is the same by construction:
the member table is the CAB's own (read from the file, and equal to the one the build wrote),
the parsing and every check are shared, and a source file read again is checked against the
SHA-256 the build took of it: by :func:`members.extract_member` against update.mum, where
update.mum declares it (our packages declare every payload), else by the reader itself. A file
edited since the CAB was written therefore fails the check; like any other failure of this path
(a package error included) that makes the entry from the CAB instead, as before: never a wrong
entry, never a failed build. Not covered: a payload changed while the CAB was written and put back
before this read with its size and mtime restored (the CAB then holds bytes its own update.mum
does not describe; the package action's read check, by size and mtime, sees any other change).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import FFUError
from ..formats.cab import CabReader
from ..util import toolsig, workers, xmlsafe
from ..util.atomic import write_bytes
from . import install

DIRNAME = ".ffuforge-extract"  # beside a partition's image: one directory per partition in it
FORMAT = 2  # 2: file ops carry the SHA-1 too
RECORD = "record.json"
SOURCES = "sources.json"  # in a partition's cache: where the latest build took each package from
TEMP_PREFIX = ".tmp-"
_EDGE = 64 << 10
ANY_PARTITION = "\0any"  # a prepared entry's key: made before the partition is known


def cab_key(cab: Path, partition: str) -> str | None:
    """A digest that changes whenever the CAB's bytes may have changed; None for what is not a
    readable regular file (never cached: installing it reports the problem). `partition`
    ANY_PARTITION keys a prepared entry (no partition check made)."""
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


def _safe_name(cab: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cab.name)[:100]


def _entry_name(cab: Path, key: str) -> str:
    return f"{_safe_name(cab)}.{key[:32]}"


def prepared_entry(cab: Path) -> Path:
    """Where :func:`prepare` keeps the extracted CAB: beside it, one entry per CAB file."""
    return cab.parent / DIRNAME / _safe_name(cab)


def prepare(cab: Path, written: Sequence[Any] | None = None) -> bool:
    """Extract a CAB just written by this build into its prepared entry (the package action calls
    this after the CAB's final rename); True when an entry was made. `written`: the members the
    build wrote into it (:attr:`ffuforge.package.build.Built.members`), read instead of the CAB
    (see the module docstring). The CAB's previous entry goes first, whatever follows. A package
    that does not install (its error is the partition's to report, in order) and a file system
    error (the entry is an optimisation: the partition extracts what has no entry) make none."""
    cab = Path(cab)
    final = prepared_entry(cab)
    root = final.parent
    try:
        root.mkdir(mode=0o755, exist_ok=True)
        if not _private(root):  # not ours to trust later (see _private): make nothing
            return False
        for entry in os.listdir(root):  # a killed build's unfinished entry of this CAB
            if entry.startswith(f"{TEMP_PREFIX}{final.name}-"):
                shutil.rmtree(root / entry, ignore_errors=True)
        _remove(final)
        key = cab_key(cab, ANY_PARTITION)
        if key is None:
            return False
        parsed = _from_written(cab, written, root, final.name, key) if written else None
        if parsed is None:
            parsed, _ = _fill(str(cab), None, str(root), final.name, key)
        elif cab_key(cab, ANY_PARTITION) != key:  # the CAB was replaced meanwhile: not its entry
            _remove(final)
            return False
    except OSError:
        return False
    return parsed.error is None


def _from_written(
    cab: Path, written: Sequence[Any], root: Path, name: str, key: str
) -> install.Parsed | None:
    """The entry made from the members the build wrote; None (nothing kept) when that fails in
    any way, a package error included: the entry is then made from the CAB, which decides."""
    try:
        parsed, _ = _fill(str(cab), None, str(root), name, key, WrittenCab(cab, written))
    except Exception:  # an optimisation only: whatever went wrong, the CAB is read instead
        return None
    return parsed if parsed.error is None else None


class _NotAsWritten(Exception):
    """A member the reader cannot vouch for (not an FFUError: parse_package must not record it)."""


class WrittenCab:
    """CabReader's reading interface (`members`, `read`, `iter_chunks`) over the members a package
    build wrote into `cab`: generated bytes from memory, payloads from their source files.

    `members` is the CAB's file table as read from the file (cheap: no data block is read), and
    must equal the one the build wrote. A source member is streamed as is where the parse checks
    it (update.mum lists it, by a cabpath the parse extracts through :func:`members.extract_member`,
    with the SHA-256 the build took of it); any other source member is hashed here and compared.
    A file of another size, or content other than the build's, raises :class:`_NotAsWritten`."""

    CHUNK = 1 << 20

    def __init__(self, cab: Path, written: Sequence[Any]):
        self.path = str(cab)
        with CabReader(cab) as disk:
            self.members = disk.members
        if self.members != [w.entry for w in written]:
            raise _NotAsWritten("the CAB's file table is not the one the build wrote")
        self._by_name = {w.entry.name: w for w in written}
        self._checked = self._declared()

    def _declared(self) -> set[str]:
        """Source members whose extraction the parse checks against the build's own SHA-256."""
        mum = next((w for n, w in self._by_name.items() if n.lower() == "update.mum"), None)
        if mum is None or mum.data is None:
            return set()
        try:
            root = xmlsafe.parse_bytes(mum.data, f"{self.path}:update.mum")
        except FFUError:
            return set()
        asm = install.ASM
        hashes: dict[str, list[str | None]] = {}
        for f in root.iterfind(f"{asm}package/{asm}customInformation/{asm}file"):
            cabpath = (f.get("cabpath") or "").lower()
            if cabpath and cabpath not in ("update.mum", "update.cat") and not cabpath.endswith(".manifest"):
                hashes.setdefault(cabpath, []).append(f.get("hash"))
        return {
            n
            for n, w in self._by_name.items()
            if w.source is not None
            and w.sha256 is not None
            and (listed := hashes.get(n.lower()))
            and all(h is not None and h.lower() == w.sha256.hex() for h in listed)
        }

    def __enter__(self) -> WrittenCab:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def _written(self, name) -> Any:
        w = self._by_name.get(name if isinstance(name, str) else name.name)
        if w is None:
            raise _NotAsWritten(f"no member {name!r}")
        return w

    def iter_chunks(self, name) -> Iterator[memoryview]:
        w = self._written(name)
        if w.source is None:
            return iter((memoryview(w.data),))
        return self._file_chunks(w, verify=w.entry.name not in self._checked)

    def read(self, name, max_size: int | None = None) -> bytes:
        w = self._written(name)
        if max_size is not None and w.entry.size > max_size:
            raise _NotAsWritten(f"{w.entry.name}: larger than the parse reads (the CAB tells why)")
        if w.source is None:
            return bytes(w.data)
        return b"".join(self._file_chunks(w, verify=True))  # read() is checked by nothing else

    def _file_chunks(self, w, verify: bool) -> Iterator[memoryview]:
        h = hashlib.sha256() if verify else None
        left = w.entry.size
        with open(w.source, "rb", buffering=0) as fh:
            while left:
                chunk = fh.read(min(self.CHUNK, left))
                if not chunk:
                    raise _NotAsWritten(f"{w.source}: shorter than when the build wrote it")
                left -= len(chunk)
                if h is not None:
                    h.update(chunk)
                yield memoryview(chunk)
            if fh.read(1):
                raise _NotAsWritten(f"{w.source}: longer than when the build wrote it")
        if h is not None and h.digest() != w.sha256:
            raise _NotAsWritten(f"{w.source}: changed since the build wrote it")


def _private(folder: Path) -> bool:
    """A folder only this user can change. Prepared entries sit beside CABs, which may be in a
    folder others can write (a shared MSPACKAGE tree): an entry planted there for a CAB that passed
    the trust checks must not be installed in its place. :func:`prepare` makes its folders so."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _remove(entry: Path) -> None:
    """Remove an entry: renamed aside first (a temp name, which nothing trusts), so that an
    interrupted removal never leaves a part of it under its name."""
    if not os.path.lexists(entry):
        return
    aside = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{entry.name}-", dir=entry.parent)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry, os.path.join(aside, "old"))
    finally:
        shutil.rmtree(aside, ignore_errors=True)


class ExtractCache:
    """The extracted packages of one partition, under `root` (created when needed)."""

    def __init__(self, root: Path, partition: str):
        self.root = Path(root)
        self.partition = partition
        self._used: set[str] = set()
        self._sources: list[list[str]] = []  # (CAB, "kept" | "package" | "extracted"), in order

    def parsed(self, cabs: list[Path], jobs: int = 1) -> Iterator[tuple[install.Parsed, Path]]:
        """(parse result, directory of its members) for each CAB, in order. Misses are extracted
        here in order (jobs 1) or all at once in `jobs` worker processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        for entry in os.listdir(self.root):  # a killed build's unfinished entries
            if entry.startswith(TEMP_PREFIX):
                shutil.rmtree(self.root / entry, ignore_errors=True)
        misses: dict[str | int, tuple] = {}
        plan: list[tuple[Path, str | int, install.Parsed | None, Path | None]] = []
        for i, cab in enumerate(cabs):
            key = cab_key(cab, self.partition)
            name = _entry_name(cab, key) if key else None
            hit, store, how = None, None, "extracted"
            if name is None or name not in misses:  # (a CAB listed twice is extracted once)
                if name and (hit := self._load(name, key, cab)) is not None:
                    store, how = self.root / name, "kept"
                elif (prepared := self._prepared(cab)) is not None:
                    (hit, store), how = prepared, "package"
            if hit is None:
                misses[name or i] = (str(cab), self.partition, str(self.root), name, key)
            plan.append((cab, name or i, hit, store))
            self._sources.append([str(cab), how])
        results = workers.imap(_fill, list(misses.values()), jobs=jobs)
        done: dict = {}
        order = iter(misses)
        try:
            for cab, name, hit, store in plan:
                if hit is not None and store is not None:
                    if store.parent == self.root:
                        self._used.add(store.name)
                    yield hit, store
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
        """Remove every entry not used since this object was made (call after a successful build),
        and record where each package came from (SOURCES: the CAB, then "kept" for an entry of
        this cache, "package" for the entry its package action prepared, "extracted" here)."""
        for entry in os.listdir(self.root):
            if entry not in self._used and entry != SOURCES:
                shutil.rmtree(self.root / entry, ignore_errors=True)
        write_bytes(
            self.root / SOURCES,
            json.dumps({"format": FORMAT, "partition": self.partition, "cabs": self._sources}).encode(),
        )

    def _prepared(self, cab: Path) -> tuple[install.Parsed, Path] | None:
        """The entry :func:`prepare` made for `cab` (when its key still matches), with the partition
        check a partition-bound extraction makes: a package of another partition gives exactly
        that extraction's result (its identity, no ops, the error)."""
        entry = prepared_entry(cab)
        if not (_private(entry.parent) and _private(entry)):
            return None
        key = cab_key(cab, ANY_PARTITION)
        parsed = _check(entry, key, cab) if key else None
        if parsed is None or parsed.info is None:
            return None
        if (exc := install.partition_error(parsed.info, self.partition, str(cab))) is not None:
            return install.Parsed(cab, parsed.info, [], exc), entry
        return parsed, entry

    def _load(self, name: str, key: str, cab: Path) -> install.Parsed | None:
        entry = self.root / name
        parsed = _check(entry, key, cab)
        if parsed is None and entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        return parsed


def _check(entry: Path, key: str, cab: Path) -> install.Parsed | None:
    """The parse result an entry holds for `cab` when its record is complete, of this key, and
    every member is as it was written; else None."""
    try:
        rec = json.loads((entry / RECORD).read_bytes())
        if rec["format"] != FORMAT or rec["key"] != key:
            raise ValueError("another key")
        for n, (size, mtime_ns) in rec["store"].items():
            st = os.lstat(entry / n)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size or st.st_mtime_ns != mtime_ns:
                raise ValueError(f"member {n} changed")
        return _from_json(rec, cab)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def _fill(
    cab: str, partition: str | None, root: str, name: str | None, key: str | None, reader=None
) -> tuple[install.Parsed, str]:
    """Extract one CAB into a new entry `name` of `root` (None: a scratch directory, not kept);
    `partition` None: no partition check (a prepared entry); `reader`: its members' reader
    (:class:`WrittenCab`; None: the CAB file). A module-level function of plain arguments: it
    may run in a worker process."""
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name or 'scratch'}-", dir=root)
    try:
        if reader is None:
            parsed = install.parse_package(Path(cab), partition, Path(tmp))
        else:
            parsed = install.parse_package(Path(cab), partition, Path(tmp), reader)
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
            _remove(Path(final))
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
