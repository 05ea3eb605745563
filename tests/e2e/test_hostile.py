"""Hostile inputs the other test modules do not cover yet.

Already covered elsewhere (not repeated here): CAB reader bounds, `..`/absolute/device member names,
duplicates, symlinks in the extraction target, size lies and MSZIP bombs (test_cab.py); INF
overlong lines, oversized files, cyclic and huge sections (test_inf.py); hive cell offsets and counts
(test_hive.py); FFU and GPT headers, offsets and counts (test_ffu.py, test_ptable.py); DOCTYPE and
external entities in package projects (test_project.py).

Here: a vendor CAB installed into a partition (`ffuforge.image.install`) that lies in its update.mum or
manifests or tries to write outside the staged partition; entity bombs, external entities, huge-node
tricks, unknown attributes and CR-only line ends in every other XML reader; partition names that would
name files outside build/; inputs that are not regular files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ffuforge.errors import FFUError
from ffuforge.features import fm, oeminput
from ffuforge.formats import bcd, cab
from ffuforge.image import install, layout
from ffuforge.image import stages as image
from ffuforge.package import project
from ffuforge.package.build import build_variant
from ffuforge.util import xmlsafe

from helpers import plan, wm

BOMB_DTD = (
    '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
)


def _xxe_dtd(secret: Path) -> str:
    return f'<!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>'


# ------------------------------------------------------------------------ vendor CABs


def _good_cab(tmp_path: Path, body: str = "", name: str = "Pkg") -> Path:
    d = tmp_path / f"src-{name}"
    d.mkdir(exist_ok=True)
    (d / "a.txt").write_text(f"a from {name}\n")
    v = plan(
        wm(
            d,
            body or '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)"/></files>',
            name=name,
        )
    )[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def _members(path: Path) -> dict[str, bytes]:
    with cab.CabReader(path) as r:
        return {m.name: r.read(m, 1 << 24) for m in r.members}


def _rewrite(
    path: Path, members: dict[str, bytes] | list[tuple[str, bytes]], out: Path | None = None
) -> Path:
    out = out or path.with_name("hostile-" + path.name)
    items = members.items() if isinstance(members, dict) else members
    cab.write_cab(out, [cab.CabMember(n, data=d) for n, d in items])
    return out


def _edit(path: Path, what: str, old: str, new: str, count: int = 1) -> Path:
    """A copy of the CAB with one text edit in update.mum ('mum') or the component manifest."""
    members = _members(path)
    key = (
        "update.mum"
        if what == "mum"
        else next(
            n
            for n in members
            if n.endswith("component_" + n.split("component_")[-1])
            and n.endswith(".manifest")
            and "-component_" in n
        )
    )
    text = members[key].decode()
    assert old in text, (old, text)
    members[key] = text.replace(old, new, count).encode()
    return _rewrite(path, members)


def _install(tmp_path: Path, *cabs: Path, partition: str = "MainOS") -> install.Staging:
    st = install.Staging(partition, tmp_path / "stage" / "root")
    for c in cabs:
        install.install_package(st, c)
    return st


def _outside(tmp_path: Path) -> set[str]:
    """Everything under tmp_path except the staging tree and the CABs: must not grow."""
    return {
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if not str(p.relative_to(tmp_path)).startswith(("stage", "cabs", "src-"))
    }


@pytest.mark.parametrize(
    "device_path,refused",
    [
        ("$(runtime.system32)\\..\\..\\..\\..\\..\\escaped.txt", True),
        ("..\\..\\escaped.txt", True),
        ("C:\\Windows\\escaped.txt", True),
        ("\\\\?\\C:\\escaped.txt", True),
        ("$(runtime.nosuchmacro)\\escaped.txt", True),
        ("$(runtime.system32)\\a\0b.txt", True),
        ("\\\\.\\PhysicalDrive0", False),  # a plain name below the partition root
        ("/etc/escaped.txt", False),  # \etc\escaped.txt below the partition root
    ],
)
def test_vendor_cab_file_paths_stay_in_the_partition(tmp_path, device_path, refused):
    good = _good_cab(tmp_path)
    before = _outside(tmp_path)
    bad = _edit(
        good, "mum", 'name="$(runtime.system32)\\a.txt"', f'name="{device_path.replace(chr(0), "&#1;")}"'
    )
    if refused:
        with pytest.raises(FFUError) as exc:
            _install(tmp_path, bad)
        assert "\n" not in str(exc.value)
    else:
        st = _install(tmp_path, bad)
        root = (tmp_path / "stage" / "root").resolve()
        for f in st.files.values():
            assert (root / f.path.replace("\\", "/")).resolve().is_relative_to(root)
    assert _outside(tmp_path) == before
    assert not list(tmp_path.parent.glob("escaped.txt")) and not Path("/etc/escaped.txt").exists()


@pytest.mark.parametrize(
    "attr,value",
    [
        ('name="Contoso-Test-Pkg" language', 'name="..\\..\\..\\escaped" language'),
        ('version="1.0.0.0" buildType', 'version="1/../../../escaped" buildType'),
        ('processorArchitecture="arm64" publicKeyToken', 'processorArchitecture="a/b" publicKeyToken'),
        ('targetPartition="MainOS"', 'targetPartition="../../MainOS"'),
    ],
)
def test_vendor_cab_identity_cannot_name_paths(tmp_path, attr, value):
    """Package name, version, architecture and partition name files (\\Windows\\servicing\\Packages\\…,
    the partition image): path characters in them are refused."""
    bad = _edit(_good_cab(tmp_path), "mum", attr, value)
    before = _outside(tmp_path)
    with pytest.raises(FFUError, match="not a valid package identity"):
        _install(tmp_path, bad)
    with pytest.raises(FFUError, match="not a valid package identity"):
        install.read_package_info(bad)
    assert _outside(tmp_path) == before


def test_vendor_cab_sizes_and_hashes_that_lie(tmp_path):
    good = _good_cab(tmp_path)
    members = _members(good)
    payload = next(n for n in members if n.endswith("\\a.txt"))
    # the payload altered after the mum was written: same size, other bytes
    altered = dict(members)
    altered[payload] = b"b\n" if members[payload] != b"b\n" else b"c\n"
    altered[payload] = altered[payload][: len(members[payload])].ljust(len(members[payload]), b"x")
    with pytest.raises(FFUError, match="does not match its SHA-256 in update.mum"):
        _install(tmp_path / "1", _rewrite(good, altered, tmp_path / "altered.cab"))
    # a member much larger than update.mum says (a decompression bomb announced as 2 bytes)
    bomb = dict(members)
    bomb[payload] = bytes(8 << 20)
    with pytest.raises(FFUError, match="update.mum declares .* bytes, the CAB member holds 8388608"):
        _install(tmp_path / "2", _rewrite(good, bomb, tmp_path / "bomb.cab"))
    # a size that is not a number, seen by install and by the layout's content estimate
    text = _edit(good, "mum", 'size="', 'size="0x', count=10)
    with pytest.raises(FFUError, match="not a"):
        _install(tmp_path / "3", text)
    with pytest.raises(FFUError, match="not a byte count"):
        image.content_sizes([text])


def test_vendor_cab_duplicate_member_names(tmp_path):
    """Two members whose names differ only in case (the CAB writer refuses that, so the name is
    patched in the file: CFFILE names are outside every checksum)."""
    good = _good_cab(tmp_path)
    members = _members(good)
    payload = next(n for n in members if n.endswith("\\a.txt"))
    twin = payload[:-5] + "b.txt"
    members[twin] = b"other content"
    built = _rewrite(good, members)
    data = built.read_bytes()
    assert data.count(twin.encode()) == 1
    built.write_bytes(data.replace(twin.encode(), payload.upper().encode()))
    with pytest.raises(FFUError, match="differ only in case or are repeated|duplicate"):
        _install(tmp_path, built)


def test_vendor_cab_lists_a_member_it_lacks(tmp_path):
    good = _good_cab(tmp_path)
    members = {n: d for n, d in _members(good).items() if not n.endswith("\\a.txt")}
    with pytest.raises(FFUError, match="the CAB lacks it"):
        _install(tmp_path, _rewrite(good, members))


def test_file_of_one_package_is_a_directory_of_another(tmp_path):
    (tmp_path / "x").mkdir()
    a = _good_cab(
        tmp_path,
        '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)" name="drivers"/></files>',
        name="A",
    )
    b = _good_cab(
        tmp_path,
        '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)\\drivers"/></files>',
        name="B",
    )
    with pytest.raises(
        FFUError, match=r"needs \\Windows\\System32\\drivers to be a directory, but Contoso-Test-A"
    ):
        _install(tmp_path / "1", a, b)
    with pytest.raises(FFUError, match="is a directory of Contoso-Test-B's files"):
        _install(tmp_path / "2", b, a)


def test_symlink_in_the_staged_partition_is_not_followed(tmp_path):
    """Nothing in ffuforge puts a symlink into a staged partition; if something did, installing must
    not write through it."""
    target = tmp_path / "outside"
    target.mkdir()
    root = tmp_path / "stage" / "root"
    (root / "Windows").mkdir(parents=True)
    os.symlink(target, root / "Windows" / "System32")
    st = install.Staging("MainOS", root)
    with pytest.raises(FFUError, match="not a directory .*symbolic link"):
        install.install_package(st, _good_cab(tmp_path))
    assert not list(target.iterdir())
    # and a symlink where the file itself goes
    os.unlink(root / "Windows" / "System32")
    (root / "Windows" / "System32").mkdir()
    os.symlink(target / "a.txt", root / "Windows" / "System32" / "a.txt")
    with pytest.raises(FFUError, match="cannot create"):
        install.install_package(install.Staging("MainOS", root), _good_cab(tmp_path))
    assert not (target / "a.txt").exists()


SERVICE = (
    '<service name="Svc" start="auto" type="win32OwnProcess" imagePath="$(runtime.system32)\\s.exe">'
    '<failureActions resetPeriod="60"><actions><action type="restartService" delay="1000"/></actions>'
    "</failureActions></service>"
)


@pytest.mark.parametrize(
    "old,new,message",
    [
        ('delay="1000"', 'delay="soon"', "failure action delay 'soon'"),
        ('delay="1000"', 'delay="-5"', "failure action delay '-5'"),
        ('resetPeriod="60"', 'resetPeriod="99999999999"', "resetPeriod '99999999999'"),
    ],
)
def test_vendor_manifest_service_numbers(tmp_path, old, new, message):
    good = _good_cab(tmp_path, SERVICE)
    with pytest.raises(FFUError, match=re.escape(message)):
        _install(tmp_path, _edit(good, "manifest", old, new))


@pytest.mark.parametrize(
    "value_type,value",
    [("REG_TYPE_77", "zz"), ("REG_TYPE_99999999999", "00"), ("REG_BINARY", "0G"), ("REG_DWORD", "nope")],
)
def test_vendor_manifest_registry_values(tmp_path, value_type, value):
    good = _good_cab(
        tmp_path,
        '<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="v" type="REG_SZ" '
        'value="1"/></regKey></regKeys>',
    )
    bad = _edit(good, "manifest", 'valueType="REG_SZ" value="1"', f'valueType="{value_type}" value="{value}"')
    with pytest.raises(FFUError):
        _install(tmp_path, bad)


@pytest.mark.parametrize("what", ["mum", "manifest"])
def test_entity_bomb_and_external_entity_inside_a_cab(tmp_path, what):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    good = _good_cab(tmp_path)
    decl = "<?xml version='1.0' encoding='utf-8' standalone='yes'?>"
    for dtd in (BOMB_DTD, _xxe_dtd(secret)):
        bad = (
            _edit(good, what, decl, decl + dtd) if what == "mum" else _edit_component(good, decl, decl + dtd)
        )
        with pytest.raises(FFUError, match="DOCTYPE") as exc:
            _install(
                tmp_path / dtd[:12].replace(" ", "").replace("!", "").replace("[", "").replace("<", ""), bad
            )
        assert "TOPSECRET" not in str(exc.value)


def _edit_component(path: Path, old: str, new: str) -> Path:
    members = _members(path)
    key = next(n for n in members if n.endswith(".manifest") and "-component_" in n)
    members[key] = members[key].decode().replace(old, new, 1).encode()
    return _rewrite(path, members)


def test_vendor_cab_that_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pkg.cab"
    os.mkfifo(fifo)
    with pytest.raises(FFUError, match="not a regular file"):
        install.read_package_info(fifo)  # returns at once: never blocks on the FIFO
    dev = tmp_path / "zero.cab"
    os.symlink("/dev/zero", dev)
    with pytest.raises(FFUError, match="not a regular file"):
        cab.CabReader(dev)
    with pytest.raises(FFUError, match="is a directory"):
        cab.CabReader(tmp_path)


# --------------------------------------------------------------- XML bombs in every reader

FM = '<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"><BasePackages/></FeatureManifest>'
FMLIST = (
    '<FMCollectionManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate" Product="IoTUAP">'
    "<FMs/></FMCollectionManifest>"
)
OEMINPUT = (
    '<OEMInput xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"><SOC>S</SOC><Device>D</Device>'
    "<ReleaseType>Test</ReleaseType><BuildType>fre</BuildType></OEMInput>"
)
LAYOUT = (
    '<DeviceLayout xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"><Partitions/>'
    "<SectorSize>512</SectorSize></DeviceLayout>"
)
PLATFORM = (
    '<OEMDevicePlatform xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">'
    "<MinSectorCount>1</MinSectorCount></OEMDevicePlatform>"
)
BCD = (
    '<BootConfigurationDatabase xmlns="http://schemas.microsoft.com/phone/2011/10/BootConfiguration">'
    "<Objects/></BootConfigurationDatabase>"
)
WM = '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="C" namespace="N" name="P"/>'

READERS = {
    "fm": (FM, lambda p: fm.load_fm(p)),
    "fmfilelist": (FMLIST, lambda p: fm.load_fmfilelist(p)),
    "oeminput": (OEMINPUT, lambda p: oeminput.load(p)),
    "devicelayout": (LAYOUT, lambda p: layout.load_device_layout(p)),
    "devicelayout-bytes": (LAYOUT, lambda p: layout.load_device_layout(p.read_bytes(), "x.xml")),
    "oemdeviceplatform": (PLATFORM, lambda p: layout.load_device_platform(p)),
    "bcd": (BCD, lambda p: bcd.parse_document(p)),
    "package-project": (WM, lambda p: project.load(p)),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("attack", ["entity-bomb", "external-entity", "parameter-entity", "external-dtd"])
def test_xml_attacks_in_every_reader(tmp_path, reader, attack):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    doc, load = READERS[reader]
    root_tag = doc.split()[0][1:]
    dtd = {
        "entity-bomb": BOMB_DTD.replace("DOCTYPE x", f"DOCTYPE {root_tag}"),
        "external-entity": _xxe_dtd(secret).replace("DOCTYPE x", f"DOCTYPE {root_tag}"),
        "parameter-entity": f'<!DOCTYPE {root_tag} [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
        "external-dtd": f'<!DOCTYPE {root_tag} SYSTEM "file://{secret}">',
    }[attack]
    f = tmp_path / "doc.xml"
    f.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + dtd + "\n" + doc)
    with pytest.raises(FFUError) as exc:
        load(f)
    text = str(exc.value)
    assert "TOPSECRET" not in text and "\n" not in text
    assert "DOCTYPE" in text or "malformed XML" in text, text


def test_huge_xml_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(xmlsafe, "MAX_XML_BYTES", 1000)
    f = tmp_path / "big.xml"
    f.write_text("<a>" + "x" * 5000 + "</a>")
    with pytest.raises(FFUError, match="larger than 1000 bytes"):
        xmlsafe.parse_file(f)


def test_deeply_nested_xml_is_an_ffuerror(tmp_path):
    f = tmp_path / "deep.xml"
    f.write_text("<a>" * 100_000 + "</a>" * 100_000)
    with pytest.raises(FFUError, match="nested deeper than 256 levels"):
        project.load(f)


def _inside(doc: str, inner: str) -> str:
    """`inner` as the first content of the document's root element."""
    if doc.endswith("/>"):
        tag = doc.split()[0][1:]
        return doc[:-2] + ">" + inner + f"</{tag}>"
    cut = doc.index(">") + 1
    return doc[:cut] + inner + doc[cut:]


HUGE = {  # what libxml2 stops without XML_PARSE_HUGE, and the words we use for it
    "text-node": ("x" * 10_000_001, "a text node is longer than 10000000 bytes"),
    "attribute": ('<z a="' + "x" * 10_000_001 + '"/>', "an attribute value, CDATA section"),
    "cdata": ("<![CDATA[" + "x" * 10_000_001 + "]]>", "an attribute value, CDATA section"),
    "name": ("<" + "z" * 50_001 + "/>", "an element or attribute name is longer than 50000"),
    "depth": ("<z>" * 300 + "</z>" * 300, "elements are nested deeper than 256 levels"),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("trick", sorted(HUGE))
def test_huge_node_tricks_get_our_message_in_every_reader(tmp_path, reader, trick):
    """libxml2's own message suggests XML_PARSE_HUGE, which no user can set: ours names the limit."""
    doc, load = READERS[reader]
    inner, words = HUGE[trick]
    f = tmp_path / "doc.xml"
    f.write_text(_inside(doc, inner))
    with pytest.raises(FFUError) as exc:
        load(f)
    text = str(exc.value)
    assert words in text and "XML_PARSE_HUGE" not in text and "\n" not in text, text
    assert re.match(r"^\S*(doc|x)\.xml:1: ", text), text


UNKNOWN_ATTRIBUTE = {  # reader -> (document with one misspelt attribute, expected message)
    "fm": (FM.replace("<FeatureManifest ", '<FeatureManifest Revison="1" '), "did you mean Revision?"),
    "fmfilelist": (FMLIST.replace('Product="', 'Prodcut="'), "did you mean Product?"),
    "oeminput": (OEMINPUT.replace("<SOC>", '<SOC Value="x">'), "unknown attribute Value= on <SOC>"),
    "devicelayout": (LAYOUT.replace("<SectorSize>", '<SectorSize Bytes="1">'), "unknown attribute Bytes="),
    "devicelayout-bytes": (
        LAYOUT.replace("<Partitions/>", '<Partitions Count="1"/>'),
        "unknown attribute Count=",
    ),
    "oemdeviceplatform": (PLATFORM.replace("<MinSectorCount>", '<MinSectorCount Unit="s">'), "Unit="),
    "package-project": (WM.replace('name="P"', 'name="P" legacyNmae="x"'), "did you mean legacyName?"),
}


@pytest.mark.parametrize("reader", sorted(UNKNOWN_ATTRIBUTE))
def test_unknown_attributes_in_every_schema(tmp_path, reader):
    doc, expected = UNKNOWN_ATTRIBUTE[reader]
    f = tmp_path / "doc.xml"
    f.write_text(doc)
    with pytest.raises(FFUError) as exc:
        READERS[reader][1](f)
    assert expected in str(exc.value), str(exc.value)
    assert re.match(r"^\S*(doc|x)\.xml:1: ", str(exc.value)), str(exc.value)


@pytest.mark.parametrize("reader", sorted(UNKNOWN_ATTRIBUTE))
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_cr_only_line_ends_give_the_right_line(tmp_path, reader, encoding):
    """Classic Mac line ends: the mistake on line 3 is reported on line 3, not line 1."""
    doc, expected = UNKNOWN_ATTRIBUTE[reader]
    f = tmp_path / "doc.xml"
    f.write_bytes(f'<?xml version="1.0" encoding="{encoding}"?>\r<!-- one -->\r{doc}'.encode(encoding))
    with pytest.raises(FFUError) as exc:
        READERS[reader][1](f)
    assert expected in str(exc.value) and ":3: " in str(exc.value), str(exc.value)


# ------------------------------------------------------------------ names that become paths


@pytest.mark.parametrize("name", ["../../escaped", "..", "/etc/escaped", "a\\b", ".hidden", "a/b", ""])
def test_partition_names_cannot_name_paths(name):
    doc = (
        '<DeviceLayout xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"><Partitions><Partition>'
        f"<Name>{name}</Name><Type>{{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}}</Type><TotalSectors>64</TotalSectors>"
        "</Partition></Partitions><SectorSize>512</SectorSize></DeviceLayout>"
    )
    with pytest.raises(FFUError, match=r"partition name|<Name>|Name"):
        layout.load_device_layout(doc.encode(), "DeviceLayout.xml")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
@pytest.mark.parametrize("reader", ["xml", "inf", "hive", "ffu"])
def test_readers_refuse_non_regular_files_without_blocking(tmp_path, kind, reader):
    from ffuforge.formats import ffu, hive
    from ffuforge.package import inf

    p = tmp_path / "input"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "directory":
        p.mkdir()
    else:
        os.symlink("/dev/zero", p)
    load = {"xml": xmlsafe.parse_file, "inf": inf.parse_inf, "hive": hive.read_hive, "ffu": ffu.FfuReader}[
        reader
    ]
    with pytest.raises(FFUError, match="not a regular file|is a directory"):
        load(p)
