"""The signer's identity and validity at SConscript time, without loading it.

Reading the SConscripts needs only what the graph records of the signer (its identity) and the
check that its certificates can sign now; loading it (cryptography's import and the private key)
was about a tenth of a no-op build. So, after a signer has been loaded once, its identity and
each certificate's validity window are kept beside the plan cache (``build/.ffuforge/signers``),
keyed by how it is configured and by the size, mtime, inode and ctime of every file it was
loaded from; a later run with the same files gets a :class:`LazySigner` that answers those two
questions and loads the real signer the first time anything else is asked (an action signing).
A key protected by ``FFU_SIGN_PASSWORD`` is always loaded at once, so that a wrong password stops
the build before any work, as before. A file written within the last 2 s is not trusted (as the
plan cache: a same-size rewrite in one timestamp tick would go unseen). A missing, unreadable or
foreign file costs one slower run.
"""

from __future__ import annotations

import marshal
import os
import time
from collections.abc import Callable

from ..util import atomic, toolsig

FILENAME = "signers"
FORMAT = 1
RACY_NS = 2_000_000_000


def _stats(files: tuple[str, ...]) -> tuple | None:
    out = []
    now = time.time_ns()
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return None
        if now - st.st_mtime_ns < RACY_NS or now - st.st_ctime_ns < RACY_NS:
            return None
        out.append((f, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return tuple(out)


def _code() -> str:
    return toolsig.fingerprint("signing.signers")


def _read(cache_file: str) -> dict:
    try:
        with open(cache_file, "rb") as fh:
            data = marshal.load(fh)
        if isinstance(data, dict) and data.get("format") == FORMAT and data.get("code") == _code():
            return data["signers"]
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        pass
    return {}


class LazySigner:
    """A signer known by its identity and validity windows; the real one is loaded on first use."""

    def __init__(self, identity: str, windows: list[tuple[int, int]], load: Callable[[], object]):
        self.identity = identity
        self._windows = windows  # (notBefore, notAfter) of each certificate, Unix seconds
        self._load = load
        self._real: object | None = None

    def real(self):
        if self._real is None:
            from ..errors import SigningError

            signer = self._load()
            if getattr(signer, "identity", None) != self.identity:
                raise SigningError("the signing certificate changed during the build; run scons again")
            self._real = signer
        return self._real

    def check_validity(self, epoch: int) -> None:
        """As the real signer's: every certificate valid now, and a signing time for `epoch`
        (``epoch`` inside every window, or windows that overlap). Any doubt: the real one decides
        and words the error."""
        now = time.time()
        starts = [s for s, _ in self._windows]
        ends = [e for _, e in self._windows]
        valid_now = all(s <= now <= e for s, e in self._windows)
        if valid_now and (all(s <= epoch <= e for s, e in self._windows) or max(starts) <= min(ends)):
            return
        self.real().check_validity(epoch)  # type: ignore[attr-defined]

    def __getattr__(self, name: str):
        return getattr(self.real(), name)


def lazy(
    cache_file: str, key: tuple, files: tuple[str, ...], load: Callable[[], object]
) -> LazySigner | None:
    """The signer configured by `key`, loaded from `files`, if an earlier run recorded it."""
    if not cache_file:
        return None
    stats = _stats(files)
    entry = _read(cache_file).get(repr(key)) if stats else None
    if not entry or entry[0] != stats:
        return None
    return LazySigner(entry[1], [tuple(w) for w in entry[2]], load)  # type: ignore[misc]


def remember(cache_file: str, key: tuple, files: tuple[str, ...], signer) -> None:
    """Record a signer just loaded (identity and its certificates' windows) for later runs."""
    stats = _stats(files) if cache_file else None
    certificates = getattr(signer, "certificates", None)
    if not stats or not certificates:
        return
    windows = [
        (int(c.not_valid_before_utc.timestamp()), int(c.not_valid_after_utc.timestamp()))
        for c in certificates
    ]
    signers = _read(cache_file)
    signers[repr(key)] = (stats, signer.identity, windows)
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        atomic.write_bytes(cache_file, marshal.dumps({"format": FORMAT, "code": _code(), "signers": signers}))
    except OSError:
        pass  # a read-only tree: the next run loads the signer again
