"""Microsoft-form CBS packages: files described only by their component manifests (update.mum lists
the manifests, not the payload), `$(runtime.*)` destinations, Microsoft's key token, several
components per package, and the one-line refusals (missing member, DCM manifest, bad digest).

The CAB is made with our writer from hand-written XML in the shape of Windows' component manifests
(asm.v3 `<file name destinationPath sourceName importPath>` with an asmv2/dsig SHA-256 hash); the
expected tree is computed here from the bytes put in, independently of the installer."""

import base64
import hashlib
import json
import shutil
import subprocess

import pytest

from ffuforge.errors import FFUError, FormatError
from ffuforge.formats.cab import CabMember, write_cab
from ffuforge.image import install, partition

PKT = "31bf3856ad364e35"
VER = "10.0.17763.1"
NAME = "Microsoft-IoTCore-Test-Package"
KEY_A = f"arm64_microsoft-iotcore-test-a_{PKT}_{VER}_none_5f1e2d3c4b5a6978"
KEY_B = f"arm64_microsoft-iotcore-test-b_{PKT}_{VER}_de-de_0a1b2c3d4e5f6071"
ASM = "urn:schemas-microsoft-com:asm.v3"
EPOCH = 1577836800

PAYLOAD = {
    f"{KEY_A}\\mstest.dll": b"MZ mstest.dll\n" * 50,
    f"{KEY_A}\\mstest.sys": b"MZ mstest.sys\n" * 30,
    f"{KEY_A}\\orig.txt": b"renamed at build time\n",  # sourceName differs from name
    f"{KEY_B}\\mstest.dll.mui": b"MUI de-de\n" * 10,
    f"{KEY_B}\\readme.txt": b"public readme\n",
}


def ms_file(name, dest, data, source=None, algo="sha256"):
    digest = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    return (
        f'<file name="{name}" destinationPath="{dest}" sourceName="{source or name}" '
        f'importPath="$(build.nttree)\\">'
        '<asmv2:hash xmlns:asmv2="urn:schemas-microsoft-com:asm.v2" '
        'xmlns:dsig="http://www.w3.org/2000/09/xmldsig#"><dsig:Transforms><dsig:Transform '
        'Algorithm="urn:schemas-microsoft-com:HashTransforms.Identity"/></dsig:Transforms>'
        f'<dsig:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#{algo}"/>'
        f"<dsig:DigestValue>{digest}</dsig:DigestValue></asmv2:hash></file>"
    )


def identity(name, lang="neutral", scope=' versionScope="nonSxS"'):
    return (
        f'<assemblyIdentity name="{name}" version="{VER}" processorArchitecture="arm64" '
        f'language="{lang}" buildType="release" publicKeyToken="{PKT}"{scope}/>'
    )


def manifest_a(files=None):
    files = (
        files
        if files is not None
        else (
            ms_file("mstest.dll", "$(runtime.system32)\\", PAYLOAD[f"{KEY_A}\\mstest.dll"])
            + ms_file("mstest.sys", "$(runtime.drivers)\\", PAYLOAD[f"{KEY_A}\\mstest.sys"], algo="sha1")
            + ms_file("renamed.txt", "$(runtime.windows)\\Test\\", PAYLOAD[f"{KEY_A}\\orig.txt"], "orig.txt")
            + '<file name="sxsonly.dll" sourceName="sxsonly.dll" importPath="$(build.nttree)\\"/>'
        )
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><assembly xmlns="{ASM}" manifestVersion="1.0" '
        f'copyright="test">{identity("Microsoft-IoTCore-Test-A")}{files}'
        '<registryKeys><registryKey keyName="HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\IoTTest">'
        '<registryValue name="Module" valueType="REG_EXPAND_SZ" value="$(runtime.system32)\\mstest.dll"/>'
        '<registryValue name="Enabled" valueType="REG_DWORD" value="0x00000001"/>'
        "</registryKey></registryKeys></assembly>"
    ).encode()


def manifest_b():
    files = ms_file(
        "mstest.dll.mui", "$(runtime.system32)\\de-DE\\", PAYLOAD[f"{KEY_B}\\mstest.dll.mui"]
    ) + ms_file("readme.txt", "$(runtime.public)\\IoTTest\\", PAYLOAD[f"{KEY_B}\\readme.txt"])
    return (
        f'<?xml version="1.0" encoding="utf-8"?><assembly xmlns="{ASM}" manifestVersion="1.0">'
        f"{identity('Microsoft-IoTCore-Test-B', 'de-DE')}{files}</assembly>"
    ).encode()


def mum(manifests):
    listed = "".join(
        f'<file name="{m}" cabpath="{m}" size="0" staged="0" compressed="0" sourcePackage="{NAME}"/>'
        for m in manifests
    )
    updates = "".join(
        f'<update name="{m[:-9]}"><component>{identity(m.split("_")[1])}</component></update>'
        for m in manifests
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><assembly xmlns="{ASM}" manifestVersion="1.0">'
        f'{identity(NAME, scope="")}<package identifier="{NAME}" releaseType="Feature Pack" '
        'targetPartition="MainOS" binaryPartition="false"><customInformation>'
        '<phoneInformation phoneRelease="Production" phoneOwner="Microsoft" phoneOwnerType="Microsoft" '
        'phoneComponent="IoTCore" phoneSubComponent="Test" phoneGroupingKey=""/>'
        '<file name="update.mum" cabpath="update.mum" size="0" staged="0" compressed="0" sourcePackage=""/>'
        f"{listed}</customInformation>{updates}</package></assembly>"
    ).encode()


def ms_cab(tmp_path, a=None, b=None, payload=None, name="ms.cab"):
    manifests = {f"{KEY_A}.manifest": a or manifest_a(), f"{KEY_B}.manifest": b or manifest_b()}
    members = [CabMember("update.mum", data=mum(sorted(manifests)))]
    members += [CabMember(n, data=d) for n, d in sorted(manifests.items())]
    members += [CabMember(n, data=d) for n, d in sorted((payload or PAYLOAD).items())]
    out = tmp_path / name
    write_cab(out, members, compression="mszip", timestamp=EPOCH)
    return out


EXPECTED = {
    "Windows\\System32\\mstest.dll": f"{KEY_A}\\mstest.dll",
    "Windows\\System32\\drivers\\mstest.sys": f"{KEY_A}\\mstest.sys",
    "Windows\\Test\\renamed.txt": f"{KEY_A}\\orig.txt",
    "Windows\\System32\\de-DE\\mstest.dll.mui": f"{KEY_B}\\mstest.dll.mui",
    "Users\\Public\\IoTTest\\readme.txt": f"{KEY_B}\\readme.txt",
}


def test_files_only_in_manifests_install(tmp_path):
    cab = ms_cab(tmp_path)
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
            "package": NAME,
        }
    assert doc["packages"] == [{"name": NAME, "cab": "ms.cab", "version": VER, "release": "Production"}]
    regs = {(r["key"], r["name"]): r for r in doc["registry"]}
    r = regs[("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\IoTTest", "Enabled")]
    assert (r["type"], r["data"], r["package"]) == (4, "01000000", NAME)


@pytest.mark.skipif(shutil.which("cabextract") is None, reason="cabextract not installed")
def test_installed_bytes_match_cabextract(tmp_path):
    """Independent reader: the staged files are the members cabextract extracts."""
    cab = ms_cab(tmp_path)
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
