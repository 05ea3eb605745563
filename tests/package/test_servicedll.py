"""Legacy pkg.xml <ServiceDll>: the DLL is copied like a file and registered as svchost reads it.

The oracle for the values is Windows' documented svchost layout (ImagePath `svchost.exe -k <group>`,
`Services\\<name>\\Parameters\\ServiceDll` REG_EXPAND_SZ, the group's REG_MULTI_SZ under
`SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\SvcHost`), read back from the installed hives'
values, not from our writer's tables."""

import pytest

from ffuforge.errors import ConfigError
from ffuforge.image import install
from ffuforge.package import project
from ffuforge.package.build import build_variant

from helpers import plan

PKG = """<?xml version="1.0" encoding="utf-8"?>
<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00" Owner="Contoso" Component="Svc" SubComponent="Dll" OwnerType="OEM" ReleaseType="Production" Platform="$(BSPARCH)">
  <Components>
    <Service Name="ContosoSvc" Start="Auto" Type="Win32ShareProcess" ErrorControl="Normal" {svc_attrs}>
      <ServiceDll Source="contososvc.dll" {dll_attrs}/>
    </Service>
  </Components>
</Package>
"""


def _project(tmp_path, svc_attrs='SvcHostGroupName="ContosoGroup"', dll_attrs=""):
    (tmp_path / "contososvc.dll").write_bytes(b"not a PE, a payload\n")
    path = tmp_path / "Svc.pkg.xml"
    path.write_text(PKG.format(svc_attrs=svc_attrs, dll_attrs=dll_attrs))
    return path


def _installed(tmp_path, path):
    v = plan(path)[0]
    cab = tmp_path / "cabs" / v.cab_name
    build_variant(v, cab)
    st = install.Staging("MainOS", tmp_path / "root")
    install.install_package(st, cab)
    return st, {(val.key.lower(), val.name): val for val in st.values.values()}


def _text(val) -> str:
    return val.data.decode("utf-16-le").rstrip("\0")


SERVICES = r"hkey_local_machine\system\controlset001\services\contososvc"


def test_service_dll_copied_and_registered(tmp_path):
    st, vals = _installed(tmp_path, _project(tmp_path))
    assert (tmp_path / "root/Windows/System32/contososvc.dll").read_bytes() == b"not a PE, a payload\n"
    dll = vals[(SERVICES + r"\parameters", "ServiceDll")]
    assert dll.type == 2 and _text(dll) == r"%SystemRoot%\System32\contososvc.dll"
    image = vals[(SERVICES, "ImagePath")]
    assert image.type == 2 and _text(image) == r"%SystemRoot%\System32\svchost.exe -k ContosoGroup"
    assert vals[(SERVICES, "Type")].data == (0x20).to_bytes(4, "little")
    group = vals[(r"hkey_local_machine\software\microsoft\windows nt\currentversion\svchost", "ContosoGroup")]
    assert group.type == 7 and group.data == "ContosoSvc\0\0".encode("utf-16-le")


def test_service_dll_destination_name_and_host(tmp_path):
    path = _project(
        tmp_path,
        svc_attrs="",
        dll_attrs='DestinationDir="$(runtime.system32)\\Contoso" Name="svc.dll" HostExe="$(runtime.system32)\\host.exe"',
    )
    st, vals = _installed(tmp_path, path)
    assert (tmp_path / "root/Windows/System32/Contoso/svc.dll").exists()
    assert _text(vals[(SERVICES + r"\parameters", "ServiceDll")]) == r"%SystemRoot%\System32\Contoso\svc.dll"
    assert _text(vals[(SERVICES, "ImagePath")]) == r"%SystemRoot%\System32\host.exe"


def test_service_dll_needs_a_group_or_host(tmp_path):
    with pytest.raises(ConfigError, match=r"Svc.pkg.xml:5: <ServiceDll> needs SvcHostGroupName"):
        project.load(_project(tmp_path, svc_attrs=""), "Svc.pkg.xml")


def test_service_dll_and_executable_are_exclusive(tmp_path):
    path = _project(tmp_path)
    path.write_text(path.read_text().replace("<ServiceDll", '<Executable Source="x.exe"/><ServiceDll'))
    with pytest.raises(ConfigError, match="one <Executable> or <ServiceDll>"):
        project.load(path, "Svc.pkg.xml")


def test_missing_service_dll_is_reported(tmp_path):
    path = _project(tmp_path)
    (tmp_path / "contososvc.dll").unlink()
    with pytest.raises(ConfigError, match=r"Svc.pkg.xml:5: source file contososvc.dll does not exist"):
        plan(path)
