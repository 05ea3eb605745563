"""The package-project model shared by the wm.xml and pkg.xml readers, and their common base.

Holds the schema namespaces, the value tables both schemas validate against, the dataclasses a
project loads into, and :class:`Loader` (location, filter and namespace checks). Separate so the
two readers (:mod:`.wmxml`, :mod:`.pkgxml`) and :mod:`.project` (which picks one) share it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import xmlsafe
from . import buildfilter

WM_NS = "urn:Microsoft.CompPlat/ManifestSchema.v1.00"
PKG_NS = "urn:Microsoft.WindowsPhone/PackageSchema.v8.00"

# Elements of the published wm.xml schema that ffuforge does not implement yet.
WM_UNIMPLEMENTED = {
    "serviceGroup",
    "accounts",
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
    "RequiredCapabilities",
    "Security",
    "Interfaces",
}

# Attributes of each element ffuforge reads (``parent/name`` where a name means two things), from
# package-project.md §1-§2 (the published XSDs). Every other attribute is an error naming the
# closest of these: a misspelt ``destinatonDir=`` would otherwise put a file in the wrong folder.
# The corpus (../shared/corpus, 200 wm.xml and 177 pkg.xml files) needs no attribute beyond these.
_FILTERED = ("buildFilter",)
WM_ATTRS: dict[str, tuple[str, ...]] = {
    "identity": ("owner", "name", "namespace", "legacyName", "buildWow"),
    "onecorePackageInfo": ("targetPartition", "releaseType", "ownerType", "binaryPartition"),
    "onecorePackageInfo/binaryPartition": ("imageSource",),
    "macros": (),
    "macro": ("id", "value"),
    "files": (*_FILTERED, "resolution"),
    "file": ("source", "destinationDir", "name", "securityDescriptor", *_FILTERED),
    "regKeys": _FILTERED,
    "regKey": ("keyName", "securityDescriptor", *_FILTERED),
    "regValue": ("name", "type", "value", "operationHint", *_FILTERED),
    "directories": (),
    "directory": ("path", "securityDescriptor"),
    "drivers": _FILTERED,
    "driver": ("defaultImportPath", *_FILTERED),
    "inf": ("source",),
    "service": (
        *("name", "start", "type", "errorControl", "imagePath", "displayName", "description"),
        *("objectName", "group", "dependOnService", "dependOnGroup", "requiredPrivileges", "sidType"),
        *("failureActionsFlag", *_FILTERED),
    ),
    "failureActions": ("resetPeriod", "command", "rebootMessage"),
    "actions": (),
    "action": ("type", "delay"),
    "serviceTrigger": ("action", "type", "subtype"),
    "triggerData": ("type", "value"),
    "COM": _FILTERED,
    "servers": (),
    "inProcServer": ("path", *_FILTERED),
    "exeServer": ("path", *_FILTERED),
    "classes": (),
    "class": ("id", "threading", "progId", "description"),
    "bcdStore": ("source", *_FILTERED),
    # the XSD spells these both ways (Protocol/protocol, LPort/lport): compared case-insensitively
    "firewallRule": (
        *("name", "internalName", "action", "active", "binary", "desc", "dir", "group"),
        *("icmp4", "icmp6", "lport", "rport", "profile", "protocol", "svc"),
    ),
    "language": ("culture", *_FILTERED),
    "trustInfo": (),
    "trustInfo/security": (),
    "accessControl": (),
    "securityDescriptorDefinitions": (),
    "securityDescriptorDefinition": ("name", "sddl", "operationHint", "description"),
}
# Valid in the schema, not built by ffuforge: refused as such rather than ignored.
WM_UNIMPLEMENTED_ATTRS: dict[str, tuple[str, ...]] = {
    "service": ("subCategory", "securityDescriptor", "requiredCapabilities", "startAfterInstall"),
    "language": ("multilingual",),
}
_PKG_FILE = ("Source", "DestinationDir", "Name", "Attributes", "EmbeddedSigningCategory")
_PKG_GROUP = ("Language", "Resolution", "CpuFilter")
PKG_ATTRS: dict[str, tuple[str, ...]] = {
    "Package": (
        *("Owner", "Component", "SubComponent", "OwnerType", "ReleaseType", "Partition"),
        *("Platform", "BinaryPartition", "Description"),
    ),
    "Macros": (),
    "Macro": ("Id", "Value"),
    "Components": (),
    "OSComponent": (),
    "Files": _PKG_GROUP,
    "RegKeys": _PKG_GROUP,
    "File": _PKG_FILE,
    "RegKey": ("KeyName",),
    "RegValue": ("Name", "Type", "Value"),
    "Driver": ("InfSource",),
    "Reference": ("Source",),
    "Service": (
        *("Name", "Start", "Type", "ErrorControl", "DisplayName", "Description", "DependOnService"),
        *("ObjectName", "SvcHostGroupName"),
    ),
    "Executable": _PKG_FILE,
    "ServiceDll": (*_PKG_FILE, "HostExe"),
    "FailureActions": ("ResetPeriod", "Command"),
    "Action": ("Type", "Delay"),
    "BCDStore": ("Source",),
    "BinaryPartition": ("ImageSource",),
    "ComServer": (),
    "Dll": _PKG_FILE,
    "Classes": (),
    "Class": ("Id", "ThreadingModel", "ProgId", "Description"),
}
PKG_UNIMPLEMENTED_ATTRS: dict[str, tuple[str, ...]] = {
    "Package": ("GroupingKey",),
    "Service": ("IsTCB",),
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
# SERVICE_TRIGGER_TYPE_* (winsvc.h), by the names manifests and wm.xml use (case-insensitive).
TRIGGER_TYPES = {
    "deviceinterfacearrival": 1,
    "ipaddressavailability": 2,
    "domainjoin": 3,
    "firewallportevent": 4,
    "grouppolicy": 5,
    "networkendpoint": 6,
    "networkendpointevent": 6,
    "customsystemstatechange": 7,
    "custom": 20,
    "aggregate": 30,
}
TRIGGER_ACTIONS = {"start": 1, "stop": 2}
TRIGGER_DATA = {"binary": 1, "string": 2, "level": 3, "keywordany": 4, "keywordall": 5}
# Subtype GUIDs winsvc.h names (values as in the Windows SDK header).
TRIGGER_SUBTYPES = {
    "NETWORK_MANAGER_FIRST_IP_ADDRESS_ARRIVAL_GUID": "4f27f2de-14e2-430b-a549-7cd48cbc8245",
    "NETWORK_MANAGER_LAST_IP_ADDRESS_REMOVAL_GUID": "cc4ba62a-162e-4648-847a-b6bdf993e335",
    "DOMAIN_JOIN_GUID": "1ce20aba-9851-4421-9430-1ddeb766e809",
    "DOMAIN_LEAVE_GUID": "ddaf516e-58c2-4866-9574-c3b615d42ea1",
    "FIREWALL_PORT_OPEN_GUID": "b7569e07-8421-4ee0-ad10-86915afdad09",
    "FIREWALL_PORT_CLOSE_GUID": "a144ed38-8e12-4de4-9d96-e64740b1a524",
    "MACHINE_POLICY_PRESENT_GUID": "659fcae6-5bdb-4da9-b1ff-ca2a178d46e0",
    "USER_POLICY_PRESENT_GUID": "54fb46c8-f089-464c-b1fd-59d1b62c3b50",
    "RPC_INTERFACE_EVENT_GUID": "bc90d167-9470-4139-a9ba-be0bbbf5b74d",
    "NAMED_PIPE_EVENT_GUID": "1f81d131-3fac-4537-9e0c-7e7b0c2f4b55",
}

THREADING = {"both", "sta", "mta", "mainsta", "neutral", "apartment", "free"}


@dataclass
class Where:
    file: str
    line: int | None

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, self.file, self.line)


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
    security: str | None = None  # securityDescriptor: a name defined in <trustInfo>


@dataclass
class RegValueItem:
    name: str | None  # None = the key's default value
    type: str
    value: str | None
    filters: Filters
    where: Where
    append: bool = False  # wm.xml operationHint="append" (REG_MULTI_SZ merged across packages)


@dataclass
class RegKeyItem:
    key_name: str
    values: list[RegValueItem]
    filters: Filters
    where: Where
    security: str | None = None  # securityDescriptor: a name defined in <trustInfo>


@dataclass
class DirectoryItem:
    """A directory the package declares (wm.xml ``<directories><directory path=…>``)."""

    path: str  # device path, macros unexpanded
    security: str | None
    where: Where


@dataclass
class SecurityDefinition:
    """A named SDDL (``securityDescriptorDefinition``), checked by :mod:`ffuforge.formats.secdesc`."""

    name: str
    sddl: str
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
class TriggerItem:
    """A wm.xml <serviceTrigger>: attributes and (type, value) data items, kept as written; the
    installer validates and encodes them (:mod:`ffuforge.image.registry`)."""

    action: str
    type: str
    subtype: str
    data: list[tuple[str, str]]
    where: Where


@dataclass
class ServiceItem:
    name: str
    attrs: dict[str, str]
    failure: FailureActions | None
    filters: Filters
    where: Where
    executable: FileItem | None = None  # pkg.xml <Executable>
    triggers: list[TriggerItem] = field(default_factory=list)


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
    directories: list[DirectoryItem] = field(default_factory=list)
    security: dict[str, SecurityDefinition] = field(default_factory=dict)  # by name

    @property
    def directory(self) -> Path:
        return self.path.parent


def parse_bool(value: str | None, where: Where, attr: str, default: bool = False) -> bool:
    if value is None:
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise where.error(f"{attr}={value!r} is not a boolean; use true or false")


def parse_enum(value: str, table: dict[str, str], where: Where, attr: str) -> str:
    found = table.get(value.strip().lower())
    if found is None:
        raise where.error(
            f"{attr}={value!r} is not valid; use one of {', '.join(sorted(set(table.values())))}"
        )
    return found


class Loader:
    """Base of the wm.xml and pkg.xml readers: locations, buildFilter and namespace checks."""

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
        known = {k.rpartition("/")[2] for k in (WM_ATTRS if schema == "wm.xml" else PKG_ATTRS)}
        hint = xmlsafe.suggest(name, known | set(unimplemented), "<{}>")
        return self.where(el).error(f"<{name}> is not allowed inside <{parent}> in the {schema} schema{hint}")

    def check_attributes(self, root, schema: dict, unimplemented: dict, fold=frozenset()) -> None:
        """Every element's attributes, before any is read (see WM_ATTRS)."""
        xmlsafe.check_tree(root, schema, self.file, unimplemented=unimplemented, fold=fold)

    def check_ns(self, el, ns: str):
        if xmlsafe.namespace(el) != ns:
            raise self.where(el).error(
                f"<{xmlsafe.localname(el)}> has namespace {xmlsafe.namespace(el)!r}; expected {ns!r}"
            )
