"""The reader of legacy ``*.pkg.xml`` package projects (PackageSchema.v8.00), into the shared
model of :mod:`.projectmodel`.

Separate from the wm.xml reader (:mod:`.wmxml`) because the schema spells everything differently
(components, capitalised attributes, a fixed element order); it borrows only the failure-actions
parser, whose rules are the same in both. Attributes are checked against
:data:`.projectmodel.PKG_ATTRS` first, as in the wm.xml reader.
"""

from __future__ import annotations

from ..util import xmlsafe
from .projectmodel import (
    OWNER_TYPES,
    PKG_ATTRS,
    PKG_NS,
    PKG_UNIMPLEMENTED,
    PKG_UNIMPLEMENTED_ATTRS,
    RELEASE_TYPES,
    SERVICE_START,
    SERVICE_TYPE,
    BcdItem,
    ComClass,
    ComServer,
    DriverItem,
    FailureActions,
    FileItem,
    Filters,
    Loader,
    Project,
    RegKeyItem,
    RegValueItem,
    ServiceItem,
    parse_bool,
    parse_enum,
)
from .wmxml import WmLoader

__all__ = ["PkgLoader"]


class PkgLoader(Loader):
    ORDER = ["CustomMetadata", "Macros", "Capabilities", "Components", "Authorization"]

    def load(self, root) -> Project:
        w = self.where(root)
        self.check_attributes(root, PKG_ATTRS, PKG_UNIMPLEMENTED_ATTRS)
        for attr in ("Owner", "Component", "OwnerType", "ReleaseType"):
            if not root.get(attr):
                raise w.error(f"<Package> lacks required attribute {attr}")
        owner_type = parse_enum(root.get("OwnerType"), OWNER_TYPES, w, "OwnerType")
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
            release_type=parse_enum(root.get("ReleaseType"), RELEASE_TYPES, w, "ReleaseType"),
            owner_type=owner_type,
            binary_partition=parse_bool(root.get("BinaryPartition"), w, "BinaryPartition"),
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
                if svc.executable is not None:
                    raise self.where(child).error("<Service> has one <Executable> or <ServiceDll>")
                svc.executable = self.file_item(child, Filters())
            elif tag == "ServiceDll":
                if svc.executable is not None:
                    raise self.where(child).error("<Service> has one <Executable> or <ServiceDll>")
                self.service_dll(p, svc, el, child)
            elif tag == "FailureActions":
                svc.failure = self.failure(child)
            elif tag == "Files":
                p.files.extend(self.files(child, Filters()))
            elif tag == "RegKeys":
                p.regkeys.extend(self.regkeys(child, Filters()))
            else:
                raise self.unexpected(child, "Service", PKG_UNIMPLEMENTED, "pkg.xml")
        if svc.executable is not None and "imagePath" not in svc.attrs:
            exe = svc.executable
            p.files.append(exe)
            dest = exe.dest_dir or "$(runtime.system32)"
            name = exe.name or exe.source.replace("/", "\\").rsplit("\\", 1)[-1]
            svc.attrs.setdefault("imagePath", f"{dest}\\{name}")
        p.services.append(svc)

    def service_dll(self, p: Project, svc: ServiceItem, el, dll) -> None:
        """A service hosted by svchost: the DLL is copied like a <File>, named by
        ``Services\\<name>\\Parameters\\ServiceDll`` (REG_EXPAND_SZ, the value svchost loads), run
        by ``HostExe`` (default ``$(runtime.defaultSvcHost)``) ``-k <SvcHostGroupName>``, and listed in
        its svchost group (``$(hklm.svchost)\\<group>``, REG_MULTI_SZ items appended as other packages
        do). **Inferred**: no pkg.xml with <ServiceDll> and its pkggen output is public; the values
        are what svchost reads (Windows' service and svchost registry layout), the element's
        attributes those of the package schema notes (Source, HostExe, plus <File>'s)."""
        item = self.file_item(dll, Filters())
        w, group = self.where(dll), el.get("SvcHostGroupName")
        if not group and not dll.get("HostExe"):
            raise w.error(
                "<ServiceDll> needs SvcHostGroupName on its <Service> (the svchost group) or HostExe"
            )
        p.files.append(item)
        name = item.name or item.source.replace("/", "\\").rsplit("\\", 1)[-1]
        path = f"{item.dest_dir or '$(runtime.system32)'}\\{name}"
        host = dll.get("HostExe") or "$(runtime.defaultSvcHost)"
        svc.attrs["imagePath"] = f"{host} -k {group}" if group else host
        key = f"$(hklm.system)\\ControlSet001\\Services\\{svc.name}\\Parameters"
        p.regkeys.append(
            RegKeyItem(key, [RegValueItem("ServiceDll", "REG_EXPAND_SZ", path, Filters(), w)], Filters(), w)
        )
        if group:
            member = RegValueItem(group, "REG_MULTI_SZ", svc.name, Filters(), w, append=True)
            p.regkeys.append(RegKeyItem("$(hklm.svchost)", [member], Filters(), w))

    def failure(self, el) -> FailureActions:
        return WmLoader.failure(self, el, "ResetPeriod", None, "Action", "Type", "Delay")

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
