"""The SBOM's identity of a CAB the package action wrote (recorded, not read back) is exactly the
one read from the file (image.sbom.cab_identity): unsigned, signed in process (the file's SHA-256
computed while written, or read back when the signature size was not predicted), compressed."""

from __future__ import annotations

import hashlib

import pytest

from ffuforge.image import cabfacts, sbom
from ffuforge.package import build as pkgbuild
from ffuforge.package.build import BuildSettings, build_variant
from ffuforge.scons_tool.sbom import written_identity
from ffuforge.signing import testpki
from ffuforge.util import toolsig

from helpers import plan, wm

BODY = '<files><file source=".\\\\readme.txt"/><file source=".\\\\big.bin"/></files>'


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return testpki.ensure_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("compression", ["none", "mszip"])
def test_written_identity_is_the_files(tmp_path, signer, signed, compression, monkeypatch):
    monkeypatch.setattr(pkgbuild, "_SIGNATURE_SIZES", {})  # the first CAB of its signer: read back
    (tmp_path / "readme.txt").write_text("hello\n")
    (tmp_path / "big.bin").write_bytes(hashlib.sha256(b"x").digest() * 9000)
    v = plan(wm(tmp_path, BODY))[0]
    settings = BuildSettings(compression=compression, signer=signer if signed else None)
    for n in range(2):  # the second signed one is hashed as written (its signature size is known)
        out = tmp_path / "out" / f"{n}" / v.cab_name
        built = build_variant(v, out, settings)
        if signed and compression == "none":
            assert (built.sha256 is None) == (n == 0)
        ident = written_identity(str(out), built, signer if signed else None)
        assert ident == sbom.cab_identity(out).__dict__
        assert ident["signer"].startswith("CN=") if signed else ident["signer"] == ""


def test_put_facts_are_kept_while_the_cab_is_that_file(tmp_path):
    cab = tmp_path / "a.cab"
    cab.write_bytes(b"cab")
    st = cab.stat()
    facts = cabfacts.CabFacts(str(tmp_path / "facts"))
    facts.put(cab, "sbom", {"n": 1}, (st.st_size + 1, st.st_mtime_ns))  # not what the writer left
    assert facts.get(cab, "sbom", lambda: {"n": 2}) == {"n": 2}
    facts.put(cab, "sbom", {"n": 3}, (st.st_size, st.st_mtime_ns))
    assert facts.get(cab, "sbom", lambda: {"n": 4}) == {"n": 3}
    facts.save()
    again = cabfacts.CabFacts(str(tmp_path / "facts"))  # the next run, while the file is the same
    assert again.get(cab, "sbom", lambda: {"n": 5}) == {"n": 3}
    cab.write_bytes(b"cab2")
    assert again.get(cab, "sbom", lambda: {"n": 6}) == {"n": 6}
    assert toolsig.fingerprint("image.cabfacts") in again.code
