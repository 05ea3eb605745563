"""Package projects: `*.wm.xml` and legacy `*.pkg.xml` loaded into one model.

Both schemas describe the same things with different spellings; loading them into one
model means naming, CAB layout and the image builder never care which one a tree uses.
Loading is purely syntactic (no payload file is opened): emitters and corpus checks need it
cheap; :mod:`ffuforge.variant` turns a model into a concrete package for one build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import FFUError
from ..util import paths, xmlsafe
from . import buildfilter

WM_NS = "urn:Microsoft.CompPlat/ManifestSchema.v1.00"
PKG_NS = "urn:Microsoft.WindowsPhone/PackageSchema.v8.00"
BCD_NS = "http://schemas.microsoft.com/phone/2011/10/BootConfiguration"

# Elements of the published wm.xml schema that ffuforge does not implement yet.
WM_UNIMPLEMENTED = {
    "directories",
    "directory",
    "serviceGroup",
    "accounts",
    "trustInfo",
    "tasks",
    "task",
    "configuration",
    "mof",
    "genericCommands",
    "certificates",
    "provisioningSettings",
    "policies",
    "localization",
    "privateResources",
    "serviceTrigger",
    "triggerData",
    "appIds",
    "appId",
    "typeLibs",
    "typeLib",
    "interfaces",
    "interface",
    "security",
    "accessedByCapability",
    "capabilities",
    "capability",
    "components",
    "eventProviders",
    "notifications",
    "memberships",
    "sharedPolicies",
    "settings",
}
PKG_UNIMPLEMENTED = {
    "AppResource",
    "Application",
    "SvcHostGroup",
    "WinRTHost",
    "FullTrust",
    "InboxApp",
    "SettingsGroup",
    "Capabilities",
    "Authorization",
    "ServiceDll",
    "RequiredCapabilities",
    "Security",
    "Interfaces",
}

OWNER_TYPES = {
    "oem": "OEM",
    "mobileoperator": "MobileOperator",
    "siliconvendor": "SiliconVendor",
    "microsoft": "Microsoft",
}
RELEASE_TYPES = {"production": "Production", "test": "Test"}
SERVICE_START = {"boot", "system", "auto", "demand", "disabled", "delayedauto"}
SERVICE_TYPE = {
    "win32ownprocess",
    "win32shareprocess",
    "win32usershareprocess",
    "kerneldriver",
    "filesystemdriver",
}
ERROR_CONTROL = {"ignore", "normal", "critical", "severe"}
ACTION_TYPES = {"none", "rebootmachine", "restartservice", "runcommand"}
THREADING = {"both", "sta", "mta", "mainsta", "neutral", "apartment", "free"}


@dataclass
class Where:
    file: str
    line: int | None

    def error(self, message: str) -> FFUError:
        return FFUError(message, self.file, self.line)


@dataclass
class Filters:
    """Which builds an item belongs to."""

    build: str | None = None  # wm.xml buildFilter expression
    cpu: str | None = None  # pkg.xml CpuFilter (ARM/X86, case-sensitive)
    language: str | None = None  # `*`, `(a;b)`, `!(a;b)`, or a wm.xml <language culture>
    resolution: str | None = None

    def merged(self, child: Filters) -> Filters:
        def both(a, b):
            return b if not a else a if not b else f"({a}) and ({b})"

        return Filters(
            both(self.build, child.build),
            child.cpu or self.cpu,
            child.language or self.language,
            child.resolution or self.resolution,
        )


@dataclass
class FileItem:
    source: str
    dest_dir: str | None
    name: str | None
    filters: Filters
    where: Where
    attributes: str | None = None
    signing_category: str | None = None


@dataclass
class RegValueItem:
    name: str | None  # None = the key's default value
    type: str
    value: str | None
    filters: Filters
    where: Where


@dataclass
class RegKeyItem:
    key_name: str
    values: list[RegValueItem]
    filters: Filters
    where: Where


@dataclass
class DriverItem:
    inf: str
    default_import_path: str | None
    overrides: list[FileItem]
    filters: Filters
    where: Where


@dataclass
class FailureActions:
    reset_period: str
    command: str | None
    reboot_message: str | None
    actions: list[tuple[str, int]]


@dataclass
class ServiceItem:
    name: str
    attrs: dict[str, str]
    failure: FailureActions | None
    filters: Filters
    where: Where
    executable: FileItem | None = None  # pkg.xml <Executable>


@dataclass
class ComClass:
    clsid: str
    threading: str | None
    prog_id: str | None
    description: str | None
    where: Where


@dataclass
class ComServer:
    kind: str  # 'inproc' | 'exe'
    path: str
    classes: list[ComClass]
    filters: Filters
    where: Where


@dataclass
class BcdItem:
    source: str
    filters: Filters
    where: Where


@dataclass
class FirewallItem:
    attrs: dict[str, str]  # lower-cased attribute names
    where: Where


@dataclass
class Project:
    path: Path
    schema: str  # 'wm' | 'pkg'
    where: Where
    owner: str
    name: str | None
    namespace: str | None
    legacy_name: str | None
    build_wow: bool = False
    partition: str = "MainOS"
    release_type: str = "Production"
    owner_type: str = "OEM"
    binary_partition: bool = False
    binary_image: tuple[str, Where] | None = None
    platform: str | None = None
    macros: list[tuple[str, str, int | None]] = field(default_factory=list)
    files: list[FileItem] = field(default_factory=list)
    regkeys: list[RegKeyItem] = field(default_factory=list)
    drivers: list[DriverItem] = field(default_factory=list)
    services: list[ServiceItem] = field(default_factory=list)
    com: list[ComServer] = field(default_factory=list)
    bcd: BcdItem | None = None
    firewall: list[FirewallItem] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return self.path.parent


def _bool(value: str | None, where: Where, attr: str, default: bool = False) -> bool:
    if value is None:
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise where.error(f"{attr}={value!r} is not a boolean; use true or false")


def _enum(value: str, table: dict[str, str], where: Where, attr: str) -> str:
    found = table.get(value.strip().lower())
    if found is None:
        raise where.error(
            f"{attr}={value!r} is not valid; use one of {', '.join(sorted(set(table.values())))}"
        )
    return found


class _Loader:
    def __init__(self, path: Path, display: str):
        self.path = path
        self.file = display

    def where(self, el) -> Where:
        return Where(self.file, el.sourceline)

    def check_filter(self, el, attr: str = "buildFilter") -> str | None:
        text = el.get(attr)
        if text is not None:
            try:
                buildfilter.parse(text)
            except FFUError as exc:
                raise exc.at(self.file, el.sourceline) from None
        return text

    def unexpected(self, el, parent: str, unimplemented: set[str], schema: str):
        name = xmlsafe.localname(el)
        if name in unimplemented:
            return self.where(el).error(
                f"<{name}> is valid {schema} but ffuforge does not implement it yet; remove it or file an issue"
            )
        return self.where(el).error(f"<{name}> is not allowed inside <{parent}> in the {schema} schema")

    def check_ns(self, el, ns: str):
        if xmlsafe.namespace(el) != ns:
            raise self.where(el).error(
                f"<{xmlsafe.localname(el)}> has namespace {xmlsafe.namespace(el)!r}; expected {ns!r}"
            )


# ---------------------------------------------------------------------------------- wm.xml


class _WmLoader(_Loader):
    ONCE = {"bcdStore", "language", "macros", "COM", "trustInfo", "onecorePackageInfo"}

    def load(self, root) -> Project:
        w = self.where(root)
        missing = [a for a in ("owner", "name") if not root.get(a)]
        if missing:
            raise w.error(
                f"<identity> lacks required attribute(s) {', '.join(missing)} "
                "(is this an unfilled template?); set owner, name and namespace"
            )
        for attr in root.attrib:
            if attr not in ("owner", "name", "namespace", "legacyName", "buildWow") and "}" not in attr:
                raise w.error(f"unknown attribute {attr!r} on <identity>")
        p = Project(
            self.path,
            "wm",
            w,
            root.get("owner"),
            root.get("name"),
            root.get("namespace"),
            root.get("legacyName"),
            build_wow=_bool(root.get("buildWow"), w, "buildWow"),
        )
        seen: set[str] = set()
        for el in xmlsafe.elements(root):
            self.check_ns(el, WM_NS)
            tag = xmlsafe.localname(el)
            if tag in self.ONCE:
                if tag in seen:
                    raise self.where(el).error(f"<{tag}> may appear only once in <identity>")
                seen.add(tag)
            handler = getattr(self, "el_" + tag, None)
            if handler is None:
                raise self.unexpected(el, "identity", WM_UNIMPLEMENTED, "wm.xml")
            handler(p, el, Filters())
        return p

    def el_onecorePackageInfo(self, p: Project, el, _f):
        w = self.where(el)
        if el.get("targetPartition"):
            p.partition = el.get("targetPartition").strip()
        if el.get("releaseType"):
            p.release_type = _enum(el.get("releaseType"), RELEASE_TYPES, w, "releaseType")
        if el.get("ownerType"):
            p.owner_type = _enum(el.get("ownerType"), OWNER_TYPES, w, "ownerType")
            if p.owner_type == "Microsoft":
                raise w.error(
                    "ownerType='Microsoft' is not allowed in wm.xml; use OEM, SiliconVendor or MobileOperator"
                )
        p.binary_partition = _bool(el.get("binaryPartition"), w, "binaryPartition")
        for child in xmlsafe.elements(el):
            if xmlsafe.localname(child) != "binaryPartition" or not child.get("imageSource"):
                raise self.where(child).error(
                    'only <binaryPartition imageSource="..."/> may appear in <onecorePackageInfo>'
                )
            p.binary_image = (child.get("imageSource"), self.where(child))
        if p.binary_partition and p.binary_image is None:
            raise w.error('binaryPartition="true" needs a <binaryPartition imageSource="..."/> child')
        if p.binary_image and not p.binary_partition:
            p.binary_partition = True

    def el_macros(self, p: Project, el, _f):
        for m in xmlsafe.elements(el):
            if xmlsafe.localname(m) != "macro" or m.get("id") is None or m.get("value") is None:
                raise self.where(m).error('<macros> may only contain <macro id="..." value="..."/>')
            p.macros.append((m.get("id"), m.get("value"), m.sourceline))

    def files(self, el, parent: Filters) -> list[FileItem]:
        f = parent.merged(Filters(self.check_filter(el), language=None, resolution=el.get("resolution")))
        out = []
        for child in xmlsafe.elements(el):
            if xmlsafe.localname(child) != "file":
                raise self.unexpected(child, "files", WM_UNIMPLEMENTED, "wm.xml")
            if not child.get("source"):
                raise self.where(child).error("<file> needs a source attribute")
            out.append(
                FileItem(
                    child.get("source"),
                    child.get("destinationDir"),
                    child.get("name"),
                    f.merged(Filters(self.check_filter(child))),
                    self.where(child),
                )
            )
        return out

    def el_files(self, p: Project, el, f):
        p.files.extend(self.files(el, f))

    def regkeys(self, el, parent: Filters) -> list[RegKeyItem]:
        f = parent.merged(Filters(self.check_filter(el)))
        out = []
        for key in xmlsafe.elements(el):
            if xmlsafe.localname(key) != "regKey":
                raise self.unexpected(key, "regKeys", WM_UNIMPLEMENTED, "wm.xml")
            if not key.get("keyName"):
                raise self.where(key).error("<regKey> needs a keyName attribute")
            kf = f.merged(Filters(self.check_filter(key)))
            values = []
            for v in xmlsafe.elements(key):
                if xmlsafe.localname(v) != "regValue":
                    raise self.unexpected(v, "regKey", WM_UNIMPLEMENTED, "wm.xml")
                if not v.get("type"):
                    raise self.where(v).error("<regValue> needs a type attribute")
                if v.get("name") == "":
                    raise self.where(v).error(
                        '<regValue name=""> is not allowed; omit name for the default value'
                    )
                values.append(
                    RegValueItem(
                        v.get("name"),
                        v.get("type"),
                        v.get("value"),
                        kf.merged(Filters(self.check_filter(v))),
                        self.where(v),
                    )
                )
            out.append(RegKeyItem(key.get("keyName"), values, kf, self.where(key)))
        return out

    def el_regKeys(self, p: Project, el, f):
        p.regkeys.extend(self.regkeys(el, f))

    def el_drivers(self, p: Project, el, f):
        df = f.merged(Filters(self.check_filter(el)))
        for d in xmlsafe.elements(el):
            if xmlsafe.localname(d) != "driver":
                raise self.unexpected(d, "drivers", WM_UNIMPLEMENTED, "wm.xml")
            inf, overrides = None, []
            for child in xmlsafe.elements(d):
                tag = xmlsafe.localname(child)
                if tag == "inf" and child.get("source"):
                    if inf is not None:
                        raise self.where(child).error("a <driver> has exactly one <inf>")
                    inf = child.get("source")
                elif tag == "files":
                    overrides.extend(self.files(child, Filters()))
                else:
                    raise self.unexpected(child, "driver", WM_UNIMPLEMENTED, "wm.xml")
            if inf is None:
                raise self.where(d).error('<driver> needs an <inf source="..."/> child')
            p.drivers.append(
                DriverItem(
                    inf,
                    d.get("defaultImportPath"),
                    overrides,
                    df.merged(Filters(self.check_filter(d))),
                    self.where(d),
                )
            )

    def el_service(self, p: Project, el, f):
        w = self.where(el)
        for attr in ("name", "start", "type"):
            if not el.get(attr):
                raise w.error(f"<service> needs a {attr} attribute")
        if el.get("start").lower() not in SERVICE_START:
            raise w.error(
                f"service start={el.get('start')!r} is not valid; use one of "
                "boot, system, auto, demand, disabled, delayedAuto"
            )
        if el.get("type").lower() not in SERVICE_TYPE:
            raise w.error(
                f"service type={el.get('type')!r} is not valid; use win32OwnProcess or win32ShareProcess"
            )
        if el.get("errorControl") and el.get("errorControl").lower() not in ERROR_CONTROL:
            raise w.error(f"service errorControl={el.get('errorControl')!r}; use ignore, normal or critical")
        failure = None
        for child in xmlsafe.elements(el):
            if xmlsafe.localname(child) == "failureActions":
                failure = self.failure(child, "resetPeriod", "actions", "action", "type", "delay")
            else:
                raise self.unexpected(child, "service", WM_UNIMPLEMENTED, "wm.xml")
        attrs = {k: v for k, v in el.attrib.items() if k != "buildFilter"}
        p.services.append(
            ServiceItem(el.get("name"), attrs, failure, f.merged(Filters(self.check_filter(el))), w)
        )

    def failure(self, el, reset_attr, list_tag, item_tag, type_attr, delay_attr) -> FailureActions:
        w = self.where(el)
        reset = el.get(reset_attr)
        if reset is None or not (reset.isdigit() or reset.upper() == "INFINITE"):
            raise w.error(f"{reset_attr}={reset!r} must be decimal seconds or INFINITE")
        for attr in ("command", "rebootMessage", "Command"):
            if el.get(attr) and len(el.get(attr)) > 256:
                raise w.error(f"failureActions {attr} is longer than 256 characters")
        items = xmlsafe.elements(el)
        if list_tag:
            if len(items) != 1 or xmlsafe.localname(items[0]) != list_tag:
                raise w.error(f"<{xmlsafe.localname(el)}> needs exactly one <{list_tag}> child")
            items = xmlsafe.elements(items[0])
        actions = []
        for a in items:
            aw = self.where(a)
            if xmlsafe.localname(a) != item_tag:
                raise aw.error(f"only <{item_tag}> is allowed here")
            t, d = a.get(type_attr, ""), a.get(delay_attr, "")
            if t.lower() not in ACTION_TYPES:
                raise aw.error(f"action type={t!r}; use none, rebootMachine, restartService or runCommand")
            if not d.isdigit():
                raise aw.error(f"action delay={d!r} must be a non-negative integer (milliseconds)")
            actions.append((t, int(d)))
        if not actions:
            raise w.error("failure actions need at least one action")
        return FailureActions(reset, el.get("command") or el.get("Command"), el.get("rebootMessage"), actions)

    def el_COM(self, p: Project, el, f):
        cf = f.merged(Filters(self.check_filter(el)))
        for section in xmlsafe.elements(el):
            tag = xmlsafe.localname(section)
            if tag == "classDefinitions":
                raise self.unexpected(section, "COM", {"classDefinitions"}, "wm.xml")
            if tag != "servers":
                raise self.unexpected(section, "COM", WM_UNIMPLEMENTED, "wm.xml")
            for server in xmlsafe.elements(section):
                stag = xmlsafe.localname(server)
                if stag not in ("inProcServer", "exeServer") or not server.get("path"):
                    raise self.where(server).error(
                        '<servers> holds <inProcServer path="..."> or <exeServer path="...">'
                    )
                classes = []
                for group in xmlsafe.elements(server):
                    if xmlsafe.localname(group) != "classes":
                        raise self.unexpected(group, stag, WM_UNIMPLEMENTED, "wm.xml")
                    for c in xmlsafe.elements(group):
                        cw = self.where(c)
                        if xmlsafe.localname(c) != "class" or not c.get("id"):
                            raise cw.error('<classes> holds <class id="{GUID}" .../>')
                        threading = c.get("threading")
                        if stag == "inProcServer" and (not threading or threading.lower() not in THREADING):
                            raise cw.error("in-proc COM classes need threading=Both|STA|MTA|MainSTA|Neutral")
                        classes.append(
                            ComClass(c.get("id"), threading, c.get("progId"), c.get("description"), cw)
                        )
                if not classes:
                    raise self.where(server).error("a COM server needs at least one <class>")
                p.com.append(
                    ComServer(
                        "inproc" if stag == "inProcServer" else "exe",
                        server.get("path"),
                        classes,
                        cf.merged(Filters(self.check_filter(server))),
                        self.where(server),
                    )
                )

    def el_bcdStore(self, p: Project, el, f):
        if not el.get("source"):
            raise self.where(el).error("<bcdStore> needs a source attribute")
        p.bcd = BcdItem(el.get("source"), f.merged(Filters(self.check_filter(el))), self.where(el))

    def el_firewallRule(self, p: Project, el, _f):
        attrs = {k.lower(): v for k, v in el.attrib.items()}
        if not attrs.get("name") and not attrs.get("internalname"):
            raise self.where(el).error("<firewallRule> needs a name")
        p.firewall.append(FirewallItem(attrs, self.where(el)))

    def el_language(self, p: Project, el, f):
        culture = el.get("culture") or "*"
        lf = f.merged(Filters(self.check_filter(el), language=culture if culture == "*" else f"({culture})"))
        for child in xmlsafe.elements(el):
            tag = xmlsafe.localname(child)
            if tag == "files":
                p.files.extend(self.files(child, lf))
            elif tag == "regKeys":
                p.regkeys.extend(self.regkeys(child, lf))
            else:
                raise self.unexpected(child, "language", WM_UNIMPLEMENTED, "wm.xml")


# ---------------------------------------------------------------------------------- pkg.xml


class _PkgLoader(_Loader):
    ORDER = ["CustomMetadata", "Macros", "Capabilities", "Components", "Authorization"]

    def load(self, root) -> Project:
        w = self.where(root)
        for attr in ("Owner", "Component", "OwnerType", "ReleaseType"):
            if not root.get(attr):
                raise w.error(f"<Package> lacks required attribute {attr}")
        owner_type = _enum(root.get("OwnerType"), OWNER_TYPES, w, "OwnerType")
        if owner_type != "Microsoft" and not root.get("Platform"):
            raise w.error("<Package> needs a Platform attribute for non-Microsoft owners")
        p = Project(
            self.path,
            "pkg",
            w,
            root.get("Owner"),
            root.get("SubComponent"),
            root.get("Component"),
            None,
            partition=(root.get("Partition") or "MainOS").strip(),
            release_type=_enum(root.get("ReleaseType"), RELEASE_TYPES, w, "ReleaseType"),
            owner_type=owner_type,
            binary_partition=_bool(root.get("BinaryPartition"), w, "BinaryPartition"),
            platform=root.get("Platform"),
        )
        last = -1
        for el in xmlsafe.elements(root):
            self.check_ns(el, PKG_NS)
            tag = xmlsafe.localname(el)
            if tag not in self.ORDER:
                raise self.unexpected(el, "Package", PKG_UNIMPLEMENTED, "pkg.xml")
            if self.ORDER.index(tag) <= last:
                raise self.where(el).error(
                    f"<{tag}> is out of order or repeated; the order is {', '.join(self.ORDER)}"
                )
            last = self.ORDER.index(tag)
            if tag == "Macros":
                for m in xmlsafe.elements(el):
                    if xmlsafe.localname(m) != "Macro" or m.get("Id") is None:
                        raise self.where(m).error('<Macros> may only contain <Macro Id="..." Value="..."/>')
                    p.macros.append((m.get("Id"), m.get("Value", ""), m.sourceline))
            elif tag == "Components":
                for comp in xmlsafe.elements(el):
                    handler = getattr(self, "c_" + xmlsafe.localname(comp), None)
                    if handler is None:
                        raise self.unexpected(comp, "Components", PKG_UNIMPLEMENTED, "pkg.xml")
                    handler(p, comp)
            elif tag != "CustomMetadata":
                raise self.unexpected(el, "Package", PKG_UNIMPLEMENTED, "pkg.xml")
        if p.binary_partition and p.binary_image is None:
            raise w.error('BinaryPartition="true" needs a <BinaryPartition ImageSource="..."/> component')
        return p

    def group_filters(self, el) -> Filters:
        lang, res = el.get("Language"), el.get("Resolution")
        if lang and res:
            raise self.where(el).error("Language and Resolution filters are mutually exclusive")
        cpu = el.get("CpuFilter")
        if cpu is not None and cpu not in ("ARM", "X86", "ARM64", "AMD64"):
            raise self.where(el).error(f"CpuFilter={cpu!r}; use ARM or X86 (upper case)")
        return Filters(None, cpu, lang, res)

    def file_item(self, el, f: Filters) -> FileItem:
        if not el.get("Source"):
            raise self.where(el).error("<File> needs a Source attribute")
        return FileItem(
            el.get("Source"),
            el.get("DestinationDir"),
            el.get("Name"),
            f,
            self.where(el),
            el.get("Attributes"),
            el.get("EmbeddedSigningCategory"),
        )

    def files(self, el, parent: Filters) -> list[FileItem]:
        f = parent.merged(self.group_filters(el))
        out = []
        for child in xmlsafe.elements(el):
            if xmlsafe.localname(child) != "File":
                raise self.unexpected(child, "Files", PKG_UNIMPLEMENTED, "pkg.xml")
            out.append(self.file_item(child, f))
        return out

    def regkeys(self, el, parent: Filters) -> list[RegKeyItem]:
        f = parent.merged(self.group_filters(el))
        out = []
        for key in xmlsafe.elements(el):
            if xmlsafe.localname(key) != "RegKey" or not key.get("KeyName"):
                raise self.where(key).error('<RegKeys> holds <RegKey KeyName="...">')
            values = []
            for v in xmlsafe.elements(key):
                if xmlsafe.localname(v) != "RegValue" or not v.get("Type") or v.get("Name") is None:
                    raise self.where(v).error('<RegKey> holds <RegValue Name="..." Type="..." Value="..."/>')
                name = None if v.get("Name") == "@" else v.get("Name")
                values.append(RegValueItem(name, v.get("Type"), v.get("Value"), f, self.where(v)))
            out.append(RegKeyItem(key.get("KeyName"), values, f, self.where(key)))
        return out

    def c_OSComponent(self, p: Project, el):
        for child in xmlsafe.elements(el):
            tag = xmlsafe.localname(child)
            if tag == "Files":
                p.files.extend(self.files(child, Filters()))
            elif tag == "RegKeys":
                p.regkeys.extend(self.regkeys(child, Filters()))
            else:
                raise self.unexpected(child, "OSComponent", PKG_UNIMPLEMENTED, "pkg.xml")

    def c_Driver(self, p: Project, el):
        if not el.get("InfSource"):
            raise self.where(el).error("<Driver> needs an InfSource attribute")
        overrides = []
        for child in xmlsafe.elements(el):
            tag = xmlsafe.localname(child)
            if tag == "Reference":
                continue  # documentation only
            if tag == "Files":
                overrides.extend(self.files(child, Filters()))
            else:
                raise self.unexpected(child, "Driver", PKG_UNIMPLEMENTED, "pkg.xml")
        p.drivers.append(DriverItem(el.get("InfSource"), None, overrides, Filters(), self.where(el)))

    def c_Service(self, p: Project, el):
        w = self.where(el)
        if not el.get("Name"):
            raise w.error("<Service> needs a Name attribute")
        attrs = {}
        mapping = {
            "Start": "start",
            "Type": "type",
            "ErrorControl": "errorControl",
            "DisplayName": "displayName",
            "Description": "description",
            "DependOnService": "dependOnService",
            "ObjectName": "objectName",
        }
        for src, dst in mapping.items():
            if el.get(src) is not None:
                attrs[dst] = el.get(src)
        if attrs.get("errorControl", "").lower() == "severe":
            attrs["errorControl"] = "critical"
        for attr, table in (("start", SERVICE_START), ("type", SERVICE_TYPE)):
            if attr not in attrs or attrs[attr].lower() not in table:
                raise w.error(f"<Service> {attr.capitalize()}={attrs.get(attr)!r} is missing or invalid")
        svc = ServiceItem(el.get("Name"), {"name": el.get("Name"), **attrs}, None, Filters(), w)
        for child in xmlsafe.elements(el):
            tag = xmlsafe.localname(child)
            if tag == "Executable":
                svc.executable = self.file_item(child, Filters())
            elif tag == "FailureActions":
                svc.failure = self.failure(child)
            elif tag == "Files":
                p.files.extend(self.files(child, Filters()))
            elif tag == "RegKeys":
                p.regkeys.extend(self.regkeys(child, Filters()))
            else:
                raise self.unexpected(child, "Service", PKG_UNIMPLEMENTED, "pkg.xml")
        if svc.executable is not None:
            exe = svc.executable
            p.files.append(exe)
            dest = exe.dest_dir or "$(runtime.system32)"
            name = exe.name or exe.source.replace("/", "\\").rsplit("\\", 1)[-1]
            svc.attrs.setdefault("imagePath", f"{dest}\\{name}")
        p.services.append(svc)

    def failure(self, el) -> FailureActions:
        return _WmLoader.failure(self, el, "ResetPeriod", None, "Action", "Type", "Delay")

    def c_BCDStore(self, p: Project, el):
        if not el.get("Source"):
            raise self.where(el).error("<BCDStore> needs a Source attribute")
        p.bcd = BcdItem(el.get("Source"), Filters(), self.where(el))

    def c_BinaryPartition(self, p: Project, el):
        if not el.get("ImageSource"):
            raise self.where(el).error("<BinaryPartition> needs an ImageSource attribute")
        p.binary_image = (el.get("ImageSource"), self.where(el))
        p.binary_partition = True

    def c_ComServer(self, p: Project, el):
        dll = next((c for c in xmlsafe.elements(el) if xmlsafe.localname(c) == "Dll"), None)
        if dll is None or not dll.get("Source"):
            raise self.where(el).error('<ComServer> needs a <Dll Source="..."/> child')
        dll_item = self.file_item(dll, Filters())
        p.files.append(dll_item)
        classes = []
        for child in xmlsafe.elements(el):
            tag = xmlsafe.localname(child)
            if tag == "Dll":
                continue
            if tag != "Classes":
                raise self.unexpected(child, "ComServer", PKG_UNIMPLEMENTED, "pkg.xml")
            for c in xmlsafe.elements(child):
                if xmlsafe.localname(c) != "Class" or not c.get("Id"):
                    raise self.where(c).error('<Classes> holds <Class Id="{GUID}" .../>')
                classes.append(
                    ComClass(
                        c.get("Id"),
                        c.get("ThreadingModel"),
                        c.get("ProgId"),
                        c.get("Description"),
                        self.where(c),
                    )
                )
        dest = dll_item.dest_dir or "$(runtime.system32)"
        name = dll_item.name or dll_item.source.replace("/", "\\").rsplit("\\", 1)[-1]
        p.com.append(ComServer("inproc", f"{dest}\\{name}", classes, Filters(), self.where(el)))


_CACHE: dict[tuple, Project] = {}


def load(path: str | Path, display: str | None = None) -> Project:
    """Load a package project; raises FFUError with file:line for any schema problem."""
    path = Path(path)
    name = display or str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FFUError(f"cannot read package project: {exc.strerror}", name) from None
    paths.note_read(path, st)  # also when the model below comes from _CACHE (ffuforge.plancache)
    key = (str(path), name, st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    root = xmlsafe.parse_file(path, name)
    ns, tag = xmlsafe.namespace(root), xmlsafe.localname(root)
    if tag == "identity" and ns == WM_NS:
        project = _WmLoader(path, name).load(root)
    elif tag == "Package" and ns == PKG_NS:
        project = _PkgLoader(path, name).load(root)
    else:
        raise FFUError(
            f"root <{tag}> in namespace {ns!r} is not a package project; expected <identity "
            f'xmlns="{WM_NS}"> or <Package xmlns="{PKG_NS}">',
            name,
            root.sourceline,
        )
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = project
    return project


def check_bcd(path: Path, display: str, where: Where) -> None:
    """A bcdStore source must be a BootConfigurationDatabase document."""
    root = xmlsafe.parse_file(path, display)
    if xmlsafe.localname(root) != "BootConfigurationDatabase" or xmlsafe.namespace(root) != BCD_NS:
        raise where.error(f'bcdStore source {display} is not a <BootConfigurationDatabase xmlns="{BCD_NS}">')
    from ..formats import bcd

    bcd.parse_document(path, display)  # unknown elements and bad values: now, located, not at image time


__all__ = [
    "load",
    "Project",
    "FileItem",
    "RegKeyItem",
    "RegValueItem",
    "DriverItem",
    "ServiceItem",
    "ComServer",
    "ComClass",
    "BcdItem",
    "FirewallItem",
    "Filters",
    "Where",
    "etree",
]
