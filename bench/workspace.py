"""Synthetic workspaces for benchmarks: N package projects with a configurable payload."""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))

SCONSTRUCT = """
import sys
from ffuforge import scons_tool
DefaultEnvironment(tools=[])
env = Environment(tools=[scons_tool.generate], FFU_CPU="arm64", FFU_LANGUAGES=["en-us", "de-de"],
                  FFU_COMPRESSION=ARGUMENTS.get("COMPRESSION", "none"), FFU_SIGN=ARGUMENTS.get("SIGN", "none"),
                  FFU_VARIABLES={"OEMNAME": "Bench", "BLDDIR": "#build/arm64/payload"})
env.Decider("content-timestamp")
SConsignFile(f"build/.sconsign-py{sys.version_info[0]}{sys.version_info[1]}")
cabs = []
for project in sorted(Glob("packages/*/*.wm.xml"), key=str):
    cabs += env.Package(project)
Default(cabs)
"""

WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="$(OEMNAME)" namespace="Bench" name="P{i:04d}"
    legacyName="$(OEMNAME).Bench.P{i:04d}">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />
  <files>
{files}
  </files>
  <regKeys>
    <regKey keyName="$(hklm.software)\\$(OEMNAME)\\P{i:04d}">
      <regValue name="Index" type="REG_DWORD" value="0x{i:08X}" />
      <regValue name="Name" type="REG_SZ" value="package {i}" />
    </regKey>
  </regKeys>
{language}</identity>
"""

WORDS = ("device driver image partition package manifest catalog registry service firmware board "
         "contoso windows iot core onecore feature layout sector cluster volume boot loader").split()


def _payload(rng: random.Random, size: int, text: bool) -> bytes:
    if not text:
        return rng.randbytes(size)
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.randrange(1 << 30)}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def generate(dest: Path, packages: int, total_bytes: int, files_per_package: int = 4, seed: int = 1,
             pe_per_package: int = 0) -> int:
    """Write a workspace; half the payload is random (incompressible), half text. Returns payload bytes."""
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "packages").mkdir(parents=True)
    shutil.copytree(ROOT / "site_scons", dest / "site_scons", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "testcerts", dest / "testcerts")
    (dest / "SConstruct").write_text(SCONSTRUCT)
    per_file = max(1, total_bytes // (packages * files_per_package))
    written = 0
    for i in range(packages):
        pdir = dest / "packages" / f"P{i:04d}"
        pdir.mkdir()
        files: list[str] = []
        if pe_per_package:
            from ffuforge import pe  # noqa: PLC0415 - only needed for PE payloads
            for k in range(pe_per_package):
                name = f"driver{k}.sys"
                image = pe.make_minimal_pe(None, machine="arm64", kind="sys", payload=rng.randbytes(64 * 1024))
                (pdir / name).write_bytes(image)
                written += len(image)
                files.append(f'    <file source=".\\{name}" destinationDir="$(runtime.drivers)" '
                             f'name="p{i:04d}_{name}" />')
        for k in range(files_per_package):
            name = f"file{k}.{'txt' if k % 2 else 'bin'}"
            size = max(1, int(per_file * rng.uniform(0.5, 1.5)))
            (pdir / name).write_bytes(_payload(rng, size, text=bool(k % 2)))
            written += size
            files.append(f'    <file source=".\\{name}" destinationDir="$(runtime.system32)\\Bench\\P{i:04d}" />')
        language = ""
        if i % 10 == 0:
            for lang in ("en-us", "de-de"):
                (pdir / lang).mkdir()
                (pdir / lang / "strings.txt").write_text(f"{lang} strings of package {i}\n")
                written += len(f"{lang} strings of package {i}\n")
            language = ('  <language><files><file source=".\\$(LANGID)\\strings.txt" '
                        f'destinationDir="$(runtime.system32)\\Bench\\$(LANGID)" name="P{i:04d}.txt"/>'
                        '</files></language>\n')
        (pdir / f"P{i:04d}.wm.xml").write_text(WM.format(i=i, files="\n".join(files), language=language))
    return written


def payload_files(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "packages").rglob("*") if p.is_file() and not p.name.endswith(".wm.xml"))


def environ() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    return env
