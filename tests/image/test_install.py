"""Installing package CABs into a partition tree: files, registry, services, collisions."""

import hashlib

import pytest

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.image import install
from ffuforge.package.build import build_variant

from helpers import plan, wm


def _cab(tmp_path, body, name="Pkg", extra=""):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "a.txt").write_text(f"a from {name}\n")
    v = plan(wm(d, body, name=name, extra=extra))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def test_files_registry_and_services(tmp_path):
    cab = _cab(
        tmp_path,
        (
            '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)\\sub"/></files>'
            '<regKeys><regKey keyName="$(hklm.software)\\Contoso"><regValue name="n" type="REG_MULTI_SZ" value="x;y"/>'
            '<regValue name="b" type="REG_BINARY" value="0102"/><regValue name="q" type="REG_QWORD" value="00000000000000FF"/>'
            '</regKey><regKey keyName="$(hklm.system)\\Empty"/></regKeys>'
            '<service name="Svc" start="delayedAuto" type="win32ShareProcess" errorControl="critical" '
            'imagePath="$(runtime.system32)\\svchost.exe -k x" dependOnService="a;b">'
            '<failureActions resetPeriod="INFINITE"><actions><action type="restartService" delay="1000"/></actions>'
            "</failureActions></service>"
        ),
    )
    st = install.Staging("MainOS", tmp_path / "root")
    info = install.install_package(st, cab)
    assert info.name == "Contoso-Test-Pkg" and info.partition == "MainOS"
    staged = tmp_path / "root/Windows/System32/sub/a.txt"
    assert staged.read_text() == "a from Pkg\n"
    f = st.files["windows\\system32\\sub\\a.txt"]
    assert f.sha256 == hashlib.sha256(staged.read_bytes()).hexdigest() and f.package == "Contoso-Test-Pkg"
    vals = {(v.key.split("\\")[-1], v.name): v for v in st.values.values()}
    assert vals[("Contoso", "n")].data == "x\0y\0\0".encode("utf-16-le")
    assert vals[("Contoso", "b")].data == b"\x01\x02" and vals[("Contoso", "b")].type == 3
    assert vals[("Contoso", "q")].data == (255).to_bytes(8, "little")
    assert vals[("Svc", "Start")].data == (2).to_bytes(4, "little")
    assert vals[("Svc", "DelayedAutostart")].data == (1).to_bytes(4, "little")
    assert vals[("Svc", "Type")].data == (0x20).to_bytes(4, "little")
    assert vals[("Svc", "ErrorControl")].data == (3).to_bytes(4, "little")
    assert vals[("Svc", "ImagePath")].type == 2
    assert vals[("Svc", "ImagePath")].data.decode("utf-16-le") == "%SystemRoot%\\System32\\svchost.exe -k x\0"
    assert vals[("Svc", "DependOnService")].data == "a\0b\0\0".encode("utf-16-le")
    blob = vals[("Svc", "FailureActions")].data
    assert blob[:4] == b"\xff\xff\xff\xff" and int.from_bytes(blob[12:16], "little") == 1
    assert blob[20:28] == (1).to_bytes(4, "little") + (1000).to_bytes(4, "little")
    assert "hkey_local_machine\\system\\empty" in st.keys
    m = st.manifest()
    assert m["files"][0]["package"] == "Contoso-Test-Pkg"
    assert any(p.endswith(".mum") for p in (x["path"] for x in m["files"]))


def test_collisions_name_both_packages(tmp_path):
    a = _cab(tmp_path, '<files><file source=".\\a.txt"/></files>', name="A")
    b = _cab(tmp_path, '<files><file source=".\\a.txt"/></files>', name="B")
    st = install.Staging("MainOS", tmp_path / "root")
    install.install_package(st, a)
    with pytest.raises(FFUError, match=r"installed by both Contoso-Test-A and Contoso-Test-B"):
        install.install_package(st, b)
    c = _cab(
        tmp_path,
        '<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="v" type="REG_SZ" value="1"/>'
        "</regKey></regKeys>",
        name="C",
    )
    d = _cab(
        tmp_path,
        '<regKeys><regKey keyName="$(HKLM.SOFTWARE)\\k"><regValue name="V" type="REG_SZ" value="2"/>'
        "</regKey></regKeys>",
        name="D",
    )
    st2 = install.Staging("MainOS", tmp_path / "root2")
    install.install_package(st2, c)
    with pytest.raises(FFUError, match=r"set by both Contoso-Test-C and Contoso-Test-D"):
        install.install_package(st2, d)


def test_wrong_partition_and_not_cbs(tmp_path):
    cab = _cab(
        tmp_path, '<onecorePackageInfo targetPartition="EFIESP"/><files><file source=".\\a.txt"/></files>'
    )
    with pytest.raises(FFUError, match="targets partition EFIESP, not MainOS"):
        install.install_package(install.Staging("MainOS", tmp_path / "r"), cab)
    from ffuforge.formats.cab import CabMember, write_cab

    plain = tmp_path / "plain.cab"
    write_cab(plain, [CabMember("x.txt", data=b"x")])
    with pytest.raises(FFUError, match="not a CBS package"):
        install.read_package_info(plain)


def test_binary_partition_and_bcd_are_set_aside(tmp_path):
    d = tmp_path / "fw"
    d.mkdir()
    (d / "fw.bin").write_bytes(b"\x01" * 5000)
    v = plan(
        wm(
            d,
            '<onecorePackageInfo targetPartition="BOOTLOADER" binaryPartition="true">'
            '<binaryPartition imageSource=".\\fw.bin"/></onecorePackageInfo>',
        )
    )[0]
    build_variant(v, tmp_path / "fw.cab")
    st = install.Staging("BOOTLOADER", tmp_path / "bl")
    install.install_package(st, tmp_path / "fw.cab")
    assert st.raw_image[0].read_bytes() == b"\x01" * 5000 and not st.files
    with pytest.raises(FFUError, match="raw image from both"):
        install.install_package(st, tmp_path / "fw.cab")


def test_error_kinds(tmp_path):
    from ffuforge.formats.cab import CabMember, write_cab

    plain = tmp_path / "plain.cab"
    write_cab(plain, [CabMember("x.txt", data=b"x")])
    with pytest.raises(FormatError, match="not a CBS package"):
        install.read_package_info(plain)
    with pytest.raises(FormatError, match="unknown device path macro"):
        install.device_to_relative("$(runtime.nosuchplace)\\x.dll", "update.mum")
    a = _cab(tmp_path, '<files><file source=".\\a.txt"/></files>', name="A")
    b = _cab(tmp_path, '<files><file source=".\\a.txt"/></files>', name="B")
    st = install.Staging("MainOS", tmp_path / "root")
    install.install_package(st, a)
    with pytest.raises(ConfigError, match="installed by both"):
        install.install_package(st, b)
    with pytest.raises(ConfigError, match="targets partition MainOS, not EFIESP"):
        install.install_package(install.Staging("EFIESP", tmp_path / "efi"), a)
