"""End to end: packages are signed in the graph; signer identity rebuilds; retail needs a real cert."""

import datetime
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ffuforge.formats.cab import content_signature
from ffuforge.signing import verify

from oracles import require_tool
from scons_util import built, copy_workspace, scons, stored_csigs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws, "packages", "features")
    return ws


def _oem_cert(directory, password: bytes | None = None):
    """A self-signed production-style code-signing certificate (no TEST ONLY)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Production Code Signing")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(datetime.datetime(2019, 1, 1))
        .not_valid_after(datetime.datetime(2049, 1, 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "oem.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    (directory / "oem.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )
    return cert


def test_every_package_is_signed_with_the_test_chain(ws):
    root = verify.load_certificates([ws / "testcerts/root.crt"])
    cabs = sorted(
        p for p in (ws / "build/arm64/packages").rglob("*.cab") if ".ffuforge-extract" not in p.parts
    )
    assert len(cabs) > 19  # 19 package CABs and the feature identifier packages
    for cab in cabs:
        report = verify.verify_cab(cab, trusted_roots=root)
        assert report.ok, (cab.name, report.problems)
    require_tool("osslsigncode")
    r = subprocess.run(
        ["osslsigncode", "verify", "-in", str(cabs[0]), "-CAfile", str(ws / "testcerts/root.crt")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout


def test_signatures_scons_stores_are_those_of_the_bytes(ws):
    """CAB signatures come from the writer and payload ones from the package build (no second read):
    both must be what reading the file gives."""
    csigs = stored_csigs(ws)
    cabs = sorted(
        p for p in (ws / "build/arm64/packages").rglob("*.cab") if ".ffuforge-extract" not in p.parts
    )
    from_writer = 0
    for path in cabs:
        stored = csigs[str(path.relative_to(ws))]
        if stored == content_signature(path):
            from_writer += 1
        else:  # feature identifier packages are signed by SCons itself
            assert stored == hashlib.sha256(path.read_bytes()).hexdigest(), path.name
    assert from_writer >= 15
    infs = [k for k in csigs if k.endswith(".inf")]
    assert infs
    for rel in infs:
        assert csigs[rel] == hashlib.sha256((ws / rel).read_bytes()).hexdigest(), rel
    proc = scons(ws, "-q", "packages", "features", check=False)  # a new process: signatures read back
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_retail_refuses_to_start_without_a_certificate(ws):
    proc = scons(ws, "CONFIG=Retail", check=False)
    assert proc.returncode != 0
    assert "needs your own code-signing certificate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_retail_with_user_certificate_and_identity_in_signature(ws, tmp_path):
    _oem_cert(tmp_path, password=b"s3cret-pass")
    env = {"FFU_SIGN_PASSWORD": "s3cret-pass"}
    args = (
        "packages",
        "CONFIG=Retail",
        f"SIGN_CERT={tmp_path / 'oem.crt'}",
        f"SIGN_KEY={tmp_path / 'oem.key'}",
    )
    proc = scons(ws, *args, env=env)
    assert len(built(proc)) == 19  # the sample's 18 packages, Registry.Settings once per product (A, B)
    out = ws / "build/arm64/retail-signed/packages"
    roots = verify.load_certificates([tmp_path / "oem.crt"])
    assert all(verify.verify_cab(c, trusted_roots=roots).ok for c in out.glob("*.cab"))
    # Same certificate: nothing to do. A wrong password: one clear line, no traceback.
    assert built(scons(ws, *args, env=env)) == []
    bad = scons(ws, *args, env={"FFU_SIGN_PASSWORD": "wrong"}, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "s3cret-pass" not in bad.stderr and "wrong" not in bad.stderr.replace("wrong password", "")
    # Key material and the password never reach SCons' database.
    for sconsign in ws.glob("build/.sconsign*"):
        data = sconsign.read_bytes()
        assert b"PRIVATE KEY" not in data and b"s3cret-pass" not in data
    # A new certificate (new identity) rebuilds every retail package.
    _oem_cert(tmp_path, password=b"s3cret-pass")
    assert len(built(scons(ws, *args, env=env))) == 19


def test_pe_payload_signing_is_switchable_per_package(tmp_path):
    from ffuforge.formats.cab import CabReader
    from ffuforge.formats.pe import pe_layout

    from test_scons_packages import _mini

    ws = _mini(tmp_path)
    from ffuforge.formats import pe

    pe.make_minimal_pe(ws / "pkg/tool.exe", machine="arm64", kind="exe", payload=b"x")
    (ws / "pkg/P.wm.xml").write_text(
        (ws / "pkg/P.wm.xml").read_text().replace("<files>", '<files><file source=".\\tool.exe"/>', 1)
    )
    shutil.copytree(Path(__file__).resolve().parents[2] / "testcerts", ws / "testcerts")

    def signed_pe(sconstruct_extra: str) -> bool:
        (ws / "SConstruct").write_text(
            "from ffuforge import scons_tool\n"
            "env = Environment(tools=[scons_tool.generate], FFU_CPU='arm64', FFU_LANGUAGES=['en-us'])\n"
            f"Default(env.Package('pkg/P.wm.xml'{sconstruct_extra}))\n"
        )
        scons(ws)
        with CabReader(ws / "build/arm64/packages/Contoso-T-P.cab") as cab:
            data = cab.read(next(m for m in cab.members if m.name.endswith("tool.exe")))
        return pe_layout(data).signed

    assert signed_pe("") is True  # FFU_SIGN_PE defaults to on
    assert signed_pe(", SIGN_PE=False") is False  # this package opts out


# ----------------------------------------------------------------------------- the README's Retail steps

HSM_STUB = """#!/bin/sh
# stands in for an HSM signing tool: osslsigncode (an independent signer) with the PKI's PFX
[ "$1" = --profile ] && [ "$2" = oem ] || { echo "usage: my-hsm-sign --profile oem FILE" >&2; exit 2; }
osslsigncode sign -pkcs12 "$PKI/oem.pfx" -pass "$FFU_SIGN_PASSWORD" -h sha256 -in "$3" -out "$3.signed" \\
  >/dev/null && mv "$3.signed" "$3"
"""


def _readme_retail_lines() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("### Retail images", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [ln.split("   #")[0].split("  #")[0].strip() for ln in block.splitlines() if ln.strip()]


def _venv_wrappers(ws: Path) -> None:
    """`.venv/bin/scons` and `.venv/bin/ffuforge` of the workspace copy: this checkout's code."""
    bin_dir = ws / ".venv/bin"
    bin_dir.mkdir(parents=True)
    for name, module in (("scons", "SCons"), ("ffuforge", "ffuforge")):
        (bin_dir / name).write_text(
            f'#!/bin/sh\nPYTHONPATH="{ws / "site_scons"}" exec "{sys.executable}" -m {module} "$@"\n'
        )
        (bin_dir / name).chmod(0o755)


@pytest.mark.skipif(shutil.which("osslsigncode") is None, reason="osslsigncode missing (the HSM stand-in)")
def test_readme_retail_commands_run_as_written(tmp_path_factory):
    """Each line of the README's Retail block, run by a shell at the top of a fresh workspace with a
    certificate `ffuforge certs new` made just now (issued after SOURCE_DATE_EPOCH, kept at 2020)."""
    ws = copy_workspace(tmp_path_factory.mktemp("retail"))
    _venv_wrappers(ws)
    stub_dir = ws / ".stub"
    stub_dir.mkdir()
    (stub_dir / "my-hsm-sign").write_text(HSM_STUB)
    (stub_dir / "my-hsm-sign").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "FFU_SIGN_PASSWORD")}
    env["PATH"] = f"{stub_dir}:{env['PATH']}"
    env["PKI"] = str(ws)
    lines = _readme_retail_lines()
    assert lines[0].startswith("export FFU_SIGN_PASSWORD=") and "certs new --production ." in lines[1]
    assert sum("scons CONFIG=Retail" in ln for ln in lines) == 3
    ffu = ws / "build/arm64/SampleA/Retail/Flash.ffu"
    signers = []
    for line in lines:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = "Corr3ct-Horse" if value == "…" else value
            continue
        proc = subprocess.run(
            ["sh", "-c", line], cwd=ws, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "Corr3ct-Horse" not in proc.stdout + proc.stderr
        if "scons" not in line:
            continue
        assert ffu.is_file(), line
        cab = ws / "build/arm64/retail-signed/packages/Contoso.COM.Sample.cab"
        r = subprocess.run(
            [
                "osslsigncode",
                "verify",
                "-in",
                cab,
                "-CAfile",
                ws / "root.crt",
                "-untrusted",
                ws / "intermediate.crt",
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and "Succeeded" in r.stdout, (line, r.stdout, r.stderr)
        v = subprocess.run(
            [ws / ".venv/bin/ffuforge", "verify", cab, "--root", ws / "root.crt"],
            capture_output=True,
            text=True,
        )
        assert v.returncode == 0, v.stdout + v.stderr
        assert "  signer: E=Info@Contoso-Name.com,CN=Contoso UMCI Codesigning" in v.stdout
        assert "CN=Contoso Production PCA" in v.stdout and "    test only: no" in v.stdout
        assert "  release type: Production (update.mum)" in v.stdout
        signers.append(verify.cab_signature(cab))
    # the PFX carries the root too (another chain, another identity), the PEM form the chain given;
    # the command's signature is osslsigncode's, at the current time
    assert len(set(signers)) == 3
    # the fresh certificate signed at its notBefore, not at the workspace's 2020-01-01
    leaf = x509.load_pem_x509_certificate((ws / "oem.crt").read_bytes())
    assert leaf.not_valid_before_utc.year >= 2025
    when = leaf.not_valid_before_utc.strftime("%y%m%d%H%M%SZ").encode()
    assert b"\x17\x0d" + when in signers[0]  # UTCTime signingTime


def test_relative_certificate_paths_mean_the_top_of_the_tree(ws, tmp_path):
    """Regression: SIGN_CERT=oem.crt resolved against packages/ ("packages/oem.crt: cannot read")."""
    _oem_cert(ws)
    try:
        proc = scons(ws, "packages", "CONFIG=Retail", "SIGN_CERT=oem.crt", "SIGN_KEY=oem.key", check=False)
        assert proc.returncode == 0, proc.stderr
        missing = scons(ws, "packages", "CONFIG=Retail", "SIGN_CERT=nope.crt", check=False)
        assert missing.returncode != 0 and "nope.crt: cannot read" in missing.stderr
        assert "packages/nope.crt" not in missing.stderr
    finally:
        (ws / "oem.crt").unlink()
        (ws / "oem.key").unlink()


def test_retail_refuses_a_test_release_package_and_names_the_fix(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    hb = next((ws / "packages/Services.Heartbeat").glob("*.wm.xml"))
    hb.write_text(hb.read_text().replace('releaseType="Production"', 'releaseType="Test"'))
    _oem_cert(ws)
    proc = scons(ws, "CONFIG=Retail", "SIGN_CERT=oem.crt", "SIGN_KEY=oem.key", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if "refuses" in ln)
    assert "Heartbeat" in line and "release type Test" in line
    assert 'releaseType="Production"' in line and "CONFIG=Test" in line
    assert "sign them with your production certificate" not in line  # the signature is fine


def test_sign_re_signs_built_packages(ws, tmp_path):
    """`ffuforge sign`: a test-signed CAB re-signed with a production certificate verifies with
    osslsigncode against the new root, its members unchanged; deterministic; a CAB whose member no
    longer matches its catalog is refused with one line and nothing written."""
    from ffuforge.cli import main as cli_main
    from ffuforge.formats import cab as cabfmt
    from ffuforge.formats import catalog

    pki = tmp_path / "pki"
    _oem_cert(pki.mkdir() or pki)
    src = ws / "build/arm64/packages/Contoso.COM.Sample.cab"
    out1, out2 = tmp_path / "a", tmp_path / "b"
    args = ["--cert", str(pki / "oem.crt"), "--key", str(pki / "oem.key")]
    assert cli_main(["sign", str(src), *args, "-o", str(out1)]) == 0
    assert cli_main(["sign", str(src), *args, "-o", str(out2)]) == 0
    signed = out1 / src.name
    assert signed.read_bytes() == (out2 / src.name).read_bytes()
    with cabfmt.CabReader(src) as a, cabfmt.CabReader(signed) as b:
        assert [m.name for m in a.members] == [m.name for m in b.members]
        for m in a.members:
            if m.name != "update.cat":
                assert a.read(m, None) == b.read(m.name, None)
        # the catalog's content stays; only its signature is new
        old_cat, new_cat = a.read("update.cat", None), b.read("update.cat", None)
        assert catalog.ctl_der(old_cat) == catalog.ctl_der(new_cat) and old_cat != new_cat
    roots = verify.load_certificates([pki / "oem.crt"])
    assert verify.verify_cab(signed, trusted_roots=roots).ok
    if shutil.which("osslsigncode"):
        r = subprocess.run(
            ["osslsigncode", "verify", "-in", signed, "-CAfile", pki / "oem.crt"],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout
    # in place, over the earlier output: same signer and time, same bytes
    before = signed.read_bytes()
    assert cli_main(["sign", str(signed), *args]) == 0 and signed.read_bytes() == before
    # a member changed after cataloguing: refused, nothing written
    with cabfmt.CabReader(src) as a:
        members = [cabfmt.CabMember(m.name, data=a.read(m, None)) for m in a.members]
    victim = next(i for i, m in enumerate(members) if m.name.lower().endswith(".manifest"))
    members[victim] = cabfmt.CabMember(members[victim].name, data=members[victim].data + b" ")
    cabfmt.write_cab(tmp_path / "tampered.cab", members)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ffuforge",
            "sign",
            str(tmp_path / "tampered.cab"),
            *args,
            "-o",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "site_scons")},
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not listed in update.cat" in proc.stderr and "rebuild the package" in proc.stderr
    assert not (tmp_path / "c").exists()
