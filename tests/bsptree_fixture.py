"""A BSP tree of our own making, shaped like vendors' (#18): two boards sharing driver projects.

```
VendorBSP/Package/Package.vcxproj            <PkgGen> items: sources relative to Package/ (WDK)
VendorBSP/Package/Vendor.I2C|Vendor.SPI/      shared driver projects, one level below the .vcxproj
VendorBSP/Package/Drivers, Data/              their INFs (system32\\drivers vs 12, VENDOR vs vendor)
VendorBSP/<Board>/Packages/<Board>FMFileList.xml   $(FMDirectory)\\<Board>FM.xml, CPUType ARM64
VendorBSP/<Board>/Packages/<Board>.DeviceLayout/   layout + platform
VendorBSP/<Board>/Packages/SV.PlatExtensions.UpdateOS/   each board's own UpdateOS package (one CAB name)
VendorBSP/BoardB/Packages/Vendor.I2C.BoardB/  board B's alternative of the shared I2C project
VendorBSP/<Board>/OEMInputSamples/TestOEMInput.xml
```
"""

from __future__ import annotations

from pathlib import Path

from ffuforge.features import templates

BOARDS = ("BoardA", "BoardB")

VCXPROJ = """<?xml version="1.0" encoding="utf-8"?>
<Project DefaultTargets="Build" ToolsVersion="15.0" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <ItemGroup>
    <PkgGen Include="Vendor.I2C\\Vendor.I2C.wm.xml"><AdditionalOptions>/universalbsp</AdditionalOptions></PkgGen>
    <PkgGen Include="Vendor.SPI\\Vendor.SPI.wm.xml"><AdditionalOptions>/universalbsp</AdditionalOptions></PkgGen>
  </ItemGroup>
</Project>
"""

DRIVER_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="Vendor" name="{name}" legacyName="$(OEMNAME).Vendor.{name}">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="SiliconVendor" />
  <drivers>
    <driver><inf source="{inf}" /></driver>
  </drivers>
  <files>
    <file source="{data}" destinationDir="$(runtime.system32)\\Vendor\\Settings" />
  </files>
</identity>
"""

VENDOR = {"provider": "Vendor", "tag": "VEND"}  # INF's provider and hardware-ID prefix

INF = """; {stem} (ffuforge test fixture)
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {{4d36e97d-e325-11ce-bfc1-08002be10318}}
Provider    = {provider}
DriverVer   = 11/01/2026,10.0.0.0

[DestinationDirs]
DefaultDestDir = {drivers}
Extra_Copy     = {extra}

[SourceDisksNames]
1 = Disk,,,""

[SourceDisksFiles]
{stem}.sys = 1,,
{stem}.bin = 1,,

[Manufacturer]
{provider} = Standard,NT$ARCH$

[Standard.NT$ARCH$]
Dev = Dev_Inst, ACPI\\{tag}{hwid}

[Dev_Inst.NT]
CopyFiles = Driver_Copy, Extra_Copy

[Driver_Copy]
{stem}.sys

[Extra_Copy]
{stem}.bin
"""

LAYOUT_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="{board}" name="DeviceLayout" legacyName="$(OEMNAME).{board}.DeviceLayout">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="SiliconVendor" />
  <files>
    <file source=".\\DeviceLayout.xml" destinationDir="$(runtime.windows)\\ImageUpdate" />
    <file source=".\\OEMDevicePlatform.xml" destinationDir="$(runtime.windows)\\ImageUpdate" />
  </files>
</identity>
"""

DEVICE_LAYOUT = templates.device_layout(min_free_sectors=262144).decode()  # the kit's shape, smaller

PLATFORM = """<?xml version="1.0" encoding="utf-8"?>
<OEMDevicePlatform xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <MinSectorCount>2097152</MinSectorCount>
  <DevicePlatformIDs><ID>Vendor.{board}</ID></DevicePlatformIDs>
</OEMDevicePlatform>
"""

UPDATEOS_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="PlatExtensions" name="UpdateOS" legacyName="SV.PlatExtensions.UpdateOS">
  <onecorePackageInfo targetPartition="UpdateOS" releaseType="Production" ownerType="SiliconVendor" />
  <files>
    <file source="{board}-update.txt" destinationDir="$(runtime.system32)" />
  </files>
</identity>
"""

FMFILELIST = """<?xml version="1.0" encoding="utf-8"?>
<FMCollectionManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate" Product="IoTUAP">
  <IsBuildFeatureEnabled>true</IsBuildFeatureEnabled>
  <FMs>
    <FM ID="{board}" Path="$(FMDirectory)\\{board}FM.xml" ReleaseType="Production" OwnerName="OEM_NAME"
        OwnerType="OEM" CPUType="ARM64" Critical="true" />
  </FMs>
</FMCollectionManifest>
"""

FM = """<?xml version="1.0" encoding="utf-8"?>
<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <BasePackages>
    <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.Vendor.I2C.cab" />
    <PackageFile Path="%BSPPKG_DIR%" Name="SV.PlatExtensions.UpdateOS.cab" />
  </BasePackages>
  <Features>
    <Microsoft>
      <PackageFile Path="%MSPackageRoot%\\Retail\\ARM64\\fre" Name="Microsoft-IoTUAP-EFIESP-Package.cab">
        <FeatureIDs><FeatureID>IOT_EFIESP</FeatureID></FeatureIDs>
      </PackageFile>
    </Microsoft>
    <OEM>
{oem}    </OEM>
  </Features>
  <DeviceLayoutPackages>
    <PackageFile SOC="{board}" Path="%BSPPKG_DIR%" Name="%OEM_NAME%.{board}.DeviceLayout.cab" />
  </DeviceLayoutPackages>
  <OEMDevicePlatformPackages>
    <PackageFile Device="{board}" Path="%BSPPKG_DIR%" Name="%OEM_NAME%.{board}.DeviceLayout.cab" />
  </OEMDevicePlatformPackages>
</FeatureManifest>
"""

SPI_FEATURE = """      <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.Vendor.SPI.cab">
        <FeatureIDs><FeatureID>VENDOR_SPI</FeatureID></FeatureIDs>
      </PackageFile>
"""

OEMINPUT = """<?xml version="1.0" encoding="utf-8"?>
<OEMInput xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <Description>{board} test image</Description>
  <SOC>{board}</SOC>
  <SV>Vendor</SV>
  <Device>{board}</Device>
  <ReleaseType>Test</ReleaseType>
  <BuildType>fre</BuildType>
  <SupportedLanguages>
    <UserInterface><Language>en-us</Language></UserInterface>
    <Keyboard><Language>en-us</Language></Keyboard>
    <Speech><Language>en-us</Language></Speech>
  </SupportedLanguages>
  <BootUILanguage>en-us</BootUILanguage>
  <BootLocale>en-us</BootLocale>
  <Resolutions><Resolution>1024x768</Resolution></Resolutions>
  <AdditionalFMs>
    <AdditionalFM>%BLD_DIR%\\MergedFMs\\{board}FM.xml</AdditionalFM>
  </AdditionalFMs>
  <Features>
    <Microsoft>
      <Feature>IOT_EFIESP</Feature>
      <Feature>IOT_SSH</Feature>
    </Microsoft>
    <OEM>
{oem}    </OEM>
  </Features>
  <Product>Windows 10 IoT Core</Product>
</OEMInput>
"""


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def make_bsp(root: Path) -> Path:
    pkg = root / "Package"
    _write(pkg / "Package.vcxproj", VCXPROJ)
    for name, stem, drivers, extra, hwid in (
        ("I2C", "vi2c", r"10,system32\drivers", "11,VENDOR", "0001"),
        ("SPI", "vspi", "12", "11,vendor", "0002"),
    ):
        data = f"Data\\{name.lower()}.dat"
        _write(
            pkg / f"Vendor.{name}/Vendor.{name}.wm.xml",
            DRIVER_WM.format(name=name, inf=f"Drivers\\{stem}.inf", data=data),
        )
        _write(
            pkg / f"Drivers/{stem}.inf",
            INF.format(stem=stem, drivers=drivers, extra=extra, hwid=hwid, **VENDOR),
        )
        _write(pkg / f"Drivers/{stem}.sys", f"{stem} driver bytes\n")
        _write(pkg / f"Drivers/{stem}.bin", f"{stem} extra bytes\n")
        _write(pkg / f"Data/{name.lower()}.dat", f"{name} settings\n")
    for board in BOARDS:
        b = root / board / "Packages"
        _write(b / f"{board}FMFileList.xml", FMFILELIST.format(board=board))
        _write(b / f"{board}FM.xml", FM.format(board=board, oem=SPI_FEATURE if board == "BoardA" else ""))
        _write(b / f"{board}.DeviceLayout/{board}.DeviceLayout.wm.xml", LAYOUT_WM.format(board=board))
        _write(b / f"{board}.DeviceLayout/DeviceLayout.xml", DEVICE_LAYOUT)
        _write(b / f"{board}.DeviceLayout/OEMDevicePlatform.xml", PLATFORM.format(board=board))
        _write(
            b / "SV.PlatExtensions.UpdateOS/SV.PlatExtensions.UpdateOS.wm.xml",
            UPDATEOS_WM.format(board=board),
        )
        _write(b / f"SV.PlatExtensions.UpdateOS/{board}-update.txt", f"{board} UpdateOS file\n")
        oem = "      <Feature>VENDOR_SPI</Feature>\n" if board == "BoardA" else ""
        _write(root / board / "OEMInputSamples/TestOEMInput.xml", OEMINPUT.format(board=board, oem=oem))
    # board B's own variant of the shared I2C package: same CAB name, its own settings file
    alt = root / "BoardB/Packages/Vendor.I2C.BoardB"
    _write(alt / "Vendor.I2C.wm.xml", DRIVER_WM.format(name="I2C", inf="vi2c.inf", data="i2c-b.dat"))
    _write(alt / "vi2c.inf", INF.format(stem="vi2c", drivers="12", extra="11,Vendor", hwid="0001", **VENDOR))
    _write(alt / "vi2c.sys", "vi2c board B driver bytes\n")
    _write(alt / "vi2c.bin", "vi2c board B extra bytes\n")
    _write(alt / "i2c-b.dat", "I2C settings for board B\n")
    return root
