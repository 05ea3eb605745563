"""Fuzz targets shared by the hypothesis tests (test_fuzz.py) and the atheris entry points.

Each target takes bytes and feeds them to one reader the way a build meets hostile input. The only
acceptable failure is FFUError (a user-facing one-line error); anything else escaping — IndexError,
struct.error, UnicodeError, RecursionError, a hang — is a bug. `seeds(name)` gives valid inputs to
start mutating from (built in memory, nothing committed).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "site_scons") not in sys.path:
    sys.path.insert(0, str(ROOT / "site_scons"))

from ffuforge.errors import FFUError  # noqa: E402
from ffuforge.features import fm, oeminput
from ffuforge.formats import bcd, cab, ffu, hive
from ffuforge.image import install, layout
from ffuforge.package import buildfilter, inf, infinstall, project, sources, variant
from ffuforge.util import xmlsafe

_TMP = Path(tempfile.mkdtemp(prefix="ffuforge-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)
_COUNTER = itertools.count()
MAX_LEN = 4 << 20


def _file(data: bytes, suffix: str) -> Path:
    """A fresh file per input (readers that cache by path and mtime must not see an old one)."""
    p = _TMP / f"in{next(_COUNTER) % 64}{suffix}"
    p.unlink(missing_ok=True)
    p.write_bytes(data)
    return p


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------ targets


def fuzz_project(data: bytes) -> None:
    """A package project (.wm.xml / .pkg.xml), loaded and planned for arm64 with two languages."""
    p = _file(data, ".wm.xml")
    proj = project.load(p, "fuzz.wm.xml")
    opts = variant.BuildOptions(
        cpu="arm64",
        version="10.0.1.0",
        languages=("en-us", "de-de"),
        variables=(("BLDDIR", "bld"), ("OEMNAME", "Contoso"), ("PROD", "SampleA")),
    )
    # planned as a package action plans (missing payloads are the build's to report): the fuzzer
    # exercises the readers and the planner, not the file system
    lenient = sources.SourcePolicy(roots=None, report_missing=False)
    for v in variant.plan(proj, opts, "", top=_TMP, policy=lenient):
        variant.describe(v, _TMP)


def fuzz_fm(data: bytes) -> None:
    fm.parse_fm_bytes(data, "fuzz-FM.xml")


def fuzz_fmfilelist(data: bytes) -> None:
    fm.load_fmfilelist(_file(data, ".xml"), "fuzz-FMFileList.xml")


def fuzz_oeminput(data: bytes) -> None:
    oeminput.parse_bytes(data, "fuzz-OEMInput.xml", {"OEM_NAME": "Contoso", "BLD_DIR": "build"})


def fuzz_layout(data: bytes) -> None:
    """DeviceLayout.xml, then a placement on a 1 GiB platform."""
    dl = layout.load_device_layout(data, "fuzz-DeviceLayout.xml")
    dp = layout.load_device_platform(
        b'<OEMDevicePlatform xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">'
        b"<MinSectorCount>2097152</MinSectorCount><DevicePlatformIDs><ID>Fuzz.Board</ID></DevicePlatformIDs>"
        b"</OEMDevicePlatform>",
        "platform.xml",
    )
    layout.compute_layout(dl, dp, {p.name: 1 << 20 for p in dl.partitions})


def fuzz_platform(data: bytes) -> None:
    layout.load_device_platform(data, "fuzz-OEMDevicePlatform.xml")


def fuzz_bcd(data: bytes) -> None:
    p = _file(data, ".xml")
    bcd.build_bcd([p], timestamp=1577836800)


def fuzz_buildfilter(data: bytes) -> None:
    text = _text(data)
    buildfilter.parse(text)
    for env in (
        {"build.arch": "arm64", "build.iswow": "false"},
        {"build.arch": "x86", "build.iswow": "true"},
    ):
        buildfilter.evaluate(text, env)


def fuzz_inf(data: bytes) -> None:
    parsed = inf.parse_inf_bytes(data, "fuzz.inf")
    for arch in ("arm64", "x86"):
        try:
            infinstall.install_registry(parsed, inf.import_driver(parsed, arch), "fuzz.inf")
        except FFUError:
            pass


def fuzz_cab(data: bytes) -> None:
    with cab.CabReader(_file(data, ".cab")) as r:
        for m in r.members[:64]:
            r.read(m, 1 << 20)


def fuzz_ffu(data: bytes) -> None:
    from ffuforge.signing.verify import catalog_signature_problems

    with ffu.FfuReader(_file(data, ".ffu")) as r:
        r.verify(
            catalog_check=lambda der, signers: catalog_signature_problems(
                der, where="catalog", signers=signers
            )
        )


def fuzz_hive(data: bytes) -> None:
    """A hive, and `bcd dump`'s decoding of it as a store (refused when it is none)."""
    from ffuforge.formats.bcd.dump import describe_store, format_store

    h = hive.parse_hive(data, "fuzz-hive")
    h.as_dict()
    if h.root.subkey("Objects") is not None:
        format_store(describe_store(h))


def fuzz_install(data: bytes) -> None:
    """A vendor CAB installed into a staged MainOS (update.mum, manifests, services, registry)."""
    stage = _TMP / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    st = install.Staging("MainOS", stage / "root")
    install.install_package(st, _file(data, ".cab"))
    st.manifest()


def fuzz_xml(data: bytes) -> None:
    """The hardened XML loader itself (entities, DTDs, sizes)."""
    xmlsafe.parse_bytes(data, "fuzz.xml")


TARGETS = {name[5:]: fn for name, fn in globals().items() if name.startswith("fuzz_") and callable(fn)}


def run(name: str, data: bytes) -> None:
    """Call a target; FFUError is the expected answer to bad input."""
    if len(data) > MAX_LEN:
        return
    try:
        TARGETS[name](data)
    except FFUError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), f"multi-line error: {message!r}"


# -------------------------------------------------------------------------------------- seeds


def _read(rel: str) -> bytes:
    return (ROOT / rel).read_bytes()


@functools.cache
def _package_cab() -> bytes:
    """A CBS package with files, registry values of several types and a service."""
    from ffuforge.package.build import build_variant

    d = Path(tempfile.mkdtemp(prefix="seed-", dir=_TMP))
    (d / "a.txt").write_text("a\n")
    (d / "P.wm.xml").write_text(
        '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" namespace="T" name="P">'
        '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)"/></files>'
        '<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="s" type="REG_SZ" value="x"/>'
        '<regValue name="d" type="REG_DWORD" value="0x10"/><regValue name="b" type="REG_BINARY" value="0102"/>'
        '<regValue name="m" type="REG_MULTI_SZ" value="a;b"/></regKey></regKeys>'
        '<service name="Svc" start="auto" type="win32OwnProcess" imagePath="$(runtime.system32)\\a.exe">'
        '<failureActions resetPeriod="60"><actions><action type="restartService" delay="1000"/></actions>'
        "</failureActions></service></identity>"
    )
    v = variant.plan(project.load(d / "P.wm.xml"), variant.BuildOptions(cpu="arm64"), "", top=d)[0]
    build_variant(v, d / "p.cab")
    return (d / "p.cab").read_bytes()


@functools.cache
def _mszip_cab() -> bytes:
    p = _TMP / "seed-mszip.cab"
    cab.write_cab(
        p,
        [cab.CabMember("a.txt", data=b"hello " * 300), cab.CabMember("dir\\b.bin", data=bytes(range(256)))],
        compression="mszip",
    )
    return p.read_bytes()


def _lzx_quantum_cab() -> list[bytes]:
    """libmspack's MSZIP+LZX+Quantum test cabinet (../shared/corpus), when the corpus is there."""
    p = ROOT.parent / "shared" / "corpus" / "cab-libmspack" / "mszip_lzx_qtm.cab"
    return [p.read_bytes()] if p.is_file() else []


@functools.cache
def _small_ffu() -> bytes:
    from ffuforge.formats.disklayout import DiskLayout, PlacedPartition

    img = _TMP / "seed-data.img"
    with open(img, "wb") as fh:
        fh.truncate(4096 * 512)
        for block in (0, 3):
            fh.seek(block * (128 << 10))
            fh.write(bytes([block + 1]) * 700)
    disk = DiskLayout(
        "gpt",
        512,
        128 << 10,
        8192,
        (
            PlacedPartition(
                "Data", "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}", 2048, 4096, required_to_flash=True
            ),
        ),
        platform_ids=("Fuzz.Board",),
    )
    out = _TMP / "seed.ffu"
    ffu.write_ffu(out, disk, {"Data": img}, os_version="10.0.17763.1", description="fuzz seed")
    return out.read_bytes()


@functools.cache
def _small_hive() -> bytes:
    b = hive.HiveBuilder("ROOT", timestamp=1577836800)
    b.set_value("Contoso\\Sample", "s", 1, "text\0".encode("utf-16-le"))
    b.set_value("Contoso\\Sample", "d", 4, (7).to_bytes(4, "little"))
    b.set_value("Contoso\\Big", "blob", 3, bytes(range(256)) * 80)
    b.ensure_key("Contoso\\Empty")
    return b.to_bytes("SOFTWARE")


def _small_bcd() -> bytes:
    """A store with a GPT device, a ramdisk device, an object list and an integer list."""
    from ffuforge.formats.bcd import gpt_partition_device, new_store, ramdisk_device

    b = new_store(1577836800)
    obj = "Objects\\{7619dcc9-fafe-11d9-b411-000476eba25f}"
    b.set_value(obj + "\\Description", "Type", 4, (0x10200003).to_bytes(4, "little"))
    part = gpt_partition_device(uuid.UUID(int=1), uuid.UUID(int=2))
    b.set_value(obj + "\\Elements\\21000001", "Element", 3, bytes(16) + part)
    b.set_value(obj + "\\Elements\\11000001", "Element", 3, bytes(16) + ramdisk_device("\\a.wim", part))
    b.set_value(obj + "\\Elements\\14000006", "Element", 7, "{a}\0{b}\0\0".encode("utf-16-le"))
    b.set_value(obj + "\\Elements\\27000030", "Element", 3, bytes(16))
    return b.to_bytes("BCD")


def _utf16(rel: str) -> bytes:
    return _read(rel)


SEEDS = {
    "project": lambda: [
        _read(p)
        for p in (
            "packages/Registry.Settings/Registry.Settings.wm.xml",
            "packages/Services.Heartbeat/Services.Heartbeat.wm.xml",
            "packages/Legacy.Tools/Legacy.Tools.pkg.xml",
            "packages/Custom.Files/Custom.Files.wm.xml",
        )
    ],
    "fm": lambda: [_read("packages/OEMFM.xml"), _read("bsp/ContosoBoard/Packages/ContosoBoardFM.xml")],
    "fmfilelist": lambda: [_read("packages/OEMFMFileList.xml")],
    "oeminput": lambda: [
        _read("products/SampleA/TestOEMInput.xml"),
        _read("products/SampleA/RetailOEMInput.xml"),
    ],
    "layout": lambda: [_read("bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/DeviceLayout.xml")],
    "platform": lambda: [_read("bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/OEMDevicePlatform.xml")],
    "bcd": lambda: [_read("packages/Custom.BCD/Custom.BCD.xml")],
    "buildfilter": lambda: [
        b"build.arch = arm64 or build.arch = arm",
        b"not build.isWow and (build.arch != x86)",
    ],
    "inf": lambda: [
        _read("bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf"),
        _read("bsp/ContosoBoard/Packages/ContosoBoard.UART/contosouart.inf"),
        _read("bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf").decode("utf-16").encode(),
    ],
    "cab": lambda: [_package_cab(), _mszip_cab(), *_lzx_quantum_cab()],
    "ffu": lambda: [_small_ffu()],
    "hive": lambda: [_small_hive(), _small_bcd()],
    "install": lambda: [_package_cab()],
    "xml": lambda: [_read("packages/OEMFM.xml"), b'<?xml version="1.0"?><a b="c">d<e/></a>'],
}


def seeds(name: str) -> list[bytes]:
    return SEEDS[name]()


def write_corpus(name: str, directory: str | os.PathLike) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds(name)):
        (d / f"seed{i}").write_bytes(s)
    return d
