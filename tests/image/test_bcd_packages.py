"""BCD packages in Microsoft's form (HKEY_LOCAL_MACHINE\\BCD registry values in an EFIESP component
manifest), merged with our bcdStore XML, and `ffuforge bcd dump` on the result: read back by our
hive reader and, independently, by hivexregedit."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats import fsimage, hive
from ffuforge.formats.bcd.dump import describe_store
from ffuforge.formats.bcd.schema import GPT_PARTITION_IDS
from ffuforge.image import partition
from ffuforge.package.build import build_variant

from helpers import plan, wm
from oracles import needs

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 1577836800
BOOTMGR = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
LOADER = "{7619dcc9-fafe-11d9-b411-000476eba25f}"
DISK = uuid.UUID("AE420040-13DD-41F2-AE7F-0DC35854C8D7")
MAINOS = uuid.UUID("A76B8CE2-0187-4C13-8FCA-8651C9B0620A")  # ImgGen's fixed MainOS ID


def gpt_device(part: uuid.UUID) -> bytes:
    """A GPT PartitionEx device element, laid out by hand from the documented structure (options GUID,
    boot device header type 6 / size 72, partition GUID, hard-disk id: block-io 0, style GPT 0, disk)."""
    hd = struct_pack(0, 0) + DISK.bytes_le
    return bytes(16) + struct_pack(6, 0, 72, 0) + part.bytes_le + hd.ljust(40, b"\0")


def struct_pack(*ints: int) -> bytes:
    return b"".join(i.to_bytes(4, "little") for i in ints)


def reg(key: str, name: str, type_: str, value: str) -> str:
    return f'<regKey keyName="$(hklm.bcd)\\{key}"><regValue name="{name}" type="{type_}" value="{value}"/></regKey>'


def ms_package(tmp_path, name: str, regs: list[str], target: str = "EFIESP"):
    d = tmp_path / name
    d.mkdir()
    body = f'<onecorePackageInfo targetPartition="{target}"/><regKeys>{"".join(regs)}</regKeys>'
    v = plan(wm(d, body, name=name))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def xml_package(tmp_path, name: str, elements: str):
    d = tmp_path / name
    d.mkdir()
    (d / "b.xml").write_text(
        '<?xml version="1.0"?><BootConfigurationDatabase xmlns="http://schemas.microsoft.com/phone/2011/10/'
        'BootConfiguration" IncludeDescriptions="true" IncludeRegistryHeader="true"><Objects>'
        '<Object SaveKeyToRegistry="false"><FriendlyName>Windows Boot Manager</FriendlyName>'
        f"<Elements>{elements}</Elements></Object></Objects></BootConfigurationDatabase>"
    )
    body = '<onecorePackageInfo targetPartition="EFIESP"/><bcdStore source=".\\b.xml"/>'
    v = plan(wm(d, body, name=name))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def boolean(name: str, value: str) -> str:
    return (
        f"<Element><DataType><WellKnownType>{name}</WellKnownType></DataType>"
        f"<ValueType><BooleanValue>{value}</BooleanValue></ValueType></Element>"
    )


LOADER_REGS = [
    reg(f"Objects\\{LOADER}\\Description", "Type", "REG_DWORD", "0x10200003"),
    reg(f"Objects\\{LOADER}\\Elements\\12000004", "Element", "REG_SZ", "Windows IoT"),
    reg(f"Objects\\{LOADER}\\Elements\\22000002", "Element", "REG_SZ", "\\windows"),
    reg(f"Objects\\{LOADER}\\Elements\\21000001", "Element", "REG_BINARY", gpt_device(MAINOS).hex()),
    reg(f"Objects\\{LOADER}\\Elements\\25000021", "Element", "REG_BINARY", (1).to_bytes(8, "little").hex()),
    reg(f"Objects\\{BOOTMGR}\\Description", "Type", "REG_DWORD", "0x10100002"),
    reg(f"Objects\\{BOOTMGR}\\Elements\\23000003", "Element", "REG_SZ", LOADER),
    reg(f"Objects\\{BOOTMGR}\\Elements\\24000001", "Element", "REG_MULTI_SZ", LOADER),
    reg(f"Objects\\{BOOTMGR}\\Elements\\16000049", "Element", "REG_BINARY", "01"),
    reg("Description", "KeyName", "REG_SZ", "BCD00000000"),
]


def stage(tmp_path, cabs, name="EFIESP", where="stage"):
    ids = {"MainOS": "{" + str(MAINOS) + "}", "EFIESP": GPT_PARTITION_IDS["efiesp"]}
    return partition.stage(name, cabs, tmp_path / where, epoch=EPOCH, partition_ids=ids)


def test_microsoft_form_and_xml_meet_in_one_store(tmp_path):
    ms = ms_package(tmp_path, "MsBcd", LOADER_REGS)
    ours = xml_package(tmp_path, "OemBcd", boolean("Boot UX Progress Animation Disable", "true"))
    st = stage(tmp_path, [ms, ours])
    store_file = st.root / "EFI" / "Microsoft" / "Boot" / "BCD"
    assert st.files["efi\\microsoft\\boot\\bcd"].package == "Contoso-Test-MsBcd,Contoso-Test-OemBcd"
    got = describe_store(hive.read_hive(store_file))
    objs = {o["id"]: o for o in got["objects"]}
    assert got["description"] == {"KeyName": "BCD00000000", "System": 1, "TreatAsSystem": 1}
    assert set(objs) == {BOOTMGR, LOADER}
    mgr = {e["id"]: e["value"] for e in objs[BOOTMGR]["elements"]}
    assert objs[BOOTMGR]["name"] == "Windows Boot Manager" and objs[BOOTMGR]["type"] == "0x10100002"
    assert mgr == {
        "0x16000049": True,  # from the registry package
        "0x16000069": True,  # from the XML package
        "0x23000003": f"{LOADER} (Windows Loader)",
        "0x24000001": [f"{LOADER} (Windows Loader)"],
    }
    loader = {e["name"]: e["value"] for e in objs[LOADER]["elements"]}
    assert loader["Description"] == "Windows IoT" and loader["System Root"] == "\\windows"
    assert loader["PAE Policy"] == 1
    assert loader["OS Loader Type"] == {
        "kind": "gpt partition",
        "partition": "{" + str(MAINOS) + "}",
        "disk": "{" + str(DISK) + "}",
        "partition_name": "MainOS",
    }


@needs("hivexregedit")
def test_hivexregedit_reads_the_merged_store(tmp_path):
    ms = ms_package(tmp_path, "MsBcd", LOADER_REGS)
    ours = xml_package(tmp_path, "OemBcd", boolean("Boot UX Progress Animation Disable", "true"))
    st = stage(tmp_path, [ms, ours])
    text = subprocess.run(
        ["hivexregedit", "--export", str(st.root / "EFI/Microsoft/Boot/BCD"), "\\"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blocks = dict(re.findall(r"^\[\\(.*?)\]\n((?:\".*\n)*)", text, re.M))
    mgr = f"Objects\\{BOOTMGR}\\Elements"
    assert blocks[f"{mgr}\\16000049"].strip() == '"Element"=hex(3):01'
    assert blocks[f"{mgr}\\16000069"].strip() == '"Element"=hex(3):01'
    assert blocks[f"Objects\\{LOADER}\\Description"].strip() == '"Type"=dword:10200003'
    dev = blocks[f"Objects\\{LOADER}\\Elements\\21000001"].split("hex(3):", 1)[1].replace("\\\n", "")
    assert bytes.fromhex(re.sub(r"[\s,]", "", dev)) == gpt_device(MAINOS)


def test_conflicting_element_names_both_packages(tmp_path):
    ms = ms_package(tmp_path, "MsBcd", LOADER_REGS)
    ours = xml_package(tmp_path, "OemBcd", boolean("Allow Pre-release Signatures", "false"))
    with pytest.raises(ConfigError) as ei:
        stage(tmp_path, [ms, ours])
    msg = str(ei.value)
    assert "\n" not in msg
    assert "BCD element 0x16000049 (Allow Pre-release Signatures) of object" in msg
    assert "Contoso-Test-OemBcd (bcdStore XML)" in msg and "Contoso-Test-MsBcd" in msg
    # the same value from both is no conflict
    same = xml_package(tmp_path, "OemBcd2", boolean("Allow Pre-release Signatures", "true"))
    stage(tmp_path, [ms, same], where="stage2")


def test_two_registry_packages_conflict(tmp_path):
    a = ms_package(tmp_path, "A", LOADER_REGS)
    b = ms_package(
        tmp_path, "B", [reg(f"Objects\\{LOADER}\\Elements\\22000002", "Element", "REG_SZ", "\\other")]
    )
    with pytest.raises(ConfigError, match=r"Contoso-Test-A .* and Contoso-Test-B|set by both"):
        stage(tmp_path, [a, b])


@pytest.mark.parametrize(
    "regs, message",
    [
        (
            [
                reg(
                    "Objects\\{7619dcc9-fafe-11d9-b411-000476eba25f}\\Elements\\22000002",
                    "Element",
                    "REG_SZ",
                    "x",
                )
            ],
            "has no Description\\Type",
        ),
        ([reg("Extra", "X", "REG_DWORD", "1")], "is not part of a BCD store"),
        (
            [reg(f"Objects\\{LOADER}\\Elements\\22000002", "Value", "REG_SZ", "x")],
            "is not part of a BCD store",
        ),
        (
            [reg(f"Objects\\{LOADER}\\Elements\\2200002", "Element", "REG_SZ", "x")],
            "is not part of a BCD store",
        ),
        ([reg(f"Objects\\{LOADER}\\Description", "Type", "REG_SZ", "x")], "must be REG_DWORD"),
        ([reg("Description", "KeyName", "REG_SZ", "Other")], "set by both ffuforge (the store description)"),
    ],
)
def test_bad_registry_bcd(tmp_path, regs, message):
    cab = ms_package(tmp_path, "Bad", regs)
    with pytest.raises(ConfigError) as ei:
        stage(tmp_path, [cab])
    assert message in str(ei.value) and "Contoso-Test-Bad" in str(ei.value)


def test_bcd_registry_outside_efiesp_is_refused(tmp_path):
    cab = ms_package(tmp_path, "OnMain", LOADER_REGS[:1], target="MainOS")
    with pytest.raises(ConfigError, match="the BCD store lives on EFIESP"):
        stage(tmp_path, [cab], name="MainOS")


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "site_scons")}
    return subprocess.run(
        [sys.executable, "-m", "ffuforge", "bcd", "dump", *args], capture_output=True, text=True, env=env
    )


@needs("mcopy")
def test_dump_cli_on_store_and_fat_image(tmp_path):
    ms = ms_package(tmp_path, "MsBcd", LOADER_REGS)
    st = stage(tmp_path, [ms])
    store_file = st.root / "EFI" / "Microsoft" / "Boot" / "BCD"
    img = tmp_path / "EFIESP.img"
    fsimage.write_fat(st.root, img, size_bytes=32 << 20, label="EFIESP", timestamp=EPOCH)
    outs = []
    for src in (store_file, img):
        p = _cli(str(src))
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
        j = _cli("--json", str(src))
        assert json.loads(j.stdout) == describe_store(hive.read_hive(store_file))
    assert outs[0] == outs[1]
    text = outs[0]
    assert f"{LOADER}  Windows Loader  type 0x10200003" in text
    assert "OS Loader Type" in text and "partition_name=MainOS" in text
    assert "Allow Pre-release Signatures" in text and "true" in text
    bad = _cli(str(tmp_path / "cabs" / next(p.name for p in (tmp_path / "cabs").iterdir())))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a BCD store" in bad.stderr
