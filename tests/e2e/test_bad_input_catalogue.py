"""The bad-input catalogue: one case per user mistake, through the user's entry point.

Each case applies one mistake to a workspace — a one-package mini workspace for package-level
mistakes, one shared, already built copy of the sample for image-level ones — and runs real
`scons` (or the `ffuforge` CLI where that is the entry point). Every case must give:

* an exit status other than 0;
* exactly one error line (`scons: *** …` / `ffuforge: error: …`) that names the file, and the
  line where the input has lines (the `expect` pattern below);
* no Python traceback;
* no output for what failed (no `*.cab` for a package mistake, no `Flash.ffu` for an image
  mistake) and no temp or partial file anywhere under build/.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from scons_util import ROOT, copy_workspace
from signing_util import issue, rsa_key, write_cert, write_key

pytestmark = pytest.mark.e2e
SITE = ROOT / "site_scons"
UTC = datetime.UTC

# ----------------------------------------------------------------------------- workspaces

MINI_SCONSTRUCT = f"""
import json, os, sys
sys.path.insert(0, {str(SITE)!r})
from ffuforge import scons_tool
SConsignFile("build/.sconsign")
case = json.load(open("case.json")) if os.path.exists("case.json") else {{}}
kw = dict(FFU_CPU="arm64", FFU_LANGUAGES=["en-us"], FFU_VERSION="10.0.1.0", FFU_VARIABLES={{"OEMNAME": "Contoso"}})
kw.update(case.get("env", {{}}))
env = Environment(tools=[scons_tool.generate], **kw)
cabs = []
for project in sorted(Glob("pkg/*.wm.xml") + Glob("pkg/*.pkg.xml"), key=str):
    cabs += env.Package(project, **case.get("package", {{}}))
Default(cabs)
"""

# line 1: declaration, 2: identity, 3: package info, 4-6: files, 7: where a case adds its XML
MINI_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" namespace="T" name="P">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />
  <files>
    <file source=".\\a.txt" destinationDir="$(runtime.system32)" />
  </files>
  {extra}
</identity>
"""

INF = """; test driver
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {{4d36e97d-e325-11ce-bfc1-08002be10318}}
Provider    = Contoso
DriverVer   = 11/01/2026,10.0.0.0

[DestinationDirs]
DefaultDestDir = 12

[SourceDisksNames]
1 = Disk,,,""

[SourceDisksFiles]
d.sys = 1,,

[Manufacturer]
Contoso = {models}

[{models_section}]
Dev = Dev_Inst, ACPI\\CTSO0099

[Dev_Inst.NT]
CopyFiles = {copyfiles}

[Dev_Inst.CopyFiles]
d.sys
"""

DRIVER = '<drivers><driver defaultImportPath="."><inf source=".\\d.inf" /></driver></drivers>'


def _mini(dest: Path, extra: str = "") -> Path:
    (dest / "pkg").mkdir(parents=True)
    (dest / "SConstruct").write_text(MINI_SCONSTRUCT)
    shutil.copytree(ROOT / "testcerts", dest / "testcerts")
    (dest / "pkg/a.txt").write_text("a\n")
    (dest / "pkg/P.wm.xml").write_text(MINI_WM.format(extra=extra))
    return dest


OUT = "build/arm64/SampleA/Test"
FLASH = f"{OUT}/Flash.ffu"
OEMINPUT = "products/SampleA/TestOEMInput.xml"
OEMFM = "packages/OEMFM.xml"
LAYOUT = "bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/DeviceLayout.xml"
PLATFORM = "bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/OEMDevicePlatform.xml"
BCD = "packages/Custom.BCD/Custom.BCD.xml"
FMLIST = "packages/OEMFMFileList.xml"


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    where: str  # mini | sample | cli
    expect: str  # regex the single error line must match
    files: dict[str, object] = field(default_factory=dict)  # path -> text | bytes | callable(old) -> new
    extra: str = ""  # mini: XML added to pkg/P.wm.xml at line 7
    case: dict | None = None  # mini: case.json (env / package keywords)
    args: tuple[str, ...] = ()
    env: dict | None = None  # process environment additions
    absent: tuple[str, ...] = ()  # globs (relative to the workspace) that must match nothing
    setup: Callable[[Path, dict], None] | None = None
    cli: tuple[str, ...] = ()


def _sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, (old, text[:200])
        return text.replace(old, new, count)

    return edit


_BLDDIR = {"env": {"FFU_VARIABLES": {"OEMNAME": "Contoso", "BLDDIR": "#build/bld"}}}
_PPKG_PROJECT = _sub(
    '".\\a.txt" destinationDir="$(runtime.system32)"',
    '"$(BLDDIR)\\ppkgs\\P.ppkg" destinationDir="$(runtime.windows)\\Provisioning\\Packages"',
)
_APPINSTALL_PROJECT = _sub(
    '<file source=".\\a.txt" destinationDir="$(runtime.system32)" />',
    '<file source="$(BLDDIR)\\ppkgs\\P.appinstall\\AppInstall.cmd" destinationDir="$(runtime.systemDrive)\\AppInstall\\P" />'
    '<file source="$(BLDDIR)\\ppkgs\\P.appinstall\\nope.txt" destinationDir="$(runtime.systemDrive)\\AppInstall\\P" />',
)
# line 13 is the first setting line
_NFC = "<Policies><Connectivity><AllowNFC>1</AllowNFC></Connectivity></Policies>"
_TRUST = "<Policies><ApplicationManagement><AllowAllTrustedApps>Yes</AllowAllTrustedApps></ApplicationManagement></Policies>"
_COMMAND = (
    "<ProvisioningCommands><PrimaryContext><Command><CommandConfig Name='r'><CommandFile>run.cmd</CommandFile>"
    "<CommandLine>cmd /c run.cmd</CommandLine></CommandConfig></Command></PrimaryContext></ProvisioningCommands>"
)


def _customizations(settings: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<WindowsCustomizations>\n'
        '<PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">\n'
        "<ID>{6d25ff81-23ed-4d35-968f-3fc2408ceac7}</ID>\n<Name>P</Name>\n<Version>1.0.0.0</Version>\n"
        "<OwnerType>OEM</OwnerType>\n<Rank>0</Rank>\n</PackageConfig>\n"
        '<Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">\n<Customizations>\n<Common>\n'
        f"{settings}\n</Common>\n</Customizations>\n</Settings>\n</WindowsCustomizations>\n"
    )


def _fifo(ws: Path, _) -> None:
    os.mkfifo(ws / "pkg/a.txt.fifo")
    (ws / "pkg/a.txt").unlink()
    os.rename(ws / "pkg/a.txt.fifo", ws / "pkg/a.txt")


def _dir_payload(ws: Path, _) -> None:
    (ws / "pkg/a.txt").unlink()
    (ws / "pkg/a.txt").mkdir()


def _empty_payload(ws: Path, _) -> None:
    (ws / "pkg/empty.txt").write_bytes(b"")


def _driver(
    models: str = "Standard,NT$ARCH$",
    models_section: str = "Standard.NT$ARCH$",
    copyfiles: str = "Dev_Inst.CopyFiles",
):
    def setup(ws: Path, _) -> None:
        (ws / "pkg/d.sys").write_bytes(b"not a real driver, just bytes")
        (ws / "pkg/d.inf").write_text(
            INF.format(models=models, models_section=models_section, copyfiles=copyfiles)
        )

    return setup


SERVICE_INF = """
[Dev_Inst.NT.Services]
AddService = d, 0x00000002, Dev_Service

[Dev_Service]
ServiceType   = 1
StartType     = 3
ErrorControl  = 1
ServiceBinary = {binary}
"""


def _driver_inf(
    edit: Callable[[str], str] = lambda t: t, binary: str = r"%12%\d.sys", encoding: str = "utf-8"
):
    """The mini driver with a service, one mistake applied to its INF text and encoding."""

    def setup(ws: Path, _) -> None:
        (ws / "pkg/d.sys").write_bytes(b"not a real driver, just bytes")
        text = INF.format(
            models="Standard,NT$ARCH$", models_section="Standard.NT$ARCH$", copyfiles="Dev_Inst.CopyFiles"
        )
        text = edit(text + SERVICE_INF.format(binary=binary))
        (ws / "pkg/d.inf").write_bytes(text.replace("\n", "\r\n").encode(encoding))

    return setup


def _second_project(ws: Path, _) -> None:
    (ws / "pkg/Q.wm.xml").write_text(
        MINI_WM.format(extra="").replace('name="P"', 'name="P" legacyName="Contoso-T-P"')
    )


def _sign_key(kind: str):
    def setup(ws: Path, pki: dict) -> None:
        ws.joinpath("case.json").write_text(json.dumps({"env": pki[kind]}))

    return setup


CASES: list[Case] = [
    # --------------------------------------------------------------- package projects (mini workspace)
    Case("malformed-xml", "mini", r"pkg/P\.wm\.xml:8: malformed XML", extra="<files>"),
    Case(
        "element-outside-schema",
        "mini",
        r"pkg/P\.wm\.xml:7: <bogus> is not allowed inside <identity>",
        extra="<bogus/>",
    ),
    Case(
        "unimplemented-element",
        "mini",
        r"pkg/P\.wm\.xml:7: <accounts> is valid wm\.xml but ffuforge does "
        r"not implement it",
        extra="<accounts/>",
    ),
    Case(
        "undefined-macro",
        "mini",
        r"pkg/P\.wm\.xml:7: undefined macro \$\(UNDEFINED\)",
        extra='<files><file source="$(UNDEFINED)\\x.txt" /></files>',
    ),
    Case(
        "dotdot-destination",
        "mini",
        r"pkg/P\.wm\.xml:7: .*escapes its root directory with '\.\.'",
        extra='<files><file source=".\\a.txt" destinationDir="$(runtime.system32)\\..\\..\\..\\x" '
        'name="b.txt" /></files>',
    ),
    Case(
        "absolute-destination",
        "mini",
        r"pkg/P\.wm\.xml:7: destinationDir 'C:\\\\Windows' must start with a "
        r"device path macro",
        extra='<files><file source=".\\a.txt" destinationDir="C:\\Windows" /></files>',
    ),
    Case(
        "dotdot-source-name",
        "mini",
        r"pkg/P\.wm\.xml:7: .*(escapes|invalid|not a valid)",
        extra='<files><file source=".\\a.txt" destinationDir="$(runtime.system32)" name="..\\..\\evil.dll" />'
        "</files>",
    ),
    Case(
        "missing-source",
        "mini",
        r"pkg/P\.wm\.xml:7: source file pkg/missing\.bin does not exist",
        extra='<files><file source=".\\missing.bin" /></files>',
    ),
    # host files (#17 Deliver 3): every input resolves, after symbolic links, inside the workspace
    # or a declared SOURCE_ROOTS folder
    Case(
        "host-path-absolute",
        "mini",
        r'pkg/P\.wm\.xml:7: source "/etc/shadow" resolves to /etc/shadow, outside the workspace',
        extra='<files><file source="/etc/shadow" name="s.txt" /></files>',
        absent=("build/**/*.cab",),
    ),
    Case(
        "host-path-dotdot",
        "mini",
        r'pkg/P\.wm\.xml:7: source "(\.\.\\){24}etc\\shadow" resolves to /etc/shadow, outside',
        extra='<files><file source="' + "..\\" * 24 + 'etc\\shadow" name="s.txt" /></files>',
    ),
    Case(
        "host-path-symlink",
        "mini",
        r'pkg/P\.wm\.xml:7: source "\.\\link\.txt" resolves to /etc/passwd, outside the workspace',
        extra='<files><file source=".\\link.txt" /></files>',
        setup=lambda ws, _: (ws / "pkg/link.txt").symlink_to("/etc/passwd"),
    ),
    Case(
        "host-path-inf",
        "mini",
        r'pkg/P\.wm\.xml:7: source "/etc/hostname" resolves to /etc/hostname, outside',
        extra='<drivers><driver><inf source="/etc/hostname" /></driver></drivers>',
    ),
    Case(
        "host-path-symlinked-folder",
        "mini",
        r'pkg/P\.wm\.xml:7: source "\.\\etc\\passwd" resolves to /etc/passwd, outside',
        extra='<files><file source=".\\etc\\passwd" /></files>',
        setup=lambda ws, _: (ws / "pkg/etc").symlink_to("/etc"),
    ),
    Case(
        "host-path-undeclared-root",
        "mini",
        r'pkg/P\.wm\.xml:7: source "/etc/passwd" resolves to /etc/passwd, outside .*SOURCE_ROOTS',
        extra='<files><file source="/etc/passwd" /></files>',
        args=("SOURCE_ROOTS=/usr/share",),
    ),
    Case(
        "source-is-a-directory",
        "mini",
        r"pkg/P\.wm\.xml:5: source pkg/a\.txt is not a regular file",
        setup=_dir_payload,
    ),
    Case(
        "source-is-a-fifo", "mini", r"pkg/P\.wm\.xml:5: source pkg/a\.txt is not a regular file", setup=_fifo
    ),
    Case(
        "duplicate-destination",
        "mini",
        r"pkg/P\.wm\.xml:7: destination .*a\.txt is already used by",
        extra='<files><file source=".\\b.txt" destinationDir="$(runtime.system32)" name="a.txt" /></files>',
        setup=lambda ws, _: (ws / "pkg/b.txt").write_text("b\n"),
    ),
    Case(
        "zero-size-file",
        "mini",
        r"pkg/P\.wm\.xml:7: source file pkg/empty\.txt is empty",
        extra='<files><file source=".\\empty.txt" /></files>',
        setup=_empty_payload,
    ),
    Case(
        "invalid-file-name",
        "mini",
        r"pkg/P\.wm\.xml:7: file name 'a:b\.txt' is not a valid device file name",
        extra='<files><file source=".\\a.txt" name="a:b.txt" /></files>',
    ),
    Case(
        "regvalue-dword",
        "mini",
        r"pkg/P\.wm\.xml:7: .*REG_DWORD.*",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_DWORD" value="zz" />'
        "</regKey></regKeys>",
    ),
    Case(
        "regvalue-qword",
        "mini",
        r"pkg/P\.wm\.xml:7: .*REG_QWORD.*",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_QWORD" '
        'value="0x1FFFFFFFFFFFFFFFFF" /></regKey></regKeys>',
    ),
    Case(
        "regvalue-binary",
        "mini",
        r"pkg/P\.wm\.xml:7: .*REG_BINARY.*",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_BINARY" value="01G2" />'
        "</regKey></regKeys>",
    ),
    Case(
        "regvalue-type",
        "mini",
        r"pkg/P\.wm\.xml:7: .*REG_STRING.*",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_STRING" value="1" />'
        "</regKey></regKeys>",
    ),
    Case(
        "regkey-outside-registry-macros",
        "mini",
        r"pkg/P\.wm\.xml:7: keyName .* must start with a registry macro",
        extra='<regKeys><regKey keyName="HKEY_CURRENT_USER\\C"><regValue name="x" type="REG_SZ" value="1" />'
        "</regKey></regKeys>",
    ),
    Case(
        "multi-string-empty-item",
        "mini",
        r"pkg/P\.wm\.xml:7: REG_MULTI_SZ item 2 of 3 is empty; Windows ends the list at an empty string",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_MULTI_SZ" '
        'value="a;;b" /></regKey></regKeys>',
    ),
    Case(
        "append-on-a-string",
        "mini",
        r"pkg/P\.wm\.xml:7: operationHint='append' needs type REG_MULTI_SZ",
        extra='<regKeys><regKey keyName="$(hklm.svchost)"><regValue name="g" type="REG_SZ" value="a" '
        'operationHint="append" /></regKey></regKeys>',
    ),
    Case(
        "service-trigger-unknown-type",
        "mini",
        r"pkg/P\.wm\.xml:7: serviceTrigger type='OnBoot'",
        extra='<service name="S" start="demand" type="win32OwnProcess"><serviceTrigger action="start" '
        'type="OnBoot" subtype="DOMAIN_JOIN_GUID" /></service>',
    ),
    Case(
        "registry-value-twice",
        "mini",
        r"pkg/P\.wm\.xml:7: registry value .*x is set twice",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_SZ" value="1" />'
        '<regValue name="x" type="REG_SZ" value="2" /></regKey></regKeys>',
    ),
    Case(
        "undefined-security-descriptor",
        "mini",
        r"pkg/P\.wm\.xml:7: security descriptor 'NOPE' is not defined",
        extra='<regKeys><regKey keyName="$(hklm.software)\\C" securityDescriptor="NOPE">'
        '<regValue name="x" type="REG_SZ" value="1" /></regKey></regKeys>',
    ),
    Case(
        "unwritable-sddl",
        "mini",
        r"pkg/P\.wm\.xml:7: security descriptor 'X': .*object and conditional ACEs",
        extra="<trustInfo><security><accessControl><securityDescriptorDefinitions>"
        '<securityDescriptorDefinition name="X" sddl="D:(XA;;FA;;;WD)" />'
        "</securityDescriptorDefinitions></accessControl></security></trustInfo>",
    ),
    Case(
        "directory-that-is-a-root",
        "mini",
        r"pkg/P\.wm\.xml:7: directory .* is a root macro's own directory",
        extra='<directories><directory path="$(runtime.programData)" /></directories>',
    ),
    Case(
        "bad-buildfilter",
        "mini",
        r"pkg/P\.wm\.xml:7: .*invalid buildFilter",
        extra='<files buildFilter="build.arch = "><file source=".\\a.txt" name="b.txt" /></files>',
    ),
    Case(
        "bad-release-type",
        "mini",
        r"pkg/P\.wm\.xml:3: .*releaseType='Beta' is not valid",
        files={"pkg/P.wm.xml": _sub('releaseType="Production"', 'releaseType="Beta"')},
    ),
    Case(
        "bad-service-start",
        "mini",
        r"pkg/P\.wm\.xml:7: .*service start='sometimes'",
        extra='<service name="s" start="sometimes" type="win32OwnProcess" />',
    ),
    Case(
        "unfilled-template",
        "mini",
        r"pkg/P\.wm\.xml:2: .*unfilled template",
        files={
            "pkg/P.wm.xml": _sub('owner="Contoso" namespace="T" name="P"', 'owner="" namespace="" name=""')
        },
    ),
    Case(
        "not-a-package-project",
        "mini",
        r"pkg/P\.wm\.xml(:\d+)?: .*is not a package project",
        files={
            "pkg/P.wm.xml": '<?xml version="1.0"?>\n<FeatureManifest '
            'xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate" />\n'
        },
    ),
    Case(
        "entity-bomb",
        "mini",
        r"pkg/P\.wm\.xml:1: DOCTYPE/DTD declarations are not allowed",
        files={
            "pkg/P.wm.xml": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b '
            '"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
            + MINI_WM.split("\n", 1)[1].replace('owner="Contoso"', 'owner="&c;"')
        },
    ),
    Case(
        "external-entity",
        "mini",
        r"pkg/P\.wm\.xml:\d+: (DOCTYPE/DTD declarations are not allowed|malformed XML: "
        r"Attribute references external entity 's')",
        files={
            "pkg/P.wm.xml": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY s SYSTEM "file:///etc/passwd">]>\n'
            + MINI_WM.split("\n", 1)[1].replace('name="P"', 'name="&s;"')
        },
    ),
    Case(
        "missing-inf",
        "mini",
        r"pkg/P\.wm\.xml:7: driver INF .*nope\.inf does not exist",
        extra='<drivers><driver defaultImportPath="."><inf source=".\\nope.inf" /></driver></drivers>',
    ),
    Case(
        "inf-without-arch-decoration",
        "mini",
        r"pkg/d\.inf:\d+: .*(arm64|decorat)",
        extra=DRIVER,
        setup=_driver(models="Standard", models_section="Standard"),
    ),
    Case(
        "inf-copyfiles-to-missing-section",
        "mini",
        r"pkg/d\.inf:\d+: CopyFiles in \[Dev_Inst\.NT\] references "
        r"\[Nowhere\], which does not exist",
        extra=DRIVER,
        setup=_driver(copyfiles="Nowhere"),
    ),
    Case(
        "inf-without-version-section",
        "mini",
        r"pkg/d\.inf:1: INF has no \[Version\] section",
        extra=DRIVER,
        setup=_driver_inf(lambda t: t.replace("[Version]", "[Versions]")),
    ),
    Case(
        "inf-utf16-without-bom",
        "mini",
        r"pkg/d\.inf:1: INF is UTF-16-LE without a byte-order mark",
        extra=DRIVER,
        setup=_driver_inf(encoding="utf-16-le"),
    ),
    Case(
        "inf-no-models-for-cpu",
        "mini",
        r"pkg/d\.inf:19: \[Manufacturer\] has no models section for arm64 \(decorations: NTamd64\)",
        extra=DRIVER,
        setup=_driver_inf(lambda t: t.replace("NT$ARCH$", "NTamd64")),
    ),
    Case(
        "inf-needs-a-section-nowhere",
        "mini",
        r"pkg/d\.inf:\d+: \[Dev_Inst\.NT\] Needs \[Nowhere\], which is neither in this INF nor in its "
        r"included INFs \(helper\.inf\)",
        extra=DRIVER,
        setup=lambda ws, case: (
            (ws / "pkg/helper.inf").write_text('[Version]\r\nSignature="$WINDOWS NT$"\r\n'),
            _driver_inf(_sub("[Dev_Inst.NT]\n", "[Dev_Inst.NT]\nInclude = helper.inf\nNeeds = Nowhere\n"))(
                ws, case
            ),
        ),
    ),
    Case(
        "inf-include-is-a-path",
        "mini",
        r"pkg/d\.inf:\d+: Include '\.\.\\\\x\.inf' is not a plain INF file name",
        extra=DRIVER,
        setup=_driver_inf(_sub("[Dev_Inst.NT]\n", "[Dev_Inst.NT]\nInclude = ..\\x.inf\nNeeds = X\n")),
    ),
    Case(
        "inf-service-binary-outside-dirids",
        "mini",
        r"pkg/d\.inf:\d+: ServiceBinary 'C:\\\\drivers\\\\d\.sys' in \[Dev_Service\] is not below a DIRID",
        extra=DRIVER,
        setup=_driver_inf(binary=r"C:\drivers\d.sys"),
    ),
    Case(
        "two-projects-one-cab",
        "mini",
        r"pkg/Q\.wm\.xml: package Contoso-T-P\.cab is also built from pkg/P\.wm\.xml",
        setup=_second_project,
    ),
    Case(
        "unknown-cpu",
        "mini",
        r"FFU_CPU='mips'; use one of arm, arm64, x86, amd64",
        case={"env": {"FFU_CPU": "mips"}},
    ),
    Case(
        "bad-version",
        "mini",
        r"VERSION='1\.2\.3' must be four numbers",
        case={"env": {"FFU_VERSION": "1.2.3"}},
    ),
    Case(
        "bad-language",
        "mini",
        r"language 'english' is not a culture name",
        case={"env": {"FFU_LANGUAGES": ["english"]}},
    ),
    Case(
        "bad-compression",
        "mini",
        r"COMPRESSION='lzx'; use none or mszip",
        case={"package": {"COMPRESSION": "lzx"}},
    ),
    Case(
        "bad-source-date-epoch",
        "mini",
        r"SOURCE_DATE_EPOCH='yesterday' is not an integer",
        env={"SOURCE_DATE_EPOCH": "yesterday"},
    ),
    Case(
        "buildwow-on-32-bit",
        "mini",
        r"pkg/P\.wm\.xml:\d+: buildWow=\"true\" needs a 64-bit CPU",
        files={"pkg/P.wm.xml": _sub("<identity ", '<identity buildWow="true" ')},
        case={"env": {"FFU_CPU": "arm"}},
    ),
    # ------------------------------------------------------------------------------ signing (mini)
    Case(
        "sign-wrong-password",
        "mini",
        r"oem\.pfx: .*wrong password",
        setup=_sign_key("pfx"),
        env={"FFU_SIGN_PASSWORD": "not-the-password"},
    ),
    Case("sign-expired-certificate", "mini", r"expired\.crt: .*has expired", setup=_sign_key("expired")),
    Case("sign-no-code-signing-eku", "mini", r"noeku\.crt: .*Code Signing", setup=_sign_key("noeku")),
    Case("sign-missing-chain", "mini", r"leaf\.crt: .*is missing", setup=_sign_key("nochain")),
    Case("sign-missing-certificate-file", "mini", r"nope\.crt: cannot read", setup=_sign_key("nofile")),
    Case("sign-command-fails", "mini", r"signing command 'false' failed", setup=_sign_key("command")),
    # --------------------------------------------------------------------- images (the sample workspace)
    Case(
        "retail-without-certificate",
        "sample",
        r"CONFIG=Retail needs your own code-signing certificate",
        args=("CONFIG=Retail",),
    ),
    Case(
        "unknown-product", "sample", r"products/Nope/TestOEMInput\.xml does not exist", args=("PRODUCT=Nope",)
    ),
    Case("unknown-config", "sample", r"CONFIG='Beta'; use one of Test, Retail", args=("CONFIG=Beta",)),
    Case(
        "unknown-cpu-option", "sample", r"CPU='mips'; use one of arm, arm64, x86, amd64", args=("CPU=mips",)
    ),
    Case("unknown-variable", "sample", r"unknown variable\(s\): PRODCUT", args=("PRODCUT=SampleA",)),
    Case("bad-bool-option", "sample", r"RAW='maybe' is not a yes/no value", args=("RAW=maybe",)),
    Case(
        "bad-source-date-epoch-option",
        "sample",
        r"SOURCE_DATE_EPOCH='1\.5e9' is not an integer",
        args=("SOURCE_DATE_EPOCH=1.5e9",),
    ),
    Case(
        "append-to-a-value-set-as-string",
        "sample",
        r"Contoso\.Services\.Heartbeat\.cab:[^:]+\.manifest: registry value .*ContosoGroup: "
        r"Contoso\.Services\.Heartbeat appends REG_MULTI_SZ items to it, but Contoso\.Registry\.Settings sets it as REG_SZ",
        files={
            "packages/Registry.Settings/Registry.Settings.wm.xml": _sub(
                'type="REG_MULTI_SZ" value="ContosoSettings" operationHint="append"',
                'type="REG_SZ" value="ContosoSettings"',
            )
        },
    ),
    Case(
        "two-packages-one-key-two-descriptors",
        "sample",
        r"Contoso\.(Custom\.Files|Registry\.Settings)\.cab:[^:]+\.manifest: registry key "
        r"HKEY_LOCAL_MACHINE\\Software\\Contoso\\Provisioning gets security descriptor '[^']+' from "
        r"Contoso\.(Custom\.Files|Registry\.Settings) and '[^']+' from Contoso\.(Custom\.Files|Registry\.Settings)",
        files={
            "packages/Registry.Settings/Registry.Settings.wm.xml": lambda text: text.replace(
                '<regKey keyName="$(hklm.software)\\$(OEMNAME)\\Vendor&amp;Id" >',
                '<regKey keyName="$(hklm.software)\\$(OEMNAME)\\Provisioning" securityDescriptor="OPEN">',
            ).replace(
                "</identity>",
                "<trustInfo><security><accessControl><securityDescriptorDefinitions>"
                '<securityDescriptorDefinition name="OPEN" sddl="O:BAG:SYD:(A;CI;KA;;;WD)" />'
                "</securityDescriptorDefinitions></accessControl></security></trustInfo></identity>",
            )
        },
    ),
    Case(
        "unknown-feature",
        "sample",
        rf"{OEMINPUT}:\d+: .*HEARTBEET",
        files={OEMINPUT: _sub("<Feature>Heartbeat</Feature>", "<Feature>HEARTBEET</Feature>")},
    ),
    Case(
        "feature-in-two-exclusive-groups",
        "sample",
        rf"{OEMINPUT}(:\d+)?: .*(OEM_HEARTBEAT_LITE|OEM_Heartbeat)",
        files={
            OEMINPUT: _sub(
                "<Feature>Heartbeat</Feature>",
                "<Feature>Heartbeat</Feature>\n      <Feature>HEARTBEAT_LITE</Feature>",
            ),
            OEMFM: _sub(
                "</OEM>",
                '<PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.COM.Sample.cab">'
                "<FeatureIDs><FeatureID>OEM_HEARTBEAT_LITE</FeatureID></FeatureIDs>"
                "</PackageFile></OEM>",
            ),
        },
    ),
    Case(
        "oeminput-missing-soc",
        "sample",
        rf"{OEMINPUT}(:\d+)?: .*SOC",
        files={OEMINPUT: _sub("<SOC>ContosoBoard</SOC>", "")},
    ),
    Case(
        "oeminput-malformed",
        "sample",
        rf"{OEMINPUT}:\d+: malformed XML",
        files={OEMINPUT: _sub("<SOC>ContosoBoard</SOC>", "<SOC>ContosoBoard</Soc>")},
    ),
    Case(
        "oeminput-entity-bomb",
        "sample",
        rf"{OEMINPUT}:1: DOCTYPE/DTD declarations are not allowed",
        files={
            OEMINPUT: _sub(
                '<?xml version="1.0" encoding="utf-8"?>',
                '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE x [<!ENTITY a "aaaa">]>',
            )
        },
    ),
    Case(
        "updateos-package-name-not-allowed",
        "sample",
        r"bsp/ContosoBoard/Packages/ContosoBoardFM\.xml:7: package Contoso\.HalExtensions\.UpdateOS "
        r"\(Contoso\.HalExtensions\.UpdateOS\.cab\) targets UpdateOS, which takes non-Microsoft packages "
        r"only named SV\.PlatExtensions\.UpdateOS, .*; rename it \(legacyName\) or target MainOS",
        files={
            "bsp/ContosoBoard/Packages/SV.PlatExtensions.UpdateOS/SV.PlatExtensions.UpdateOS.wm.xml": _sub(
                'legacyName="SV.PlatExtensions.UpdateOS"', 'legacyName="Contoso.HalExtensions.UpdateOS"'
            ),
            "bsp/ContosoBoard/Packages/ContosoBoardFM.xml": _sub(
                'Name="SV.PlatExtensions.UpdateOS.cab"', 'Name="Contoso.HalExtensions.UpdateOS.cab"'
            ),
        },
    ),
    Case(
        "fm-missing-cab",
        "sample",
        rf"{OEMFM}:\d+: .*Contoso\.Nope\.cab",
        files={
            OEMFM: _sub(
                "<BasePackages>",
                '<BasePackages>\n    <PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Nope.cab" />',
            )
        },
    ),
    Case(
        "fm-malformed", "sample", rf"{OEMFM}:\d+: malformed XML", files={OEMFM: _sub("</BasePackages>", "")}
    ),
    Case(
        "fm-that-is-not-an-fm",
        "sample",
        rf"{OEMFM}(:\d+)?: .*(FeatureManifest|not a feature manifest)",
        files={OEMFM: (ROOT / "packages/Custom.Files/Custom.Files.wm.xml").read_text()},
    ),
    Case(
        "fmfilelist-names-missing-fm",
        "sample",
        rf"{FMLIST}:\d+: .*Nope\.xml",
        files={
            FMLIST: _sub(
                "<FM ",
                '<FM ID="NOPE" Path="$(FMDirectory)\\Nope.xml" ReleaseType="Production" '
                'OwnerName="OEM_NAME" OwnerType="OEM" CPUType="CPU_TYPE" />\n    <FM ',
            )
        },
    ),
    Case(
        "layout-below-min-sector-count",
        "sample",
        r"OEMDevicePlatform\.xml:3: the layout does not fit the disk.*"
        r"MinSectorCount 65536 is too small",
        files={
            PLATFORM: _sub(
                "<MinSectorCount>15269888</MinSectorCount>", "<MinSectorCount>65536</MinSectorCount>"
            )
        },
    ),
    Case(
        "content-larger-than-fixed-partition",
        "sample",
        r"BOOTLOADER.*(larger|does not fit|too small|sectors)",
        files={LAYOUT: _sub("<TotalSectors>8126</TotalSectors>", "<TotalSectors>2048</TotalSectors>")},
        absent=(f"{OUT}/layout.json",),
    ),
    Case(
        "unknown-filesystem",
        "sample",
        r"DeviceLayout\.xml:\d+: .*EXT4",
        files={LAYOUT: _sub("<FileSystem>FAT</FileSystem>", "<FileSystem>EXT4</FileSystem>")},
    ),
    Case(
        "overlapping-offsets",
        "sample",
        r"DeviceLayout\.xml:\d+: .*(overlap|OffsetInSectors)",
        files={
            LAYOUT: _sub(
                "<FileSystem>FAT</FileSystem>",
                "<FileSystem>FAT</FileSystem>\n      <OffsetInSectors>1024</OffsetInSectors>",
            )
        },
    ),
    Case(
        "partition-name-outside-build",
        "sample",
        r"DeviceLayout\.xml:\d+: partition name '\.\./\.\./\.\./escape' may "
        r"only contain",
        files={LAYOUT: _sub("<Name>Data</Name>", "<Name>../../../escape</Name>")},
    ),
    Case(
        "layout-entity-bomb",
        "sample",
        r"DeviceLayout\.xml:1: DOCTYPE/DTD declarations are not allowed",
        files={
            LAYOUT: _sub(
                '<?xml version="1.0" encoding="utf-8"?>',
                '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE x [<!ENTITY a "aaaa">]>',
            )
        },
    ),
    Case(
        "partition-the-layout-lacks",
        "sample",
        r"(CrashDump).*",
        files={
            "packages/Test.Diagnostics/Test.Diagnostics.wm.xml": _sub(
                'targetPartition="MainOS"', 'targetPartition="CrashDump"'
            )
        },
    ),
    Case(
        "file-collision-between-packages",
        "sample",
        r"README\.txt.* is installed by both .*Contoso\.",
        files={
            "packages/Test.Diagnostics/Test.Diagnostics.wm.xml": _sub(
                "<files>",
                '<files>\n    <file source="..\\Custom.Files\\readme.txt" '
                'destinationDir="$(runtime.bootDrive)\\Contoso" name="README.txt" />',
            )
        },
        absent=(f"{OUT}/partitions/MainOS.img",),
    ),
    Case(
        "registry-collision-between-packages",
        "sample",
        r"Product is set by both .*Contoso\.",
        files={
            "packages/Test.Diagnostics/Test.Diagnostics.wm.xml": _sub(
                "</identity>",
                '  <regKeys><regKey keyName="$(hklm.software)\\Contoso\\SampleA">'
                '<regValue name="Product" type="REG_SZ" value="Other" /></regKey></regKeys>\n'
                "</identity>",
            )
        },
        absent=(f"{OUT}/partitions/MainOS.img",),
    ),
    Case(
        "unknown-bcd-element",
        "sample",
        rf"{BCD}:13: unknown BCD element 'Timeout Please'; did you mean",
        files={
            BCD: _sub(
                "<WellKnownType>Timeout</WellKnownType>", "<WellKnownType>Timeout Please</WellKnownType>"
            )
        },
        absent=("build/arm64/packages/Contoso.Custom.BCD.cab",),
    ),
    Case(
        "bcd-entity-bomb",
        "sample",
        rf"{BCD}:1: DOCTYPE/DTD declarations are not allowed",
        files={
            BCD: _sub(
                '<?xml version="1.0" encoding="utf-8" standalone="yes"?>',
                '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE x [<!ENTITY a "aaaa">]>',
            )
        },
        absent=("build/arm64/packages/Contoso.Custom.BCD.cab",),
    ),
    # ------------------------------------------------------------------------------------ the CLI
    # ------------------------------------------- provisioning packages and the AppInstall route (issue 20)
    Case(
        "ppkg-setting-not-supported",
        "mini",
        r"pkg/customizations\.xml:13: setting not supported: Policies/Connectivity/AllowNFC \(line 13\)",
        files={"pkg/P.wm.xml": _PPKG_PROJECT, "pkg/customizations.xml": _customizations(_NFC)},
        case=_BLDDIR,
        absent=("build/**/*.ppkg",),
    ),
    Case(
        "ppkg-malformed-customizations",
        "mini",
        r"pkg/customizations\.xml:14: malformed XML",
        files={"pkg/P.wm.xml": _PPKG_PROJECT, "pkg/customizations.xml": _customizations("<Accounts>")},
        case=_BLDDIR,
    ),
    Case(
        "ppkg-unknown-package-config-element",
        "mini",
        r"pkg/customizations\.xml:9: unknown element <Colour> in <PackageConfig>",
        files={
            "pkg/P.wm.xml": _PPKG_PROJECT,
            "pkg/customizations.xml": _customizations("").replace(
                "<Rank>0</Rank>", "<Rank>0</Rank>\n<Colour/>"
            ),
        },
        case=_BLDDIR,
    ),
    Case(
        "ppkg-command-file-missing",
        "mini",
        r"pkg/customizations\.xml:13: run\.cmd is not there; put it beside customizations\.xml",
        files={"pkg/P.wm.xml": _PPKG_PROJECT, "pkg/customizations.xml": _customizations(_COMMAND)},
        case=_BLDDIR,
        absent=("build/**/*.ppkg",),
    ),
    Case(
        "appinstall-file-the-route-does-not-make",
        "mini",
        r"pkg/P\.wm\.xml: the project names nope\.txt in P\.appinstall, which pkg/customizations\.xml does not",
        files={"pkg/P.wm.xml": _APPINSTALL_PROJECT, "pkg/customizations.xml": _customizations(_TRUST)},
        case=_BLDDIR,
    ),
    Case(
        "cli-new-app-not-an-app",
        "cli",
        r"^ffuforge: error: pkg/a\.txt: not an app package name",
        cli=("new", "app", "pkg/a.txt"),
    ),
    Case(
        "cli-package-malformed",
        "cli",
        r"ffuforge: error: pkg/P\.wm\.xml:8: malformed XML",
        extra="<files>",
        cli=("package", "pkg/P.wm.xml", "--cpu", "arm64", "-o", "out"),
    ),
    Case(
        "cli-package-bad-version",
        "cli",
        r"ffuforge: error: VERSION='1' must be four numbers",
        cli=("package", "pkg/P.wm.xml", "--cpu", "arm64", "--version", "1", "-o", "out"),
    ),
    Case(
        "cli-cab-list-not-a-cab", "cli", r"ffuforge: error: pkg/a\.txt: .*", cli=("cab", "list", "pkg/a.txt")
    ),
    Case("cli-ffu-verify-not-an-ffu", "cli", r"pkg/a\.txt: .*", cli=("ffu", "verify", "pkg/a.txt")),
]


# ------------------------------------------------ names, schemas, expansion, line ends (issue #17)

_W7 = r"pkg/P\.wm\.xml:7: "
_RESERVED = r"is a reserved Windows device name"


def _file_named(name: str) -> str:
    return f'<files><file source=".\\a.txt" destinationDir="$(runtime.system32)" name="{name}" /></files>'


def _file_in(directory: str) -> str:
    return f'<files><file source=".\\a.txt" destinationDir="$(runtime.system32)\\{directory}\\x" /></files>'


def _directory(path: str) -> str:
    return f'<directories><directory path="$(runtime.programData)\\{path}" /></directories>'


def _bomb(levels: int, leaf: str) -> str:
    """`levels` macros, each `$(next)$(next)`, used once in a file name."""
    defs = "".join(f'<macro id="m{i}" value="$(m{i + 1})$(m{i + 1})" />' for i in range(levels))
    return f'<macros>{defs}<macro id="m{levels}" value="{leaf}" /></macros>' + _file_named("$(m0)")


PKG_XML = """<?xml version="1.0" encoding="utf-8"?>
<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00" Owner="Contoso" Component="Legacy"
    SubComponent="Q" OwnerType="OEM" ReleaseType="Production" Platform="arm64">
  <Components>
    <OSComponent>
      <Files>
        <File {attrs} />
      </Files>
    </OSComponent>
  </Components>
</Package>
"""


def _pkg(attrs: str) -> dict[str, object]:
    return {"pkg/Q.pkg.xml": PKG_XML.format(attrs=attrs)}


def _cr_only(edit: Callable[[str], str] = lambda t: t) -> Callable[[str], str]:
    return lambda text: edit(text).replace("\r\n", "\n").replace("\n", "\r")


def _inf_with_file(name: str):
    """The mini driver, copying `name` (which the host file system allows) instead of d.sys."""

    def setup(ws: Path, pki: dict) -> None:
        _driver()(ws, pki)
        (ws / "pkg/d.sys").rename(ws / "pkg" / name)
        inf = ws / "pkg/d.inf"
        inf.write_text(inf.read_text().replace("d.sys", name))

    return setup


RESERVED_FILE_NAMES = [
    "CON", "prn.txt", "Aux", "NUL", "nul.tar.gz", "nul .txt", "COM1", "com9.log", "LPT1", "lpt9.dat",
    "COM\u00b9", "LPT\u00b3.txt", "com\u00b2.bin", "CONIN$", "conout$.txt",
]  # fmt: skip
RESERVED_DIRECTORIES = ["CON", "nul.d", "COM1", "Lpt\u00b9", "aux"]

CASES += [
    *(
        Case(f"reserved-file-name-{n}", "mini", _W7 + rf"file name '{re.escape(n)}' .*{_RESERVED}",
             extra=_file_named(n))
        for n in RESERVED_FILE_NAMES
    ),
    *(
        Case(f"reserved-directory-{n}", "mini", _W7 + rf"destinationDir .*path segment '{re.escape(n)}'.*{_RESERVED}",
             extra=_file_in(n))
        for n in RESERVED_DIRECTORIES
    ),
    Case("reserved-declared-directory-NUL", "mini", _W7 + rf"directory path .*'NUL'.*{_RESERVED}",
         extra=_directory("NUL")),
    Case("reserved-declared-directory-com3", "mini", _W7 + rf"directory path .*'com3\.x'.*{_RESERVED}",
         extra=_directory("Logs\\com3.x")),
    Case("reserved-source-name", "mini", _W7 + rf"file name 'aux\.txt' \(of source pkg/aux\.txt\).*{_RESERVED}",
         extra='<files><file source=".\\aux.txt" /></files>',
         setup=lambda ws, _: (ws / "pkg/aux.txt").write_text("aux\n")),
    Case("file-name-trailing-dot", "mini", _W7 + r"file name 'a\.txt\.' .*ends in a dot or a space",
         extra=_file_named("a.txt.")),
    Case("file-name-trailing-space", "mini", _W7 + r"file name 'a\.txt ' .*ends in a dot or a space",
         extra=_file_named("a.txt ")),
    Case("directory-trailing-dot", "mini", _W7 + r"destinationDir .*'x\.'.*ends in a dot or a space",
         extra=_file_in("x.")),
    Case("directory-trailing-space", "mini", _W7 + r"destinationDir .*'x '.*ends in a dot or a space",
         extra=_file_in("x ")),
    Case("declared-directory-trailing-dot", "mini", _W7 + r"directory path .*'Logs\.'.*ends in a dot",
         extra=_directory("Logs.")),
    *(
        Case(f"file-name-char-{i}", "mini", _W7 + r"file name .* contains .*which Windows does not allow",
             extra=_file_named(f"a{c}b"))
        for i, c in enumerate(["&lt;", "|", "?", "*", "&quot;", "&#9;"])
    ),
    Case("directory-char", "mini", _W7 + r"destinationDir .*path segment 'a>b'.*does not allow",
         extra=_file_in("a&gt;b")),
    # misspelt attributes and elements, each schema
    Case("misspelt-destinationDir", "mini", _W7 + r"unknown attribute destinatonDir= on <file>; did you mean "
         r"destinationDir\?", extra='<files><file source=".\\a.txt" destinatonDir="$(runtime.system32)\\x" /></files>'),
    Case("misspelt-keyName", "mini", _W7 + r"unknown attribute keyname= on <regKey>; did you mean keyName\?",
         extra='<regKeys><regKey keyname="$(hklm.software)\\C" /></regKeys>'),
    Case("misspelt-regValue-type", "mini", _W7 + r"unknown attribute tyep= on <regValue>; did you mean type\?",
         extra='<regKeys><regKey keyName="$(hklm.software)\\C"><regValue name="x" type="REG_SZ" tyep="REG_SZ" '
         'value="1" /></regKey></regKeys>'),
    Case("misspelt-service-start", "mini", _W7 + r"unknown attribute strat= on <service>; did you mean start\?",
         extra='<service name="s" start="auto" strat="auto" type="win32OwnProcess" />'),
    Case("misspelt-targetPartition", "mini", r"pkg/P\.wm\.xml:3: unknown attribute targetPartiton= on "
         r"<onecorePackageInfo>; did you mean targetPartition\?",
         files={"pkg/P.wm.xml": _sub('targetPartition="MainOS"', 'targetPartiton="MainOS"')}),
    Case("misspelt-identity-owner", "mini", r"pkg/P\.wm\.xml:2: unknown attribute ownr= on <identity>; did you "
         r"mean owner\?", files={"pkg/P.wm.xml": _sub('owner="Contoso"', 'owner="Contoso" ownr="x"')}),
    Case("misspelt-macro-value", "mini", _W7 + r"unknown attribute vaule= on <macro>; did you mean value\?",
         extra='<macros><macro id="x" vaule="1" /></macros>'),
    Case("misspelt-bcdStore-source", "mini", _W7 + r"unknown attribute sorce= on <bcdStore>; did you mean source\?",
         extra='<bcdStore sorce="b.xml" />'),
    Case("misspelt-element-file", "mini", _W7 + r"<fiel> is not allowed inside <files>.*did you mean <file>\?",
         extra='<files><fiel source=".\\a.txt" /></files>'),
    Case("unimplemented-service-attribute", "mini", _W7 + r"attribute startAfterInstall= on <service> is valid "
         r"but ffuforge does not implement it", extra='<service name="s" start="auto" type="win32OwnProcess" '
         'startAfterInstall="synchronous" />'),
    Case("pkgxml-misspelt-DestinationDir", "mini", r"pkg/Q\.pkg\.xml:7: unknown attribute Destinationdir= on "
         r"<File>; did you mean DestinationDir\? \(names are case-sensitive\)",
         files=_pkg('Source=".\\a.txt" Destinationdir="$(runtime.system32)"')),
    Case("pkgxml-misspelt-Source", "mini", r"pkg/Q\.pkg\.xml:7: unknown attribute Sorce= on <File>; did you "
         r"mean Source\?", files=_pkg('Source=".\\a.txt" Sorce=".\\a.txt"')),
    Case("pkgxml-reserved-name", "mini", rf"pkg/Q\.pkg\.xml:7: file name 'LPT2\.txt' .*{_RESERVED}",
         files=_pkg('Source=".\\a.txt" Name="LPT2.txt"')),
    Case(
        "inf-copies-a-reserved-name",
        "mini",
        _W7 + rf"file name 'con\.sys' \(from d\.inf\) .*{_RESERVED}",
        extra=DRIVER,
        setup=_inf_with_file("con.sys"),
    ),
    # bounded expansion
    Case("macro-bomb-40", "mini", _W7 + r"macro \$\(m0\) nests more than 32 macros deep", extra=_bomb(40, "x")),
    Case("macro-bomb-size", "mini", _W7 + r"macro \$\(m0\) \(defined on line 7\) expands to more than 1048576 "
         r"characters", extra=_bomb(24, "xxxxxxxx")),
    Case("macro-recursion", "mini", _W7 + r"macro recursion \$\(a\) -> \$\(b\) -> \$\(a\)",
         extra='<macros><macro id="a" value="$(b)" /><macro id="b" value="x$(a)" /></macros>' + _file_named("$(a)")),
    # CR-only line ends: the error names the right line
    Case("cr-only-wm-xml", "mini", _W7 + r"unknown attribute destinatonDir= on <file>",
         extra='<files><file source=".\\a.txt" destinatonDir="$(runtime.system32)" /></files>',
         files={"pkg/P.wm.xml": _cr_only()}),
    Case("cr-only-pkg-xml", "mini", r"pkg/Q\.pkg\.xml:7: unknown attribute Sorce= on <File>",
         files={"pkg/Q.pkg.xml": _cr_only()(PKG_XML.format(attrs='Source=".\\a.txt" Sorce="x"'))}),
    # huge-node tricks: our message, never libxml2's XML_PARSE_HUGE hint
    Case("huge-attribute", "mini", _W7 + r"an attribute value, CDATA section or processing instruction is longer "
         r"than 10000000 bytes, past the limit", extra=_file_named("x" * 10_000_001)),
    Case("huge-text-node", "mini", r"pkg/P\.wm\.xml:\d+: a text node is longer than 10000000 bytes",
         extra="<files>" + "x" * 10_000_001 + "</files>"),
    Case("deep-nesting", "mini", r"pkg/P\.wm\.xml:7: elements are nested deeper than 256 levels",
         extra="<files>" * 300 + "</files>" * 300),
    # the image-level schemas (the sample)
    Case("fm-misspelt-attribute", "sample", rf"{OEMFM}:5: unknown attribute Nmae= on <PackageFile>; did you mean "
         r"Name\?", files={OEMFM: _sub('Name="%OEM_NAME%.Registry.Settings.cab"', 'Nmae="%OEM_NAME%.Registry.Settings.cab"')}),
    Case("fmfilelist-misspelt-attribute", "sample", rf"{FMLIST}:6: unknown attribute Pth= on <FM>; did you mean "
         r"Path\?", files={FMLIST: _sub('Path="$(FMDirectory)', 'Pth="$(FMDirectory)')}),
    Case("oeminput-misspelt-element", "sample", rf"{OEMINPUT}:4: <SCO> is not allowed inside <OEMInput>; did you "
         r"mean <SOC>\?", files={OEMINPUT: _sub("<SOC>ContosoBoard</SOC>", "<SCO>ContosoBoard</SCO>")}),
    Case("oeminput-attribute-on-text", "sample", rf"{OEMINPUT}:4: unknown attribute Name= on <SOC>",
         files={OEMINPUT: _sub("<SOC>", '<SOC Name="x">')}),
    Case("oeminput-cr-only", "sample", rf"{OEMINPUT}:4: <SCO> is not allowed inside <OEMInput>",
         files={OEMINPUT: _cr_only(_sub("<SOC>ContosoBoard</SOC>", "<SCO>ContosoBoard</SCO>"))}),
    Case("layout-attribute", "sample", r"DeviceLayout\.xml:4: unknown attribute Type= on <Partition>",
         files={LAYOUT: _sub("<Partition>", '<Partition Type="x">')}),
    Case("platform-misspelt-element", "sample", r"OEMDevicePlatform\.xml:3: unknown element <MinSectorCont> in "
         r"<OEMDevicePlatform>; did you mean <MinSectorCount>\?",
         files={PLATFORM: _sub("MinSectorCount>15269888</MinSectorCount", "MinSectorCont>15269888</MinSectorCont")}),
]  # fmt: skip


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, dict]:
    """FFU_SIGN settings for the signing mistakes: a wrong pfx password, an expired certificate, no
    code-signing EKU, a missing chain, a missing file, a failing sign command."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, leaf_key = rsa_key(), rsa_key()
    ca = issue("Catalogue CA (TEST ONLY)", ca_key, ca=True)
    root = write_cert(d / "ca.crt", ca)
    good = issue("Catalogue Leaf (TEST ONLY)", leaf_key, (ca, ca_key))
    key = write_key(d / "leaf.key", leaf_key)
    (d / "oem.pfx").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x", leaf_key, good, [ca], serialization.BestAvailableEncryption(b"the-password")
        )
    )
    expired = write_cert(
        d / "expired.crt",
        issue(
            "Expired (TEST ONLY)",
            leaf_key,
            (ca, ca_key),
            start=datetime.datetime(2015, 1, 1, tzinfo=UTC),
            end=datetime.datetime(2019, 1, 1, tzinfo=UTC),
        ),
    )
    noeku = write_cert(
        d / "noeku.crt",
        issue("No EKU (TEST ONLY)", leaf_key, (ca, ca_key), eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
    )
    leaf = write_cert(d / "leaf.crt", good)

    def key_env(cert, chain=(root,)):
        return {
            "FFU_SIGN": "key",
            "FFU_SIGN_CERT": str(cert),
            "FFU_SIGN_KEY": str(key),
            "FFU_SIGN_CHAIN": [str(c) for c in chain],
        }

    return {
        "pfx": {"FFU_SIGN": "key", "FFU_SIGN_CERT": str(d / "oem.pfx")},
        "expired": key_env(expired),
        "noeku": key_env(noeku),
        "nochain": key_env(leaf, ()),
        "nofile": key_env(d / "nope.crt"),
        "command": {"FFU_SIGN": "command", "FFU_SIGN_COMMAND": "false"},
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One copy of the sample, built once; every image case mutates it and puts it back."""
    ws = copy_workspace(tmp_path_factory.mktemp("sample"))
    proc = _run(ws, ())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ws


def _environ(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "FFU_SIGN_PASSWORD")}
    env.update(extra or {})
    return env


def _run(ws: Path, args: tuple[str, ...], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "SCons", "-Q", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env=_environ(env),
        timeout=600,
    )


def _cli(ws: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = _environ({"PYTHONPATH": str(SITE)})
    return subprocess.run(
        [sys.executable, "-m", "ffuforge", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _apply(ws: Path, files: dict[str, object]) -> dict[str, tuple[bytes | None, os.stat_result | None]]:
    saved = {}
    for rel, change in files.items():
        p = ws / rel
        old = p.read_bytes() if p.exists() else None
        saved[rel] = (old, p.stat() if p.exists() else None)
        new = change(old.decode("utf-8")) if callable(change) else change
        p.write_bytes(new.encode("utf-8") if isinstance(new, str) else new)
    return saved


def _restore(ws: Path, saved: dict) -> None:
    for rel, (old, st) in saved.items():
        p = ws / rel
        if old is None:
            p.unlink(missing_ok=True)
        else:
            p.write_bytes(old)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # never the mutated file's second


def _leftovers(ws: Path) -> list[str]:
    build = ws / "build"
    found = []
    for dirpath, dirnames, filenames in os.walk(build):
        for name in dirnames + filenames:
            rel = Path(dirpath, name).relative_to(ws)
            if name.startswith(".sconsign") and Path(dirpath) == build:
                continue
            if str(rel) in (
                "build/.ffuforge",
                *(f"build/.ffuforge/{n}" for n in ("plans", "cabfacts", "signers")),
            ):  # caches
                continue
            if name == ".ffuforge-extract":  # ffuforge.image.extractcache (a partition's, or beside CABs);
                continue  # its .tmp-* entries count
            if name.startswith(".") or name.endswith(".partial") or ".partial" in name:
                found.append(str(rel))
    return found


def _check(proc: subprocess.CompletedProcess, case: Case, ws: Path) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{case.id}: exit status 0\n{out}"
    assert "Traceback" not in out and not re.search(r'^\s*File "', out, re.M), f"{case.id}: traceback\n{out}"
    prefix = (
        "ffuforge: error: "
        if case.where == "cli" and case.cli[0] in ("package", "cab")
        else ("" if case.where == "cli" else "scons: *** ")
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(prefix)] if prefix else lines
    assert len(errors) == 1, f"{case.id}: expected one error line, got:\n{proc.stderr}"
    assert re.search(case.expect, errors[0]), f"{case.id}: {errors[0]!r} does not match {case.expect!r}"
    if case.where == "mini":
        assert not list(ws.glob("build/**/*.cab")), (
            f"{case.id}: a CAB was left: {list(ws.glob('build/**/*.cab'))}"
        )
    if case.where == "cli":
        assert not (ws / "out").exists() or not list((ws / "out").iterdir()), f"{case.id}: output left"
    if case.where == "sample":
        assert not (ws / FLASH).exists(), f"{case.id}: Flash.ffu was left"
    for pattern in case.absent:
        assert not list(ws.glob(pattern)), f"{case.id}: {pattern} was left"
    assert not _leftovers(ws), f"{case.id}: temp files left: {_leftovers(ws)}"


# ---------------------------------------------------------------------------------- tests


def test_catalogue_is_big_enough():
    assert len(CASES) >= 125  # 85 before issue #17's names, schemas, bombs and line ends
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.where == "mini"], ids=lambda c: c.id)
def test_package_mistake(case: Case, tmp_path, pki):
    ws = _mini(tmp_path / "ws", case.extra)
    if case.setup:
        case.setup(ws, pki)
    _apply(ws, case.files)
    if case.case:
        (ws / "case.json").write_text(json.dumps(case.case))
    _check(_run(ws, case.args, case.env), case, ws)


@pytest.mark.parametrize("case", [c for c in CASES if c.where == "cli"], ids=lambda c: c.id)
def test_cli_mistake(case: Case, tmp_path):
    ws = _mini(tmp_path / "ws", case.extra)
    _check(_cli(ws, case.cli), case, ws)


@pytest.mark.parametrize("case", [c for c in CASES if c.where == "sample"], ids=lambda c: c.id)
def test_image_mistake(case: Case, sample: Path):
    (sample / FLASH).unlink(missing_ok=True)
    saved = _apply(sample, case.files)
    try:
        proc = _run(sample, case.args, case.env)
        _check(proc, case, sample)
    finally:
        _restore(sample, saved)


def test_sample_builds_again_after_the_catalogue(sample: Path):
    """The mistakes are undone: the shared copy builds again and is up to date after."""
    proc = _run(sample, ())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (sample / FLASH).exists()
    assert _run(sample, ("-q",)).returncode == 0
    assert not _leftovers(sample)
