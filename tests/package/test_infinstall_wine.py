"""Wine's setupapi as an independent INF engine: the services it writes equal ours, value for value.

For the sample's INFs, a feature-rich INF of our own and every corpus INF (each on the
architecture it installs on), ``rundll32 setupapi.dll,InstallHinfSection <DDInstall> 128 x.inf``
runs in a scratch prefix; Wine's setupapi processes ``<DDInstall>`` and then
``<DDInstall>.Services`` (passing the ``.Services`` section itself installs nothing), so the
CopyFiles sources are given as empty stand-ins (without them Wine prompts for the disk).
The services' keys in the prefix's ``system.reg`` must equal ours; the known differences between
Wine and Windows are listed once in ``KNOWN`` and applied explicitly. Wine does not follow
``Include=``/``Needs=``: an OEM INF needing sections of another OEM INF beside it is checked by
running those sections from their own INF, which is what Needs means (strings and DIRIDs of the
INF that holds the section).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ffuforge.package.inf import import_driver, parse_inf
from ffuforge.package.infinstall import SERVICES, install_registry

ROOT = Path(__file__).resolve().parents[2]
WINE = Path("/usr/lib/wine/wine64")
WINESERVER = Path("/usr/lib/wine/wineserver")
pytestmark = pytest.mark.skipif(
    not (WINE.exists() and WINESERVER.exists()), reason="wine64 is installed by ./bootstrap --test"
)

KNOWN = {
    # Wine writes ImagePath as REG_SZ C:\windows\system32\drivers\x.sys; Windows \SystemRoot\... REG_EXPAND_SZ.
    "ImagePath": "compared as a path below C:\\windows, type not compared",
    # Wine adds these to every service; Windows writes ObjectName only for a StartName.
    "ObjectName": "Wine-only unless the INF has StartName",
    "PreshutdownTimeout": "Wine-only",
    # Windows (pkggen walk-through, drivers.md §6) writes @<inf>,%token%;text; Wine the text.
    "DisplayName": "compared after the ';' of the indirect form",
    "Description": "compared after the ';' of the indirect form",
    # Windows records the owning INF (drivers.md §4.1); Wine does not.
    "Owners": "ours only",
    # Wine 8's setupapi does not pass Dependencies to the SCM (checked: no DependOn* written).
    "DependOnService": "ours only",
    "DependOnGroup": "ours only",
}
# Wine ignores [DDInstall.Wdf] (KMDF) and event-log install sections; those keys are ours only.
OURS_ONLY_SUBKEYS = ("parameters\\wdf",)

RICH_INF = r"""[Version]
Signature="$WINDOWS NT$"
Class=System
ClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}
Provider=%P%
DriverVer=11/01/2026,1.0.0.0
[DestinationDirs]
DefaultDestDir = 12
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
rich.sys = 1
richsvc.exe = 1
[Manufacturer]
%P%=M,NTamd64
[M.NTamd64]
%D%=Dev, ACPI\X1
[Dev.NT]
CopyFiles = Drv
[Drv]
rich.sys
[Dev.NT.Services]
AddService = richdrv, 0x2, Svc_Inst
AddService = richsvc, 0, Svc2_Inst
[Svc_Inst]
DisplayName    = %D%
Description    = "A description"
ServiceType    = 1
StartType      = 0
ErrorControl   = 3
ServiceBinary  = %12%\sub\rich.sys
LoadOrderGroup = Base
Dependencies   = +Boot Bus Extender, acpi
AddReg = Svc_AddReg, Svc_AddReg2
[Svc2_Inst]
ServiceType    = 0x10
StartType      = 2
ErrorControl   = 0
ServiceBinary  = %11%\richsvc.exe
StartName      = NT AUTHORITY\LocalService
[Svc_AddReg]
HKR,Parameters,Str,,"hello"
HKR,Parameters,Exp,0x00020000,"%%SystemRoot%%\x"
HKR,Parameters,Multi,0x00010000,"a","b c"
HKR,Parameters,Dw,0x00010001,0x12345678
HKR,Parameters,Dw2,0x00010001,1
HKR,Parameters,DwBytes,0x00010001,01,00,00,80
HKR,Parameters,Bin,0x00000001,01,02,ff
HKR,Parameters,None,0x00020001
HKR,Parameters,Qw,0x000b0001,01,00,00,00,00,00,00,80
HKR,Parameters,Keep,,"first"
HKR,Parameters,Keep,0x00000002,"second"
HKR,Parameters,EmptyStr,,
HKR,,Top,0x00010001,7
HKR,Parameters\Empty
[Svc_AddReg2]
HKR,Parameters,Multi,0x00010008,"d","a"
HKR,Parameters,Str,,"overwritten"
[Strings]
P="Contoso"
D="Rich Device"
"""


# ------------------------------------------------------------------ Wine's .reg reader


_ESC = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x":
                m = re.match(r"[0-9a-fA-F]{1,4}", text[i + 2 :])
                assert m, text
                out.append(chr(int(m.group(0), 16)))
                i += 2 + len(m.group(0))
                continue
            out.append(_ESC.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def read_wine_reg(path: Path) -> dict[str, dict[str, tuple[int, bytes]]]:
    """Wine's registry file format, enough for service keys: key -> {name: (type, data)}."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    keys: dict[str, dict[str, tuple[int, bytes]]] = {}
    current: dict[str, tuple[int, bytes]] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines) and not line.startswith('"'):
            i += 1
            line = line[:-1] + lines[i].strip()
        i += 1
        if line.startswith("["):
            m = re.match(r"^\[(.*)\](?: \d+)?$", line)
            assert m, line
            current = keys.setdefault(_unescape(m.group(1)).lower(), {})
            continue
        if current is None or not line or line[0] not in '"@':
            continue
        if line.startswith("@="):
            name, rest = "", line[2:]
        else:
            m = re.match(r'^"((?:[^"\\]|\\.)*)"=(.*)$', line)
            assert m, line
            name, rest = _unescape(m.group(1)), m.group(2)
        while rest.endswith("\\") and rest.startswith("hex") and i < len(lines):
            rest = rest[:-1] + lines[i].strip()
            i += 1
        if rest.startswith('"'):
            typ, text = 1, rest
        elif rest.startswith("str("):
            m = re.match(r"^str\((\d+)\):(.*)$", rest)
            assert m, rest
            typ, text = int(m.group(1)), m.group(2)
        elif rest.startswith("dword:"):
            current[name.lower()] = (4, int(rest[6:], 16).to_bytes(4, "little"))
            continue
        else:
            m = re.match(r"^hex(?:\(([0-9a-fA-F]+)\))?:(.*)$", rest)
            assert m, rest
            typ = int(m.group(1), 16) if m.group(1) else 3
            current[name.lower()] = (typ, bytes(int(b, 16) for b in m.group(2).split(",") if b))
            continue
        assert text.startswith('"') and text.endswith('"'), rest
        value = _unescape(text[1:-1])
        current[name.lower()] = (typ, (value + "\0").encode("utf-16-le"))
    return keys


# ------------------------------------------------------------------ the Wine prefix


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    base = tmp_path_factory.mktemp("wine")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "WINEPREFIX": str(base / "prefix"),
        "WINEDEBUG": "-all",
        "DISPLAY": "",
        "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono/Gecko install prompts
    }
    subprocess.run([str(WINE), "wineboot", "-i"], env=env, capture_output=True, timeout=300, check=True)
    subprocess.run([str(WINESERVER), "-w"], env=env, capture_output=True, timeout=120, check=True)

    def install(inf: Path, section: str) -> dict[str, dict[str, tuple[int, bytes]]]:
        z = "Z:" + str(inf).replace("/", "\\")
        proc = subprocess.run(
            [str(WINE), "rundll32", "setupapi.dll,InstallHinfSection", section, "128", z],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        subprocess.run([str(WINESERVER), "-w"], env=env, capture_output=True, timeout=120, check=True)
        return read_wine_reg(base / "prefix" / "system.reg")

    yield install
    subprocess.run([str(WINESERVER), "-k"], env=env, capture_output=True, timeout=60)


# ------------------------------------------------------------------ comparison


def _text(data: bytes) -> str:
    return data.decode("utf-16-le").rstrip("\0")


def ours_by_service(inf_path: Path, arch: str, staging: Path) -> tuple[Path, list[str], dict, list[str]]:
    """Stage the INF with empty stand-ins for its files; our registry per service key."""
    staging.mkdir(parents=True)
    inf_copy = staging / inf_path.name
    shutil.copyfile(inf_path, inf_copy)
    parsed = parse_inf(inf_copy, inf_path.name)
    imported = import_driver(parsed, arch)
    for f in imported.files:
        src = staging.joinpath(*[p for p in f.source_subdir.split("\\") if p], f.source_name)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(b"")
    reg = install_registry(parsed, imported, inf_path.name)
    ours: dict[str, dict[str, tuple[int, bytes]]] = {}
    prefix = SERVICES.lower() + "\\"
    for v in reg.values:
        assert v.key.lower().startswith(prefix), v.key  # these INFs only write service keys
        rel = v.key[len(prefix) :].lower()
        ours.setdefault(rel, {})[v.name.lower()] = (v.data.type, v.data.data)
    for key, _ in reg.keys:
        ours.setdefault(key[len(prefix) :].lower(), {})
    return inf_copy, imported.install_sections, ours, reg.services


def compare(ours: dict, services: list[str], wine_reg: dict) -> int:
    """Assert Wine's service keys equal ours (KNOWN applied); return the values compared."""
    compared = 0
    wine_base = "system\\currentcontrolset\\services\\"
    for svc in services:
        s = svc.lower()
        our_keys = {k for k in ours if k == s or k.startswith(s + "\\")}
        our_keys -= {k for k in our_keys if k[len(s) + 1 :] in OURS_ONLY_SUBKEYS}
        wine_keys = {k[len(wine_base) :] for k in wine_reg if k.startswith(wine_base + s)}
        wine_keys = {k for k in wine_keys if k == s or k.startswith(s + "\\")}
        assert our_keys == wine_keys, (svc, sorted(our_keys ^ wine_keys))
        for key in sorted(our_keys):
            mine = dict(ours[key])
            theirs = dict(wine_reg[wine_base + key])
            if key == s:
                if "objectname" not in mine:
                    theirs.pop("objectname", None)
                theirs.pop("preshutdowntimeout", None)
                for name in ("owners", "dependonservice", "dependongroup"):
                    mine.pop(name, None)
                for name in ("displayname", "description"):
                    if name in mine and _text(mine[name][1]).startswith("@"):
                        mine[name] = (1, (_text(mine[name][1]).split(";", 1)[1] + "\0").encode("utf-16-le"))
                typ, data = mine.pop("imagepath")
                wtyp, wdata = theirs.pop("imagepath")
                assert typ == 2 and wtyp in (1, 2)
                path = _text(data)
                path = re.sub(r"^(\\SystemRoot|%SystemRoot%)\\", r"C:\\windows\\", path, flags=re.I)
                assert path.lower() == _text(wdata).lower(), (svc, path, _text(wdata))
                compared += 1
            assert mine == theirs, (svc, key)
            compared += len(mine)
    return compared


def _check(wine, inf: Path, arch: str, tmp: Path) -> int:
    staged, sections, ours, services = ours_by_service(inf, arch, tmp)
    assert services, f"{inf} installs no service"
    wine_reg = {}
    for section in sections:
        wine_reg = wine(staged, section)
    return compare(ours, services, wine_reg)


def test_sample_infs_match_wine(wine, tmp_path):
    packages = ROOT / "bsp/ContosoBoard/Packages"
    n = 0
    for rel in ("ContosoBoard.UART/contosouart.inf", "ContosoBoard.GPIO/contosogpio.inf"):
        n += _check(wine, packages / rel, "arm64", tmp_path / rel.split("/")[0])
    assert n == 13  # UART: 5 service values + 3 AddReg values; GPIO: 5 service values


def test_rich_inf_matches_wine(wine, tmp_path):
    inf = tmp_path / "src" / "rich.inf"
    inf.parent.mkdir()
    inf.write_text(RICH_INF.replace("\n", "\r\n"))
    assert _check(wine, inf, "amd64", tmp_path / "staged") >= 25


def _declared_arches(inf: Path) -> list[str]:
    parsed = parse_inf(inf)
    man = parsed.section("Manufacturer")
    found = []
    for ln in man.lines if man is not None else []:
        for dec in ln.values[1:]:
            head = dec.lower().split(".")[0]
            if head.startswith("nt") and head[2:] in ("x86", "amd64", "arm", "arm64"):
                found.append(head[2:])
    return sorted(set(found))


def test_corpus_infs_match_wine(wine, corpus, tmp_path):
    infs = sorted(corpus.rglob("*.inf"), key=str)
    assert len(infs) >= 30, "expected the 32 iaiogpio.inf copies"
    by_result: dict[tuple[str, str], list[Path]] = {}
    for inf in infs:
        for arch in _declared_arches(inf):  # every architecture it installs on
            parsed = parse_inf(inf, inf.name)
            reg = install_registry(parsed, import_driver(parsed, arch), inf.name)
            result = repr(sorted((v.key, v.name, v.data.type, v.data.data) for v in reg.values))
            by_result.setdefault((arch, result), []).append(inf)
    assert sum(len(v) for v in by_result.values()) >= len(infs)
    # INFs with the same result on the same architecture are one Wine run (32 copies, 2 results)
    for i, ((arch, _), members) in enumerate(sorted(by_result.items())):
        assert _check(wine, members[0], arch, tmp_path / str(i)) == 5  # DependOnService: see KNOWN


# ------------------------------------------------------------------ Include= / Needs=

INCLUDING_INF = r"""[Version]
Signature="$WINDOWS NT$"
Class=System
ClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}
Provider=%P%
DriverVer=11/01/2026,1.0.0.0
[DestinationDirs]
DefaultDestDir = 12
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
main.sys = 1
[Manufacturer]
%P%=M,NTamd64
[M.NTamd64]
%D%=Dev, ACPI\X1
[Dev.NT]
Include = helper.inf
Needs = Helper.Install
CopyFiles = Main_Files
[Main_Files]
main.sys
[Dev.NT.Services]
Include = helper.inf
Needs = Helper.Install.Services
AddService = mainsvc, 0x2, Main_Svc
[Main_Svc]
DisplayName = %D%
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\main.sys
[Strings]
P="Contoso"
D="Including device"
"""
INCLUDED_INF = r"""[Version]
Signature="$WINDOWS NT$"
Class=System
ClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}
Provider=%P%
[DestinationDirs]
Helper_Files = 11
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
helpsvc.sys = 1
[Helper.Install]
CopyFiles = Helper_Files
AddReg = Helper_Reg
[Helper_Files]
helpsvc.sys
[Helper_Reg]
HKLM,Software\ContosoHelper,Where,,"%HS%"
HKLM,Software\ContosoHelper,Dir,0x00020000,"%11%\helper"
HKLM,Software\ContosoHelper,Count,0x00010001,3
[Helper.Install.Services]
AddService = helpsvc, 0, Help_Svc
[Help_Svc]
DisplayName = %HS%
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\helpsvc.sys
AddReg = Help_SvcReg
[Help_SvcReg]
HKR,Parameters,FromHelper,0x00010001,7
HKR,Parameters,Text,,"%HS%"
[Strings]
P="Contoso helper"
HS="Helper Service"
"""


def test_needs_of_an_included_oem_inf_match_wine(wine, tmp_path):
    """Wine's setupapi does not follow Include/Needs, so the needed sections are run from their own
    INF (``InstallHinfSection Helper.Install … helper.inf`` also runs ``Helper.Install.Services``):
    the same sections with the included INF's strings and DIRIDs, which is what Needs means."""
    from ffuforge.package.infinclude import resolve_needs

    staging = tmp_path / "staged"
    staging.mkdir()
    for name, text in (("main.inf", INCLUDING_INF), ("helper.inf", INCLUDED_INF)):
        (staging / name).write_text(text.replace("\n", "\r\n"))
    for stand_in in ("main.sys", "helpsvc.sys"):
        (staging / stand_in).write_bytes(b"")
    parsed = parse_inf(staging / "main.inf", "main.inf")
    imported = import_driver(parsed, "amd64")
    needed, warnings = resolve_needs(parsed, imported, lambda n, ln: parse_inf(staging / n, n))
    assert warnings == [] and [n.section for n in needed] == ["Helper.Install", "Helper.Install.Services"]
    reg = install_registry(parsed, imported, "main.inf", None, needed)
    ours: dict[str, dict[str, tuple[int, bytes]]] = {}
    software: dict[str, tuple[int, bytes]] = {}
    prefix = SERVICES.lower() + "\\"
    for v in reg.values:
        if v.key.lower().startswith(prefix):
            ours.setdefault(v.key[len(prefix) :].lower(), {})[v.name.lower()] = (v.data.type, v.data.data)
        else:
            assert v.key == r"HKEY_LOCAL_MACHINE\Software\ContosoHelper", v.key
            software[v.name.lower()] = (v.data.type, v.data.data)
    assert reg.services == ["helpsvc", "mainsvc"]
    wine(staging / "main.inf", "Dev")
    wine_reg = wine(staging / "helper.inf", "Helper.Install")
    assert compare(ours, reg.services, wine_reg) == 12  # 5 + 2 Parameters (helpsvc), 5 (mainsvc)
    theirs = dict(wine_reg["software\\contosohelper"])
    # Wine's system directory is spelt C:\windows\system32: DIRID text is compared case-insensitively
    assert (
        _text(software.pop("dir")[1]).lower()
        == _text(theirs.pop("dir")[1]).lower()
        == r"c:\windows\system32\helper"
    )
    assert software == theirs and len(software) == 2
