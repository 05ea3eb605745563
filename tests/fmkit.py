"""Tiny builders for FM / FMFileList / OEMInput test documents and a throw-away workspace."""

from __future__ import annotations

from pathlib import Path

from ffuforge.features import model
from ffuforge.features import resolve as resolver

XMLNS = 'xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"'


def pkg(name: str, path: str = "%PKGBLD_DIR%", ids: tuple[str, ...] = (), **attrs: str) -> str:
    a = "".join(f' {k}="{v}"' for k, v in attrs.items())
    if not ids:
        return f'<PackageFile Path="{path}" Name="{name}"{a}/>'
    fids = "".join(f"<FeatureID>{i}</FeatureID>" for i in ids)
    return f'<PackageFile Path="{path}" Name="{name}"{a}><FeatureIDs>{fids}</FeatureIDs></PackageFile>'


def fm_xml(body: str, root_attrs: str = "") -> str:
    return f'<?xml version="1.0" encoding="utf-8"?>\n<FeatureManifest {XMLNS}{root_attrs}>\n{body}\n</FeatureManifest>\n'


def board_fm(extra: str = "", soc: str = "Board", device: str = "Board") -> str:
    """An FM with a base package and one layout/platform CAB for `soc`/`device`."""
    return fm_xml(f"""
  <BasePackages>{pkg("Contoso.Base.cab")}</BasePackages>
  <DeviceLayoutPackages>{pkg("Contoso.Layout.cab", SOC=soc)}</DeviceLayoutPackages>
  <OEMDevicePlatformPackages>{pkg("Contoso.Layout.cab", Device=device)}</OEMDevicePlatformPackages>
  {extra}""")


def oeminput_xml(
    fms: tuple[str, ...] = ("fms/BoardFM.xml",),
    oem: tuple[str, ...] = (),
    ms: tuple[str, ...] = (),
    soc: str = "Board",
    device: str = "Board",
    release: str = "Test",
    sv: str | None = "Vendor",
    langs: tuple[str, ...] = ("en-us",),
    res: tuple[str, ...] = ("1024x768",),
    keyboard: tuple[str, ...] = (),
    speech: tuple[str, ...] = (),
    extra: str = "",
    build: str = "fre",
) -> str:
    def items(tag, values):
        return "".join(f"<{tag}>{v}</{tag}>" for v in values)

    kb = f"<Keyboard>{items('Language', keyboard)}</Keyboard>" if keyboard else ""
    sp = f"<Speech>{items('Language', speech)}</Speech>" if speech else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<OEMInput {XMLNS}>
  <Description>test image</Description>
  <SOC>{soc}</SOC>
  {f"<SV>{sv}</SV>" if sv else ""}
  <Device>{device}</Device>
  <ReleaseType>{release}</ReleaseType>
  <BuildType>{build}</BuildType>
  <SupportedLanguages><UserInterface>{items("Language", langs)}</UserInterface>{kb}{sp}</SupportedLanguages>
  <BootUILanguage>{langs[0]}</BootUILanguage>
  <BootLocale>{langs[0]}</BootLocale>
  <Resolutions>{items("Resolution", res)}</Resolutions>
  <AdditionalFMs>{items("AdditionalFM", fms)}</AdditionalFMs>
  <Features><Microsoft>{items("Feature", ms)}</Microsoft><OEM>{items("Feature", oem)}</OEM></Features>
  {extra}
  <Product>Windows 10 IoT Core</Product>
</OEMInput>
"""


class Workspace:
    """tmp_path laid out like ffuforge's workspace: fms/, build/arm/packages/ (the CABs)."""

    def __init__(self, root: Path, cpu: str = "arm"):
        self.root = root
        self.cpu = cpu
        self.pkgs = root / "build" / cpu / "packages"
        self.pkgs.mkdir(parents=True)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def cabs(self, *names: str) -> None:
        for n in names:
            (self.pkgs / n).write_bytes(b"MSCF")

    @property
    def variables(self) -> dict[str, str]:
        return {
            "PKGBLD_DIR": str(self.pkgs),
            "OEM_NAME": "Contoso",
            "BLD_DIR": str(self.root / "build" / self.cpu),
        }

    def resolve(self, oeminput_text: str, fm_text: str | None = None, **kw) -> model.Resolution:
        if fm_text is not None:
            self.write("fms/BoardFM.xml", fm_text)
        oi = self.write("Products/P/TestOEMInput.xml", oeminput_text)
        kw.setdefault("available", model.assume_available)
        return resolver.resolve(
            oi,
            cpu=kw.pop("cpu", self.cpu),
            variables=kw.pop("variables", self.variables),
            top=self.root,
            **kw,
        )


def names(res: model.Resolution, partition: str = "MainOS") -> list[str]:
    return [p.name for p in res.partitions.get(partition, [])]


def reasons(res: model.Resolution) -> dict[str, list[str]]:
    return {p.name: p.reasons for p in res.packages()}
