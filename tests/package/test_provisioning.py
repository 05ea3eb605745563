"""Provisioning packages: customizations.xml checked and classified, the .ppkg tree and metadata
against public values, the container read by wimlib-imagex, 7z and file(1), the kit's corpus."""

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from ffuforge.errors import ConfigError
from ffuforge.package.provisioning import approute, compiler, customizations, ppkg

# craysiii/PackageStack PackageStack.Common/Enums/SettingsGroup.cs (GUIDs icd.exe writes), with
# the schema path each one is the uuid5 of.
PACKAGESTACK_GROUPS = {
    "Accounts/Azure": "641c3728-5623-544a-9144-976a2dbf3ca9",
    "Accounts/ComputerAccount": "f35dd173-1c3e-5f2b-a3a4-29b602842b09",
    "Accounts/Users/User": "316e2a31-250a-5f09-a0e1-d2e5c6b03559",
    "ConnectivityProfiles/WLAN/WLANSetting/WLANConfig": "ac17da61-38b8-5bb9-bdaf-7436ac4eb133",
    "OOBE/Desktop/HideOobe": "b786dbf1-ec31-5be5-aa49-934e4489fae9",
    "OOBE/Desktop/EnableCortanaVoice": "2f06d211-95c0-5efd-a257-d6085f324283",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/CommandFile": "1348d3d6-134b-5eb8-8f89-96c44bf9aa0b",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/CommandLine": "56ccb8ff-b5f2-5806-a504-ab9091876608",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/ContinueInstall": "290f8b72-c400-5dc4-8e56-b98df699071a",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/DependencyPackages/Dependency": "0fb42616-94a6-5da8-b711-fd15131232e9",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/RestartRequired": "0a0302fe-0203-5635-8005-2878eac632cd",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/ReturnCodeRestart": "0c1ffbe1-4777-5325-afb2-61bfeee42220",
    "ProvisioningCommands/PrimaryContext/Command/CommandConfig/ReturnCodeSuccess": "370d2f73-b454-5319-b1b1-ad5dcb6c1e42",
}
# A data-asset folder in an ICD-built package (wmetcalf/ppkg_happiness README.md) has this form.
ASSET_FOLDER_RE = re.compile(r"^\d+_[A-Za-z0-9+.]{43}=$")

HEAD = """<?xml version="1.0" encoding="utf-8"?>
<WindowsCustomizations>
  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">
    <ID>{6d25ff81-23ed-4d35-968f-3fc2408ceac7}</ID>
    <Name>TestProv</Name>
    <Version>1.2.0.0</Version>
    <OwnerType>OEM</OwnerType>
    <Rank>0</Rank>
  </PackageConfig>
  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">
    <Customizations>
      <Common>
"""
TAIL = """      </Common>
    </Customizations>
  </Settings>
</WindowsCustomizations>
"""
COMPILABLE = """        <Accounts><ComputerAccount><ComputerName>iot-%RAND:4%</ComputerName></ComputerAccount></Accounts>
        <ProvisioningCommands><PrimaryContext><Command>
          <CommandConfig Name="a">
            <CommandFile>setup.cmd</CommandFile>
            <CommandLine>cmd /c setup.cmd</CommandLine>
            <DependencyPackages><Dependency Name="d">data.bin</Dependency></DependencyPackages>
            <ContinueInstall>True</ContinueInstall>
            <ReturnCodeSuccess>0</ReturnCodeSuccess>
          </CommandConfig>
          <CommandConfig Name="b"><CommandLine>cmd /c echo b</CommandLine></CommandConfig>
        </Command></PrimaryContext></ProvisioningCommands>
"""


def _cust(tmp_path: Path, body: str) -> customizations.Customizations:
    f = tmp_path / "customizations.xml"
    f.write_text(HEAD + body + TAIL)
    (tmp_path / "setup.cmd").write_bytes(b"@echo off\r\n")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 512)
    return customizations.load(f, "customizations.xml")


def test_settings_groups_are_icds():
    for path, guid in PACKAGESTACK_GROUPS.items():
        assert compiler.settings_group(path) == guid, path


def test_tree_files_metadata_and_groups(tmp_path):
    c = _cust(tmp_path, COMPILABLE)
    t = compiler.compile_tree(c)
    for name, data in t.files.items():
        if name.endswith((".xml", ".provxml")):
            assert data.startswith(b"\xef\xbb\xbf"), name
            etree.fromstring(data[3:])  # well-formed
    runtime = etree.fromstring(t.files["Multivariant/0/Prov/RunTime.xml"][3:])
    sets = [(s.get("SettingsGroup"), s.get("Data")) for s in runtime]
    provxml = sorted(n for n in t.files if n.endswith(".provxml"))
    assert (
        sorted(d.replace("$(_prov)\\RunTime\\", "Multivariant/0/Prov/RunTime/") for _, d in sets) == provxml
    )
    groups = [g for g, _ in sets]
    cl = PACKAGESTACK_GROUPS["ProvisioningCommands/PrimaryContext/Command/CommandConfig/CommandLine"]
    assert groups[0] == PACKAGESTACK_GROUPS["Accounts/ComputerAccount"]
    assert groups.count(cl) == 1 and f"{cl}_0" in groups  # the second command's line: PackageStack's suffix
    assert [int(d.split("\\")[-1].split("__")[0]) for _, d in sets] == list(range(len(sets)))
    domain = etree.fromstring(t.files[provxml[0]][3:])
    assert domain.xpath("//characteristic[@type='Domain']/parm/@value") == ["iot-%RAND:4%"]
    assert domain.xpath("//characteristic[@type='ForceSettingReload']/parm/@value") == ["1"]
    assets = [n for n in t.files if n.startswith("DataAsset/") and not n.endswith("DataAsset.xml")]
    assert {n.split("/")[1] for n in assets} == {"2", "3"}
    for n in assets:
        assert ASSET_FOLDER_RE.match(n.split("/")[2]), n
    data = (tmp_path / "data.bin").read_bytes()
    assert compiler.asset_folder(1, data) in "".join(assets)
    da = etree.fromstring(t.files["DataAsset/DataAsset.xml"][3:])
    assert [e.get("Index") for e in da] == ["2", "3"]
    assert da[1][1].get("Value") == "/ProvisioningCommands/PrimaryContext/Command/0/DependencyPackages/0"
    assert t.properties == {
        "VERSION": "1.2.0.0",
        "ALTITUDE": "2000",
        "RESETCLEAR": "0",
        "PACKAGEID": "{6d25ff81-23ed-4d35-968f-3fc2408ceac7}",
        "NOTES": "VERSION=10.0.17134.1;Source=CLI;;TargetSkus=WindowsCommon,Athens;EncryptPackage=False;"
        "SignPackage=False;PackageID=6d25ff81-23ed-4d35-968f-3fc2408ceac7;",
    }
    assert t.name == "TestProv"


TOOLS = ("wimlib-imagex", "7z", "file")


@pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason="wimlib-imagex, 7z and file needed")
def test_container_read_by_independent_tools(tmp_path):
    c = _cust(tmp_path, COMPILABLE)
    t = compiler.compile_tree(c)
    out = tmp_path / "out" / "Test.ppkg"
    ppkg.write_ppkg(t, out, 1577836800)
    info = subprocess.run(
        ["wimlib-imagex", "info", str(out), "1"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^Name:\s+TestProv$", info, re.M)
    xml_file = tmp_path / "wim.xml"
    subprocess.run(["wimlib-imagex", "info", str(out), "--extract-xml", str(xml_file)], check=True)
    image = etree.fromstring(xml_file.read_bytes().decode("utf-16").encode()).find("IMAGE")
    assert image.get("INDEX") == "1"
    assert {k: image.findtext(k) for k in t.properties} == t.properties
    header = subprocess.run(
        ["wimlib-imagex", "info", "--header", str(out)], capture_output=True, text=True
    ).stdout
    assert "RP_FIX" in header and "COMPRESS_XPRESS" in header
    listing = subprocess.run(["7z", "l", "-slt", str(out)], capture_output=True, text=True, check=True).stdout
    listed = {m for m in re.findall(r"^Path = (.+)$", listing, re.M)}
    assert set(t.files) <= {p.replace("\\", "/") for p in listed}
    x = tmp_path / "x"
    subprocess.run(["7z", "x", f"-o{x}", str(out)], capture_output=True, check=True)
    for name, data in t.files.items():
        assert (x / name).read_bytes() == data, name
    kind = subprocess.run(["file", "-b", str(out)], capture_output=True, text=True).stdout
    assert "Windows provisioning package" in kind and "XPRESS" in kind
    again = tmp_path / "again.ppkg"
    ppkg.write_ppkg(compiler.compile_tree(c), again, 1577836800)
    assert again.read_bytes() == out.read_bytes()


APP = """        <Policies><ApplicationManagement><AllowAllTrustedApps>Yes</AllowAllTrustedApps></ApplicationManagement></Policies>
        <Certificates><RootCertificates><RootCertificate CertificateName="AB" Name="x">
          <CertificatePath>x.cer</CertificatePath></RootCertificate></RootCertificates></Certificates>
        <StartupApp><Default>A_1!App</Default></StartupApp>
        <UniversalAppInstall><UserContextApp><Application PackageFamilyName="A_1" Name="A_1">
          <ApplicationFile>A.appx</ApplicationFile>
          <DependencyAppxFiles><Dependency Name="d.appx">d.appx</Dependency></DependencyAppxFiles>
          <DeploymentOptions>Force target application shutdown</DeploymentOptions>
        </Application></UserContextApp></UniversalAppInstall>
"""


def test_app_settings_are_not_compiled_and_take_the_script_route(tmp_path):
    c = _cust(tmp_path, APP)
    assert {s.route for s in c.settings} == {"script"}
    with pytest.raises(ConfigError, match=r"^customizations.xml:\d+: setting not supported: Policies/") as e:
        compiler.compile_tree(c)
    for name in (
        "AllowAllTrustedApps",
        "RootCertificate",
        "StartupApp/Default",
        "UserContextApp/Application",
    ):
        assert name in str(e.value)
    assert "\n" not in str(e.value)
    t = compiler.compile_tree(c, script_routed=True)  # another target installs them: an empty package
    assert t.compiled == [] and len(etree.fromstring(t.files["Multivariant/0/Prov/RunTime.xml"][3:])) == 0
    route = approute.plan_route(c)
    script = route.scripts["AppInstall.cmd"].decode()
    order = [
        "AllowAllTrustedApps /t REG_DWORD /d 1",
        'certmgr.exe -add "%HERE%x.cer" -r localMachine -s root',
        'deployappx.exe install "%HERE%d.appx"',
        'deployappx.exe install force "%HERE%A.appx"',
        "iotstartup.exe add headed A_1!App",
        'echo installed> "%MARKER%"',
    ]
    assert [script.index(s) for s in order] == sorted(script.index(s) for s in order)
    assert "installed-1.2.0.0.txt" in script and "\r\n" in script
    assert sorted(route.files) == ["A.appx", "d.appx", "x.cer"]
    assert approute.HOOK.encode() in route.scripts["OEMCustomization.cmd"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "<Accounts><ComputerAccount><Nick>x</Nick></ComputerAccount></Accounts>",
            "unknown element <Nick> in Accounts/ComputerAccount",
        ),
        ("<StartupApp><Default>NoBang</Default></StartupApp>", "must be <family name>!<app id>"),
        ("<Accounts><ComputerAccount/></Accounts>", "needs <ComputerName>"),
    ],
)
def test_bad_settings(tmp_path, body, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        _cust(tmp_path, body)
    assert re.match(r"customizations.xml:\d+: ", str(e.value))


def test_bad_package_config(tmp_path):
    f = tmp_path / "customizations.xml"
    for old, new, message in [
        ("{6d25ff81-23ed-4d35-968f-3fc2408ceac7}", "nope", "is not a GUID"),
        ("<Version>1.2.0.0</Version>", "<Version>1.2</Version>", "must be four numbers"),
        ("<OwnerType>OEM</OwnerType>", "<OwnerType>Vendor</OwnerType>", "is not one of"),
        (
            "<Rank>0</Rank>",
            "<Rank>0</Rank><Colour>red</Colour>",
            "unknown element <Colour> in <PackageConfig>",
        ),
        ("<Common>", "<Targets>", "not supported; keep settings in <Common>"),
    ]:
        f.write_text(
            (HEAD + TAIL)
            .replace(old, new)
            .replace("</Common>", "</Targets>" if new == "<Targets>" else "</Common>")
        )
        with pytest.raises(ConfigError, match=re.escape(message)):
            customizations.load(f, "customizations.xml")


def test_missing_file_is_one_line(tmp_path):
    c = _cust(tmp_path, COMPILABLE)
    (tmp_path / "data.bin").unlink()
    with pytest.raises(
        ConfigError, match=r"^customizations.xml:\d+: Dependency data.bin: .*put the file beside"
    ):
        compiler.compile_tree(c)


KIT = "addonkit/17134"
APPX_UNKNOWN = {
    "Policies/ApplicationManagement/AllowAllTrustedApps",
    "Certificates/RootCertificates/RootCertificate",
    "UniversalAppInstall/UserContextApp/Application",
}


def _unsupported(c) -> set[str]:
    with pytest.raises(ConfigError, match="setting not supported") as e:
        compiler.compile_tree(c)
    return set(re.findall(r"([A-Za-z/]+) \(line \d+\)", str(e.value)))


def test_corpus_appx_projects(corpus):
    """The kit's Appx projects: every setting is an app setting (documented as not public), so the
    .ppkg route names exactly those; the AppInstall route takes them all."""
    found = sorted((corpus / KIT).glob("Source-*/Packages/Appx.*/customizations.xml"))
    assert len(found) >= 5
    for f in found:
        c = customizations.load(f, str(f.relative_to(corpus)))
        startup = {"StartupApp/Default", "StartupBackgroundTasks/ToAdd/Add"} & {s.path for s in c.settings}
        assert len(startup) == 1, f
        assert _unsupported(c) == APPX_UNKNOWN | startup, f
        route = approute.plan_route(c)
        assert set(route.settings) == APPX_UNKNOWN | startup
        assert (
            any(n.endswith(".cer") for n in route.files)
            and sum(n.endswith(".appx") for n in route.files) == 4
        )


def test_corpus_product_provisioning(corpus):
    """Products/*/prov: ComputerName compiles; the policies (their CSP form is not public) are named."""
    found = sorted((corpus / KIT).glob("Source-arm/Products/*/prov/customizations.xml"))
    assert len(found) == 8
    for f in found:
        c = customizations.load(f, str(f.relative_to(corpus)))
        leaves = set(
            re.findall(
                r"<(Allow\w+)>", re.sub(r"<!--.*?-->", "", f.read_text(encoding="utf-8-sig"), flags=re.S)
            )
        )
        want = {p for p in leaves}
        got = _unsupported(c)
        assert {p.rsplit("/", 1)[-1] for p in got} == want, f
        assert [s.path for s in c.by_route("ppkg")] == (
            ["Accounts/ComputerAccount"]
            if "<ComputerAccount>" in re.sub(r"<!--.*?-->", "", f.read_text(encoding="utf-8-sig"), flags=re.S)
            else []
        )
        without = customizations.parse(
            re.sub(rb"<Policies>.*?</Policies>", b"", f.read_bytes(), flags=re.S), f.name, f.parent
        )
        t = compiler.compile_tree(without)
        assert t.properties["PACKAGEID"] == "{" + str(uuid.UUID(c.package_id)) + "}"


def test_corpus_enroll_and_certs(corpus):
    enroll = corpus / "addonkit/17134/Common/Packages/Provisioning.Enroll/customizations.xml"
    assert _unsupported(customizations.load(enroll, "Enroll")) == {
        "Workplace/Enrollments/UPN/AuthPolicy",
        "Workplace/Enrollments/UPN/Secret",
    }
    certs = corpus / "addonkit/17763-v7/Workspace/Common/Packages/Appx.Certs/customizations.xml"
    c = customizations.load(certs, "Appx.Certs")  # an ID without braces, as that kit writes it
    assert c.package_id == "fd231401-5ad4-401f-b2dd-653aa1c1b55d"
    assert _unsupported(c) == {"Certificates/RootCertificates/RootCertificate"}
