"""Every real wm.xml of the corpus is built into a CAB, with generated stand-ins for its payload."""

import re
import shutil
from pathlib import Path

from ffuforge.errors import FFUError
from ffuforge.formats import pe
from ffuforge.formats.cab import CabReader
from ffuforge.package import project, sources, variant
from ffuforge.package.build import build_variant

BCD_STANDIN = (
    '<?xml version="1.0"?><BootConfigurationDatabase '
    'xmlns="http://schemas.microsoft.com/phone/2011/10/BootConfiguration"><Objects/>'
    "</BootConfigurationDatabase>"
)
# Real files that are expected to be refused, with the reason.
EXPECTED_REFUSALS = {
    "FactoryOrchestratorServiceTemplate.wm.xml": "unfilled template",
    "FTFServiceTemplate.wm.xml": "unfilled template",
    # iaiogpio.inf declares only NTx86 but is packaged for ARM/x64 (pkggen: "Failed DoConvert").
    "CustomRPi2.GPIO.wm.xml": "no models section",
    "CustomMBMx64.GPIO.wm.xml": "no models section",
    # An un-substituted template placeholder in a REG_BINARY value.
    "Security.Bitlocker.wm.xml": "'{_DRA_CERT_BLOB_}' is not contiguous hexadecimal",
}


def _cpu(path: Path) -> str:
    text = str(path).lower()
    for marker, cpu in (
        ("source-arm64", "arm64"),
        ("source-x64", "amd64"),
        ("source-x86", "x86"),
        ("source-arm", "arm"),
    ):
        if marker in text:
            return cpu
    return "arm"


def _standin(path: Path, cpu: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext in (".sys", ".dll", ".exe", ".efi"):
        pe.make_minimal_pe(
            path,
            machine={"amd64": "amd64", "x86": "x86", "arm64": "arm64"}.get(cpu, "arm"),
            kind=ext[1:] if ext != ".efi" else "exe",
            payload=path.name.encode(),
        )
    elif ext == ".xml" and "bcd" in path.name.lower():
        path.write_text(BCD_STANDIN)
    else:
        path.write_bytes(b"stand-in for " + path.name.encode() + b"\n")


def _wm_files(corpus: Path):
    return sorted(corpus.rglob("*.wm.xml"))


def test_every_corpus_wm_xml_builds_a_cab(corpus, tmp_path):
    built, refused = 0, {}
    for src in _wm_files(corpus):
        rel = src.relative_to(corpus)
        work = tmp_path / "ws" / str(built + len(refused))
        proj_dir = work / "prj" / rel.parent
        shutil.copytree(src.parent, proj_dir, dirs_exist_ok=True)
        cpu = _cpu(rel)
        variables = {
            "OEMNAME": "Contoso",
            "PROD": "SampleA",
            "BSPVER": "10.0.0.0",
            "BUILDTIME": "20200101-0000",
            "PRJDIR": str(work / "prj"),
            "COMDIR": str(work / "com"),
            "BLDDIR": str(work / "bld"),
            "SRC_DIR": str(work / "src"),
            "TOOLSDIR": str(work / "tools"),
        }
        opts = variant.BuildOptions(
            cpu=cpu, version="10.0.0.0", variables=tuple(variables.items()), languages=("en-us",)
        )
        try:
            # missing payloads get stand-ins below, so planning leaves them to the build (as a package
            # action plans)
            lenient = sources.SourcePolicy(roots=None, report_missing=False)
            variants = variant.plan(project.load(proj_dir / src.name, str(rel)), opts, policy=lenient)
            for v in variants:
                for f in v.inputs():
                    assert str(f).startswith(str(work)), (rel, f)
                    if not f.exists():
                        _standin(f, cpu)
                out = work / "out" / v.cab_name
                build_variant(v, out)
                with CabReader(out) as cab:
                    names = [m.name for m in cab.members]
                assert names[:2] == ["update.mum", "update.cat"]
                # update.mum, update.cat, the deployment and component manifests; payload; BCD; raw image; and one
                # dual_<inf> driver manifest per driver INF
                extra = (v.bcd is not None) + (v.binary_image is not None) + len(v.drivers)
                assert len(names) == 4 + len(v.payload) + extra
                built += 1
        except FFUError as exc:
            refused[str(rel)] = str(exc)
    unexpected = {k: v for k, v in refused.items() if Path(k).name not in EXPECTED_REFUSALS}
    assert not unexpected
    for name, msg in refused.items():
        assert EXPECTED_REFUSALS[Path(name).name] in msg, (name, msg)
        assert re.match(r"^\S+\.wm\.xml:\d+: |^\S+\.inf:\d+: ", msg), msg
    assert built >= 190
