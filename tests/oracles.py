"""Independent checkers (Debian tools) for the tests: present, or a loud skip, or a failure in CI.

`./bootstrap --test` installs every tool named here, so in CI (`CI=true`, set by `.ci/run`, or
`FFUFORGE_REQUIRE_ORACLES=1`) a missing one fails the test instead of quietly dropping the check
it exists for. On a developer's machine without it the test is skipped and the skip says which
Debian package would run it.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import NoReturn

import pytest

# tool -> Debian package (./bootstrap; `--test` for the checkers only the tests use)
PACKAGES = {
    "sgdisk": "gdisk",
    "fdisk": "fdisk",
    "sfdisk": "fdisk",
    "fsck.fat": "dosfstools",
    "mcopy": "mtools",
    "mdir": "mtools",
    "ntfsls": "ntfs-3g",
    "ntfscat": "ntfs-3g",
    "ntfssecaudit": "ntfs-3g",
    "ntfsinfo": "ntfs-3g",
    "ntfsresize": "ntfs-3g",
    "mkntfs": "ntfs-3g",
    "cabextract": "cabextract",
    "gcab": "gcab",
    "7z": "p7zip-full",
    "osslsigncode": "osslsigncode",
    "hivexregedit": "libwin-hivex-perl",
    "hivexsh": "libhivex-bin",
    "hivexml": "libhivex-bin",
    "dd": "coreutils",
    "cmp": "diffutils",
    "setpriv": "util-linux",
    "eatmydata": "eatmydata",
    "mkfs.fat": "dosfstools",
    "mshowfat": "mtools",
    "ntfscp": "ntfs-3g",
    "ntfsfix": "ntfs-3g",
}


def strict() -> bool:
    """True in CI, where every independent checker must run."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("FFUFORGE_REQUIRE_ORACLES") == "1"


def find_tool(name: str) -> str | None:
    """`name` on PATH or in the sbin directories (root's tools are not on every user's PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin"):
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def require_tool(name: str) -> str:
    """The path of the independent checker `name`; fails in CI when it is missing, else skips."""
    found = find_tool(name)
    if found:
        return found
    package = PACKAGES.get(name, name)
    unavailable(f"{name} is not installed (Debian package {package}; ./bootstrap --test installs it)")


def unavailable(message: str) -> NoReturn:
    """An independent checker cannot run: a failure in CI, a skip saying why elsewhere."""
    if strict():
        pytest.fail(f"{message}: CI requires every independent check", pytrace=False)
    pytest.skip(message)


def needs(*names: str):
    """Decorator: the test runs only with every tool in `names` (see `require_tool`)."""

    def wrap(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            for name in names:
                require_tool(name)
            return test(*args, **kwargs)

        return run

    return wrap
