"""A Microsoft-form CBS package made in the tests: our CAB writer, hand-written XML in the shape of
Windows' component manifests (asm.v3 `<file name destinationPath sourceName importPath>` with an
asmv2/dsig hash), an update.mum that lists only the manifests (no payload), key token 31bf3856ad364e35,
two components. `EXPECTED` maps each device path to the member whose bytes it must hold."""

import base64
import hashlib

from ffuforge.formats.cab import CabMember, write_cab

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


def ms_cab(tmp_path, a=None, b=None, payload=None, name="ms.cab", compression="mszip"):
    """The test package; `compression` "lzx" writes it as Microsoft's packaging does by default
    (FastLZX), through the test-only LZX writer in lzxcab.py."""
    manifests = {f"{KEY_A}.manifest": a or manifest_a(), f"{KEY_B}.manifest": b or manifest_b()}
    members = [CabMember("update.mum", data=mum(sorted(manifests)))]
    members += [CabMember(n, data=d) for n, d in sorted(manifests.items())]
    members += [CabMember(n, data=d) for n, d in sorted((payload or PAYLOAD).items())]
    out = tmp_path / name
    if compression == "lzx":
        from lzxcab import lzx_cab

        lzx_cab(out, [(m.name, m.data) for m in members])
        return out
    write_cab(out, members, compression=compression, timestamp=EPOCH)
    return out


EXPECTED = {
    "Windows\\System32\\mstest.dll": f"{KEY_A}\\mstest.dll",
    "Windows\\System32\\drivers\\mstest.sys": f"{KEY_A}\\mstest.sys",
    "Windows\\Test\\renamed.txt": f"{KEY_A}\\orig.txt",
    "Windows\\System32\\de-DE\\mstest.dll.mui": f"{KEY_B}\\mstest.dll.mui",
    "Users\\Public\\IoTTest\\readme.txt": f"{KEY_B}\\readme.txt",
}


def signed_ms_cab(tmp_path, signer, name="ms.cab", uncatalogued=()):
    """The test package signed as Microsoft ships its packages: an update.cat over every member,
    signed, and the CAB Authenticode-signed. `uncatalogued`: members left out of the catalog (a
    package altered after signing)."""
    from datetime import UTC, datetime

    from ffuforge.formats import catalog

    manifests = {f"{KEY_A}.manifest": manifest_a(), f"{KEY_B}.manifest": manifest_b()}
    members = [CabMember("update.mum", data=mum(sorted(manifests)))]
    members += [CabMember(n, data=d) for n, d in sorted(manifests.items())]
    members += [CabMember(n, data=d) for n, d in sorted(PAYLOAD.items())]
    hashes = [
        catalog.member_hashes(catalog.CatalogMember(m.name, None, m.data))
        for m in members
        if m.name not in uncatalogued
    ]
    cat = catalog.build_catalog_v2(
        hashes, package_name=NAME, test_package=False, this_update=datetime.fromtimestamp(EPOCH, UTC)
    )
    cat = signer.sign_catalog(cat, epoch=EPOCH)
    members.insert(1, CabMember("update.cat", data=cat))
    out = tmp_path / name
    write_cab(
        out,
        members,
        compression="mszip",
        timestamp=EPOCH,
        reserve_signature=True,
        authenticode=lambda digest: signer.cab_signature(digest, epoch=EPOCH),
    )
    return out
