"""Small shared helpers for tests: write package projects and build them without SCons."""

from pathlib import Path

from ffuforge.package import project, variant

WM_HEAD = '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" namespace="Test" name="{name}"{extra}>'


def wm(tmp: Path, body: str, name: str = "Pkg", extra: str = "", filename: str | None = None) -> Path:
    path = tmp / (filename or f"{name}.wm.xml")
    path.write_text(WM_HEAD.format(name=name, extra=extra) + "\n" + body + "\n</identity>\n")
    return path


def plan(path: Path, cpu: str = "arm64", **kw) -> list[variant.Variant]:
    variables = tuple(sorted(kw.pop("variables", {}).items()))
    opts = variant.BuildOptions(cpu=cpu, variables=variables, **kw)
    return variant.plan(project.load(path, path.name), opts, "", top=path.parent)
