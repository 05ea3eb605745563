"""Synthetic workspaces for benchmarks: N package projects with a configurable payload."""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))

SCONSTRUCT = """
import sys
from ffuforge import scons_tool
DefaultEnvironment(tools=[])
env = Environment(tools=[scons_tool.generate], FFU_CPU="arm64", FFU_LANGUAGES=["en-us", "de-de"],
                  FFU_COMPRESSION=ARGUMENTS.get("COMPRESSION", "none"), FFU_SIGN=ARGUMENTS.get("SIGN", "none"),
                  FFU_SIGN_PE=ARGUMENTS.get("SIGN_PE", "1") == "1",
                  FFU_VARIABLES={"OEMNAME": "Bench", "BLDDIR": "#build/arm64/payload"})
env.Decider("content-timestamp")
SConsignFile(f"build/.sconsign-py{sys.version_info[0]}{sys.version_info[1]}")
cabs = []
for project in sorted(Glob("packages/*/*.wm.xml"), key=str):
    cabs += env.Package(project)
Default(cabs)
"""

WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="$(OEMNAME)" namespace="Bench" name="P{i:04d}"
    legacyName="$(OEMNAME).Bench.P{i:04d}">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />
  <files>
{files}
  </files>
  <regKeys>
    <regKey keyName="$(hklm.software)\\$(OEMNAME)\\P{i:04d}">
      <regValue name="Index" type="REG_DWORD" value="0x{i:08X}" />
      <regValue name="Name" type="REG_SZ" value="package {i}" />
    </regKey>
  </regKeys>
{language}</identity>
"""

WORDS = (
    "device driver image partition package manifest catalog registry service firmware board "
    "contoso windows iot core onecore feature layout sector cluster volume boot loader"
).split()


def _payload(rng: random.Random, size: int, text: bool) -> bytes:
    if not text:
        return rng.randbytes(size)
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.randrange(1 << 30)}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def generate(
    dest: Path,
    packages: int,
    total_bytes: int,
    files_per_package: int = 4,
    seed: int = 1,
    pe_per_package: int = 0,
) -> int:
    """Write a workspace; half the payload is random (incompressible), half text. Returns payload bytes."""
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "packages").mkdir(parents=True)
    shutil.copytree(ROOT / "site_scons", dest / "site_scons", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "testcerts", dest / "testcerts")
    (dest / "SConstruct").write_text(SCONSTRUCT)
    per_file = max(1, total_bytes // (packages * files_per_package))
    written = 0
    for i in range(packages):
        pdir = dest / "packages" / f"P{i:04d}"
        pdir.mkdir()
        files: list[str] = []
        if pe_per_package:
            from ffuforge.formats import pe  # noqa: PLC0415 - only needed for PE payloads

            for k in range(pe_per_package):
                name = f"driver{k}.sys"
                image = pe.make_minimal_pe(
                    None, machine="arm64", kind="sys", payload=rng.randbytes(64 * 1024)
                )
                (pdir / name).write_bytes(image)
                written += len(image)
                files.append(
                    f'    <file source=".\\{name}" destinationDir="$(runtime.drivers)" '
                    f'name="p{i:04d}_{name}" />'
                )
        for k in range(files_per_package):
            name = f"file{k}.{'txt' if k % 2 else 'bin'}"
            size = max(1, int(per_file * rng.uniform(0.5, 1.5)))
            (pdir / name).write_bytes(_payload(rng, size, text=bool(k % 2)))
            written += size
            files.append(
                f'    <file source=".\\{name}" destinationDir="$(runtime.system32)\\Bench\\P{i:04d}" />'
            )
        language = ""
        if i % 10 == 0:
            for lang in ("en-us", "de-de"):
                (pdir / lang).mkdir()
                (pdir / lang / "strings.txt").write_text(f"{lang} strings of package {i}\n")
                written += len(f"{lang} strings of package {i}\n")
            language = (
                '  <language><files><file source=".\\$(LANGID)\\strings.txt" '
                f'destinationDir="$(runtime.system32)\\Bench\\$(LANGID)" name="P{i:04d}.txt"/>'
                "</files></language>\n"
            )
        (pdir / f"P{i:04d}.wm.xml").write_text(WM.format(i=i, files="\n".join(files), language=language))
    return written


def payload_files(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "packages").rglob("*") if p.is_file() and not p.name.endswith(".wm.xml"))


def environ() -> dict[str, str]:
    """The environment of benchmarked builds: the default epoch, and bytecode caching on (as for
    users; a CI's PYTHONDONTWRITEBYTECODE would add ~0.2 s of compiling to every scons run)."""
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ------------------------------------------------------------------------ image workspace (scale)

IMAGE_SCONSTRUCT = """
# ffuforge benchmark workspace (generated by bench/workspace.py): the sample's pipeline at scale.
import sys
from ffuforge import scons_tool
DefaultEnvironment(tools=[])
env = Environment(tools=[scons_tool.generate], CPU="arm64", FFU_CPU="arm64", FFU_VERSION="10.0.1.0",
                  FFU_LANGUAGES=["en-us", "de-de"], FFU_COMPRESSION=ARGUMENTS.get("COMPRESSION", "none"),
                  FFU_SIGN=ARGUMENTS.get("SIGN", "test"),
                  FFU_VARIABLES={"OEMNAME": "Bench", "BLDDIR": "#build/arm64/payload"})
env.Decider("content-timestamp")
SConsignFile(f"build/.sconsign-py{sys.version_info[0]}{sys.version_info[1]}")
if ARGUMENTS.get("COUNT_NODES"):
    import atexit, gc, SCons.Node
    atexit.register(lambda: print("NODES", sum(isinstance(o, SCons.Node.Node) for o in gc.get_objects())))
if ARGUMENTS.get("BARE"):
    SConscript("SConscript.bare", exports="env")
    Return()
cabs = []
for project in sorted(Glob("packages/*/*.wm.xml") + Glob("bsp/*/*/*.wm.xml"), key=str):
    cabs += env.Package(project)
env.Alias("packages", cabs)
merged = env.FeatureMerge("packages/BenchFMFileList.xml") + env.FeatureMerge("bsp/BoardFMFileList.xml")
ffu = env.Image("products/Bench/TestOEMInput.xml", PRODUCT="Bench", CONFIG="Test")
Default(ffu)
"""

# A bare graph shaped like the real one (a target per CAB with the same source files, partitions
# over the CABs, an FFU over the partitions) with trivial actions, padded with Value nodes to the
# real graph's node count: what SCons itself costs for a no-op build of this many nodes.
BARE_SCONSCRIPT = """
import json
Import("env")
SConsignFile("build/.sconsign-bare")

def touch(target, source, env):
    for t in target:
        with open(t.abspath, "w") as fh:
            fh.write(t.name)
    return 0

cabs = []
for project in sorted(Glob("packages/*/*.wm.xml") + Glob("bsp/*/*/*.wm.xml"), key=str):
    d = project.dir
    srcs = [project] + [f for f in d.glob("*") if f.isfile()] + [f for f in d.glob("*/*") if f.isfile()]
    spec = env.Value(json.dumps({"project": project.path}))
    cabs += env.Command("bare/" + project.name.replace(".wm.xml", ".cab"), srcs + [spec], touch)
lay = env.Command("bare/layout.json", cabs + [env.Value("layout")], touch)
parts = [env.Command("bare/%s.img" % p, lay + cabs + [env.Value(p)], touch) for p in ("EFIESP", "MainOS", "Data")]
pad = [env.Value("pad%d" % i) for i in range(int(ARGUMENTS.get("PAD", "0")))]
ffu = env.Command("bare/Flash.ffu", lay + parts + pad, touch)
Default(ffu)
"""

DEVICE_PLATFORM = """<?xml version="1.0" encoding="utf-8"?>
<OEMDevicePlatform xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <MinSectorCount>{sectors}</MinSectorCount>
  <DevicePlatformIDs>
    <ID>Bench.BenchBoard</ID>
  </DevicePlatformIDs>
</OEMDevicePlatform>
"""

LAYOUT_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="BenchBoard" name="DeviceLayout" legacyName="$(OEMNAME).BenchBoard.DeviceLayout">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="SiliconVendor" />
  <files>
    <file source=".\\DeviceLayout.xml" destinationDir="$(runtime.windows)\\ImageUpdate" name="DeviceLayout.xml" />
    <file source=".\\OEMDevicePlatform.xml" destinationDir="$(runtime.windows)\\ImageUpdate"
        name="OEMDevicePlatform.xml" />
  </files>
</identity>
"""

ESP_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="BenchBoard" name="EspFiles" legacyName="$(OEMNAME).BenchBoard.EspFiles">
  <onecorePackageInfo targetPartition="EFIESP" releaseType="Production" ownerType="SiliconVendor" />
  <files>
    <file source=".\\boot.cfg" destinationDir="$(runtime.bootDrive)\\EFI\\Bench" name="boot.cfg" />
  </files>
</identity>
"""

IMAGE_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="$(OEMNAME)" namespace="Bench" name="P{i:04d}"
    legacyName="$(OEMNAME).Bench.P{i:04d}">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />
{files}{drivers}  <regKeys>
    <regKey keyName="$(hklm.software)\\$(OEMNAME)\\P{i:04d}">
      <regValue name="Index" type="REG_DWORD" value="0x{i:08X}" />
      <regValue name="Name" type="REG_SZ" value="package {i}" />
      <regValue name="Blob" type="REG_BINARY" value="{blob}" />
    </regKey>
  </regKeys>
{language}</identity>
"""

INF = """; bench{i:04d}.inf - synthetic driver of benchmark package P{i:04d}
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {{4d36e97d-e325-11ce-bfc1-08002be10318}}
Provider    = %ManufacturerName%
CatalogFile = bench{i:04d}.cat
DriverVer   = 11/01/2026,10.0.0.0
PnpLockdown = 1

[DestinationDirs]
DefaultDestDir = 12

[SourceDisksNames]
1 = %DiskName%,,,""

[SourceDisksFiles]
bench{i:04d}.sys = 1,,

[Manufacturer]
%ManufacturerName% = Standard,NT$ARCH$

[Standard.NT$ARCH$]
%Dev.DeviceDesc% = Bench_Device, ACPI\\BNCH{i:04d}

[Bench_Device.NT]
CopyFiles = Bench_Device.CopyFiles

[Bench_Device.CopyFiles]
bench{i:04d}.sys

[Bench_Device.NT.Services]
AddService = bench{i:04d}, %SPSVCINST_ASSOCSERVICE%, Bench_Service_Inst

[Bench_Service_Inst]
DisplayName   = %Dev.SvcDesc%
ServiceType   = 1
StartType     = 3
ErrorControl  = 1
ServiceBinary = %12%\\bench{i:04d}.sys

[Strings]
SPSVCINST_ASSOCSERVICE = 0x00000002
ManufacturerName = "Bench"
DiskName = "Bench Installation Disk"
Dev.DeviceDesc = "Bench device {i}"
Dev.SvcDesc = "Bench driver {i}"
"""

FM_FILELIST = """<?xml version="1.0" encoding="utf-8"?>
<FMCollectionManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate" Product="IoTUAP">
  <IsBuildFeatureEnabled>true</IsBuildFeatureEnabled>
  <FMs>
    <FM ID="{id}" Path="$(FMDirectory)\\{fm}" ReleaseType="Production" OwnerName="OEM_NAME" OwnerType="OEM"
        CPUType="CPU_TYPE" Critical="true" />
  </FMs>
  <SupportedResolutions><Resolution>1024x768</Resolution></SupportedResolutions>
  <SupportedLanguages><Language>en-US</Language><Language>de-DE</Language></SupportedLanguages>
  <SupportedLocales><Locale>en-US</Locale></SupportedLocales>
</FMCollectionManifest>
"""

FM = """<?xml version="1.0" encoding="utf-8"?>
<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
{body}
</FeatureManifest>
"""

OEMINPUT = """<?xml version="1.0" encoding="utf-8"?>
<OEMInput xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <Description>ffuforge benchmark image</Description>
  <SOC>BenchBoard</SOC>
  <SV>Bench</SV>
  <Device>BenchBoard</Device>
  <ReleaseType>Test</ReleaseType>
  <BuildType>fre</BuildType>
  <SupportedLanguages><UserInterface><Language>en-us</Language></UserInterface></SupportedLanguages>
  <BootUILanguage>en-us</BootUILanguage>
  <BootLocale>en-us</BootLocale>
  <Resolutions><Resolution>1024x768</Resolution></Resolutions>
  <AdditionalFMs>
    <AdditionalFM>%BLD_DIR%\\MergedFMs\\BoardFM.xml</AdditionalFM>
    <AdditionalFM>%BLD_DIR%\\MergedFMs\\BenchFM.xml</AdditionalFM>
  </AdditionalFMs>
  <Features><OEM><Feature>BENCH_ESP</Feature></OEM></Features>
  <Product>Windows 10 IoT Core</Product>
</OEMInput>
"""

DISTRIBUTIONS = ("lognormal", "uniform", "equal")


def file_sizes(rng: random.Random, count: int, total: int, dist: str) -> list[int]:
    """`count` payload sizes summing to about `total`: lognormal (many small files and a few
    large ones, sigma 1.5), uniform (0.5-1.5x the mean) or equal."""
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown size distribution {dist!r}; use one of {', '.join(DISTRIBUTIONS)}")
    if dist == "equal":
        raw = [1.0] * count
    elif dist == "uniform":
        raw = [rng.uniform(0.5, 1.5) for _ in range(count)]
    else:
        raw = [rng.lognormvariate(0, 1.5) for _ in range(count)]
    scale = total / sum(raw)
    return [max(16, int(x * scale)) for x in raw]


class _Text:
    """Cheap compressible text: slices of a pre-generated block of words."""

    def __init__(self, rng: random.Random):
        self.block = _payload(rng, 1 << 20, text=True)
        self.rng = rng

    def take(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            start = self.rng.randrange(len(self.block) // 2)
            out += self.block[start : start + min(size - len(out), len(self.block) - start)]
        return bytes(out)


def _driver_pe(seed: int, size: int) -> bytes:
    from ffuforge.formats import pe  # noqa: PLC0415 - needs site_scons on sys.path (set above)

    return pe.make_minimal_pe(None, machine="arm64", kind="sys", payload=random.Random(seed).randbytes(size))


def driver_path(ws: Path, i: int) -> Path:
    return ws / "packages" / f"P{i:04d}" / f"bench{i:04d}.sys"


def edit_driver(ws: Path, i: int, generation: int = 1) -> Path:
    """Replace the driver payload of package i by another PE of the same size (an edited driver)."""
    path = driver_path(ws, i)
    size = len(path.read_bytes())
    image = _driver_pe(i * 1000 + generation, size)
    while len(image) > size:  # same-size payload: trim until the PE matches the original length
        image = _driver_pe(i * 1000 + generation, size - (len(image) - size) - 512)
    path.write_bytes(image)
    return path


def driver_packages(packages: int) -> list[int]:
    return [i for i in range(packages) if i % 3 == 0]


def generate_image(
    dest: Path,
    packages: int = 300,
    total_bytes: int = 1 << 30,
    *,
    dist: str = "lognormal",
    seed: int = 1,
    disk_bytes: int | None = None,
) -> dict:
    """A workspace whose `scons` builds Flash.ffu: `packages` MainOS package projects (every third
    with a driver: stand-in PE and a UTF-16 INF; registry values in all; language resources in
    every tenth), a board (DeviceLayout/OEMDevicePlatform package with a GPT layout, an EFIESP
    package), FMs with their FMFileLists and an OEMInput. Payload: `total_bytes` spread over the
    files by `dist`, half random and half text. Returns a summary dict."""
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    for d in ("packages", "bsp/BenchBoard", "products/Bench"):
        (dest / d).mkdir(parents=True)
    shutil.copytree(ROOT / "site_scons", dest / "site_scons", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "testcerts", dest / "testcerts")
    (dest / "SConstruct").write_text(IMAGE_SCONSTRUCT)
    (dest / "SConscript.bare").write_text(BARE_SCONSCRIPT)
    text = _Text(rng)
    drivers = set(driver_packages(packages))
    counts = [rng.randint(1, 7) for _ in range(packages)]
    nfiles = sum(counts) + len(drivers)
    sizes = iter(file_sizes(rng, nfiles, total_bytes, dist))
    written = files_total = 0
    fm_entries = []
    for i in range(packages):
        pdir = dest / "packages" / f"P{i:04d}"
        pdir.mkdir()
        files = []
        for k in range(counts[i]):
            is_text = k % 2 == 1
            name = f"file{k}.{'txt' if is_text else 'bin'}"
            size = next(sizes)
            (pdir / name).write_bytes(text.take(size) if is_text else rng.randbytes(size))
            written += size
            files.append(
                f'    <file source=".\\{name}" destinationDir="$(runtime.system32)\\Bench\\P{i:04d}" />'
            )
        files_total += len(files)
        drv = ""
        if i in drivers:
            image = _driver_pe(i * 1000, max(512, next(sizes) - 1024))
            driver_path(dest, i).write_bytes(image)
            (pdir / f"bench{i:04d}.inf").write_bytes(
                b"\xff\xfe" + INF.format(i=i).replace("\n", "\r\n").encode("utf-16-le")
            )
            written += len(image)
            files_total += 2
            drv = f'  <drivers>\n    <driver>\n      <inf source=".\\bench{i:04d}.inf" />\n    </driver>\n  </drivers>\n'
        language = ""
        if i % 10 == 0:
            for lang in ("en-us", "de-de"):
                (pdir / lang).mkdir()
                data = f"{lang} strings of package {i}\n".encode() * 64
                (pdir / lang / "strings.txt").write_bytes(data)
                written += len(data)
            language = (
                '  <language><files><file source=".\\$(LANGID)\\strings.txt" '
                f'destinationDir="$(runtime.system32)\\Bench\\$(LANGID)" name="P{i:04d}.txt"/>'
                "</files></language>\n"
            )
            for lang in ("en-us", "de-de"):
                fm_entries.append(
                    f'    <PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Bench.P{i:04d}'
                    f'.Resources_Lang_{lang}.cab" Language="({lang})" />'
                )
        files_xml = "  <files>\n" + "\n".join(files) + "\n  </files>\n"
        (pdir / f"P{i:04d}.wm.xml").write_text(
            IMAGE_WM.format(
                i=i, files=files_xml, drivers=drv, language=language, blob=rng.randbytes(16).hex()
            )
        )
        fm_entries.append(f'    <PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Bench.P{i:04d}.cab" />')
    (dest / "packages" / "BenchFM.xml").write_text(
        FM.format(body="  <BasePackages>\n" + "\n".join(fm_entries) + "\n  </BasePackages>")
    )
    (dest / "packages" / "BenchFMFileList.xml").write_text(FM_FILELIST.format(id="BENCHFM", fm="BenchFM.xml"))

    # Board: GPT layout sized for the payload, an EFIESP package, the FM and its FMFileList.
    mib = 1 << 20
    if disk_bytes is None:
        disk_bytes = max(8 << 30, -(-(2 * total_bytes + (2 << 30)) // (1 << 30)) * (1 << 30))
    board = dest / "bsp" / "BenchBoard"
    (board / "DeviceLayout").mkdir()
    sys.path.insert(0, str(ROOT / "site_scons"))
    from ffuforge.features import templates  # noqa: PLC0415 - the sample's layout, from the library

    (board / "DeviceLayout" / "DeviceLayout.xml").write_bytes(templates.device_layout((256 * mib) // 512))
    (board / "DeviceLayout" / "OEMDevicePlatform.xml").write_text(
        DEVICE_PLATFORM.format(sectors=disk_bytes // 512)
    )
    (board / "DeviceLayout" / "BenchBoard.DeviceLayout.wm.xml").write_text(LAYOUT_WM)
    (board / "EspFiles").mkdir()
    (board / "EspFiles" / "boot.cfg").write_text("timeout=0\n")
    (board / "EspFiles" / "BenchBoard.EspFiles.wm.xml").write_text(ESP_WM)
    fm = (
        '  <DeviceLayoutPackages>\n    <PackageFile SOC="BenchBoard" Path="%BSPPKG_DIR%" '
        'Name="%OEM_NAME%.BenchBoard.DeviceLayout.cab" />\n  </DeviceLayoutPackages>\n'
        '  <OEMDevicePlatformPackages>\n    <PackageFile Device="BenchBoard" Path="%BSPPKG_DIR%" '
        'Name="%OEM_NAME%.BenchBoard.DeviceLayout.cab" />\n  </OEMDevicePlatformPackages>\n'
        '  <Features><OEM>\n    <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.BenchBoard.EspFiles.cab" '
        'Partition="EFIESP"><FeatureIDs><FeatureID>BENCH_ESP</FeatureID></FeatureIDs></PackageFile>\n'
        "  </OEM></Features>"
    )
    (dest / "bsp" / "BoardFM.xml").write_text(FM.format(body=fm))
    (dest / "bsp" / "BoardFMFileList.xml").write_text(FM_FILELIST.format(id="BOARDFM", fm="BoardFM.xml"))
    (dest / "products" / "Bench" / "TestOEMInput.xml").write_text(OEMINPUT)
    return {
        "packages": packages,
        "payload_bytes": written,
        "files": files_total,
        "drivers": len(drivers),
        "languages": sum(1 for i in range(packages) if i % 10 == 0),
        "disk_bytes": disk_bytes,
        "dist": dist,
    }
