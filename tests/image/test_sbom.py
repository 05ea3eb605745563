"""The SBOM document's rules, on synthetic partition manifests (the e2e test checks a real build)."""

import hashlib
import json
from pathlib import Path

import pytest

from ffuforge.errors import FormatError
from ffuforge.image import sbom


def _identity(cab: Path) -> sbom.CabIdentity:
    name = cab.stem
    signer = "" if name.endswith("Unsigned") else "CN=Contoso (TEST ONLY)"
    return sbom.CabIdentity(name, "1.2.3.4", "arm64", "MainOS", "Production", "Contoso", signer, "ab" * 32)


def _manifest(tmp_path: Path, files: list[dict]) -> Path:
    out = tmp_path / "MainOS.json"
    out.write_text(json.dumps({"partition": "MainOS", "packages": [], "files": files, "registry": []}))
    return out


def _file(path: str, package: str, data: bytes) -> dict:
    return {
        "path": path,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "package": package,
    }


def _doc(tmp_path, files, cabs=("A_B.cab", "A-B.cab", "C.Unsigned.cab")):
    return sbom.build_document(
        {"MainOS": [tmp_path / c for c in cabs]},
        {"MainOS": _manifest(tmp_path, files)},
        product="P",
        config="Test",
        cpu="arm64",
        version="1.0.0.0",
        oem="Contoso",
        oeminput="products/P/TestOEMInput.xml",
        epoch=1577836800,
    )


@pytest.fixture(autouse=True)
def _no_cab_reading(monkeypatch):
    monkeypatch.setattr(sbom, "cab_identity", _identity)


def test_ids_verification_codes_and_owners(tmp_path):
    files = [
        _file("x\\a.dll", "A_B", b"a"),
        _file("x\\b.dll", "A_B", b"b"),
        _file("hive", "<registry>", b"h"),
    ]
    doc = _doc(tmp_path, files)
    pkgs = {p["name"]: p for p in doc["packages"]}
    ids = [p["SPDXID"] for p in doc["packages"]] + [f["SPDXID"] for f in doc["files"]]
    assert len(set(ids)) == len(ids)  # A_B and A-B simplify alike: the second gets a digest
    assert pkgs["C.Unsigned"]["comment"].endswith("signer: (unsigned)")
    assert (
        pkgs["C.Unsigned"]["filesAnalyzed"] is False and "packageVerificationCode" not in pkgs["C.Unsigned"]
    )
    # SPDX 2.3 §7.9: SHA-1 over the sorted, concatenated SHA-1s of the package's files
    code = hashlib.sha1(
        (hashlib.sha1(b"a").hexdigest() + hashlib.sha1(b"b").hexdigest()).encode()
    ).hexdigest()
    assert pkgs["A_B"]["packageVerificationCode"] == {"packageVerificationCodeValue": code}
    rels = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    hive = next(f["SPDXID"] for f in doc["files"] if f["fileName"] == "./MainOS/hive")
    assert ("SPDXRef-Image", hive) in rels
    assert sbom.package_comment(pkgs["A_B"]) == {
        "partition": "MainOS",
        "release type": "Production",
        "architecture": "arm64",
        "signer": "CN=Contoso (TEST ONLY)",
    }


def test_namespace_follows_the_content(tmp_path):
    one = _doc(tmp_path, [_file("a", "A_B", b"1")])
    again = _doc(tmp_path, [_file("a", "A_B", b"1")])
    other = _doc(tmp_path, [_file("a", "A_B", b"2")])
    assert one == again
    assert one["documentNamespace"] != other["documentNamespace"]


def test_a_manifest_without_sha1_is_refused(tmp_path):
    f = _file("a", "A_B", b"1")
    del f["sha1"]
    with pytest.raises(FormatError, match=r"MainOS\.json.*no SHA-1.*build the partition again"):
        _doc(tmp_path, [f])
