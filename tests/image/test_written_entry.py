"""The package action's entry made from the members the build wrote (extractcache.WrittenCab, no
inflation, no checksums) is exactly what extracting the CAB gives: the record and every store
file, for the sample's kinds of packages (files, languages, security descriptors, registry, BCD,
a binary partition, drivers with INF, catalog and driver store, services, PE payloads signed or
not), generated ones (version package, FIP), stored and MSZIP, signed and unsigned. A payload
edited after the CAB was written never gives an entry other than the CAB's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ffuforge.formats import pe, regvalue
from ffuforge.formats.cab import CabReader
from ffuforge.image import extractcache, install
from ffuforge.package import project, variant
from ffuforge.package.build import BuildSettings, build_variant

TOP = Path(__file__).resolve().parents[2]
PROJECTS = [
    "packages/Custom.Files/Custom.Files.wm.xml",  # files, language resources, security descriptors
    "packages/Custom.BCD/Custom.BCD.wm.xml",
    "packages/Registry.Settings/Registry.Settings.wm.xml",
    "packages/Services.Heartbeat/Services.Heartbeat.wm.xml",
    "packages/COM.Sample/COM.Sample.wm.xml",
    "packages/Wow.Sample/Wow.Sample.wm.xml",
    "packages/Legacy.Tools/Legacy.Tools.pkg.xml",
    "packages/Test.Diagnostics/Test.Diagnostics.wm.xml",
    "bsp/ContosoBoard/Packages/ContosoBoard.BootLoader/ContosoBoard.BootLoader.wm.xml",  # binaryPartition
    "bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/ContosoBoard.DeviceLayout.wm.xml",
    "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/ContosoBoard.GPIO.wm.xml",  # drivers
    "bsp/ContosoBoard/Packages/ContosoBoard.UART/ContosoBoard.UART.wm.xml",
    "bsp/ContosoBoard/Packages/SV.PlatExtensions.UpdateOS/SV.PlatExtensions.UpdateOS.wm.xml",
]


def _payload(bld: Path) -> None:
    """The stand-in payload the sample's SConscripts build (bsp/SConscript, packages/SConscript)."""
    for rel, kind in (
        ("bin/heartbeat.exe", "exe"),
        ("bin/contosocom.dll", "dll"),
        ("bin/contosotool64.exe", "exe"),
        ("bin/contosotool32.exe", "exe"),
        ("drivers/contosogpio.sys", "sys"),
        ("drivers/contosouart.sys", "sys"),
        ("drivers/contososdhc.sys", "sys"),
        ("drivers/helpers/uarthelper.dll", "dll"),
    ):
        (bld / rel).parent.mkdir(parents=True, exist_ok=True)
        pe.make_minimal_pe(bld / rel, machine="arm64", kind=kind, payload=rel.encode())
    (bld / "firmware").mkdir(exist_ok=True)
    (bld / "firmware/firmware_fit.merged").write_bytes(os.urandom(3 * 65536 + 512))


def _variants(tmp: Path) -> list[variant.Variant]:
    bld = tmp / "payload"
    _payload(bld)
    out = []
    for rel in PROJECTS:
        variables = {"BSPARCH": "arm64", "BLDDIR": str(bld), "OEMNAME": "Contoso", "PROD": "SampleA"}
        opts = variant.BuildOptions(
            cpu="arm64", languages=("en-us", "de-de"), variables=tuple(sorted(variables.items()))
        )
        path = TOP / rel
        out += variant.plan(project.load(path, path.name), opts, "", top=path.parent, driver_files=True)
    opts = variant.BuildOptions(cpu="arm64", version="10.0.1.0")
    out.append(
        variant.fip_variant("Contoso.MainOS.FIP", "MainOS", ("CONTOSO_A", "CONTOSO_B"), opts, owner="Contoso")
    )
    key = "HKEY_LOCAL_MACHINE\\Software\\Contoso\\Version"
    values = [
        (key, n, regvalue.decode("REG_SZ", t, legacy=False)) for n, t in (("Product", "A"), ("Version", "1"))
    ]
    out.append(
        variant.generated_variant(
            "Contoso.Version", "MainOS", opts, owner="Contoso", component="Registry", registry=values
        )
    )
    return out


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    from ffuforge.signing import testpki

    return testpki.ensure_test_pki(tmp_path_factory.mktemp("pki"))


def _entry(entry: Path) -> tuple[dict, dict[str, bytes]]:
    """An entry's parse record (without its key and member mtimes) and its store files."""
    rec = json.loads((entry / extractcache.RECORD).read_bytes())
    rec["store"] = {n: size for n, (size, _) in rec.pop("store").items()}
    rec.pop("key")
    files = {}
    for d, _, names in os.walk(entry):
        for n in names:
            p = Path(d, n)
            if n != extractcache.RECORD:
                files[str(p.relative_to(entry))] = p.read_bytes()
                assert p.stat().st_mode & 0o777 == 0o444
    return rec, files


def _from_cab(cab: Path, tmp: Path) -> tuple[dict, dict[str, bytes]]:
    """The entry of a partition-side extraction of `cab` (today's path), made beside the other."""
    root = tmp / "ref"
    root.mkdir(exist_ok=True)
    parsed, entry = extractcache._fill(str(cab), None, str(root), cab.name, "k")
    assert parsed.error is None, parsed.error
    return _entry(Path(entry))


@pytest.fixture
def no_inflation(monkeypatch):
    """Reading a data block of any CAB fails: what runs under it never inflated anything."""

    def refuse(self, *a, **kw):
        raise AssertionError(f"{self.path}: a data block was read")

    monkeypatch.setattr(CabReader, "iter_chunks", refuse)
    monkeypatch.setattr(CabReader, "read", refuse)
    return monkeypatch


@pytest.mark.parametrize(
    "compression, signed",
    [("none", False), ("mszip", False), ("mszip", True)],
    ids=["none", "mszip", "signed"],
)
def test_entry_from_members_equals_the_cab_extraction(tmp_path, signer, no_inflation, compression, signed):
    settings = BuildSettings(compression=compression, signer=signer if signed else None, sign_pe=signed)
    vs = _variants(tmp_path)
    assert any(v.drivers for v in vs) and any(v.bcd for v in vs) and any(v.binary_image for v in vs)
    built = {}
    for v in vs:
        cab = tmp_path / "packages" / v.cab_name
        b = build_variant(v, cab, settings)
        assert extractcache.prepare(cab, b.members), v.cab_name
        built[cab] = b
    assert len(built) >= 18
    no_inflation.undo()
    kinds = set()
    for cab in built:
        fast = _entry(extractcache.prepared_entry(cab))
        want = _from_cab(cab, tmp_path)
        assert fast[0] == want[0], cab.name
        assert fast[1] == want[1], cab.name
        kinds |= {op[0] for op in fast[0]["ops"]}
    assert {"file", "svc", "reg", "sec", "bcd", "raw"} <= kinds
    signed_pe = [
        w for b in built.values() for w in b.members if w.entry.name.endswith((".sys", ".dll", ".exe"))
    ]
    assert signed_pe and all((w.source is None) == signed for w in signed_pe)  # signed: in-memory bytes


def _built(tmp_path: Path):
    v = next(v for v in _variants(tmp_path) if v.cab_name == "Contoso.Custom.Files.cab")
    cab = tmp_path / "packages" / v.cab_name
    return v, cab, build_variant(v, cab, BuildSettings(compression="mszip"))


@pytest.mark.parametrize("edit", ["same size", "longer", "shorter", "removed"])
def test_payload_edited_after_the_cab_was_written(tmp_path, edit):
    """A third read of a source file that differs from the build's never gives an entry other than
    the CAB's: the entry is made from the CAB (whose payload the edit did not change)."""
    v, cab, b = _built(tmp_path)
    src = next(Path(w.source) for w in b.members if w.source is not None)
    data = src.read_bytes()
    if edit == "removed":
        src.unlink()
    else:
        src.write_bytes(
            {"same size": bytes([data[0] ^ 1]) + data[1:], "longer": data + b"x"}.get(edit, data[:-1])
        )
    try:
        assert extractcache.prepare(cab, b.members)
        assert _entry(extractcache.prepared_entry(cab)) == _from_cab(cab, tmp_path)
    finally:
        src.write_bytes(data)


def test_every_source_member_is_checked(tmp_path, monkeypatch):
    """Where update.mum does not declare a source member's SHA-256, the reader hashes it itself:
    edit every payload and forget update.mum's declarations: still never a wrong entry."""
    v, cab, b = _built(tmp_path)
    monkeypatch.setattr(extractcache.WrittenCab, "_declared", lambda self: set())
    sources = {Path(w.source): Path(w.source).read_bytes() for w in b.members if w.source is not None}
    assert sources
    for src, data in sources.items():
        src.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    want = _from_cab(cab, tmp_path)
    assert extractcache.prepare(cab, b.members)
    assert _entry(extractcache.prepared_entry(cab)) == want
    for src, data in sources.items():
        src.write_bytes(data)


def test_a_failing_fast_path_falls_back_to_the_cab(tmp_path, monkeypatch):
    """Whatever goes wrong in the fast path (here a bug), the entry is made from the CAB; a file
    table that is not the written one (another CAB under the name) is never read through."""
    v, cab, b = _built(tmp_path)

    def broken(self, name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(extractcache.WrittenCab, "iter_chunks", broken)
    assert extractcache.prepare(cab, b.members)
    assert _entry(extractcache.prepared_entry(cab)) == _from_cab(cab, tmp_path)
    monkeypatch.undo()
    other = b.members[1:] + b.members[:1]
    with pytest.raises(Exception, match="file table"):
        extractcache.WrittenCab(cab, other)


def test_a_package_error_is_the_cabs(tmp_path, monkeypatch):
    """A package the parse refuses gives no entry either way, and the partition reports the
    CAB's own error."""
    v, cab, b = _built(tmp_path)
    calls = []
    real = install.parse_package

    def parse(cab_path, part, store, reader=None):
        calls.append(reader is not None)
        p = real(cab_path, part, store, reader)
        if reader is not None:
            p.error = install.ConfigError("refused")
        return p

    monkeypatch.setattr(install, "parse_package", parse)
    assert extractcache.prepare(cab, b.members)  # the CAB itself installs: its entry
    assert calls == [True, False]
    assert _entry(extractcache.prepared_entry(cab)) == _from_cab(cab, tmp_path)
