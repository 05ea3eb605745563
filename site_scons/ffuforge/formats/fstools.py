"""What the FAT and NTFS writers share: finding and running the Debian file-system tools, and
scanning the staged tree into entries Windows file systems can hold.

Separate from :mod:`.fat` and :mod:`.ntfs` so both writers use one tool runner (one place to
patch in tests and benchmarks) and one set of staged-tree rules.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ToolError
from ..util import lifetime

_SBIN = ("/usr/sbin", "/sbin")
_WIN_BAD = set('<>:"/\\|?*')


# ------------------------------------------------------------------------------------ utilities


def find_tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        for d in _SBIN:
            cand = os.path.join(d, name)
            if os.access(cand, os.X_OK):
                found = cand
                break
    if not found:
        raise ToolError(f"{name} not found; install the Debian package {package} (apt-get install {package})")
    return found


def no_fsync() -> list[str]:
    """`eatmydata` (Debian package eatmydata) as a command prefix, if installed. libntfs-3g fsyncs
    the volume file when it closes it: a build waited ~1.5 s per GiB of MainOS for the disk, for
    durability that no other output has (every output is a temp file renamed into place, never
    fsynced: a killed build leaves nothing half-written, a power cut may). Same bytes either way."""
    found = shutil.which("eatmydata")
    return [found] if found else []


class ToolRunError(ToolError):
    """An external tool failed; `stderr` keeps its whole error output, `status` its exit status."""

    def __init__(self, message: str, file: str | None, stderr: str, status: int | None = None):
        super().__init__(message, file)
        self.stderr = stderr
        self.status = status


def run(
    argv: list[str],
    out: Path,
    env: dict[str, str] | None = None,
    name: str | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run a tool; `input` is its stdin (else /dev/null). Raises ToolRunError with its last error line."""
    name = name or os.path.basename(argv[1] if os.path.basename(argv[0]) == "eatmydata" else argv[0])
    stdin = None if input is not None else subprocess.DEVNULL
    runnable = os.access(argv[0], os.X_OK) if os.sep in argv[0] else shutil.which(argv[0])
    if not runnable:  # said here: through the wrapper below it would be sh's exit status 127
        raise ToolError(f"cannot run {argv[0]}: No such file or directory", str(out))
    try:  # tied: a tool (the NTFS helper writes for minutes) dies with a SIGKILLed build
        res = subprocess.run(
            lifetime.tied(argv), input=input, stdin=stdin, capture_output=True, env=env, check=False
        )
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]}: {exc.strerror}", str(out)) from None
    if res.returncode < 0:  # Ctrl-C reaches the whole process group: not the tool's fault, say so
        sig = -res.returncode
        reasons: dict[int, str] = {
            signal.SIGINT: "was interrupted (Ctrl-C)",
            signal.SIGTERM: "was terminated (SIGTERM)",
            signal.SIGXFSZ: "exceeded the file size limit (SIGXFSZ, ulimit -f)",
        }
        why = reasons.get(sig)
        if why is None:
            why = f"was killed by {signal.Signals(sig).name if sig in signal.valid_signals() else f'signal {sig}'}"
        raise ToolRunError(f"{name} {why}", str(out), "", res.returncode)
    if res.returncode != 0:
        text = (res.stderr or b"").decode("utf-8", "replace").replace("\r", "\n")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [
            ln for ln in lines if ln.startswith("[ERROR]")
        ]  # ntfswrite: the cause, among libntfs-3g's lines
        last = errors[-1] if errors else lines[-1] if lines else f"exit status {res.returncode}"
        raise ToolRunError(f"{name} failed: {last}", str(out), text, res.returncode)
    return res


@dataclass(frozen=True)
class Entry:
    rel: tuple[str, ...]  # path components below the staged root
    path: Path
    is_dir: bool
    size: int


def scan(staged_dir: str | Path) -> list[Entry]:
    """Every entry of the staged tree, parents before children, siblings sorted by name."""
    root = Path(staged_dir)
    if not root.is_dir():
        raise ConfigError("staged directory does not exist", str(root))
    out: list[Entry] = []

    def walk(d: Path, rel: tuple[str, ...]) -> None:
        try:
            names = sorted(os.listdir(d))
        except OSError as exc:
            raise ConfigError(f"cannot read directory: {exc.strerror}", str(d)) from None
        folded: dict[str, str] = {}
        for name in names:
            p = d / name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError("file name is not valid UTF-8", str(p)) from None
            if any(c in _WIN_BAD or ord(c) < 0x20 for c in name) or name.endswith((" ", ".")):
                raise ConfigError(
                    f"file name {name!r} is not valid on Windows (reserved character or trailing dot/space)",
                    str(p),
                )
            key = name.casefold()
            if key in folded:
                raise ConfigError(
                    f"{name!r} and {folded[key]!r} differ only in case; Windows file systems "
                    "cannot hold both",
                    str(p),
                )
            folded[key] = name
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out.append(Entry(rel + (name,), p, True, 0))
                walk(p, rel + (name,))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(rel + (name,), p, False, st.st_size))
            else:
                kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
                raise ConfigError(
                    f"{kind} in a staged partition tree; only files and directories can be imaged "
                    "(reparse points, named streams and NTFS hard links are not written)",
                    str(p),
                )

    walk(root, ())
    return out


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def prepare(tmp: Path, size_bytes: int, sector_size: int) -> None:
    if size_bytes <= 0 or size_bytes % sector_size:
        raise ConfigError(
            f"partition size {size_bytes} is not a positive multiple of the sector size {sector_size}",
            str(tmp),
        )
    with open(tmp, "r+b") as fh:
        fh.truncate(size_bytes)
