"""The reader of ``*.wm.xml`` package projects (the published ManifestSchema.v1.00), into the
shared model of :mod:`.projectmodel`.

Every attribute is checked against :data:`.projectmodel.WM_ATTRS` before anything is read, so an
unknown or misspelt one is an error with a did-you-mean hint wherever it appears.

One module per schema so each reader's element handlers read top to bottom; :func:`.project.load`
picks the reader by the document's root element.
"""

from __future__ import annotations

import re

from ..errors import FFUError
from ..formats import secdesc
from ..util import xmlsafe
from .projectmodel import (
    ACTION_TYPES,
    ERROR_CONTROL,
    OWNER_TYPES,
    RELEASE_TYPES,
    SERVICE_START,
    SERVICE_TYPE,
    THREADING,
    TRIGGER_ACTIONS,
    TRIGGER_DATA,
    TRIGGER_SUBTYPES,
    TRIGGER_TYPES,
    WM_ATTRS,
    WM_NS,
    WM_UNIMPLEMENTED,
    WM_UNIMPLEMENTED_ATTRS,
    BcdItem,
    ComClass,
    ComServer,
    DirectoryItem,
    DriverItem,
    FailureActions,
    FileItem,
    Filters,
    FirewallItem,
    Loader,
    Project,
    RegKeyItem,
    RegValueItem,
    SecurityDefinition,
    ServiceItem,
    TriggerItem,
    parse_bool,
    parse_enum,
)

__all__ = ["WmLoader"]

_GUID = re.compile(r"^\{?[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}?$")


class WmLoader(Loader):
    ONCE = {"bcdStore", "language", "macros", "COM", "trustInfo", "onecorePackageInfo"}

    def load(self, root) -> Project:
        w = self.where(root)
        missing = [a for a in ("owner", "name") if not root.get(a)]
        if missing:
            raise w.error(
                f"<identity> lacks required attribute(s) {', '.join(missing)} "
                "(is this an unfilled template?); set owner, name and namespace"
            )
        self.check_attributes(root, WM_ATTRS, WM_UNIMPLEMENTED_ATTRS, frozenset({"firewallRule"}))
        p = Project(
            self.path,
            "wm",
            w,
            root.get("owner"),
            root.get("name"),
            root.get("namespace"),
            root.get("legacyName"),
            build_wow=parse_bool(root.get("buildWow"), w, "buildWow"),
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
        self.check_security(p)
        return p

    def check_security(self, p: Project) -> None:
        """Every securityDescriptor names a definition (which may come later in the file)."""
        users = [*p.files, *p.regkeys, *p.directories]
        for item in sorted(users, key=lambda i: i.where.line or 0):
            if item.security is not None and item.security not in p.security:
                known = ", ".join(sorted(p.security)) or "none"
                raise item.where.error(
                    f"security descriptor {item.security!r} is not defined (defined: {known}); add "
                    f'<securityDescriptorDefinition name="{item.security}" sddl="..."/> to '
                    "<trustInfo><security><accessControl><securityDescriptorDefinitions>"
                )

    def el_trustInfo(self, p: Project, el, _f):
        """``trustInfo/security/accessControl/securityDescriptorDefinitions`` as in Windows' manifests."""
        path = ("security", "accessControl", "securityDescriptorDefinitions")
        level = el
        for tag in path:
            kids = list(xmlsafe.elements(level))
            if len(kids) != 1 or xmlsafe.localname(kids[0]) != tag:
                bad = next((k for k in kids if xmlsafe.localname(k) != tag), level)
                raise self.where(bad).error(
                    f"<{xmlsafe.localname(level)}> must hold exactly one <{tag}>; the form is "
                    "<trustInfo><security><accessControl><securityDescriptorDefinitions>"
                )
            level = kids[0]
            self.check_ns(level, WM_NS)
        for d in xmlsafe.elements(level):
            w = self.where(d)
            if xmlsafe.localname(d) != "securityDescriptorDefinition":
                raise self.unexpected(d, "securityDescriptorDefinitions", WM_UNIMPLEMENTED, "wm.xml")
            name, sddl = d.get("name"), d.get("sddl")
            if not name or not sddl:
                raise w.error('<securityDescriptorDefinition> needs name="..." and sddl="..."')
            if d.get("operationHint", "replace") != "replace":
                raise w.error(f"operationHint={d.get('operationHint')!r}: the only hint is 'replace'")
            if name in p.security:
                raise w.error(
                    f"security descriptor {name!r} is already defined on line {p.security[name].where.line}"
                )
            try:
                secdesc.sddl_to_binary(sddl)
            except FFUError as exc:
                raise w.error(f"security descriptor {name!r}: {exc.message}") from None
            p.security[name] = SecurityDefinition(name, sddl, w)

    def el_directories(self, p: Project, el, _f):
        for d in xmlsafe.elements(el):
            w = self.where(d)
            if xmlsafe.localname(d) != "directory":
                raise self.unexpected(d, "directories", WM_UNIMPLEMENTED, "wm.xml")
            if not d.get("path"):
                raise w.error('<directory> needs path="$(runtime.…)\\…"')
            p.directories.append(DirectoryItem(d.get("path"), d.get("securityDescriptor"), w))

    def el_onecorePackageInfo(self, p: Project, el, _f):
        w = self.where(el)
        if el.get("targetPartition"):
            p.partition = el.get("targetPartition").strip()
        if el.get("releaseType"):
            p.release_type = parse_enum(el.get("releaseType"), RELEASE_TYPES, w, "releaseType")
        if el.get("ownerType"):
            p.owner_type = parse_enum(el.get("ownerType"), OWNER_TYPES, w, "ownerType")
            if p.owner_type == "Microsoft":
                raise w.error(
                    "ownerType='Microsoft' is not allowed in wm.xml; use OEM, SiliconVendor or MobileOperator"
                )
        p.binary_partition = parse_bool(el.get("binaryPartition"), w, "binaryPartition")
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
                    security=child.get("securityDescriptor"),
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
                hint = v.get("operationHint")
                if hint is not None and hint != "append":
                    raise self.where(v).error(
                        f"operationHint={hint!r} is not supported; the only hint is 'append' (REG_MULTI_SZ)"
                    )
                if hint is not None and v.get("type").upper() != "REG_MULTI_SZ":
                    raise self.where(v).error(
                        f"operationHint='append' needs type REG_MULTI_SZ, not {v.get('type')}: only "
                        "multi-string items can be merged into what other packages set"
                    )
                values.append(
                    RegValueItem(
                        v.get("name"),
                        v.get("type"),
                        v.get("value"),
                        kf.merged(Filters(self.check_filter(v))),
                        self.where(v),
                        append=hint is not None,
                    )
                )
            out.append(
                RegKeyItem(
                    key.get("keyName"), values, kf, self.where(key), security=key.get("securityDescriptor")
                )
            )
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
        triggers = []
        for child in xmlsafe.elements(el):
            if xmlsafe.localname(child) == "failureActions":
                failure = self.failure(child, "resetPeriod", "actions", "action", "type", "delay")
            elif xmlsafe.localname(child) == "serviceTrigger":
                triggers.append(self.trigger(child))
            else:
                raise self.unexpected(child, "service", WM_UNIMPLEMENTED, "wm.xml")
        attrs = {k: v for k, v in el.attrib.items() if k != "buildFilter"}
        p.services.append(
            ServiceItem(
                el.get("name"),
                attrs,
                failure,
                f.merged(Filters(self.check_filter(el))),
                w,
                triggers=triggers,
            )
        )

    def trigger(self, el) -> TriggerItem:
        w = self.where(el)
        missing = [a for a in ("action", "type", "subtype") if not el.get(a)]
        if missing:
            raise w.error(f"<serviceTrigger> needs {', '.join(missing)}")
        for attr, table in (("type", TRIGGER_TYPES), ("action", TRIGGER_ACTIONS)):
            if el.get(attr).lower() not in table:
                raise w.error(
                    f"serviceTrigger {attr}={el.get(attr)!r}; use one of {', '.join(sorted(table))}"
                )
        sub = el.get("subtype")
        if sub.upper() not in TRIGGER_SUBTYPES and not _GUID.match(sub):
            raise w.error(
                f"serviceTrigger subtype={sub!r} is not a GUID ({{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}) "
                f"or one of {', '.join(sorted(TRIGGER_SUBTYPES))}"
            )
        data = []
        for d in xmlsafe.elements(el):
            dw = self.where(d)
            if xmlsafe.localname(d) != "triggerData":
                raise dw.error('<serviceTrigger> holds only <triggerData type="..." value="..."/>')
            if not d.get("type") or d.get("value") is None or set(d.attrib) - {"type", "value"}:
                raise dw.error(
                    '<triggerData> takes exactly type="string|binary|level|keywordAny|keywordAll" and value'
                )
            if d.get("type").lower() not in TRIGGER_DATA:
                raise dw.error(f"triggerData type={d.get('type')!r}; use one of {', '.join(TRIGGER_DATA)}")
            data.append((d.get("type"), d.get("value")))
        return TriggerItem(el.get("action"), el.get("type"), el.get("subtype"), data, w)

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
