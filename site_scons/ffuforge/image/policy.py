"""Release policy, checked before any image work: what may enter a Production (retail) image.

A retail image must not carry test packages, packages signed by a TEST ONLY chain or unsigned
packages; the add-on kit checks this late and one package at a time, we check all packages
up front and name every offender in one message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..formats import catalog
from ..formats.cab import CabReader
from ..signing import verify
from . import install


def package_problems(cab_path: Path, release_type: str) -> list[str]:
    """Why `cab_path` may not enter an image of `release_type` (empty: it may)."""
    if release_type.lower() != "production":
        return []
    info = install.read_package_info(cab_path)
    problems = []
    if info.release_type.lower() == "test":
        problems.append("release type Test")
    signers: list[str] = []
    cab_sig = verify.cab_signature_problems(cab_path, None, signers)
    if any("not signed" in p for p in cab_sig):
        problems.append("CAB not signed")
    with CabReader(cab_path) as cab:
        names = {m.name.lower(): m for m in cab.members}
        if "update.cat" not in names:
            problems.append("no update.cat")
        else:
            der = cab.read(names["update.cat"], 64 << 20)
            if not catalog.parse_catalog(der).signed:
                problems.append("catalog not signed")
            else:
                verify.catalog_signature_problems(der, None, signers=signers)
    if any("TEST ONLY" in s.upper() for s in signers):
        problems.append("signed by a TEST ONLY certificate")
    return problems


def check_release(
    cabs: list[Path],
    release_type: str,
    where: str,
    problems_of: Callable[[Path, str], list[str]] | None = None,
) -> None:
    """Raise one ConfigError naming every package that violates the policy for `release_type`.
    `problems_of`: package_problems, or a cached form of it."""
    bad = []
    kinds: set[str] = set()
    for path in cabs:
        problems = (problems_of or package_problems)(Path(path), release_type)
        if problems:
            bad.append(f"{Path(path).name} ({', '.join(problems)})")
            kinds.update(problems)
    if bad:
        raise ConfigError(
            f"a {release_type} image refuses {len(bad)} package(s): {'; '.join(bad)}; {_fixes(kinds)}",
            where,
        )


def _fixes(kinds: set[str]) -> str:
    """What to do about these kinds of problem: the release type is fixed in the project (or by
    building the Test configuration), a signature by signing with a production certificate."""
    fixes = []
    if "release type Test" in kinds:
        fixes.append(
            'the release type is set by the package project: give it releaseType="Production" '
            "(or build CONFIG=Test, or drop the package from the Retail OEMInput)"
        )
    if kinds - {"release type Test"}:
        fixes.append("sign them with your production certificate (SIGN_CERT=…) or drop them from the image")
    return "; ".join(fixes)
