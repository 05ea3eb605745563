"""End to end: `scons` turns the sample product into a verified Flash.ffu; independent tools read it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats import blocksig, ffu, hive
from ffuforge.signing.verify import catalog_signature_problems
from ffuforge.util import atomic

from oracles import needs, require_tool
from scons_util import ROOT, copy_workspace, scons, stored_csigs

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")


def _steps(proc) -> list[str]:
    return sorted(re.findall(r"^(?:Package|Partition|Layout|FFU|FeatureMerge) (\S+)", proc.stdout, re.M))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    proc = scons(ws, "RAW=1")
    assert "blocks stored" in proc.stdout
    return ws


def test_ffu_verifies_and_round_trips(ws, tmp_path):
    flash = ws / OUT / "Flash.ffu"
    result = ffu.FfuReader(flash).verify(
        catalog_check=lambda der, signers: catalog_signature_problems(der, where="catalog", signers=signers)
    )
    assert result.ok, result.problems
    assert result.signed
    raw = tmp_path / "back.img"
    ffu.FfuReader(flash).to_raw(raw)
    assert subprocess.run(["cmp", str(raw), str(ws / OUT / "Flash.img")]).returncode == 0


def _writer_signatures_are_the_files(ws) -> None:
    """The partition and FFU writers hand SCons their content signatures; what SCons stored must
    be what reading the file gives (blocksig, holes unread), sparse images included."""
    csigs = stored_csigs(ws)
    outputs = [ws / OUT / "Flash.ffu", *sorted((ws / OUT / "partitions").glob("*.img"))]
    assert len(outputs) > 3
    for path in outputs:
        assert csigs[str(path.relative_to(ws))] == blocksig.file_signature(path), path.name
    sparse = [p for p in outputs if os.stat(p).st_blocks * 512 < os.stat(p).st_size // 2]
    assert sparse, "the sample has sparse partition images: this check covers them"


def test_stored_signatures_of_images_and_ffu(ws):
    _writer_signatures_are_the_files(ws)


@needs("sgdisk")
def test_ffu_is_independent_of_holes(ws, tmp_path):
    """Issue 16: `cp --sparse=always` / `--sparse=never` of the partition images give the same FFU
    bytes (blocks follow the FAT/NTFS allocation, not the holes); the sample's raw BOOTLOADER at
    sector 66 lies in block 0, which is stored only as table blocks."""
    from ffuforge.image import stages

    parts = ws / OUT / "partitions"
    names = [p.stem for p in sorted(parts.glob("*.img"))]
    outs = []
    for mode in ("always", "never"):
        d = tmp_path / mode
        d.mkdir()
        for n in names:
            subprocess.run(["cp", f"--sparse={mode}", str(parts / f"{n}.img"), str(d)], check=True)
        out = tmp_path / f"{mode}.ffu"
        stages.build_ffu(ws / OUT / "layout.json", {n: d / f"{n}.img" for n in names}, out, epoch=1577836800)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    with ffu.FfuReader(tmp_path / "always.ffu") as r:
        st_ = r.stores[0]
        h = st_.header
        tables = range(h["flash_only_index"], h["flash_only_index"] + h["flash_only_count"])
        finals = range(h["final_index"], st_.descriptor_count)
        zero = [i for i in range(1, st_.descriptor_count) if (0, 0) in st_.locations(i)]
        assert zero and all(i in tables or i in finals for i in zero)


@needs("sgdisk", "dd", "cmp")
def test_raw_disk_assembled_with_sgdisk_and_dd_is_to_raws(ws, tmp_path):
    """Issue 17: a check of the FFU that shares no code with its writer. The disk is assembled from
    the partition images and layout.json's numbers with standard tools only (sgdisk writes the GPT,
    dd places each image) and compared with `ffuforge ffu to-raw` of Flash.ffu: every partition's
    sectors byte for byte (cmp), the tables as sgdisk reads them (partitions, types, unique GUIDs,
    names, attributes, disk GUID)."""
    lay = json.loads((ws / OUT / "layout.json").read_text())["layout"]
    ss = lay["sector_size"]
    assembled = tmp_path / "assembled.img"
    with open(assembled, "wb") as f:
        f.truncate(lay["total_sectors"] * ss)
    argv = [require_tool("sgdisk"), "-o", "-a", "1", "-U", lay["disk_id"].strip("{}")]
    for i, p in enumerate(lay["partitions"], 1):
        first, count = p["first_sector"], p["sector_count"]
        argv += ["-n", f"{i}:{first}:{first + count - 1}", "-t", f"{i}:{p['type'].strip('{}')}"]
        argv += ["-u", f"{i}:{p['id'].strip('{}')}", "-c", f"{i}:{p['name']}"]
    subprocess.run([*argv, str(assembled)], check=True, capture_output=True)
    for p in lay["partitions"]:
        img = ws / OUT / "partitions" / f"{p['name']}.img"
        assert img.stat().st_size <= p["sector_count"] * ss
        dd = [require_tool("dd"), f"if={img}", f"of={assembled}", f"bs={ss}", f"seek={p['first_sector']}"]
        subprocess.run([*dd, "conv=notrunc,sparse", "status=none"], check=True)
    raw = tmp_path / "ffu.img"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "site_scons")}
    subprocess.run(
        [sys.executable, "-m", "ffuforge", "ffu", "to-raw", str(ws / OUT / "Flash.ffu"), str(raw)],
        check=True,
        env=env,
        capture_output=True,
    )
    assert raw.stat().st_size == assembled.stat().st_size
    for p in lay["partitions"]:
        off, n = p["first_sector"] * ss, p["sector_count"] * ss
        cmp = subprocess.run(
            [require_tool("cmp"), f"--bytes={n}", f"--ignore-initial={off}:{off}", str(raw), str(assembled)],
            capture_output=True,
            text=True,
        )
        assert cmp.returncode == 0, (p["name"], cmp.stdout, cmp.stderr)

    def tables(disk: Path) -> list[str]:
        out = subprocess.run(["sgdisk", "-p", str(disk)], capture_output=True, text=True, check=True).stdout
        lines = [ln for ln in out.splitlines() if not ln.startswith("Disk ") or "identifier" in ln]
        for i in range(1, len(lay["partitions"]) + 1):
            lines += subprocess.run(
                ["sgdisk", "-i", str(i), str(disk)], capture_output=True, text=True, check=True
            ).stdout.splitlines()
        return lines

    ours, theirs = tables(raw), tables(assembled)
    assert ours == theirs
    assert any("AE420040-13DD-41F2-AE7F-0DC35854C8D7" in ln for ln in ours), ours  # the tables were read


def test_partition_tools_accept_the_raw_disk(ws):
    raw = ws / OUT / "Flash.img"
    v = subprocess.run([require_tool("sgdisk"), "-v", str(raw)], capture_output=True, text=True)
    assert "No problems found" in v.stdout, v.stdout
    listing = subprocess.run(["sgdisk", "-p", str(raw)], capture_output=True, text=True).stdout
    for name in ("BOOTLOADER", "EFIESP", "MainOS", "Data"):
        assert name in listing
    out = subprocess.run([require_tool("fdisk"), "-l", str(raw)], capture_output=True, text=True).stdout
    assert "EFI System" in out and "Microsoft basic data" in out


def _cut(raw: Path, start_sector: int, sectors: int, out: Path) -> Path:
    with open(raw, "rb") as src, open(out, "wb") as dst:
        src.seek(start_sector * 512)
        remaining = sectors * 512
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            dst.write(chunk)
            remaining -= len(chunk)
    return out


def _sgdisk_parts(raw: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["sgdisk", "-p", str(raw)], capture_output=True, text=True).stdout
    parts = {}
    for m in re.finditer(r"^\s+\d+\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$", out, re.M):
        parts[m.group(3)] = (int(m.group(1)), int(m.group(2)) - int(m.group(1)) + 1)
    return parts


@needs("sgdisk", "fsck.fat", "ntfsls", "ntfscat", "mcopy", "hivexregedit", "cabextract")
def test_filesystems_cut_from_the_disk(ws, tmp_path):
    raw = ws / OUT / "Flash.img"
    parts = _sgdisk_parts(raw)
    efi = _cut(raw, *parts["EFIESP"], tmp_path / "efi.img")
    fsck = subprocess.run(["fsck.fat", "-n", str(efi)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    bcd = subprocess.run(
        ["mcopy", "-n", "-i", str(efi), "::/EFI/Microsoft/Boot/BCD", str(tmp_path / "BCD")],
        capture_output=True,
        text=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    assert bcd.returncode == 0, bcd.stderr
    store = hive.read_hive(tmp_path / "BCD").as_dict()
    assert any(k.startswith("Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}") for k in store)  # Boot Manager
    main = _cut(raw, *parts["MainOS"], tmp_path / "main.img")
    listing = subprocess.run(["ntfsls", "-R", "-f", str(main)], capture_output=True, text=True).stdout
    for name in ("heartbeat.exe", "contosogpio.sys", "README.txt", "SOFTWARE", "SYSTEM"):
        assert name in listing, name
    cat = subprocess.run(["ntfscat", str(main), "/Contoso/README.txt"], capture_output=True)
    assert cat.stdout == (ws / "packages/Custom.Files/readme.txt").read_bytes()
    software = tmp_path / "SOFTWARE"
    software.write_bytes(
        subprocess.run(
            ["ntfscat", str(main), "/Windows/System32/config/SOFTWARE"], capture_output=True, check=True
        ).stdout
    )
    values = hive.read_hive(software).as_dict()
    assert values["Contoso\\SampleA"]["Product"] == (1, "SampleA\0".encode("utf-16-le"))
    require_tool("hivexregedit")
    export = subprocess.run(["hivexregedit", "--export", str(software), "\\"], capture_output=True, text=True)
    expected = ",".join(f"{b:02x}" for b in "SampleA\0".encode("utf-16-le"))
    assert f'"Product"=hex(1):{expected}' in export.stdout
    system = tmp_path / "SYSTEM"
    system.write_bytes(
        subprocess.run(
            ["ntfscat", str(main), "/Windows/System32/config/SYSTEM"], capture_output=True, check=True
        ).stdout
    )
    svc = hive.read_hive(system).as_dict()["ControlSet001\\Services\\ContosoHeartbeat"]
    assert svc["Start"] == (4, (2).to_bytes(4, "little"))
    # the UART INF's service, as installing it writes it (AddService, service AddReg, KMDF)
    regs = hive.read_hive(system).as_dict()
    uart = regs["ControlSet001\\Services\\contosouart"]
    assert uart["ImagePath"] == (2, "\\SystemRoot\\System32\\drivers\\contosouart.sys\0".encode("utf-16-le"))
    assert (uart["Start"], uart["Type"], uart["ErrorControl"]) == (
        (4, b"\3\0\0\0"),
        (4, b"\1\0\0\0"),
        (4, b"\1\0\0\0"),
    )
    assert not any(k.startswith(("ControlSet001\\Enum", "ControlSet001\\Control\\Class\\")) for k in regs)
    require_tool("hivexregedit")
    export = subprocess.run(
        ["hivexregedit", "--export", str(system), "\\ControlSet001\\Services\\contosouart"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hexed = ",".join(
        f"{b:02x}" for b in "\\SystemRoot\\System32\\drivers\\contosouart.sys\0".encode("utf-16-le")
    )
    for line in (
        "[\\ControlSet001\\Services\\contosouart]",
        f'"ImagePath"=hex(2):{hexed}',
        '"Start"=dword:00000003',
        '"Type"=dword:00000001',
        '"ErrorControl"=dword:00000001',
        "[\\ControlSet001\\Services\\contosouart\\Parameters]",
        '"BaudRate"=dword:0001c200',
        "[\\ControlSet001\\Services\\contosouart\\Parameters\\Wdf]",
    ):
        assert line in export.splitlines(), (line, export)
    _registry_rules_on_the_sample(software, system)
    _security_on_the_sample(main, software)
    _driver_store_on_the_sample(ws, main, system)


def _driver_store_on_the_sample(ws: Path, main: Path, system: Path) -> None:
    """Issue 15: the UART driver's store folder, driver database and dual_<inf> manifest, read by
    ntfsls, hivexregedit, regipy and cabextract."""
    repo = "/Windows/System32/DriverStore/FileRepository"
    ls = subprocess.run(["ntfsls", "-f", "-p", repo, str(main)], capture_output=True, text=True, check=True)
    folders = [n for n in ls.stdout.split() if n.startswith("contosouart.inf_arm64_")]
    assert len(folders) == 1 and re.fullmatch(r"contosouart\.inf_arm64_[0-9a-f]{16}", folders[0]), ls.stdout
    folder = folders[0]
    inside = subprocess.run(
        ["ntfsls", "-f", "-p", f"{repo}/{folder}", str(main)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"contosouart.inf", "contosouart.sys", "helpers"} <= set(inside), inside
    inf = subprocess.run(["ntfscat", str(main), f"{repo}/{folder}/contosouart.inf"], capture_output=True)
    assert inf.stdout == (ws / "bsp/ContosoBoard/Packages/ContosoBoard.UART/contosouart.inf").read_bytes()
    published = subprocess.run(["ntfscat", str(main), "/Windows/INF/contosouart.inf"], capture_output=True)
    assert published.stdout == inf.stdout
    require_tool("hivexregedit")
    export = subprocess.run(
        ["hivexregedit", "--export", str(system), "\\DriverDatabase"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    def hexed(text: str) -> str:
        return ",".join(f"{b:02x}" for b in (text + "\0").encode("utf-16-le"))

    pkg = f"[\\DriverDatabase\\DriverPackages\\{folder}]"
    for line in (
        "[\\DriverDatabase\\DriverInfFiles\\contosouart.inf]",
        f'"Active"=hex(1):{hexed(folder)}',
        pkg,
        '"SignerScore"=dword:0d000003',
        f"[\\DriverDatabase\\DriverPackages\\{folder}\\Configurations\\UART_Device.NT]",
        f'"Service"=hex(1):{hexed("contosouart")}',
        f"[\\DriverDatabase\\DriverPackages\\{folder}\\Descriptors\\ACPI\\CTSO0002]",
        "[\\DriverDatabase\\DeviceIds\\ACPI\\CTSO0002]",
        '"contosouart.inf"=hex(3):01,ff,00,00',
    ):
        assert line in export, (line, export)
    version = export[export.index(pkg) + 1 :]
    assert any(v.startswith('"Version"=hex(3):ff,ff,05,00,00,00,00,00,78,e9,36,4d') for v in version)
    require_tool("cabextract")
    listing = subprocess.run(
        ["cabextract", "-l", str(ws / "build/arm64/packages/Contoso.ContosoBoard.UART.cab")],
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(r"arm64_dual_contosouart\.inf_628844477771337a_\S+\.manifest", listing), listing
    from regipy.registry import RegistryHive  # a test extra: always there

    key = RegistryHive(str(system)).get_key("\\DriverDatabase\\DriverInfFiles\\contosouart.inf")
    assert {v.name: v.value for v in key.iter_values()}["Active"] == folder


def _audited(img: Path, path: str) -> bytes:
    """The descriptor ntfssecaudit -v dumps for `path` from $Secure (its hex lines)."""
    tool = require_tool("ntfssecaudit")
    out = subprocess.run([tool, "-v", str(img), path], capture_output=True, text=True, check=True).stdout
    words = [
        w
        for line in out.splitlines()
        if (m := re.match(r"\s+[0-9a-f]{6}\s+((?:[0-9a-f]{2,8}\s*)+)$", line))
        for w in m.group(1).split()
    ]
    assert words, out
    return bytes.fromhex("".join(words))


def _security_on_the_sample(main: Path, software: Path) -> None:
    """Issue 14/15: Custom.Files gives settings.json and its Provisioning key their own descriptors;
    every other file keeps the WRP default. Read back by ntfssecaudit and regipy."""
    from ffuforge.formats import secdesc

    private = secdesc.sddl_to_binary("O:BAG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)")
    assert _audited(main, "/ProgramData/Contoso/settings.json") == private
    assert _audited(main, "/Windows/System32/oemcustomization.cmd") == secdesc.wrp_default(False)
    assert _audited(main, "/ProgramData/Contoso") == secdesc.wrp_default(True)
    assert _audited(main, "/") == secdesc.sddl_to_binary(secdesc.OS_ROOT_SDDL)  # C:\ as Windows has it
    audit = subprocess.run([require_tool("ntfssecaudit"), "-a", str(main)], capture_output=True, text=True)
    assert "**" not in audit.stdout and "Command failed" not in audit.stdout + audit.stderr, audit.stdout
    assert "0 errors in $SDS-2" in audit.stdout and "No errors were found" in audit.stdout, audit.stdout
    keys = dict(hive.read_hive(software).walk())
    key_sd = secdesc.sddl_to_binary("O:BAG:SYD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)")
    assert keys["Contoso\\Provisioning"].security == key_sd
    assert keys["Contoso\\SampleA"].security == hive.default_security_descriptor()
    from regipy.registry import RegistryHive  # a test extra: always there

    info = RegistryHive(str(software)).get_key("\\Contoso\\Provisioning").get_security_key_info()
    assert (info["owner"], info["group"]) == ("S-1-5-32-544", "S-1-5-18")
    assert [(a["sid"], a["flags"]["CONTAINER_INHERIT_ACE"]) for a in info["dacl"]] == [
        ("S-1-5-18", True),
        ("S-1-5-32-544", True),
    ]


def _registry_rules_on_the_sample(software: Path, system: Path) -> None:
    """Issue 15: Select/ControlSet001, append merge across two packages, ';' in an item, CSI
    variables and a service trigger, read by our reader, hivexsh and regipy."""

    def multi(*items):
        return "".join(f"{i}\0" for i in items).encode("utf-16-le") + b"\0\0"

    sw = hive.read_hive(software).as_dict()
    group = sw[r"Microsoft\Windows NT\CurrentVersion\SvcHost"]["ContosoGroup"]
    assert group == (
        7,
        multi("ContosoSettings", "ContosoHeartbeat"),
    )  # Registry.Settings + Services.Heartbeat
    assert sw["Contoso\\SampleA"]["Endpoints"] == (7, multi("tcp:8181;udp:8181", "local"))
    assert sw["Contoso\\SampleA"]["LogDir"] == (2, "%ProgramData%\\Contoso\\Logs\0".encode("utf-16-le"))
    tree = hive.read_hive(system).as_dict()
    assert {n: int.from_bytes(d, "little") for n, (_, d) in tree["Select"].items()} == {
        "Current": 1,
        "Default": 1,
        "Failed": 0,
        "LastKnownGood": 1,
    }
    assert not any(k.lower().startswith("currentcontrolset") for k in tree)
    trig = tree[r"ControlSet001\Services\ContosoHeartbeat\TriggerInfo\0"]
    assert trig["Type"] == (4, (2).to_bytes(4, "little")) and trig["Action"] == (4, (1).to_bytes(4, "little"))
    assert trig["GUID"] == (3, bytes.fromhex("def2274fe2140b43a5497cd48cbc8245"))  # FIRST_IP_ADDRESS_ARRIVAL
    require_tool("hivexsh")
    out = subprocess.run(
        ["hivexsh", str(system)], input="cd \\Select\nlsval\n", capture_output=True, text=True, check=True
    ).stdout
    assert '"Current"=dword:00000001' in out and '"Failed"=dword:00000000' in out
    from regipy.registry import RegistryHive  # a test extra: always there

    reg = RegistryHive(str(software))
    values = {
        v.name: v.value for v in reg.get_key(r"\Microsoft\Windows NT\CurrentVersion\SvcHost").iter_values()
    }
    assert values["ContosoGroup"] == ["ContosoSettings", "ContosoHeartbeat"]
    assert RegistryHive(str(system)).get_key("\\Select").get_value("LastKnownGood") == 1


def test_layout_from_kept_cab_facts_is_the_same(ws, tmp_path, monkeypatch):
    """Layout re-evaluation from the facts an earlier run kept gives the same layout.json and the
    same release-policy verdict as reading every CAB, and reads no unchanged CAB."""
    from ffuforge.image import cabfacts, stages

    monkeypatch.setattr(cabfacts, "RACY_NS", 0)  # the CABs were just built
    names = [p["name"] for p in json.loads((ws / OUT / "layout.json").read_text())["layout"]["partitions"]]
    parts = {name: [] for name in names}
    parts["MainOS"] = sorted((ws / "build/arm64/packages").glob("*.cab"))  # every CAB read, once
    layout_cab = platform_cab = ws / "build/arm64/packages/Contoso.ContosoBoard.DeviceLayout.cab"
    kw = dict(release_type="Test", where="TestOEMInput.xml")
    plain = stages.build_layout(layout_cab, platform_cab, parts, tmp_path / "plain.json", **kw)
    store = str(tmp_path / "facts")
    first = cabfacts.CabFacts(store)
    stages.build_layout(layout_cab, platform_cab, parts, tmp_path / "first.json", facts=first, **kw)
    first.save()
    again = cabfacts.CabFacts(store)
    kept = stages.build_layout(layout_cab, platform_cab, parts, tmp_path / "kept.json", facts=again, **kw)
    assert kept == plain and again.misses == 0 and again.hits >= len({c for v in parts.values() for c in v})
    assert (tmp_path / "kept.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
    errors = []
    for facts in (None, again, again):  # Production refuses the test-signed CABs: the same message
        with pytest.raises(ConfigError) as e:
            stages.build_layout(
                layout_cab,
                platform_cab,
                parts,
                tmp_path / "p.json",
                release_type="Production",
                where="x",
                facts=facts,
            )
        errors.append(str(e.value))
    assert errors[0] == errors[1] == errors[2] and "TEST ONLY" in errors[0]


def test_noop_and_one_payload_edit(ws):
    assert scons(ws, "RAW=1", "-q", check=False).returncode == 0
    f = ws / "packages/Services.Heartbeat/Services.Heartbeat.wm.xml"
    f.write_text(f.read_text() + "<!-- no-op edit -->\n")
    assert _steps(scons(ws, "RAW=1")) == []
    readme = ws / "packages/Custom.Files/readme.txt"
    readme.write_text(readme.read_text() + "edited\n")
    # what a build killed before freeing its replaced outputs leaves (util.atomic): the next one removes it
    for stale in (OUT / ".Flash.ffu.old-1-0", OUT / "partitions/.MainOS.img.old-1-3"):
        (ws / stale).write_bytes(b"old")
    proc = scons(ws, "RAW=1", "--debug=explain")
    rebuilt = set(re.findall(r"^scons: rebuilding `([^']+)'", proc.stdout, re.M))
    assert rebuilt == {
        "build/arm64/packages/Contoso.Custom.Files.cab",
        str(OUT / "layout.json"),
        str(OUT / "partitions/MainOS.img"),
        str(OUT / "Flash.ffu"),
        str(OUT / "Flash.spdx.json"),  # the CAB's and the file's new hashes
    }
    # the old big outputs (Precious: SCons left them) were freed in the background, none left behind
    assert [p for p in (ws / "build").rglob(".*") if atomic.OLD_NAME.match(p.name)] == []
    # layout.json is re-evaluated from the new CAB but comes out identical: EFIESP, Data, … untouched.
    assert scons(ws, "RAW=1", "-q", check=False).returncode == 0
    _writer_signatures_are_the_files(ws)  # MainOS and the FFU as the edit wrote them
    (ws / OUT / "partitions/.EFIESP.img.old-1-0").write_bytes(b"old")
    assert _steps(scons(ws, "RAW=1")) == []  # a no-op build sweeps them too
    assert not (ws / OUT / "partitions/.EFIESP.img.old-1-0").exists()


def test_retail_image_with_oem_certificate(ws, tmp_path):
    from test_scons_signing import _oem_cert

    cert = _oem_cert(tmp_path)
    proc = scons(ws, "CONFIG=Retail", f"SIGN_CERT={tmp_path / 'oem.crt'}", f"SIGN_KEY={tmp_path / 'oem.key'}")
    flash = ws / "build/arm64/SampleA/Retail/Flash.ffu"
    assert flash.exists() and "blocks stored" in proc.stdout
    packages = (ws / "build/arm64/SampleA/Retail/packages.json").read_text()
    assert "Test.Diagnostics" not in packages  # the Test-only ReleasePackages entry stays out
    # the SBOM names the OEM certificate as every package's signer, and no Test package
    sbom = json.loads((ws / "build/arm64/SampleA/Retail/Flash.spdx.json").read_text())
    cabs = [p for p in sbom["packages"] if p["SPDXID"] != "SPDXRef-Image"]
    assert cabs and all(p["comment"].endswith(f"signer: {cert.subject.rfc4514_string()}") for p in cabs)
    assert all("release type: Production" in p["comment"] for p in cabs)


def test_retail_refuses_test_signed_packages(ws, tmp_path):
    # A Retail image built with the TEST ONLY chain: the release policy names every package.
    retail = ws / "build/arm64/SampleA/Retail"
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in retail.rglob("*") if p.is_file()}
    proc = scons(
        ws,
        "CONFIG=Retail",
        f"SIGN_CERT={ws / 'testcerts/leaf.crt'}",
        f"SIGN_KEY={ws / 'testcerts/leaf.key'}",
        f"SIGN_CHAIN={ws / 'testcerts/intermediate.crt'}",
        check=False,
    )
    assert proc.returncode != 0
    assert "a Production image refuses" in proc.stderr and "TEST ONLY" in proc.stderr
    assert "Contoso.Registry.Settings.cab" in proc.stderr
    assert "Traceback" not in proc.stderr
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in retail.rglob("*") if p.is_file()}
    images = [n for n in before if n.endswith((".img", ".ffu"))]
    assert images, "the previous test built Retail partitions and an FFU"  # so this check means something
    assert not re.search(r"^(Partition|FFU) ", proc.stdout, re.M)  # no image work was done
    # and the failed layout took the previous build's images with it: none lies beside the new packages.json
    assert [n for n in images if n in after] == []


def test_product_version_package(ws, tmp_path):
    import json

    manifest = json.loads((ws / OUT / "partitions/MainOS.json").read_text())
    values = {(v["key"], v["name"]): v for v in manifest["registry"]}
    product = values[("HKEY_LOCAL_MACHINE\\Software\\Contoso\\Version", "Product")]
    assert bytes.fromhex(product["data"]).decode("utf-16-le") == "SampleA\0"
    assert product["package"] == "Contoso.SampleA.Registry.Version"
    build_time = values[("HKEY_LOCAL_MACHINE\\Software\\Contoso\\Version", "BuildTime")]
    assert (
        bytes.fromhex(build_time["data"]).decode("utf-16-le") == "20200101-0000\0"
    )  # from the epoch, not the clock


def test_fm_edit_remerges_only_that_fm(ws):
    scons(ws, "RAW=1")
    fm = ws / "bsp/ContosoBoard/Packages/ContosoBoardFM.xml"
    fm.write_text(fm.read_text().replace("<BasePackages>", "<BasePackages>\n    <!-- reviewed -->", 1))
    proc = scons(ws, "RAW=1", "--debug=explain")
    assert _steps(proc) == ["ContosoBoardFM.xml"]  # OEMFM.xml, packages and images untouched
    # A real change: the UART driver moves from an optional feature into the base packages.
    text = fm.read_text()
    uart = text[
        text.index(
            '      <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.ContosoBoard.UART.cab">'
        ) : text.index("</PackageFile>", text.index("ContosoBoard.UART.cab")) + len("</PackageFile>")
    ]
    fm.write_text(
        text.replace(uart, "").replace(
            "<BasePackages>",
            '<BasePackages>\n    <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.ContosoBoard.UART.cab" />',
            1,
        )
    )
    for oeminput in ws.glob("products/*/TestOEMInput.xml"):  # … so no OEMInput selects it any more
        oeminput.write_text(oeminput.read_text().replace("      <Feature>CONTOSOBOARD_UART</Feature>\n", ""))
    proc = scons(ws, "RAW=1")
    steps = _steps(proc)
    assert "ContosoBoardFM.xml" in steps and "OEMFM.xml" not in steps
    assert not any(s.endswith(("EFIESP.img", "BOOTLOADER.img", "Data.img")) for s in steps), steps


IMGGEN_IDS = {  # ImgGen's normalised unique partition GUIDs (DD2FFU ImageConstants)
    "MainOS": "A76B8CE2-0187-4C13-8FCA-8651C9B0620A",
    "EFIESP": "8183040A-8B44-4592-92F7-C6D9EE0560F7",
}


@needs("sgdisk")
def test_partition_ids_are_imggens(ws, tmp_path):
    """`sgdisk -i` on the disk from `ffuforge ffu to-raw` shows ImgGen's fixed IDs; the flash-only
    table stored in the FFU (parsed here by hand, LBA 2 entries) carries the same EFIESP ID."""
    import os
    import sys

    flash = ws / OUT / "Flash.ffu"
    raw = tmp_path / "disk.img"
    env_py = [sys.executable, "-m", "ffuforge"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "site_scons")}
    subprocess.run([*env_py, "ffu", "to-raw", str(flash), str(raw)], check=True, capture_output=True, env=env)
    listing = subprocess.run(["sgdisk", "-p", str(raw)], capture_output=True, text=True, check=True).stdout
    numbers = {
        m.group(2): m.group(1) for m in re.finditer(r"^\s+(\d+)\s+\d+\s+\d+\s+.*?(\S+)\s*$", listing, re.M)
    }
    for name, want in IMGGEN_IDS.items():
        info = subprocess.run(
            ["sgdisk", "-i", numbers[name], str(raw)], capture_output=True, text=True, check=True
        ).stdout
        assert f"Partition unique GUID: {want}" in info, info
    data = subprocess.run(["sgdisk", "-i", numbers["Data"], str(raw)], capture_output=True, text=True).stdout
    assert not any(v in data for v in IMGGEN_IDS.values())
    # the flash-only table: the FFU's payload block at dwFlashOnlyTableIndex
    import uuid as _uuid

    r = ffu.FfuReader(flash)
    st = r.stores[0]
    i = st.header["flash_only_index"]
    with open(flash, "rb") as f:
        f.seek(st.payload_offset + st.payload_start[i] * st.block_size)
        block = f.read(st.block_size)
    entries = {}
    for k in range(128):
        e = block[1024 + 128 * k : 1024 + 128 * (k + 1)]
        if e[:16] != bytes(16):
            entries[e[56:128].decode("utf-16-le").rstrip("\0")] = str(_uuid.UUID(bytes_le=e[16:32])).upper()
    assert entries.get("EFIESP") == IMGGEN_IDS["EFIESP"]
    assert "MainOS" not in entries  # not RequiredToFlash: zeroed in the flash-only table


def test_bcd_dump_of_the_ffu(ws):
    """`ffuforge bcd dump Flash.ffu` reads the store on the FFU's EFIESP: the sample's bcdStore XML
    (Custom.BCD: boot manager, progress animation off, timeout 3)."""
    import json
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "site_scons")}
    argv = [sys.executable, "-m", "ffuforge", "bcd", "dump", "--json", str(ws / OUT / "Flash.ffu")]
    store = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout)
    (mgr,) = [o for o in store["objects"] if o["name"] == "Windows Boot Manager"]
    values = {e["name"]: e["value"] for e in mgr["elements"]}
    assert values == {"Boot UX Progress Animation Disable": True, "Timeout Value": 3}
    argv[-2:] = [str(ws / OUT / "partitions" / "EFIESP.img")]
    img = json.loads(
        subprocess.run(
            [*argv[:-1], "--json", argv[-1]], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    assert img == store


def test_ffu_action_takes_the_partition_chunk_digests(ws):
    """The partition action leaves each image's chunk digests beside it (issue 14); the FFU action
    uses them. Proof: self-consistent but fake digests bound to MainOS.img end up in the rebuilt
    FFU's hash table (verify names the chunks); once they are true again the FFU is the same bytes."""
    parts, flash = ws / OUT / "partitions", ws / OUT / "Flash.ffu"
    for name in ("EFIESP", "MainOS", "Data"):  # BOOTLOADER starts at sector 66: hashed as read
        img = parts / f"{name}.img"
        with open(img, "rb") as fh:
            assert blocksig.read_sidecar(img, fh.fileno()) == blocksig.sign_file(img).digests, name
    before = flash.read_bytes()
    main = parts / "MainOS.img"
    real = blocksig.sign_file(main)
    fake = bytes(b ^ 0x5A for b in real.digests)
    signed = blocksig.Signed(blocksig.signature_from_digests(fake, real.size), real.size, fake, real.binding)
    assert blocksig.write_sidecar(main, signed)
    flash.unlink()
    scons(ws, "RAW=1")
    result = ffu.FfuReader(flash).verify()
    assert not result.ok and any("hash" in p.lower() for p in result.problems), result.problems
    assert blocksig.write_sidecar(main, blocksig.sign_file(main))
    flash.unlink()
    scons(ws, "RAW=1")
    assert flash.read_bytes() == before
    _writer_signatures_are_the_files(ws)
