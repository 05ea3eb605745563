"""customizations.xml (Windows Configuration Designer's answer file): parsed, checked, classified.

The document is ``<WindowsCustomizations>`` with ``<PackageConfig>`` (namespace
``urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0``: ID, Name, Version, OwnerType, Rank)
and ``<Settings>`` (``urn:schemas-microsoft-com:windows-provisioning``) / ``Customizations`` /
``Common`` holding the setting tree, as in every kit project (addonkit 17134
``Source-*/Packages/Appx.*/customizations.xml``, ``Products/*/prov/customizations.xml``).

Each setting is classified by how ffuforge can realise it (see `ROUTES`):

* ``ppkg``: compiled into the package's provxml; the compiled form is public (craysiii/PackageStack
  ``PackageSerializerService.cs``: ComputerAccount, ProvisioningCommands);
* ``script``: IoT app installation, whose compiled form is not public (icd.exe takes it from the
  settings store ``Microsoft-IoTUAP-Provisioning.dat``), realised by the documented AppInstall
  route instead (ms-iot/samples ``AppInstall``: deployappx, certmgr, iotstartup at boot);
* anything else: "setting not supported", one line naming every such setting.

Multivariant ``<Targets>``/``<Variant>`` sections are refused (only target 0 is written).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ...errors import ConfigError
from ...util import paths, xmlsafe

PKGCONFIG_NS = "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"
SETTINGS_NS = "urn:schemas-microsoft-com:windows-provisioning"

# WCD owner types and the image ALTITUDE each gets (craysiii/PackageStack Enums/OwnerType.cs)
OWNER_ALTITUDE = {
    "Microsoft": 0,
    "SiliconVendor": 1000,
    "OEM": 2000,
    "SystemIntegrator": 3000,
    "MobileOperator": 4000,
    "ITAdmin": 5000,
}

# setting path below Customizations/Common -> (route, allowed children: name -> "text" | "list:<item>")
ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "Accounts/ComputerAccount": (
        "ppkg",
        {k: "text" for k in ("ComputerName", "Account", "Password", "AccountOU", "DomainName")},
    ),
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig": (
        "ppkg",
        {
            "CommandFile": "text",
            "CommandLine": "text",
            "ContinueInstall": "text",
            "DependencyPackages": "list:Dependency",
            "RestartRequired": "text",
            "ReturnCodeRestart": "text",
            "ReturnCodeSuccess": "text",
        },
    ),
    "UniversalAppInstall/UserContextApp/Application": (
        "script",
        {"ApplicationFile": "text", "DependencyAppxFiles": "list:Dependency", "DeploymentOptions": "text"},
    ),
    "Certificates/RootCertificates/RootCertificate": ("script", {"CertificatePath": "text"}),
    "Policies/ApplicationManagement/AllowAllTrustedApps": ("script", {}),
    "StartupApp/Default": ("script", {}),
    "StartupBackgroundTasks/ToAdd/Add": ("script", {}),
}
_PREFIXES = {"/".join(p.split("/")[:i]) for p in ROUTES for i in range(1, p.count("/") + 1)}
VERSION_RE = re.compile(r"^\d{1,5}(\.\d{1,5}){3}$")
DEPLOYMENT_OPTIONS = ("Force target application shutdown", "Do not force target application shutdown")


@dataclass
class Setting:
    path: str  # e.g. "Accounts/ComputerAccount"
    line: int
    attrs: dict[str, str]
    text: str  # a leaf setting's value (stripped)
    children: dict[str, str] = field(default_factory=dict)  # text children
    lists: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # list children: (Name, text)

    @property
    def route(self) -> str:
        return ROUTES[self.path][0]


@dataclass
class Customizations:
    file: str  # display path
    folder: Path  # where the files it names are looked for
    package_id: str  # lower-case GUID without braces
    name: str
    version: str
    owner_type: str
    rank: int
    settings: list[Setting]
    unsupported: list[tuple[str, int]]  # (setting path, line)
    source: bytes

    @property
    def altitude(self) -> int:
        return OWNER_ALTITUDE[self.owner_type]

    def by_route(self, route: str) -> list[Setting]:
        return [s for s in self.settings if s.route == route]

    def unsupported_error(self, also: Sequence[Setting] = ()) -> ConfigError | None:
        """One line naming every setting that cannot be realised (None when there is none)."""
        items = sorted([*self.unsupported, *((s.path, s.line) for s in also)], key=lambda i: i[1])
        if not items:
            return None
        names = ", ".join(f"{p} (line {ln})" for p, ln in items)
        return ConfigError(
            f"setting not supported: {names}; ffuforge cannot compile {'it' if len(items) == 1 else 'them'} "
            "(the compiled form is not public): remove, install apps through the AppInstall route "
            "(ffuforge new app), or use a .ppkg built by Windows Configuration Designer as the package's file",
            self.file,
            items[0][1],
        )

    def resolve_file(self, value: str, line: int) -> Path:
        """A file a setting names: relative to customizations.xml's folder; an absolute Windows
        path (the kit copies files beside the answer file) is looked up there by its name."""
        text = value.strip()
        if re.match(r"^[A-Za-z]:[\\/]", text) or text.startswith("\\\\"):
            text = re.split(r"[\\/]", text)[-1]
        parts = [p for p in re.split(r"[\\/]", text) if p not in ("", ".")]
        if not parts or ".." in parts:
            raise ConfigError(
                f"file {value.strip()!r} must be a path below the answer file's folder", self.file, line
            )
        path = self.folder.joinpath(*parts)
        return path


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


def _no_children(el: etree._Element, what: str, file: str) -> None:
    kids = xmlsafe.elements(el)
    if kids:
        raise ConfigError(
            f"unexpected <{xmlsafe.localname(kids[0])}> in {what}; remove it", file, kids[0].sourceline
        )


def _package_config(el: etree._Element, file: str) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for child in xmlsafe.elements(el):
        name = xmlsafe.localname(child)
        if (
            name not in ("ID", "Name", "Version", "OwnerType", "Rank")
            or xmlsafe.namespace(child) != PKGCONFIG_NS
        ):
            raise ConfigError(
                f"unknown element <{name}> in <PackageConfig>; remove it", file, child.sourceline
            )
        if name in found:
            raise ConfigError(f"<{name}> is given twice in <PackageConfig>", file, child.sourceline)
        _no_children(child, f"<{name}>", file)
        found[name] = (_text(child), child.sourceline or 0)
    for name in ("ID", "Name", "Version", "OwnerType"):
        if not found.get(name, ("", 0))[0]:
            raise ConfigError(f"<PackageConfig> has no <{name}>; add it", file, el.sourceline)
    return found


def _setting(el: etree._Element, path: str, file: str) -> Setting:
    allowed = ROUTES[path][1]
    s = Setting(path, el.sourceline or 0, dict(el.attrib), _text(el) if not allowed else "")
    for child in xmlsafe.elements(el):
        name = xmlsafe.localname(child)
        kind = allowed.get(name)
        if kind is None:
            raise ConfigError(f"unknown element <{name}> in {path}; remove it", file, child.sourceline)
        if kind == "text":
            _no_children(child, f"{path}/{name}", file)
            if name in s.children:
                raise ConfigError(f"<{name}> is given twice in {path}", file, child.sourceline)
            s.children[name] = _text(child)
        else:
            item = kind.split(":", 1)[1]
            for sub in xmlsafe.elements(child):
                if xmlsafe.localname(sub) != item:
                    raise ConfigError(
                        f"unknown element <{xmlsafe.localname(sub)}> in {path}/{name}; remove it",
                        file,
                        sub.sourceline,
                    )
                _no_children(sub, f"{path}/{name}/{item}", file)
                s.lists.setdefault(name, []).append((sub.get("Name", ""), _text(sub)))
    if not allowed and not s.text and path != "StartupBackgroundTasks/ToAdd/Add":
        raise ConfigError(f"{path} has no value; give one", file, el.sourceline)
    return s


def _walk(el: etree._Element, path: str, file: str, out: list[Setting], bad: list[tuple[str, int]]) -> None:
    for child in xmlsafe.elements(el):
        sub = f"{path}/{xmlsafe.localname(child)}" if path else xmlsafe.localname(child)
        if xmlsafe.namespace(child) != SETTINGS_NS:
            raise ConfigError(
                f"<{xmlsafe.localname(child)}> is not in the provisioning namespace; fix it",
                file,
                child.sourceline,
            )
        if sub in ROUTES:
            out.append(_setting(child, sub, file))
        elif sub in _PREFIXES and not child.attrib:
            _walk(child, sub, file, out, bad)
        elif xmlsafe.elements(child):
            _walk(child, sub, file, [], bad)  # an unknown group: name its leaves
        else:
            bad.append((sub, child.sourceline or 0))


def parse(data: bytes, file: str, folder: Path) -> Customizations:
    root = xmlsafe.parse_bytes(data, file)
    if xmlsafe.localname(root) != "WindowsCustomizations" or xmlsafe.namespace(root) is not None:
        raise ConfigError(
            "not a customizations.xml: the root must be <WindowsCustomizations>", file, root.sourceline
        )
    config = settings = None
    for child in xmlsafe.elements(root):
        name = xmlsafe.localname(child)
        if name == "PackageConfig" and xmlsafe.namespace(child) == PKGCONFIG_NS and config is None:
            config = _package_config(child, file)
        elif name == "Settings" and xmlsafe.namespace(child) == SETTINGS_NS and settings is None:
            settings = child
        else:
            raise ConfigError(
                f"unexpected <{name}> in <WindowsCustomizations>; remove it", file, child.sourceline
            )
    if config is None:
        raise ConfigError(
            "<PackageConfig> is missing; add ID, Name, Version and OwnerType", file, root.sourceline
        )
    raw_id, id_line = config["ID"]
    try:
        package_id = str(uuid.UUID(raw_id.strip("{}")))
    except ValueError:
        raise ConfigError(f"<ID> {raw_id!r} is not a GUID", file, id_line) from None
    version, vline = config["Version"]
    if not VERSION_RE.match(version):
        raise ConfigError(f"<Version> {version!r} must be four numbers a.b.c.d", file, vline)
    owner, oline = config["OwnerType"]
    if owner not in OWNER_ALTITUDE:
        raise ConfigError(f"<OwnerType> {owner!r} is not one of {', '.join(OWNER_ALTITUDE)}", file, oline)
    rank_text, rline = config.get("Rank", ("0", 0))
    if not rank_text.isdigit() or int(rank_text) > 99:
        raise ConfigError(f"<Rank> {rank_text!r} must be a number 0-99", file, rline)
    found: list[Setting] = []
    bad: list[tuple[str, int]] = []
    if settings is not None:
        for child in xmlsafe.elements(settings):
            if xmlsafe.localname(child) != "Customizations":
                raise ConfigError(
                    f"unexpected <{xmlsafe.localname(child)}> in <Settings>", file, child.sourceline
                )
            for part in xmlsafe.elements(child):
                if xmlsafe.localname(part) != "Common":
                    raise ConfigError(
                        f"<{xmlsafe.localname(part)}> (multivariant settings) is not supported; keep settings in <Common>",
                        file,
                        part.sourceline,
                    )
                _walk(part, "", file, found, bad)
    cust = Customizations(
        file, folder, package_id, config["Name"][0], version, owner, int(rank_text), found, bad, data
    )
    _check(cust)
    return cust


def _check(c: Customizations) -> None:
    """Values the routes rely on."""
    for s in c.settings:
        if s.path.startswith("UniversalAppInstall/"):
            if not s.attrs.get("PackageFamilyName"):
                raise ConfigError("<Application> needs PackageFamilyName", c.file, s.line)
            if not s.children.get("ApplicationFile"):
                raise ConfigError("<Application> needs <ApplicationFile>", c.file, s.line)
            opt = s.children.get("DeploymentOptions")
            if opt and opt not in DEPLOYMENT_OPTIONS:
                raise ConfigError(
                    f"<DeploymentOptions> {opt!r} is not one of {DEPLOYMENT_OPTIONS}", c.file, s.line
                )
        elif s.path.startswith("Certificates/") and not s.children.get("CertificatePath"):
            raise ConfigError("<RootCertificate> needs <CertificatePath>", c.file, s.line)
        elif s.path.endswith("AllowAllTrustedApps") and s.text not in ("Yes", "No"):
            raise ConfigError(f"AllowAllTrustedApps {s.text!r} must be Yes or No", c.file, s.line)
        elif s.path == "StartupBackgroundTasks/ToAdd/Add" and "!" not in s.attrs.get("PackageName", ""):
            raise ConfigError('<Add> needs PackageName="<family name>!<app id>"', c.file, s.line)
        elif s.path == "StartupApp/Default" and "!" not in s.text:
            raise ConfigError(f"StartupApp {s.text!r} must be <family name>!<app id>", c.file, s.line)
        elif s.path.startswith("ProvisioningCommands/") and not s.children.get("CommandLine"):
            raise ConfigError("<CommandConfig> needs <CommandLine>", c.file, s.line)
        elif s.path == "Accounts/ComputerAccount" and not s.children.get("ComputerName"):
            raise ConfigError("<ComputerAccount> needs <ComputerName>", c.file, s.line)


def load(path: str | Path, display: str | None = None) -> Customizations:
    p = Path(path)
    try:
        with os.fdopen(paths.open_regular(p), "rb") as fh:
            data = fh.read(xmlsafe.MAX_XML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read customizations.xml: {exc.strerror}", display or str(p)) from None
    return parse(data, display or str(p), p.parent)
