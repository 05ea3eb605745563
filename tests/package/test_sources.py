"""Where package sources are found (WDK <PkgGen> working folder, explicit base), where they may
be (the workspace and declared roots, after symbolic links), and every missing one in one report."""

from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.package import project, sources, variant

HEAD = '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" namespace="B" name="{name}">'
VCXPROJ = """<?xml version="1.0" encoding="utf-8"?>
<Project DefaultTargets="Build" ToolsVersion="15.0" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <ItemGroup>
{items}
  </ItemGroup>
</Project>
"""


def _wm(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wm.xml"
    path.write_text(HEAD.format(name=name) + "\n" + body + "\n</identity>\n")
    return path


CONFINED = sources.SourcePolicy()


def _plan(path: Path, top: Path, policy=CONFINED, **variables):
    opts = variant.BuildOptions(cpu="arm64", variables=tuple(sorted(variables.items())))
    rel = path.relative_to(top)
    return variant.plan(project.load(path, str(rel)), opts, str(rel.parent), top, policy)


def _bsp(top: Path, items: str) -> Path:
    """Package/Package.vcxproj one level above Package/GPIO/GPIO.wm.xml, sources under Package/."""
    pkg = top / "BSP/Board/Package"
    pkg.mkdir(parents=True)
    (pkg / "Package.vcxproj").write_text(VCXPROJ.format(items=items))
    (pkg / "bin").mkdir()
    (pkg / "bin/gpio.txt").write_text("from the .vcxproj folder\n")
    return _wm(
        pkg / "GPIO",
        "GPIO",
        '<files><file source="bin\\gpio.txt" destinationDir="$(runtime.system32)"/></files>',
    )


def test_wdk_pkggen_item_sets_the_working_folder(tmp_path):
    wm = _bsp(
        tmp_path,
        '    <PkgGen Include="GPIO\\GPIO.wm.xml"><AdditionalOptions>/universalbsp</AdditionalOptions></PkgGen>',
    )
    [v] = _plan(wm, tmp_path)
    assert [p.source for p in v.payload] == [tmp_path / "BSP/Board/Package/bin/gpio.txt"]


def test_item_include_matches_case_insensitively_and_among_several(tmp_path):
    wm = _bsp(tmp_path, '    <PkgGen Include="Other\\Other.wm.xml;gpio\\gpio.WM.xml" />')
    [v] = _plan(wm, tmp_path)
    assert v.payload[0].source.parent == tmp_path / "BSP/Board/Package/bin"


def test_item_variables_are_defaults_the_build_overrides(tmp_path):
    wm = _bsp(
        tmp_path,
        '    <PkgGen Include="GPIO\\GPIO.wm.xml"><AdditionalOptions>/universalbsp /variables:"PART=gpio;X=1"</AdditionalOptions></PkgGen>',
    )
    wm.write_text(wm.read_text().replace("bin\\gpio.txt", "bin\\$(PART).txt"))
    (wm.parent.parent / "bin/other.txt").write_text("o\n")
    assert _plan(wm, tmp_path)[0].payload[0].source.name == "gpio.txt"
    assert _plan(wm, tmp_path, PART="other")[0].payload[0].source.name == "other.txt"


def test_a_vcxproj_not_naming_the_project_changes_nothing(tmp_path):
    wm = _bsp(tmp_path, '    <PkgGen Include="Other\\Other.wm.xml" />')
    with pytest.raises(ConfigError, match=r"GPIO\.wm\.xml:2: source file .*bin/gpio\.txt does not exist"):
        _plan(wm, tmp_path)


def test_the_project_folder_is_tried_after_the_working_folder(tmp_path):
    wm = _bsp(tmp_path, '    <PkgGen Include="GPIO\\GPIO.wm.xml" />')
    (wm.parent / "local.txt").write_text("next to the wm.xml\n")
    wm.write_text(wm.read_text().replace("bin\\gpio.txt", ".\\local.txt"))
    assert _plan(wm, tmp_path)[0].payload[0].source == wm.parent / "local.txt"


def test_missing_source_names_every_folder_tried(tmp_path):
    wm = _bsp(tmp_path, '    <PkgGen Include="GPIO\\GPIO.wm.xml" />')
    wm.write_text(wm.read_text().replace("bin\\gpio.txt", "bin\\nope.txt"))
    with pytest.raises(ConfigError) as exc:
        _plan(wm, tmp_path)
    assert str(exc.value) == (
        "BSP/Board/Package/GPIO/GPIO.wm.xml:2: source file BSP/Board/Package/bin/nope.txt does not exist "
        "(looked in BSP/Board/Package, BSP/Board/Package/GPIO); create it or fix the source path"
    )


def test_explicit_base_wins(tmp_path):
    wm = _bsp(tmp_path, '    <PkgGen Include="GPIO\\GPIO.wm.xml" />')
    (tmp_path / "out/bin").mkdir(parents=True)
    (tmp_path / "out/bin/gpio.txt").write_text("from the explicit base\n")
    [v] = _plan(wm, tmp_path, sources.SourcePolicy(base="#out"))
    assert v.payload[0].source == tmp_path / "out/bin/gpio.txt"


def test_every_missing_input_in_one_report(tmp_path):
    body = "".join(f'<file source=".\\m{i}.bin" destinationDir="$(runtime.system32)"/>' for i in range(9))
    wm = _wm(tmp_path / "P", "P", f'<files>{body}</files>\n<bcdStore source=".\\nobcd.xml"/>')
    with pytest.raises(sources.Problems) as exc:
        _plan(wm, tmp_path)
    lines = str(exc.value).split("\n")
    assert lines == [
        f"P/P.wm.xml:2: source file P/m{i}.bin does not exist; create it or fix the source path"
        for i in range(9)
    ] + ["P/P.wm.xml:3: bcdStore source P/nobcd.xml does not exist; create it or fix the source path"]


def test_missing_inf_and_driver_files_together(tmp_path):
    folder = tmp_path / "D"
    folder.mkdir()
    (folder / "d.inf").write_text(
        '[Version]\nSignature="$WINDOWS NT$"\nClass=System\nClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}\n'
        "Provider=C\nDriverVer=11/01/2026,1.0.0.0\n[DestinationDirs]\nDefaultDestDir=12\n"
        '[SourceDisksNames]\n1=Disk,,,""\n[SourceDisksFiles]\nd.sys=1\n[Manufacturer]\nC=S,NTarm64\n'
        "[S.NTarm64]\nDev=Inst,ACPI\\X\n[Inst.NT]\nCopyFiles=F\n[F]\nd.sys\n"
    )
    wm = _wm(
        folder,
        "D",
        '<drivers><driver><inf source=".\\d.inf"/></driver><driver><inf source=".\\gone.inf"/></driver></drivers>',
    )
    with pytest.raises(sources.Problems) as exc:
        _plan(wm, tmp_path)
    text = str(exc.value)
    assert "D/d.inf: file D/d.sys does not exist" in text and "driver INF D/gone.inf does not exist" in text


# ------------------------------------------------------------------------ confinement


@pytest.mark.parametrize(
    "source",
    ["/etc/passwd", "..\\" * 30 + "etc\\passwd", ".\\link.txt", ".\\etc\\passwd"],
    ids=["absolute", "dotdot", "symlink", "symlinked-folder"],
)
def test_host_files_are_refused(tmp_path, source):
    top = tmp_path / "ws"
    wm = _wm(top / "P", "P", f'<files><file source="{source}" name="x.txt"/></files>')
    (top / "P/link.txt").symlink_to("/etc/passwd")
    (top / "P/etc").symlink_to("/etc")
    with pytest.raises(
        ConfigError, match=r"^P/P\.wm\.xml:2: source .* resolves to /etc/passwd, outside the workspace"
    ):
        _plan(wm, top)


def test_a_declared_root_lets_an_absolute_source_in(tmp_path):
    outside = tmp_path / "drops"
    outside.mkdir()
    (outside / "fw.bin").write_bytes(b"firmware")
    top = tmp_path / "ws"
    wm = _wm(top / "P", "P", f'<files><file source="{outside}/fw.bin"/></files>')
    with pytest.raises(ConfigError, match="outside the workspace"):
        _plan(wm, top)
    [v] = _plan(wm, top, sources.SourcePolicy(roots=(str(outside),)))
    assert v.payload[0].source == outside / "fw.bin"


def test_a_symlink_inside_the_workspace_is_fine(tmp_path):
    top = tmp_path / "ws"
    wm = _wm(top / "P", "P", '<files><file source=".\\l.txt"/></files>')
    (top / "real.txt").write_text("r\n")
    (top / "P/l.txt").symlink_to(top / "real.txt")
    assert _plan(wm, top)[0].payload[0].source == top / "P/l.txt"


def test_a_root_is_a_folder_not_a_prefix(tmp_path):
    (tmp_path / "drops2").mkdir()
    (tmp_path / "drops2/x.bin").write_bytes(b"x")
    top = tmp_path / "ws"
    wm = _wm(top / "P", "P", f'<files><file source="{tmp_path}/drops2/x.bin"/></files>')
    with pytest.raises(ConfigError, match="outside the workspace"):
        _plan(wm, top, sources.SourcePolicy(roots=(str(tmp_path / "drops"),)))


def test_the_cli_policy_does_not_confine(tmp_path):
    wm = _wm(tmp_path / "P", "P", '<files><file source="/etc/hostname" name="h.txt"/></files>')
    if not Path("/etc/hostname").is_file():
        pytest.skip("/etc/hostname is absent here")
    assert _plan(wm, tmp_path, sources.UNCONFINED)[0].payload[0].source == Path("/etc/hostname")


def test_problems_survive_a_worker_process(tmp_path):
    """scons -jN plans again in worker processes: the report is pickled back whole."""
    import pickle

    wm = _wm(tmp_path / "P", "P", '<files><file source=".\\a.bin"/><file source=".\\b.bin"/></files>')
    with pytest.raises(sources.Problems) as exc:
        _plan(wm, tmp_path)
    again = pickle.loads(pickle.dumps(exc.value))
    assert isinstance(again, ConfigError) and str(again) == str(exc.value) and len(again.errors) == 2


def test_a_package_action_plans_without_reporting_other_cabs_inputs(tmp_path):
    """The action builds one CAB of the project; another's payload (here the WOW binary) may still
    be in the making under scons -jN: not reported there (its own payload is read, and checked, by
    the build). Confinement still holds."""
    wm = _wm(tmp_path / "P", "P", '<files><file source=".\\a.bin"/></files>')
    quiet = sources.SourcePolicy(report_missing=False)
    [v] = _plan(wm, tmp_path, quiet)
    assert v.payload[0].source == tmp_path / "P/a.bin"
    wm.write_text(wm.read_text().replace(".\\a.bin", "/etc/passwd"))
    with pytest.raises(ConfigError, match="outside the workspace"):
        _plan(wm, tmp_path, quiet)
