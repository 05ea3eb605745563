"""Driver store folder, SYSTEM\\DriverDatabase entries and the dual_<inf> driver manifest."""

import hashlib
from datetime import UTC, datetime

import pytest
from lxml import etree

from ffuforge.errors import ConfigError
from ffuforge.package import cbs, driverstore
from ffuforge.package.build import BuildSettings, build_variant
from ffuforge.package.inf import import_driver, parse_inf_text
from ffuforge.package.infinstall import install_registry

from helpers import plan, wm

DB = driverstore.DATABASE
ASM = "{urn:schemas-microsoft-com:asm.v3}"

INF = r"""[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %Mfg%
CatalogFile = x.cat
DriverVer   = 11/01/2012,1.0.0.0
BootCritical = 1

[Manufacturer]
%StdMfg% = Std,NTarm64

[Std.NTarm64]
%X.DevDesc% = X_Inst, Root\XKmdfDriver, ACPI\COMPAT0
"Literal name" = Y_Inst, ACPI\Y0001

[X_Inst.NT]
CopyFiles = Drv
AddReg = X_Driver_AddReg
FeatureScore = 0x80

[X_Inst.NT.HW]
AddReg = X_Hw_AddReg

[X_Inst.NT.Services]
AddService = XKmdfDriver, 0x00000002, X_Svc

[Y_Inst.NT]
CopyFiles = Drv

[X_Svc]
ServiceType   = 1
StartType     = 1
ErrorControl  = 1
ServiceBinary = %12%\XKmdfDriver.sys

[X_Driver_AddReg]
HKR,,"*JumboPacket",0x00000000,"1514"
HKR,Sub,Level,0x00010001,3

[X_Hw_AddReg]
HKR,,Security,,"D:P(A;;GA;;;SY)"

[Drv]
XKmdfDriver.sys

[DestinationDirs]
DefaultDestDir = 12

[SourceDisksNames]
1 = %Disk%,,,""

[SourceDisksFiles]
XKmdfDriver.sys = 1

[Strings]
Mfg = "Microsoft"
StdMfg = "Standard Devices"
X.DevDesc = "X KMDF Driver"
Disk = "Disk"
"""


def sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def test_folder_name_is_our_documented_hash():
    inf, cat = b"[Version]\r\n", b"0\x82catalog"
    expected = hashlib.sha256(inf + cat).hexdigest()[:16]
    assert driverstore.folder_name("XKmdfDriver.INF", "arm", inf, cat) == f"xkmdfdriver.inf_arm_{expected}"
    # content matters (Microsoft's walk-through: a new DriverVer gives a new folder), the name does not
    assert driverstore.folder_name("x.inf", "arm", inf + b";", cat) != driverstore.folder_name(
        "x.inf", "arm", inf, cat
    )
    assert driverstore.folder_name("x.inf", "arm64", inf).endswith(hashlib.sha256(inf).hexdigest()[:16])


def test_version_bytes_match_microsofts_example():
    """drivers.md §3.3/§6: XKmdfDriver, System class, DriverVer 11/01/2012,1.0.0.0."""
    data = driverstore.version_bytes("{4d36e97d-e325-11ce-bfc1-08002be10318}", "11/01/2012,1.0.0.0")
    assert len(data) == 48
    assert data[:8] == bytes.fromhex("ffff050000000000")
    assert data[8:24] == bytes.fromhex("7de9364d25e3ce11bfc108002be10318")
    assert data[24:32] == bytes.fromhex("0040f9d5c3b7cd01")  # the document's FILETIME
    assert data[32:40] == bytes.fromhex("0000000000000100")
    assert data[40:] == bytes(8)
    packed = driverstore.version_bytes(None, "1/2/2020,10.2.3.4")[32:40]
    assert int.from_bytes(packed, "little") == (10 << 48) | (2 << 32) | (3 << 16) | 4


def test_filetime_of_the_epoch():
    # 2020-01-01 00:00 UTC, independently: days since 1601 times 864e9 (100 ns units per day)
    days = (datetime(2020, 1, 1, tzinfo=UTC) - datetime(1601, 1, 1, tzinfo=UTC)).days
    assert driverstore.filetime(1577836800) == (days * 864_000_000_000).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("DriverVer = 13/45/2012,1.0.0.0", "DriverVer date '13/45/2012'"),
        ("DriverVer = 11/01/2012,1.0.70000.0", "DriverVer version '1.0.70000.0'"),
        ("ClassGuid = {not-a-guid}", "ClassGuid '{not-a-guid}'"),
    ],
)
def test_bad_version_lines_name_the_inf_line(line, fragment):
    key = line.split("=")[0].strip()
    text = "\n".join(line if ln.startswith(key) else ln for ln in INF.splitlines())
    inf = parse_inf_text(text, "x.inf")
    imp = import_driver(inf, "arm64")
    with pytest.raises(ConfigError) as exc:
        driverstore.database(inf, imp, install_registry(inf, imp, "x.inf"), "x.inf", "x.inf_arm64_0", None)
    lineno = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(key))
    assert str(exc.value).startswith(f"x.inf:{lineno}: {fragment}")


def _database(folder: str = "x.inf_arm64_0011223344556677") -> dict[tuple[str, str], tuple[int, bytes]]:
    inf = parse_inf_text(INF, "XKmdfDriver.inf")
    imp = import_driver(inf, "arm64")
    reg = install_registry(inf, imp, "XKmdfDriver.inf")
    values = driverstore.database(inf, imp, reg, "XKmdfDriver.inf", folder, "x.cat")
    return {(v.key, v.name): (v.data.type, v.data.data) for v in values}


def test_database_keys_follow_microsofts_layout():
    folder = "x.inf_arm64_0011223344556677"
    db = _database(folder)
    infs = rf"{DB}\DriverInfFiles\XKmdfDriver.inf"
    assert db[(infs, "")] == (7, sz(folder) + b"\0\0")
    assert db[(infs, "Active")] == (1, sz(folder))
    assert db[(infs, "Configurations")] == (7, sz("X_Inst.NT") + sz("Y_Inst.NT") + b"\0\0")
    pkg = rf"{DB}\DriverPackages\{folder}"
    assert db[(pkg, "")] == (1, sz("XKmdfDriver.inf"))
    assert db[(pkg, "InfName")] == (1, sz("XKmdfDriver.inf"))
    assert db[(pkg, "Provider")] == (1, sz("Microsoft"))
    assert db[(pkg, "SignerName")] == (1, sz(""))
    assert db[(pkg, "SignerScore")] == (4, (0x0D000003).to_bytes(4, "little"))
    assert db[(pkg, "Catalog")] == (1, sz("x.cat"))
    assert db[(pkg, "BootCritical")] == (4, (1).to_bytes(4, "little"))
    assert db[(pkg, "Version")][1][24:32] == bytes.fromhex("0040f9d5c3b7cd01")
    conf = rf"{pkg}\Configurations\X_Inst.NT"
    assert db[(conf, "Service")] == (1, sz("XKmdfDriver"))
    assert db[(conf, "ConfigFlags")] == (4, bytes(4))
    assert (rf"{pkg}\Configurations\Y_Inst.NT", "Service") not in db  # no associated service
    # the device keys' HKR values (DDInstall -> Driver, .HW -> Device), never Enum or Class\NNNN
    assert db[(rf"{conf}\Driver", "*JumboPacket")] == (1, sz("1514"))
    assert db[(rf"{conf}\Driver\Sub", "Level")] == (4, (3).to_bytes(4, "little"))
    assert db[(rf"{conf}\Device", "Security")] == (1, sz("D:P(A;;GA;;;SY)"))
    desc = rf"{pkg}\Descriptors\Root\XKmdfDriver"
    assert db[(desc, "Configuration")] == (1, sz("X_Inst.NT"))
    assert db[(desc, "Description")] == (1, sz("%x.devdesc%"))
    assert db[(desc, "Manufacturer")] == (1, sz("%StdMfg%"))
    assert db[(rf"{pkg}\Descriptors\ACPI\Y0001", "Description")] == (1, sz("Literal name"))
    assert db[(rf"{pkg}\Strings", "x.devdesc")] == (1, sz("X KMDF Driver"))
    assert db[(rf"{pkg}\Strings", "stdmfg")] == (1, sz("Standard Devices"))
    # DeviceIds: hardware ID 01, compatible ID 02, byte 1 the FeatureScore (0xFF by default)
    assert db[(rf"{DB}\DeviceIds\Root\XKmdfDriver", "XKmdfDriver.inf")] == (3, bytes([1, 0x80, 0, 0]))
    assert db[(rf"{DB}\DeviceIds\ACPI\COMPAT0", "XKmdfDriver.inf")] == (3, bytes([2, 0x80, 0, 0]))
    assert db[(rf"{DB}\DeviceIds\ACPI\Y0001", "XKmdfDriver.inf")] == (3, bytes([1, 0xFF, 0, 0]))
    guid = rf"{DB}\DeviceIds\{{4d36e97d-e325-11ce-bfc1-08002be10318}}"
    assert db[(guid, "XKmdfDriver.inf")] == (0, b"")
    assert not any("\\Enum\\" in k or "\\Control\\Class\\" in k for k, _ in db)


def _uart_project(tmp_path, catalog: bytes | None = None):
    (tmp_path / "x.inf").write_text(INF.replace("XKmdfDriver.sys", "x.sys").replace("\n", "\r\n"))
    (tmp_path / "x.sys").write_bytes(b"not a PE, just bytes")
    if catalog is not None:
        (tmp_path / "x.cat").write_bytes(catalog)
    return wm(tmp_path, '<drivers><driver><inf source="x.inf"/></driver></drivers>')


def test_the_store_folder_holds_inf_catalog_and_files(tmp_path):
    p = _uart_project(tmp_path, catalog=b"0\x82cat")
    v = plan(p)[0]
    folder = driverstore.folder_name("x.inf", "arm64", (tmp_path / "x.inf").read_bytes(), b"0\x82cat")
    assert v.drivers[0].folder == folder
    store = rf"$(runtime.system32)\DriverStore\FileRepository\{folder}"
    paths = {x.device_path for x in v.payload}
    assert {rf"{store}\x.inf", rf"{store}\x.cat", rf"{store}\x.sys", r"$(runtime.inf)\x.inf"} <= paths
    # the same folder name wherever it appears
    active = next(r for r in v.registry if r.name == "Active")
    assert active.data.data == sz(folder)
    # without the catalog file the folder holds none and the name hashes the INF alone
    (tmp_path / "x.cat").unlink()
    v = plan(p)[0]
    assert v.drivers[0].folder.endswith(hashlib.sha256((tmp_path / "x.inf").read_bytes()).hexdigest()[:16])
    assert not any(x.name == "x.cat" for x in v.payload)
    assert not any(r.name == "Catalog" for r in v.registry)


def test_dual_manifest_and_update_mum_driver_entry(tmp_path):
    v = plan(_uart_project(tmp_path))[0]
    out = tmp_path / "out" / v.cab_name
    build_variant(v, out, BuildSettings(epoch=1577836800))
    from ffuforge.formats.cab import CabReader

    with CabReader(out) as cab:
        members = {m.name: cab.read(m, 1 << 20) for m in cab.members}
    dual = [n for n in members if n.startswith("arm64_dual_x.inf_") and n.endswith(".manifest")]
    assert len(dual) == 1
    root = etree.fromstring(members[dual[0]])
    ident = root.find(f"{ASM}assemblyIdentity")
    assert ident.get("name") == "dual_x.inf"
    assert (ident.get("type"), ident.get("versionScope")) == ("dualModeDriver", "nonSxS")
    assert [c.tag for c in root].count(f"{ASM}deployment") == 1
    assert len(root.find(f"{ASM}deployment")) == 0
    inf_files = [f for f in root.findall(f"{ASM}file") if f.find(f"{ASM}infFile") is not None]
    assert [(f.get("name"), f.get("destinationPath")) for f in inf_files] == [("x.inf", "$(runtime.inf)\\")]
    keys = {k.get("keyName") for k in root.iter(f"{ASM}registryKey")}
    assert r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\XKmdfDriver" in keys
    assert any(k.startswith(rf"{DB}\DriverPackages\x.inf_arm64_") for k in keys)
    date = [r.get("value") for r in root.iter(f"{ASM}registryValue") if r.get("name") == "ImportDate"]
    assert date == [driverstore.filetime(1577836800).hex().upper()]
    # the component manifest no longer carries the driver's files or registry
    comp = next(n for n in members if n.endswith(".manifest") and "-component_" in n)
    assert b"x.sys" not in members[comp] and b"DriverDatabase" not in members[comp]
    mum = etree.fromstring(members["update.mum"])
    drivers = list(mum.iter(f"{ASM}driver"))
    assert [(d.get("inf"), d.get("ranking")) for d in drivers] == [("x.inf", "normal")]
    child = drivers[0].find(f"{ASM}assemblyIdentity")
    assert dict(child.attrib) == dict(ident.attrib)
    update = drivers[0].getparent()
    assert update.get("restart") == "required" and len(update.get("name")) == 32
    assert cbs.driver_identity(v, "x.inf")["type"] == "dualModeDriver"


def test_run_from_driver_store_files_live_only_in_the_store(tmp_path):
    """DIRID 13: no System32\\drivers copy; ImagePath points into the package's folder (drivers.md §4.1)."""
    text = INF.replace("DefaultDestDir = 12", "DefaultDestDir = 13").replace(r"%12%\XKmdfDriver", r"%13%\x")
    (tmp_path / "x.inf").write_text(text.replace("XKmdfDriver.sys", "x.sys"))
    (tmp_path / "x.sys").write_bytes(b"driver bytes")
    v = plan(wm(tmp_path, '<drivers><driver><inf source="x.inf"/></driver></drivers>'))[0]
    folder = v.drivers[0].folder
    assert [x.device_path for x in v.payload if x.name == "x.sys"] == [
        rf"$(runtime.system32)\DriverStore\FileRepository\{folder}\x.sys"
    ]
    image = next(r for r in v.registry if r.name == "ImagePath")
    assert image.data.data == sz(rf"\SystemRoot\System32\DriverStore\FileRepository\{folder}\x.sys")


def test_corpus_infs_get_a_database_entry(corpus):
    """Every real INF that installs on an architecture gets DriverInfFiles, a package with its ClassGuid
    in Version, and a DeviceIds key per model hardware ID."""
    from ffuforge.package.inf import parse_inf

    infs = sorted(corpus.rglob("*.inf"), key=str)
    done = 0
    for path in infs:
        inf = parse_inf(path, path.name)
        for arch in ("arm", "arm64", "x86", "amd64"):
            try:
                imp = import_driver(inf, arch)
                reg = install_registry(inf, imp, path.name)
            except ConfigError:
                continue  # no models for this architecture
            folder = driverstore.folder_name(path.name, arch, path.read_bytes())
            db = {
                (v.key, v.name): v.data for v in driverstore.database(inf, imp, reg, path.name, folder, None)
            }
            assert db[(rf"{DB}\DriverInfFiles\{path.name}", "Active")].data == sz(folder)
            version = db[(rf"{DB}\DriverPackages\{folder}", "Version")].data
            guid = driverstore.version_bytes(imp.class_guid, None)[8:24]
            assert version[8:24] == guid and len(version) == 48
            for model in imp.models:
                assert (rf"{DB}\DeviceIds\{model.ids[0]}", path.name) in db
            done += 1
    assert done >= len(infs)
