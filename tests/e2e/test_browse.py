"""`ffuforge ls|cat|reg|services|drivers` on the sample's Flash.ffu, raw disk and partition images,
checked against ntfs-3g's ntfscat and hivex's hivexget (independent readers) and the build's
partitions/<Name>.json."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scons_util import copy_workspace, scons

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("ntfscat", "hivexget", "mcopy")),
        reason="ntfs-3g (ntfscat), hivex (hivexget) and mtools are the oracles; ./bootstrap --test installs them",
    ),
]
SITE = str(Path(__file__).resolve().parents[2] / "site_scons")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws, "RAW=1")
    return ws / "build/arm64/SampleA/Test"


def ff(*args, check=True, binary=False):
    proc = subprocess.run(
        [sys.executable, "-m", "ffuforge", *map(str, args)],
        capture_output=True,
        text=not binary,
        env={**os.environ, "PYTHONPATH": SITE},
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def ntfscat(image, path) -> bytes:
    r = subprocess.run(
        ["ntfscat", "-f", str(image), path.replace("\\", "/")], capture_output=True, check=True
    )
    return r.stdout


def _listing(text):
    files = {}
    for line in text.splitlines():
        parts = line.split()
        if parts[0] == "<DIR>":
            continue
        size, digest, path = int(parts[0]), parts[1], parts[2]
        owner = parts[3].strip("[]") if len(parts) > 3 else None
        files[path] = (size, digest, owner)
    return files


def test_ls_agrees_with_ntfscat_and_the_build_record(out):
    import json

    main_img = out / "partitions/MainOS.img"
    listing = _listing(ff("ls", out / "Flash.ffu").stdout)
    assert "Windows\\System32\\config\\SYSTEM" in listing
    for path, (size, digest, _owner) in listing.items():
        data = ntfscat(main_img, path)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest), path
    record = json.loads((out / "partitions/MainOS.json").read_text())
    for f in record["files"]:
        assert listing[f["path"]] == (f["size"], f["sha256"], f["package"]), f["path"]
    # the same volume read from the raw disk and from the partition image itself
    assert _listing(ff("ls", out / "Flash.img").stdout) == listing
    assert _listing(ff("ls", main_img).stdout) == listing
    sub = _listing(ff("ls", out / "Flash.ffu", "Windows/System32/config").stdout)
    assert sub and all(p.startswith("Windows\\System32\\config\\") for p in sub)


def test_ls_efiesp_through_mtools(out):
    import json

    listing = _listing(ff("ls", out / "Flash.ffu", "--partition", "EFIESP").stdout)
    record = json.loads((out / "partitions/EFIESP.json").read_text())
    assert record["files"]
    for f in record["files"]:
        assert listing[f["path"]] == (f["size"], f["sha256"], f["package"]), f["path"]


def test_cat_is_ntfscats_bytes(out):
    for path in ("Windows/System32/config/SYSTEM", "Windows/System32/config/SOFTWARE", "Contoso/README.txt"):
        got = ff("cat", out / "Flash.ffu", path, binary=True).stdout
        assert got == ntfscat(out / "partitions/MainOS.img", path), path


def test_reg_agrees_with_hivexget(out, tmp_path):
    hive = tmp_path / "SYSTEM"
    hive.write_bytes(ntfscat(out / "partitions/MainOS.img", "Windows/System32/config/SYSTEM"))
    key = "ControlSet001\\Services\\ContosoHeartbeat"
    text = ff("reg", out / "Flash.ffu", "HKLM\\SYSTEM\\" + key).stdout.splitlines()
    assert text[0] == "HKEY_LOCAL_MACHINE\\SYSTEM\\" + key
    values = {}
    for line in text[1:]:
        if line.startswith("    "):
            name, vtype, *data = line.strip().split("    ")
            values[name] = (vtype, data[0] if data else "")
    assert values, text

    def hivex(name):
        return subprocess.run(
            ["hivexget", str(hive), key, name], capture_output=True, text=True, check=True
        ).stdout.strip()

    for name, (vtype, data) in values.items():
        if vtype == "REG_DWORD":
            assert int(data, 16) == int(hivex(name)), name
        elif vtype in ("REG_SZ", "REG_EXPAND_SZ"):
            assert data == hivex(name), name
        elif vtype == "REG_MULTI_SZ":
            assert data.split("\\0") == hivex(name).splitlines(), name
    assert values["Start"] == ("REG_DWORD", "0x2") and values["ImagePath"][0] == "REG_EXPAND_SZ"
    # subkeys listed after the values, as reg query does; --recurse prints theirs too
    rec = ff("reg", out / "Flash.ffu", "HKLM\\SYSTEM\\" + key, "--recurse").stdout
    assert rec.startswith(text[0])


def test_services_and_drivers(out):
    services = ff("services", out / "Flash.ffu").stdout
    assert any(
        ln.split()[:4] == ["ContosoHeartbeat", "own", "process", "auto"] for ln in services.splitlines()
    )
    drivers = ff("drivers", out / "Flash.ffu").stdout
    assert "contosogpio" in drivers and "ContosoHeartbeat" not in drivers
    assert "contosogpio.inf_arm64_" in drivers


def test_bad_requests_are_one_line(out):
    for args, words in (
        (("ls", out / "Flash.ffu", "No/Such/Dir"), "no such file or folder"),
        (("cat", out / "Flash.ffu", "nope.txt"), "no such file in the volume"),
        (("reg", out / "Flash.ffu", "HKCU\\Software"), "not a key of an image hive"),
        (("reg", out / "Flash.ffu", "HKLM\\SYSTEM\\NoSuchKey"), "no such key"),
        (("ls", out / "Flash.ffu", "--partition", "Nope"), "no partition named Nope"),
        (("ls", out / "layout.json"), "not an FFU, a disk image"),
    ):
        proc = ff(*args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and words in proc.stderr and "Traceback" not in proc.stderr, (
            proc.stderr
        )


def test_damaged_volume_is_one_line_never_a_traceback(out, tmp_path):
    """The NTFS reader bounds every offset: records with garbage give one error line (or are skipped)."""
    import random
    import struct

    src = (out / "partitions/MainOS.img").read_bytes()
    cluster = struct.unpack_from("<H", src, 11)[0] * src[13]
    mft = struct.unpack_from("<Q", src, 0x30)[0] * cluster
    rng = random.Random(19)
    for i in range(12):
        img = bytearray(src)
        for _ in range(40):
            pos = mft + rng.randrange(0, 96 * 1024)
            img[pos] = rng.randrange(256)
        bad = tmp_path / f"bad{i}.img"
        bad.write_bytes(img)
        proc = ff("ls", bad, check=False)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == 0 or (proc.returncode == 2 and proc.stderr.count("\n") == 1), proc.stderr


def test_packages_json_lists_the_generated_packages(out):
    """Everything the image holds: the feature identifier packages and the product's version package."""
    import json

    main = json.loads((out / "packages.json").read_text())["partitions"]["MainOS"]
    names = {p["name"]: p for p in main}
    version = names["Contoso.SampleA.Registry.Version"]
    assert version["generated"] and version["path"].endswith("packages/Contoso.SampleA.Registry.Version.cab")
    assert any(p["fip"] for p in main)
    installed = {p["name"] for p in json.loads((out / "partitions/MainOS.json").read_text())["packages"]}
    assert installed <= set(names), installed - set(names)
