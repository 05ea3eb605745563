"""BCD stores from BootConfiguration XML: every corpus document, checked through independent readers."""

import base64
import hashlib
import os
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from ffuforge.errors import ConfigError, FFUError
from ffuforge.formats import bcd, hive

from oracles import require_tool

ROOT = Path(__file__).resolve().parents[2]
NS = "http://schemas.microsoft.com/phone/2011/10/BootConfiguration"
Q = f"{{{NS}}}"
TS = 1577836800
DISK_GUID = "{AE420040-13DD-41F2-AE7F-0DC35854C8D7}"
DISK_SIG = 0xAE420040
MMOS_OFFSET = 0x2A00000

# Independent expectations, from the public BCD element/object documentation (not from ffuforge.formats.bcd).
ELEMENT_IDS = {
    "Boot UX Progress Animation Disable": 0x16000069,  # bcdedit custom:16000069
    "Allow Pre-release Signatures": 0x16000049,  # BcdLibraryBoolean_AllowPrereleaseSignatures
    "Allow Flight Signatures": 0x1600007E,  # BcdLibraryBoolean_AllowFlightSignatures
    "Description": 0x12000004,  # BcdLibraryString_Description
    "Inherit": 0x14000006,  # BcdLibraryObjectList_InheritedObjects
    "Application Path": 0x12000002,  # BcdLibraryString_ApplicationPath
    "Boot Device": 0x11000001,  # BcdLibraryDevice_ApplicationDevice
    "Application Device": 0x11000001,
    "System Root": 0x22000002,  # BcdOSLoaderString_SystemRoot
    "OS Loader Type": 0x21000001,  # BcdOSLoaderDevice_OSDevice
    "Detect Kernel and HAL": 0x26000010,  # BcdOSLoaderBoolean_DetectKernelAndHal
    "WinPE Image": 0x26000022,  # BcdOSLoaderBoolean_WinPEMode
    "PAE Policy": 0x25000021,  # BcdOSLoaderInteger_PAEPolicy
    "Boot Menu Policy": 0x250000C2,  # BcdOSLoaderInteger_BootMenuPolicy
    "Default Object": 0x23000003,  # BcdBootMgrObject_DefaultObject
    "Display Order": 0x24000001,  # BcdBootMgrObjectList_DisplayOrder
    "Timeout Value": 0x25000004,  # BcdBootMgrInteger_Timeout
    "Timeout": 0x25000004,
}
OBJECTS = {
    "Windows Boot Manager": ("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", 0x10100002),
    "Windows Loader": ("{7619dcc9-fafe-11d9-b411-000476eba25f}", 0x10200003),
    "Global Settings Group": ("{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}", 0x20100000),
    "Boot Loader Settings Group": ("{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}", 0x20200003),
    "MMOS": ("{a5935ff2-32ba-4617-bf36-5ac314b3f9bf}", 0x10200003),
}
# The unique partition GUIDs Microsoft's imaging gives the main-OS store's partitions. No Microsoft
# document lists them (learn.microsoft.com's PARTITION_INFORMATION_GPT page gives partition *type*
# GUIDs only), so the independent sources are: a Microsoft-built retail FFU's partition table as an
# outside tool lists it (github.com/gus33000/MobilePackageGen, README.md, "Found partitions with
# recognized file system" for RM1085_1078.0053.10586.13169.12547.035242_retail_prod_signed.ffu:
# EFIESP 8183040a-…, MMOS 27a47557-…, MainOS a76b8ce2-…), and the constants of Microsoft's
# ImageStorageServiceManaged.dll (ImageConstants SYSTEM_PARTITION_ID, MAINOS_PARTITION_ID,
# MMOS_PARTITION_ID and SYSTEM_STORE_GUID / SYSTEM_STORE_SIGNATURE 0xAE420040 for DISK_GUID and
# DISK_SIG above; decompiled in github.com/Empyreal96/WP_Common_Tools,
# src/imagestorageservicemanaged/Microsoft.WindowsPhone.Imaging/ImageConstants.cs).
PARTITIONS = {
    "EFIESP": "{8183040a-8b44-4592-92f7-c6d9ee0560f7}",
    "MainOS": "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}",
    "MMOS": "{27a47557-8243-4c8e-9d30-846844c29c52}",
}
RAMDISK_OPTIONS = uuid.UUID("ae5534e0-a924-466c-b836-758539a3ee3a")


def sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def device_xml(style: str, partition: str) -> str:
    if style == "gpt":
        return f"<GPTDevice><DiskId>{DISK_GUID}</DiskId><Partition><Name>{partition}</Name></Partition></GPTDevice>"
    return f"<MBRDevice><DiskSignature>0x{DISK_SIG:08x}</DiskSignature><PartitionName>{partition}</PartitionName></MBRDevice>"


def element(name: str, value: str) -> str:
    return (
        f"<Element><DataType><WellKnownType>{name}</WellKnownType></DataType>"
        f"<ValueType>{value}</ValueType></Element>"
    )


def objlist(*names: str) -> str:
    return (
        "<ObjectListValue><StringValues>"
        + "".join(f"<StringValue>{n}</StringValue>" for n in names)
        + "</StringValues></ObjectListValue>"
    )


def obj(name: str, *elements: str, extra: str = "") -> str:
    return (
        f"<Object><FriendlyName>{name}</FriendlyName>{extra}<Elements>{''.join(elements)}</Elements></Object>"
    )


def doc(*objects: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<BootConfigurationDatabase xmlns="{NS}" '
        f'IncludeDescriptions="true" IncludeRegistryHeader="true">\n<Objects>\n'
        + "\n".join(objects)
        + "\n</Objects>\n</BootConfigurationDatabase>\n"
    )


def base_xml(style: str) -> str:
    """A minimal boot manager + OS loader store, standing in for the kit's own BCD package."""
    return doc(
        obj(
            "Windows Boot Manager",
            element("Application Device", f"<DeviceValue>{device_xml(style, 'EFIESP')}</DeviceValue>"),
            element("Application Path", r"<StringValue>\EFI\Microsoft\Boot\bootmgfw.efi</StringValue>"),
            element("Description", "<StringValue>Windows Boot Manager</StringValue>"),
            element("Default Object", "<ObjectValue>Windows Loader</ObjectValue>"),
            element("Display Order", objlist("Windows Loader")),
            element("Timeout Value", "<IntegerValue>0x0</IntegerValue>"),
            element("Inherit", objlist("Global Settings Group")),
        ),
        obj(
            "Windows Loader",
            element("Boot Device", f"<DeviceValue>{device_xml(style, 'MainOS')}</DeviceValue>"),
            element("OS Loader Type", f"<DeviceValue>{device_xml(style, 'MainOS')}</DeviceValue>"),
            element("Application Path", r"<StringValue>\windows\system32\boot\winload.efi</StringValue>"),
            element("System Root", r"<StringValue>\windows</StringValue>"),
            element("Inherit", objlist("Boot Loader Settings Group")),
        ),
        obj("Global Settings Group"),
        obj("Boot Loader Settings Group", element("Inherit", objlist("Global Settings Group"))),
    )


def corpus_bcd_files() -> list[Path]:
    root = ROOT.parent / "shared" / "corpus"
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*.xml")):
        head = p.read_bytes()[:600]
        if b"BootConfigurationDatabase" in head:
            out.append(p)
    return out


CORPUS = corpus_bcd_files()


def style_of(path: Path) -> str:
    return "mbr" if b"<MBRDevice>" in path.read_bytes() else "gpt"


def partition_ids(style: str) -> dict:
    return {"MMOS": MMOS_OFFSET, "EFIESP": 0x100000, "MainOS": 0x4000000} if style == "mbr" else {}


# --- independent readers ----------------------------------------------------------------------


def dump(path: Path) -> dict[str, dict[str, tuple[int, bytes]]]:
    """The store as hivexregedit (or, where absent, hivexml) sees it, keys lower-cased."""
    tool = shutil.which("hivexregedit")
    if tool:
        from test_hive import parse_reg_export

        env = dict(os.environ, PERL_UNICODE="SAO")
        res = subprocess.run([tool, "--export", str(path), "\\"], capture_output=True, env=env, check=True)
        tree = parse_reg_export(res.stdout.decode("utf-8"))
    else:
        require_tool("hivexml")
        tree = _hivexml_dump(path)
    return {k.lower(): v for k, v in tree.items()}


def _hivexml_dump(path: Path) -> dict[str, dict[str, tuple[int, bytes]]]:
    res = subprocess.run(["hivexml", str(path)], capture_output=True, check=True)
    out = {}
    kinds = {"string": 1, "expand": 2, "binary": 3, "int32": 4, "string-list": 7, "int64": 11, "none": 0}

    def walk(node, p):
        vals = {}
        for v in node.findall("value"):
            t = kinds[v.get("type")]
            if v.get("encoding") == "base64":
                data = base64.b64decode(v.get("value", ""))
            elif t in (1, 2):
                data = sz(v.get("value"))
            elif t == 7:
                data = (
                    "".join((s.text or "") + "\0" for s in v.findall("string") if s.text).encode("utf-16-le")
                    + b"\0\0"
                )
            else:
                data = int(v.get("value")).to_bytes(4 if t == 4 else 8, "little", signed=True)
            vals[v.get("key", "")] = (t, data)
        out[p] = vals
        for c in node.findall("node"):
            walk(c, f"{p}\\{c.get('name')}" if p else c.get("name"))

    walk(etree.fromstring(res.stdout).find("node"), "")
    return out


def decode_device(blob: bytes):
    """Device element → ('gpt', disk, partition) | ('mbr', signature, offset) | ('ramdisk', options, path, parent)."""
    options = uuid.UUID(bytes_le=blob[:16])
    dtype, _flags, size, _ = struct.unpack_from("<4I", blob, 16)

    def partition(at: int):
        ptype, _f, psize, _r = struct.unpack_from("<4I", blob, at)
        assert (ptype, psize) == (6, 72), "partition devices are 72-byte PartitionEx devices"
        raw = blob[at + 16 : at + 32]
        block_io, style = struct.unpack_from("<2I", blob, at + 32)
        assert block_io == 0  # hard disk
        ident = blob[at + 40 : at + 56]
        assert blob[at + 56 : at + 72] == bytes(16)  # padding of the 40-byte identifier slot
        if style == 0:
            return ("gpt", f"{{{uuid.UUID(bytes_le=ident)}}}", f"{{{uuid.UUID(bytes_le=raw)}}}")
        assert style == 1 and raw[8:] == bytes(8) and ident[4:] == bytes(12)
        return ("mbr", struct.unpack_from("<I", ident)[0], struct.unpack_from("<Q", raw)[0])

    if dtype == 6:
        assert options == uuid.UUID(int=0) and size == 72 and len(blob) == 88
        return partition(16)
    assert dtype == 0 and _flags == 1  # block I/O: ramdisk
    assert struct.unpack_from("<I", blob, 32)[0] == 3 and blob[36:56] == bytes(20)
    version, length, ftype = struct.unpack_from("<3I", blob, 56)
    assert (version, ftype) == (1, 5)
    parent = partition(68)
    path = blob[140 : 56 + length - 2].decode("utf-16-le")
    assert size == 16 + 24 + length and len(blob) == 16 + size + 2
    return ("ramdisk", options, path, parent)


# --- expected store from the XML, computed independently ----------------------------------------


def expected_elements(paths: list[Path]) -> dict[str, dict[int, tuple[int, object]]]:
    """{object guid: {element id: (reg type, data or decoded device)}} with later documents winning."""
    out: dict[str, dict[int, tuple[int, object]]] = {}
    for p in paths:
        root = etree.parse(str(p)).getroot()
        for o in root.iter(Q + "Object"):
            guid = OBJECTS[o.findtext(Q + "FriendlyName").strip()][0]
            elements = out.setdefault(guid, {})
            for e in o.iter(Q + "Element"):
                eid = ELEMENT_IDS[e.findtext(f"{Q}DataType/{Q}WellKnownType").strip()]
                v = e.find(Q + "ValueType")[0]
                tag = etree.QName(v).localname
                if tag == "BooleanValue":
                    elements[eid] = (3, b"\x01" if v.text.strip() == "true" else b"\x00")
                elif tag == "IntegerValue":
                    elements[eid] = (3, int(v.text.strip(), 16).to_bytes(8, "little"))
                elif tag == "StringValue":
                    elements[eid] = (1, sz(v.text))
                elif tag == "ObjectValue":
                    elements[eid] = (1, sz(OBJECTS[v.text.strip()][0]))
                elif tag == "ObjectListValue":
                    refs = [OBJECTS[s.text.strip()][0] for s in v.iter(Q + "StringValue")]
                    elements[eid] = (7, "".join(r + "\0" for r in refs).encode("utf-16-le") + b"\0\0")
                elif tag == "DeviceValue":
                    elements[eid] = (3, _expected_device(v[0]))
                else:
                    raise AssertionError(tag)
    return out


def _expected_device(d):
    tag = etree.QName(d).localname
    if tag == "RamdiskDevice":
        parent = _expected_device(d.find(Q + "ParentDevice")[0])
        opts = RAMDISK_OPTIONS if d.findtext(Q + "RamdiskOptions").strip() == "true" else uuid.UUID(int=0)
        return ("ramdisk", opts, d.findtext(Q + "FilePath").strip(), parent)
    if tag == "GPTDevice":
        name = d.findtext(f"{Q}Partition/{Q}Name").strip()
        return ("gpt", DISK_GUID.lower(), PARTITIONS[name])
    name = d.findtext(Q + "PartitionName").strip()
    return ("mbr", int(d.findtext(Q + "DiskSignature"), 16), partition_ids("mbr")[name])


def check_store(store: Path, paths: list[Path]) -> None:
    tree = dump(store)
    assert tree["description"] == {
        "KeyName": (1, sz("BCD00000000")),
        "System": (4, b"\1\0\0\0"),
        "TreatAsSystem": (4, b"\1\0\0\0"),
    }
    want = expected_elements(paths)
    types = {g: t for g, t in OBJECTS.values()}
    for guid, elements in want.items():
        base = f"objects\\{guid}"
        assert tree[f"{base}\\description"] == {"Type": (4, types[guid].to_bytes(4, "little"))}
        present = {k.rsplit("\\", 1)[1] for k in tree if k.startswith(base + "\\elements\\")}
        assert present == {f"{e:08x}" for e in elements}, guid
        for eid, (reg_type, data) in elements.items():
            got_type, got = tree[f"{base}\\elements\\{eid:08x}"]["Element"]
            assert got_type == reg_type, (guid, hex(eid))
            assert (decode_device(got) if isinstance(data, tuple) else got) == data, (guid, hex(eid))
    assert {k.split("\\")[1] for k in tree if k.startswith("objects\\")} == set(want)


# --- tests ------------------------------------------------------------------------------------


def test_corpus_has_bcd_documents(corpus):
    assert len(CORPUS) >= 10


@pytest.mark.parametrize(
    "xml", CORPUS, ids=[str(p.relative_to(ROOT.parent / "shared" / "corpus")) for p in CORPUS]
)
def test_corpus_bcd_compiles_and_reads_back(xml, tmp_path):
    style = style_of(xml)
    base = tmp_path / "base.xml"
    base.write_text(base_xml(style))
    out = tmp_path / "BCD"
    bcd.compile_bcd([base, xml], out, timestamp=TS, disk_style=style, partition_ids=partition_ids(style))
    check_store(out, [base, xml])
    assert hive.read_hive(out).root.name == "NewStoreRoot"


def test_recovery_ramdisk_devices(corpus, tmp_path):
    for variant, style in (("Recovery.GPT-BCD", "gpt"), ("Recovery.MBR-BCD", "mbr")):
        xml = corpus / "addonkit/17763-v7/Workspace/Common/Packages" / variant / "Recovery.BCD.xml"
        out = tmp_path / variant
        bcd.compile_bcd(
            [xml],
            out,
            timestamp=TS,
            disk_style=style,
            partition_ids=partition_ids(style),
            disk_id=DISK_GUID if style == "gpt" else DISK_SIG,
        )
        elements = hive.read_hive(out).root.subkey(f"Objects\\{OBJECTS['MMOS'][0]}\\Elements")
        for eid in ("11000001", "21000001"):
            dev = decode_device(elements.subkey(eid).value("Element").data)
            parent = (
                ("gpt", DISK_GUID.lower(), PARTITIONS["MMOS"])
                if style == "gpt"
                else ("mbr", DISK_SIG, MMOS_OFFSET)
            )
            assert dev == ("ramdisk", RAMDISK_OPTIONS, r"\winpe.wim", parent)


def test_hivexsh_navigates_the_store(tmp_path):
    tool = require_tool("hivexsh")
    src = tmp_path / "a.xml"
    src.write_text(base_xml("gpt"))
    out = tmp_path / "BCD"
    bcd.compile_bcd([src], out, timestamp=TS, disk_style="gpt")
    script = f"cd Objects\\{OBJECTS['Windows Boot Manager'][0]}\\Elements\\25000004\nlsval\ncd \\Description\nlsval\n"
    res = subprocess.run([tool, str(out)], input=script.encode(), capture_output=True, check=True)
    text = res.stdout.decode()
    assert '"Element"=hex(3):00,00,00,00,00,00,00,00' in text
    assert '"KeyName"="BCD00000000"' in text and '"System"=dword:00000001' in text


def test_later_documents_override_and_extend(tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text(base_xml("gpt"))
    b.write_text(
        doc(
            obj(
                "Windows Boot Manager",
                element("Timeout", "<IntegerValue>5</IntegerValue>"),
                element("Boot UX Progress Animation Disable", "<BooleanValue>true</BooleanValue>"),
            )
        )
    )
    out = tmp_path / "BCD"
    bcd.compile_bcd([a, b], out, timestamp=TS, disk_style="gpt")
    mgr = hive.read_hive(out).root.subkey(f"Objects\\{OBJECTS['Windows Boot Manager'][0]}\\Elements")
    assert mgr.subkey("25000004").value("Element").data == (5).to_bytes(8, "little")
    assert mgr.subkey("16000069").value("Element").data == b"\x01"
    assert mgr.subkey("12000002").value("Element").data == sz(r"\EFI\Microsoft\Boot\bootmgfw.efi")
    check_store(out, [a, b])


def test_integers_are_hexadecimal_like_pkggen(tmp_path):
    x = tmp_path / "x.xml"
    x.write_text(
        doc(obj("Windows Boot Manager", element("Timeout Value", "<IntegerValue>10</IntegerValue>")))
    )
    store = bcd.build_bcd([x], timestamp=TS)
    h = hive.parse_hive(store.to_bytes())
    got = h.root.subkey(f"Objects\\{OBJECTS['Windows Boot Manager'][0]}\\Elements\\25000004").value("Element")
    assert got.data == (0x10).to_bytes(8, "little")


def test_unknown_element_names_file_and_line(tmp_path):
    x = tmp_path / "Custom.BCD.xml"
    x.write_text(
        doc(
            obj(
                "Windows Boot Manager",
                element("Boot UX Progres Animation Disable", "<BooleanValue>true</BooleanValue>"),
            )
        )
    )
    with pytest.raises(FFUError) as err:
        bcd.compile_bcd([x], tmp_path / "BCD", timestamp=TS, disk_style="gpt")
    e = err.value
    assert e.file == str(x) and e.line == 4
    assert "unknown BCD element 'Boot UX Progres Animation Disable'" in e.message
    assert "did you mean 'Boot UX Progress Animation Disable'" in e.message
    assert "supported:" in e.message and "Allow Flight Signatures" in e.message
    assert not (tmp_path / "BCD").exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            obj("Windows Boot Manager", element("Timeout Value", "<BooleanValue>true</BooleanValue>")),
            "(integer) takes <IntegerValue>, not <BooleanValue>",
        ),
        (
            obj("Windows Boot Manager", element("Timeout Value", "<IntegerValue>0xZZ</IntegerValue>")),
            "hexadecimal",
        ),
        (
            obj(
                "Windows Boot Manager",
                element("Description", "<StringValue>x</StringValue><StringValue>y</StringValue>"),
            ),
            "exactly one value",
        ),
        (
            obj("Windows Boot Manager", element("Display Order", objlist("No Such Object"))),
            "unknown BCD object",
        ),
        (
            obj("Contoso Tool", element("Description", "<StringValue>x</StringValue>")),
            "not a well-known BCD object",
        ),
        (
            obj("Windows Boot Manager", element("Description", "<BooleanValue>maybe</BooleanValue>")),
            "takes <StringValue>",
        ),
        (
            obj(
                "Global Settings Group",
                element("Allow Flight Signatures", "<BooleanValue>yes</BooleanValue>"),
            ),
            "must be true or false",
        ),
        (
            obj(
                "Windows Boot Manager",
                "<Element><DataType><RawType><Class>Library</Class><SubClass>0x49</SubClass>"
                "</RawType></DataType><ValueType><BooleanValue>true</BooleanValue></ValueType></Element>",
            ),
            "RawType",
        ),
        (obj("Windows Boot Manager", extra="<Idd>x</Idd>"), "unexpected <Idd>"),
        (obj("Windows Boot Manager", extra="<Id>{00000000-0000-0000-0000-000000000001}</Id>"), "contradicts"),
    ],
)
def test_xml_errors_are_located(tmp_path, body, words):
    x = tmp_path / "bad.xml"
    x.write_text(doc(body))
    with pytest.raises(FFUError) as err:
        bcd.build_bcd([x], timestamp=TS)
    assert words in err.value.message
    assert err.value.file == str(x) and err.value.line == 4


def test_device_style_and_partition_errors(tmp_path):
    gpt, mbr = tmp_path / "gpt.xml", tmp_path / "mbr.xml"
    gpt.write_text(base_xml("gpt"))
    mbr.write_text(base_xml("mbr"))
    with pytest.raises(FFUError, match="GPTDevice> in a BCD for an MBR disk"):
        bcd.build_bcd([gpt], timestamp=TS, disk_style="mbr", partition_ids=partition_ids("mbr"))
    with pytest.raises(FFUError, match="MBRDevice> in a BCD for a GPT disk"):
        bcd.build_bcd([mbr], timestamp=TS, disk_style="gpt")
    with pytest.raises(FFUError, match="byte offset of partition 'EFIESP'"):
        bcd.build_bcd([mbr], timestamp=TS, disk_style="mbr")
    with pytest.raises(FFUError, match="not the disk being built"):
        bcd.build_bcd([gpt], timestamp=TS, disk_style="gpt", disk_id="{00000000-0000-0000-0000-000000000001}")
    with pytest.raises(FFUError, match="not the disk being built"):
        bcd.build_bcd(
            [mbr], timestamp=TS, disk_style="mbr", disk_id=0x12345678, partition_ids=partition_ids("mbr")
        )
    with pytest.raises(FFUError, match="'gpt' or 'mbr'"):
        bcd.build_bcd([gpt], timestamp=TS, disk_style="apm")
    # a layout that fixes its own partition GUIDs
    custom = "{11111111-2222-3333-4444-555555555555}"
    store = bcd.build_bcd([gpt], timestamp=TS, disk_style="gpt", partition_ids={"mainos": custom})
    loader = hive.parse_hive(store.to_bytes()).root.subkey(
        f"Objects\\{OBJECTS['Windows Loader'][0]}\\Elements"
    )
    assert decode_device(loader.subkey("11000001").value("Element").data) == (
        "gpt",
        DISK_GUID.lower(),
        custom,
    )


def test_custom_object_with_id_and_raw_type(tmp_path):
    tool_id = "{0d1b5e40-0000-41e7-a690-8dd3ce23cc11}"
    x = tmp_path / "x.xml"
    x.write_text(
        doc(
            obj(
                "Contoso Tool",
                element("Description", "<StringValue>Tool</StringValue>"),
                extra=f"<Id>{tool_id.upper()}</Id><RawType>0x10200003</RawType>",
            ),
            obj(
                "Windows Boot Manager",
                element("Display Order", objlist("Contoso Tool", "{7619DCC9-FAFE-11D9-B411-000476EBA25F}")),
            ),
        )
    )
    h = hive.parse_hive(bcd.build_bcd([x], timestamp=TS).to_bytes()).as_dict()
    assert h[f"Objects\\{tool_id}\\Description"] == {"Type": (4, (0x10200003).to_bytes(4, "little"))}
    order = h[f"Objects\\{OBJECTS['Windows Boot Manager'][0]}\\Elements\\24000001"]["Element"]
    assert order == (7, (tool_id + "\0" + OBJECTS["Windows Loader"][0] + "\0\0").encode("utf-16-le"))


def test_conflicting_object_types_across_documents(tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    extra = "<Id>{0d1b5e40-0000-41e7-a690-8dd3ce23cc11}</Id><RawType>"
    a.write_text(doc(obj("Tool", extra=f"{extra}{0x10200003}</RawType>")))
    b.write_text(doc(obj("Tool", extra=f"{extra}{0x10200005}</RawType>")))
    with pytest.raises(FFUError, match=r"has type 0x10200005 here but 0x10200003 at .*a\.xml:4"):
        bcd.build_bcd([a, b], timestamp=TS)


def test_not_a_bcd_document(tmp_path):
    x = tmp_path / "x.xml"
    x.write_text('<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"/>')
    with pytest.raises(FFUError, match="not a BCD description"):
        bcd.build_bcd([x], timestamp=TS)
    x.write_text(f'<!DOCTYPE x [<!ENTITY a "b">]><BootConfigurationDatabase xmlns="{NS}"/>')
    with pytest.raises(FFUError, match="DOCTYPE"):
        bcd.build_bcd([x], timestamp=TS)


def test_deterministic(tmp_path):
    a = tmp_path / "a.xml"
    a.write_text(base_xml("gpt"))
    one, two = tmp_path / "one", tmp_path / "two"
    bcd.compile_bcd([a], one, timestamp=TS, disk_style="gpt")
    bcd.compile_bcd([a], two, timestamp=TS, disk_style="gpt")
    assert hashlib.sha256(one.read_bytes()).digest() == hashlib.sha256(two.read_bytes()).digest()
    bcd.compile_bcd([a], two, timestamp=TS + 60, disk_style="gpt")
    assert one.read_bytes() != two.read_bytes()


def test_sample_workspace_bcd_package(tmp_path):
    xml = ROOT / "packages" / "Custom.BCD" / "Custom.BCD.xml"
    if not xml.is_file():
        pytest.skip("sample workspace BCD package not present")
    base = tmp_path / "base.xml"
    base.write_text(base_xml("gpt"))
    out = tmp_path / "BCD"
    bcd.compile_bcd([base, xml], out, timestamp=TS, disk_style="gpt", displays=["base.xml", "Custom.BCD.xml"])
    check_store(out, [base, xml])


def test_element_table_matches_documented_ids():
    for name, eid in ELEMENT_IDS.items():
        assert bcd.ELEMENT_TYPES[name] == eid, name
    for name, (guid, typ) in OBJECTS.items():
        assert bcd.WELL_KNOWN_OBJECTS[name] == (guid, typ), name
    # every WellKnownType used anywhere in the corpus is supported
    used = {e.text.strip() for p in CORPUS for e in etree.parse(str(p)).getroot().iter(Q + "WellKnownType")}
    assert used <= set(bcd.ELEMENT_TYPES) and used <= set(ELEMENT_IDS)


def test_error_kinds_are_config_errors(tmp_path):
    """A BCD document is user content: bad values, unknown names, a wrong root element and a bad disk
    style are ConfigErrors, raised by the reader, the encoder and the compiler alike."""
    x = tmp_path / "x.xml"
    x.write_text(
        doc(obj("Windows Boot Manager", element("Timeout Value", "<IntegerValue>0xZZ</IntegerValue>")))
    )
    with pytest.raises(ConfigError, match="hexadecimal"):
        bcd.build_bcd([x], timestamp=TS)
    x.write_text(
        doc(obj("Windows Boot Manager", element("No Such Element", "<BooleanValue>1</BooleanValue>")))
    )
    with pytest.raises(ConfigError, match="unknown BCD element"):
        bcd.parse_document(x)
    x.write_text('<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"/>')
    with pytest.raises(ConfigError, match="not a BCD description"):
        bcd.parse_document(x)
    gpt = tmp_path / "gpt.xml"
    gpt.write_text(base_xml("gpt"))
    with pytest.raises(ConfigError, match="'gpt' or 'mbr'"):
        bcd.build_bcd([gpt], timestamp=TS, disk_style="apm")
    with pytest.raises(ConfigError, match="GPTDevice> in a BCD for an MBR disk"):
        bcd.build_bcd([gpt], timestamp=TS, disk_style="mbr", partition_ids=partition_ids("mbr"))


@pytest.mark.parametrize(
    "xml", CORPUS, ids=[str(p.relative_to(ROOT.parent / "shared" / "corpus")) for p in CORPUS]
)
def test_dump_decodes_every_corpus_element(xml, tmp_path):
    """`bcd dump` decodes every element of every corpus store: no raw or unexpected values, element
    names and values agree with the independent decoding of `expected_elements`."""
    import json

    from ffuforge.formats.bcd.dump import describe_store, format_store

    style = style_of(xml)
    base = tmp_path / "base.xml"
    base.write_text(base_xml(style))
    out = tmp_path / "BCD"
    bcd.compile_bcd([base, xml], out, timestamp=TS, disk_style=style, partition_ids=partition_ids(style))
    store = describe_store(hive.read_hive(out))
    text = json.dumps(store)
    assert '"raw"' not in text and '"unexpected"' not in text and "device type" not in text
    want = expected_elements([base, xml])
    got = {o["id"]: {int(e["id"], 16) for e in o["elements"]} for o in store["objects"]}
    assert got == {g.lower(): set(els) for g, els in want.items()}
    for o in store["objects"]:
        for e in o["elements"]:
            assert e["name"], e  # every element the corpus uses has a name
            if e["format"] == "device":
                kind = e["value"]["kind"]
                assert kind in ("gpt partition", "mbr partition", "ramdisk"), e
                if kind == "ramdisk":
                    assert e["value"]["path"] == "\\winpe.wim" and e["value"]["on"]["kind"].endswith(
                        "partition"
                    )
                    assert "Ramdisk Options" in e["value"]["options"]
                if kind == "gpt partition" and e["value"]["partition"] in bcd.GPT_PARTITION_IDS.values():
                    assert e["value"]["partition_name"] in ("MainOS", "EFIESP", "MMOS")
    lines = format_store(store).splitlines()
    assert sum(ln.startswith("  0x") for ln in lines) == sum(len(o["elements"]) for o in store["objects"])
