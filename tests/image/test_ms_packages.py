"""Microsoft-form CBS packages: files described only by their component manifests (update.mum lists
the manifests, not the payload), `$(runtime.*)` destinations, Microsoft's key token, several
components per package, and the one-line refusals (missing member, DCM manifest, bad digest).

The CAB is made with our writer from hand-written XML in the shape of Windows' component manifests
(asm.v3 `<file name destinationPath sourceName importPath>` with an asmv2/dsig SHA-256 hash); the
expected tree is computed here from the bytes put in, independently of the installer."""

import hashlib
import json
import subprocess

import pytest

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.image import install, partition

from mscab import EPOCH, EXPECTED, KEY_A, KEY_B, NAME, PAYLOAD, PKT, VER, manifest_a, ms_cab, ms_file
from oracles import needs


@pytest.mark.parametrize("compression", ["mszip", "lzx"])
def test_files_only_in_manifests_install(tmp_path, compression):
    cab = ms_cab(tmp_path, compression=compression)
    if compression == "lzx":
        with open(cab, "rb") as fh:
            fh.seek(36 + 6)
            assert fh.read(2) == b"\x03\x15"  # typeCompress 0x1503: LZX, 2 MiB window
    st = install.Staging("MainOS", tmp_path / "root")
    info = install.install_package(st, cab)
    assert info.name == NAME and info.token == PKT
    record = f"Windows\\servicing\\Packages\\{NAME}~{PKT}~arm64~~{VER}.mum"
    assert set(st.files) == {p.lower() for p in EXPECTED} | {record.lower()}
    for path, member in EXPECTED.items():
        on_disk = (tmp_path / "root").joinpath(*path.split("\\")).read_bytes()
        assert on_disk == PAYLOAD[member]
        f = st.files[path.lower()]
        assert (f.path, f.size, f.package) == (path, len(PAYLOAD[member]), NAME)
        assert f.sha256 == hashlib.sha256(PAYLOAD[member]).hexdigest()
    assert not (tmp_path / "root/Windows/System32/sxsonly.dll").exists()  # component store only
    module = st.values[("hkey_local_machine\\software\\microsoft\\iottest", "module")]
    assert (module.type, module.package) == (2, NAME)
    assert module.data == "%SystemRoot%\\System32\\mstest.dll\0".encode("utf-16-le")


def test_partition_manifest_json_names_the_package(tmp_path):
    st = partition.stage("MainOS", [ms_cab(tmp_path)], tmp_path / "stage", epoch=EPOCH)
    partition.write_manifest(st, tmp_path / "MainOS.json")
    doc = json.loads((tmp_path / "MainOS.json").read_text())
    files = {f["path"]: f for f in doc["files"]}
    for path, member in EXPECTED.items():
        assert files[path] == {
            "path": path,
            "size": len(PAYLOAD[member]),
            "sha256": hashlib.sha256(PAYLOAD[member]).hexdigest(),
            "sha1": hashlib.sha1(PAYLOAD[member]).hexdigest(),
            "package": NAME,
        }
    assert doc["packages"] == [{"name": NAME, "cab": "ms.cab", "version": VER, "release": "Production"}]
    regs = {(r["key"], r["name"]): r for r in doc["registry"]}
    r = regs[("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\IoTTest", "Enabled")]
    assert (r["type"], r["data"], r["package"]) == (4, "01000000", NAME)


@needs("cabextract")
@pytest.mark.parametrize("compression", ["mszip", "lzx"])
def test_installed_bytes_match_cabextract(tmp_path, compression):
    """Independent reader: the staged files are the members cabextract extracts."""
    cab = ms_cab(tmp_path, compression=compression)
    out = tmp_path / "x"
    subprocess.run(["cabextract", "-q", "-d", str(out), str(cab)], check=True, capture_output=True)
    st = install.Staging("MainOS", tmp_path / "root")
    install.install_package(st, cab)
    for path, member in EXPECTED.items():
        extracted = out.joinpath(*member.split("\\")).read_bytes()
        assert (tmp_path / "root").joinpath(*path.split("\\")).read_bytes() == extracted


def _error(tmp_path, cab) -> FFUError:
    st = install.Staging("MainOS", tmp_path / "root")
    with pytest.raises(FFUError) as exc:
        install.install_package(st, cab)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "root").exists() or not any(p.is_file() for p in (tmp_path / "root").rglob("*"))
    return exc.value


def test_missing_member_names_cab_and_member(tmp_path):
    payload = {k: v for k, v in PAYLOAD.items() if not k.endswith("mstest.sys")}
    err = _error(tmp_path, ms_cab(tmp_path, payload=payload))
    assert isinstance(err, FormatError)
    assert str(err).startswith(f"{tmp_path / 'ms.cab'}:{KEY_A}.manifest:")
    assert f"no member '{KEY_A}\\\\mstest.sys'" in str(err)


def test_dcm_manifest_is_refused_in_one_line(tmp_path):
    dcm = b"DCM\x01PA30" + bytes(range(40))
    err = _error(tmp_path, ms_cab(tmp_path, b=dcm))
    assert isinstance(err, FormatError)
    assert str(err).startswith(f"{tmp_path / 'ms.cab'}:{KEY_B}.manifest: delta-compressed (DCM) manifest")
    assert "not supported" in str(err)


def test_digest_mismatch_and_unknown_destination(tmp_path):
    bad = manifest_a(ms_file("mstest.dll", "$(runtime.system32)\\", b"other bytes"))
    err = _error(tmp_path, ms_cab(tmp_path, a=bad))
    assert "does not match its SHA256 in the manifest" in str(err)
    unknown = manifest_a(ms_file("mstest.dll", "$(runtime.nowhere)\\", PAYLOAD[f"{KEY_A}\\mstest.dll"]))
    err = _error(tmp_path, ms_cab(tmp_path, a=unknown, name="u.cab"))
    assert "unknown device path macro" in str(err) and f"u.cab:{KEY_A}.manifest" in str(err)


def test_two_components_placing_one_file_collide(tmp_path):
    from mscab import ASM, identity

    twin = (
        f'<?xml version="1.0"?><assembly xmlns="{ASM}" manifestVersion="1.0">'
        f"{identity('Microsoft-IoTCore-Test-B', 'de-DE')}"
        + ms_file("mstest.dll", "$(runtime.system32)\\", PAYLOAD[f"{KEY_B}\\readme.txt"], "readme.txt")
        + "</assembly>"
    ).encode()
    err = _error(tmp_path, ms_cab(tmp_path, b=twin))
    assert isinstance(err, ConfigError) and f"{KEY_B}.manifest:1: \\Windows\\System32\\mstest.dll" in str(err)
    assert f"installed by both {KEY_A}.manifest and {KEY_B}.manifest" in str(err)
