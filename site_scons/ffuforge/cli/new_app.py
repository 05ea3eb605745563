"""`ffuforge new app X.appx [--dependency D.appx …] [--cert X.cer] [--startup headed|headless|none]`:
a package project that installs an app at first boot (the IoT manufacturing guide's lab 1b).

Reads the app's manifest (name, publisher, version, architecture, application ID), computes its
package family name, copies the app, its dependencies and certificate into
``<packages>/Appx.<Name>/`` beside a kit-form ``customizations.xml`` and a wm.xml, and adds feature
``APPX_<NAME>`` to the OEM feature manifest. Nothing is written when anything is wrong; an existing
project is replaced only with --force.
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..package import appx
from ..package.provisioning import appproject, approute, customizations
from ..util.atomic import write_bytes
from .new import noun

_SHORT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def _cert_der(path: Path) -> bytes:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        import base64

        body = data.split(b"-----BEGIN CERTIFICATE-----", 1)[1].split(b"-----END CERTIFICATE-----", 1)[0]
        return base64.b64decode(b"".join(body.split()))
    if not data.startswith(b"\x30"):
        raise ConfigError(
            "not a certificate (DER or PEM); export the app's signing certificate as .cer", str(path)
        )
    return data


def add_feature(fm_path: Path, cab_name: str, feature_id: str) -> bool:
    """Add `<PackageFile … Name=cab_name>` with `feature_id` to the FM's <Features><OEM>; the rest of
    the file is kept as it is. Returns False when the package is already listed."""
    text = fm_path.read_text(encoding="utf-8-sig")
    if f'Name="{cab_name}"' in text:
        return False
    features = text.find("<Features>")
    close = text.find("</OEM>", features) if features >= 0 else -1
    if close < 0:
        raise ConfigError("has no <Features><OEM> section to add the app's feature to; add one", str(fm_path))
    indent = re.search(r"\n([ \t]*)</OEM>", text[: close + 6])
    pad = indent.group(1) if indent else "    "
    block = (
        f'{pad}  <PackageFile Path="%PKGBLD_DIR%" Name="{cab_name}">\n'
        f"{pad}    <FeatureIDs>\n{pad}      <FeatureID>{feature_id}</FeatureID>\n{pad}    </FeatureIDs>\n"
        f"{pad}  </PackageFile>\n"
    )
    line_start = text.rfind("\n", 0, close) + 1
    write_bytes(fm_path, (text[:line_start] + block + text[line_start:]).encode())
    return True


def hook_owner(packages: Path) -> Path | None:
    """The workspace project that installs its own OEMCustomization.cmd, if any."""
    for proj in sorted([*packages.rglob("*.wm.xml"), *packages.rglob("*.pkg.xml")]):
        if "oemcustomization.cmd" in proj.read_text(encoding="utf-8-sig", errors="replace").lower():
            return proj
    return None


@noun("app", "an app package (.appx/.msix/.appxbundle) installed at first boot, with its customizations.xml")
def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge new app", description=__doc__.split("\n\n")[0])
    ap.add_argument("app", help=".appx, .msix, .appxbundle or .msixbundle")
    ap.add_argument("--dependency", action="append", default=[], help="a dependency package (repeatable)")
    ap.add_argument("--cert", help="the certificate the app is signed with (.cer)")
    ap.add_argument("--license", help="a store license (not supported: see the error)")
    ap.add_argument("--startup", choices=("headed", "headless", "none"), default="headed")
    ap.add_argument("--name", help="project short name (default: the app file's name)")
    ap.add_argument("--packages", default="packages", help="the packages folder (default: packages)")
    ap.add_argument("--fm", default=None, help="OEM feature manifest (default: <packages>/OEMFM.xml)")
    ap.add_argument("--force", action="store_true", help="replace an existing project")
    args = ap.parse_args(list(argv))
    if args.license:
        raise ConfigError(
            "--license: a store license is installed by UserContextAppLicense, whose compiled form is not "
            "public and which the AppInstall route cannot install; sideload the app with --cert, or use a "
            ".ppkg made by Windows Configuration Designer"
        )
    app_path = Path(args.app)
    info = appx.read_app(app_path, args.app)
    deps = [Path(d) for d in args.dependency]
    for d in deps:
        appx.read_app(d, str(d))
    short = args.name or re.sub(r"[^A-Za-z0-9_]", "", app_path.stem)
    if not _SHORT_RE.match(short):
        raise ConfigError(f"project name {short!r} must be a letter then letters, digits or _; use --name")
    cert = Path(args.cert) if args.cert else None
    cert_name = f"{cert.stem}.cer" if cert else None  # written as DER, whatever form it came in
    names = [app_path.name, *(d.name for d in deps)] + ([cert_name] if cert_name else [])
    if len({n.lower() for n in names}) != len(names):
        raise ConfigError("two of the files have the same name; rename one")
    packages = Path(args.packages)
    owner = hook_owner(packages) if packages.is_dir() else None
    proj = appproject.AppProject(
        short,
        info,
        app_path.name,
        tuple(d.name for d in deps),
        cert_name,
        _cert_der(cert) if cert else None,
        args.startup,
        hook=owner is None,
    )
    fm = Path(args.fm) if args.fm else packages / "OEMFM.xml"
    if not fm.is_file():
        raise ConfigError("the OEM feature manifest does not exist; pass --fm", str(fm))
    folder = packages / proj.folder
    if folder.exists() and not args.force:
        raise ConfigError("the project exists; pass --force to replace it", str(folder))
    cust = appproject.customizations_xml(proj)
    customizations.parse(cust, "customizations.xml", folder)  # what we write must read back
    wm = appproject.project_xml(proj)
    folder.mkdir(parents=True, exist_ok=True)
    for src in [app_path, *deps]:
        shutil.copyfile(src, folder / src.name)
    if cert_name and proj.cert_der is not None:
        write_bytes(folder / cert_name, proj.cert_der)
    write_bytes(folder / "customizations.xml", cust)
    write_bytes(folder / f"{proj.folder}.wm.xml", wm)
    added = add_feature(fm, f"%OEM_NAME%.{proj.folder}.cab", proj.feature_id)
    print(f"{folder}: {info.family_name} {info.version} ({info.architecture}), AUMID {info.aumid or '-'}")
    print(
        f"  feature {proj.feature_id} {'added to' if added else 'already in'} {fm}; select it in the OEMInput"
    )
    if owner is not None:
        print(f"  {owner} installs OEMCustomization.cmd: add this line to it so the app installs at boot:")
        print(f"    {approute.HOOK}")
    return 0
