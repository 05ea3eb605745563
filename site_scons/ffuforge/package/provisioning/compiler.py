"""customizations.xml -> the file tree and image metadata of a provisioning package (.ppkg).

The tree is the one icd.exe writes and that craysiii/PackageStack reproduces without it
(``PackageSerializerService.cs``, ``XmlExtensions.cs``; the layout is confirmed by the ICD-built
packages dumped in wmetcalf/ppkg_happiness README.md):

```
Multivariant/Multivariant.xml              <Elements Type="Multivariant"><Element Index="0">
Multivariant/0/MasterDatastore.xml         one ConfigurationSource "RunTime" -> $(_prov)\\RunTime.xml
Multivariant/0/customizations.xml          the answer file as given (ICD keeps a copy)
Multivariant/0/Prov/RunTime.xml            one ConfigurationSet per setting group, in order
Multivariant/0/Prov/RunTime/<N>__<Setting_Path>.provxml   wap-provisioningdoc (CSP tree)
DataAsset/DataAsset.xml + DataAsset/<element>/<n>_<base64 SHA-256, '/'->'.'>/<file>
```

Every XML file is UTF-8 *with* a byte-order mark: Windows rejects a rewritten compiled XML
without it (sia-tolf/tolf-vpn-web CERTIFICATE-DEPLOYMENT.md, error 0xC00CEE2D).

SettingsGroup = ``uuid5(NAMESPACE_DNS, "_" + schema path with "/" -> "_")`` (reconstructed in
../shared/spec/provisioning.md §1.6: all 13 GUIDs of PackageStack ``Enums/SettingsGroup.cs``
match); a repeated group gets ``_0``, ``_1``, … from its second occurrence on, as PackageStack
numbers them. Compiled settings and their public evidence (PackageStack):

* Accounts/ComputerAccount -> ``Accounts/Domain/{ComputerName, Account, Password, AccountOU,
  DomainName}`` + ``Provisioning/ForceSettingReload/ComputerName`` = 1;
* ProvisioningCommands/PrimaryContext/Command/CommandConfig -> ``ProvisioningCommands/
  PrimaryContext/$(__PackageID)/<i>/{CommandLine, ContinueInstall, RestartRequired,
  ReturnCodeRestart, ReturnCodeSuccess}``; the command file and dependencies as data assets
  (elements 2 and 3) named in ``Provisioning/Assets/{PackageID}/<setting path>``.

Image properties (PackageStack ``WimBuilderService.cs``, sia-tolf ``personalize.py``): NAME,
VERSION, ALTITUDE (the owner type's value; whether Rank adds to it is not known, it does not here),
RESETCLEAR 0, PACKAGEID {guid}, NOTES. **Inferred**: NOTES' ``TargetSkus=WindowsCommon,Athens``
(the IoT Core edition name in the kit's ``Enroll.icdproj.xml``) and ``VERSION=10.0.17134.1`` as the
compiler's version; no IoT Core ppkg made by icd.exe was available to compare against.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ...errors import ConfigError
from ...util import paths
from .customizations import Customizations, Setting

BOM = b"\xef\xbb\xbf"
PROV = "Multivariant/0/Prov"
ICD_VERSION = "10.0.17134.1"
TARGET_SKUS = "WindowsCommon,Athens"
ELEMENT_COMMAND_FILE, ELEMENT_DEPENDENCY = 2, 3  # PackageStack Enums/ElementType.cs


def read_input(path: Path) -> bytes:
    """A file a setting names: a regular file only (a FIFO would hang the build)."""
    with os.fdopen(paths.open_regular(path), "rb") as fh:
        return fh.read()


def settings_group(path: str) -> str:
    """The SettingsGroup GUID of a WCD schema path (e.g. ``Accounts/ComputerAccount``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "_" + path.strip("/").replace("/", "_")))


def asset_folder(index: int, data: bytes) -> str:
    return f"{index}_{base64.b64encode(hashlib.sha256(data).digest()).decode().replace('/', '.')}"


def xml_bytes(root: etree._Element, standalone: bool = False) -> bytes:
    """UTF-8 with a BOM and a double-quoted declaration, as icd.exe writes them."""
    decl = '<?xml version="1.0" encoding="utf-8"' + (' standalone="yes"' if standalone else "") + "?>\r\n"
    body = etree.tostring(root, encoding="unicode", pretty_print=True).replace("\n", "\r\n")
    return BOM + (decl + body).encode()


def _el(parent, tag: str, **attrs) -> etree._Element:
    el = etree.SubElement(parent, tag) if parent is not None else etree.Element(tag)
    for k, v in attrs.items():
        el.set(k, v)
    return el


def _chars(parent, *types: str) -> etree._Element:
    for t in types:
        parent = _el(parent, "characteristic", type=t)
    return parent


def _parm(parent, name: str, value: str, datatype: str) -> None:
    _el(parent, "parm", name=name, value=value, datatype=datatype)


def _bool(value: str, what: str, c: Customizations, line: int) -> str:
    v = value.strip().lower()
    if v not in ("true", "false", "yes", "no"):
        raise ConfigError(f"{what} {value!r} must be True or False", c.file, line)
    return "true" if v in ("true", "yes") else "false"


def _int(value: str, what: str, c: Customizations, line: int) -> str:
    if not value.strip().lstrip("-").isdigit():
        raise ConfigError(f"{what} {value!r} must be a number", c.file, line)
    return str(int(value))


@dataclass
class PpkgTree:
    """What the container holds: files by image path, image properties, and what was compiled."""

    files: dict[str, bytes] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    name: str = ""
    compiled: list[str] = field(default_factory=list)  # setting paths, in order
    groups: list[tuple[str, str]] = field(default_factory=list)  # (SettingsGroup, provxml path)


class _Builder:
    def __init__(self, c: Customizations):
        self.c = c
        self.tree = PpkgTree(name=c.name)
        self.runtime = _el(None, "ConfigurationSource", Version="1.0")
        self.count = 0
        self.seen: dict[str, int] = {}
        self.assets = _el(None, "Elements", Type="DataAsset")
        self.asset_elements: dict[int, etree._Element] = {}
        self.file_count = 0

    def add(self, group_path: str, file_stem: str, doc: etree._Element) -> None:
        group = settings_group(group_path)
        n = self.seen.get(group, -1)
        self.seen[group] = n + 1
        sg = group if n < 0 else f"{group}_{n}"
        name = f"{self.count}__{file_stem}.provxml"
        _el(
            self.runtime,
            "ConfigurationSet",
            Type="provxml",
            SettingsGroup=sg,
            Data=f"$(_prov)\\RunTime\\{name}",
        )
        self.tree.files[f"{PROV}/RunTime/{name}"] = xml_bytes(doc, standalone=True)
        self.tree.groups.append((sg, name))
        self.count += 1

    def asset(self, element: int, label: str, file: Path, line: int, item: str) -> str:
        """Add `file` as a data asset of `element`; returns its key (``<folder>\\<name>``)."""
        try:
            data = read_input(file)
        except OSError as exc:
            raise ConfigError(
                f"{label} {file.name}: {exc.strerror}; put the file beside customizations.xml",
                self.c.file,
                line,
            ) from None
        folder = asset_folder(self.file_count, data)
        self.file_count += 1
        self.tree.files[f"DataAsset/{element}/{folder}/{file.name}"] = data
        if element not in self.asset_elements:
            el = self.asset_elements[element] = _el(self.assets, "Element", Index=str(element))
            _el(el, "Metadata", Key="Name", Value=label)
        key = f"{folder}\\{file.name}"
        _el(self.asset_elements[element], "Metadata", Key=key, Value=item)
        return key

    def computer_account(self, s: Setting) -> None:
        doc = _el(None, "wap-provisioningdoc")
        domain = _chars(_chars(doc, "Accounts"), "Domain")
        for key in ("ComputerName", "Account", "Password", "AccountOU", "DomainName"):
            if s.children.get(key):
                _parm(domain, key, s.children[key], "string")
        _parm(_chars(doc, "Provisioning", "ForceSettingReload"), "ComputerName", "1", "integer")
        self.add("Accounts/ComputerAccount", "Accounts_ComputerAccount", doc)

    def command(self, s: Setting, i: int) -> None:
        base = "ProvisioningCommands/PrimaryContext/Command/CommandConfig"
        stem = f"ProvisioningCommands_PrimaryContext_Command_{i}"
        kids = s.children
        if kids.get("CommandFile"):
            item = f"/ProvisioningCommands/PrimaryContext/Command/{i}/CommandFile"
            path = self.c.resolve_file(kids["CommandFile"], s.line)
            key = self.asset(ELEMENT_COMMAND_FILE, "CommandFile", path, s.line, item)
            doc = _el(None, "wap-provisioningdoc")
            _parm(
                _chars(doc, "Provisioning", "Assets", "{" + self.c.package_id + "}", item),
                key,
                path.name,
                "string",
            )
            self.add(f"{base}/CommandFile", f"{stem}_CommandFile", doc)
        values = [
            ("CommandLine", kids.get("CommandLine"), "string"),
            ("ContinueInstall", kids.get("ContinueInstall"), "boolean"),
        ]
        for k, (_name, text) in enumerate(s.lists.get("DependencyPackages", [])):
            item = f"/ProvisioningCommands/PrimaryContext/Command/{i}/DependencyPackages/Dependency"
            path = self.c.resolve_file(text, s.line)
            meta = f"/ProvisioningCommands/PrimaryContext/Command/{i}/DependencyPackages/{k}"
            key = self.asset(ELEMENT_DEPENDENCY, "Dependency", path, s.line, meta)
            doc = _el(None, "wap-provisioningdoc")
            _parm(
                _chars(doc, "Provisioning", "Assets", "{" + self.c.package_id + "}", item),
                key,
                path.name,
                "string",
            )
            self.add(f"{base}/DependencyPackages/Dependency", f"{stem}_DependencyPackages_{k}", doc)
        values += [
            ("RestartRequired", kids.get("RestartRequired"), "boolean"),
            ("ReturnCodeRestart", kids.get("ReturnCodeRestart"), "integer"),
            ("ReturnCodeSuccess", kids.get("ReturnCodeSuccess"), "integer"),
        ]
        for name, value, datatype in values:
            if value is None or value == "":
                continue
            if datatype == "boolean":
                value = _bool(value, name, self.c, s.line)
            elif datatype == "integer":
                value = _int(value, name, self.c, s.line)
            doc = _el(None, "wap-provisioningdoc")
            leaf = _chars(doc, "ProvisioningCommands", "PrimaryContext", "$(__PackageID)", str(i))
            _parm(leaf, name, value, datatype)
            self.add(f"{base}/{name}", f"{stem}_{name}", doc)


def compile_tree(c: Customizations, script_routed: bool = False) -> PpkgTree:
    """The .ppkg content for `c`. Settings of the script route are left out when `script_routed`
    (another target installs them), else they are "setting not supported" like every setting
    whose compiled form is not public."""
    err = c.unsupported_error([] if script_routed else c.by_route("script"))
    if err:
        raise err
    b = _Builder(c)
    commands = 0
    for s in c.by_route("ppkg"):
        if s.path == "Accounts/ComputerAccount":
            b.computer_account(s)
        else:
            b.command(s, commands)
            commands += 1
        b.tree.compiled.append(s.path)
    t = b.tree
    mv = _el(None, "Elements", Type="Multivariant")
    _el(mv, "Element", Index="0").text = ""
    t.files["Multivariant/Multivariant.xml"] = xml_bytes(mv)
    mds = _el(None, "ConfigurationSourceList", Version="1.0")
    src = _el(mds, "ConfigurationSource", Name="RunTime", Path="$(_prov)\\RunTime.xml")
    _el(_el(src, "EventList"), "Event", Name="RunTime")
    t.files["Multivariant/0/MasterDatastore.xml"] = xml_bytes(mds)
    t.files[f"{PROV}/RunTime.xml"] = xml_bytes(b.runtime)
    source = c.source if c.source.startswith(BOM) else BOM + c.source
    t.files["Multivariant/0/customizations.xml"] = source
    if b.file_count:
        t.files["DataAsset/DataAsset.xml"] = xml_bytes(b.assets)
    guid = "{" + c.package_id + "}"
    t.properties = {
        "VERSION": c.version,
        "ALTITUDE": str(c.altitude),
        "RESETCLEAR": "0",
        "PACKAGEID": guid,
        "NOTES": f"VERSION={ICD_VERSION};Source=CLI;;TargetSkus={TARGET_SKUS};EncryptPackage=False;"
        f"SignPackage=False;PackageID={c.package_id};",
    }
    return t


def input_files(c: Customizations, script_routed: bool) -> list[tuple[Path, int]]:
    """Every file the package (and, when script-routed, the AppInstall folder) is made from."""
    out = []
    for s in c.settings:
        if s.route == "script" and not script_routed:
            continue
        for key in ("CommandFile", "ApplicationFile", "CertificatePath"):
            if s.children.get(key):
                out.append((c.resolve_file(s.children[key], s.line), s.line))
        for items in s.lists.values():
            out += [(c.resolve_file(text, s.line), s.line) for _name, text in items]
    return out
