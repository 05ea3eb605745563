"""Release policy, checked before any image work: what may enter a Production (retail) image.

A retail image must not carry test packages, packages signed by a TEST ONLY chain or unsigned
packages; the add-on kit checks this late and one package at a time, we check all packages
up front and name every offender in one message.

Trust in Microsoft's packages is the user's to declare (MSPACKAGE_ROOTS): each CAB from the
Microsoft package root is then verified whole before any image work, as the servicing stack
does on install: its Authenticode signature and its own update.cat chain to a declared root, and
every member (manifests and payload alike) is catalogued with its current hash. Kits differ in
who signed them (retail, flight or test-signed kits), so without declared roots nothing is
assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography import x509

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


def trust_problems(cab_path: Path, roots: list[x509.Certificate]) -> list[str]:
    """Why `cab_path` does not verify against `roots` (empty: it does)."""
    return verify.verify_cab(cab_path, trusted_roots=roots).problems


def check_trusted(
    cabs: list[Path],
    roots: list[Path],
    where: str,
    problems_of: Callable[[Path, list[x509.Certificate]], list[str]] | None = None,
) -> None:
    """Raise one ConfigError naming every CAB in `cabs` that does not verify against the
    certificates in the files `roots` (its first problem each)."""
    certs = verify.load_certificates(roots)
    bad = []
    for path in cabs:
        problems = (problems_of or trust_problems)(Path(path), certs)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            bad.append(f"{Path(path).name}: {problems[0]}{more}")
    if bad:
        raise ConfigError(
            f"{len(bad)} Microsoft package(s) do not verify against MSPACKAGE_ROOTS: {'; '.join(bad)}; "
            "check the kit's origin (ffuforge verify --root CERT FILE.cab lists every problem)",
            where,
        )


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
