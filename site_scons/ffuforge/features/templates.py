"""New FMs, FMFileLists, OEMInputs and board files (``ffuforge new product|board``).

Shapes: the add-on kit's BSP templates (17763 ``Tools/Templates/bsp``: ``BSPFMTemplate.xml``,
``BSPFMFileListTemplate.xml``, ``Test/RetailOEMInputTemplate.xml``) filled in the way
``Add-IoTProduct``/``Add-IoTBSP`` fill them, and the sample's ContosoBoard (a GPT layout with
EFIESP, MainOS and Data; an ``OEMDevicePlatform`` naming the board). The Microsoft feature lists
are the sample product's (IoT Core's base, plus test signing, the toolkit and SSH in Test images);
without ``MSPACKAGE=`` they are reported as skipped. Every text is checked by our own readers in
the tests (FM, FMFileList, OEMInput, layout), so a template cannot drift from what builds.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

IU_NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
MS_FEATURES = {
    "Test": ("IOT_EFIESP", "IOT_UAP_OOBE", "IOT_CRT140", "IOT_ENABLE_TESTSIGNING", "IOT_TOOLKIT", "IOT_SSH"),
    "Retail": ("IOT_EFIESP", "IOT_UAP_OOBE", "IOT_CRT140"),
}
CONFIGS = ("Test", "Retail")


def oeminput(
    product: str, config: str, soc: str, device: str, fms: list[str], oem_features: list[str]
) -> bytes:
    """`fms` as OEMInputs spell them (``%BLD_DIR%\\MergedFMs\\X.xml``)."""
    release = "Test" if config == "Test" else "Production"
    fm_lines = "".join(f"    <AdditionalFM>{escape(f)}</AdditionalFM>\n" for f in fms)
    ms = "".join(f"      <Feature>{f}</Feature>\n" for f in MS_FEATURES[config])
    oem = "".join(f"      <Feature>{escape(f)}</Feature>\n" for f in oem_features)
    text = f"""<?xml version="1.0" encoding="utf-8"?>
<OEMInput xmlns="{IU_NS}">
  <Description>{escape(product)} on {escape(device)}, {config} image</Description>
  <SOC>{escape(soc)}</SOC>
  <Device>{escape(device)}</Device>
  <ReleaseType>{release}</ReleaseType>
  <BuildType>fre</BuildType>
  <SupportedLanguages>
    <UserInterface>
      <Language>en-us</Language>
    </UserInterface>
    <Keyboard>
      <Language>en-us</Language>
    </Keyboard>
    <Speech>
      <Language>en-us</Language>
    </Speech>
  </SupportedLanguages>
  <BootUILanguage>en-us</BootUILanguage>
  <BootLocale>en-us</BootLocale>
  <Resolutions>
    <Resolution>1024x768</Resolution>
  </Resolutions>
  <AdditionalFMs>
{fm_lines}  </AdditionalFMs>
  <Features>
    <Microsoft>
{ms}    </Microsoft>
    <OEM>
      <!-- OEM features: ffuforge feature add {escape(product)} FEATURE_ID -->
{oem}    </OEM>
  </Features>
  <Product>Windows 10 IoT Core</Product>
</OEMInput>
"""
    return text.encode("utf-8")


def board_fm(board: str, path_var: str = "%BSPPKG_DIR%") -> bytes:
    cab = f"%OEM_NAME%.{board}.DeviceLayout.cab"
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!-- {escape(board)} board support: drivers ("ffuforge new driver X.inf" with this file as its FM), the
     partition layout and the device platform. -->
<FeatureManifest xmlns="{IU_NS}">
  <BasePackages />
  <Features>
    <OEM />
  </Features>
  <DeviceLayoutPackages>
    <PackageFile SOC="{escape(board)}" Path="{path_var}" Name="{escape(cab)}" />
  </DeviceLayoutPackages>
  <OEMDevicePlatformPackages>
    <PackageFile Device="{escape(board)}" Path="{path_var}" Name="{escape(cab)}" />
  </OEMDevicePlatformPackages>
</FeatureManifest>
""".encode()


def fmfilelist(fm_id: str, fm_file: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<FMCollectionManifest xmlns="{IU_NS}" Product="IoTUAP">
  <IsBuildFeatureEnabled>true</IsBuildFeatureEnabled>
  <FMs>
    <FM ID="{escape(fm_id)}" Path="$(FMDirectory)\\{escape(fm_file)}" ReleaseType="Production" OwnerName="OEM_NAME"
        OwnerType="OEM" CPUType="CPU_TYPE" Critical="true" />
  </FMs>
  <SupportedResolutions>
    <Resolution>1024x768</Resolution>
  </SupportedResolutions>
  <SupportedLanguages>
    <Language>en-US</Language>
  </SupportedLanguages>
  <SupportedLocales>
    <Locale>en-US</Locale>
  </SupportedLocales>
</FMCollectionManifest>
""".encode()


def device_layout(min_free_sectors: int = 1048576) -> bytes:
    """GPT for an 8 GB eMMC: EFIESP (32 MiB FAT), MainOS (NTFS, `min_free_sectors` free: 512 MiB by
    default), Data (the rest). Also the layout of the test and benchmark BSP trees."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<DeviceLayout xmlns="{IU_NS}">
  <Partitions>
    <Partition>
      <Name>EFIESP</Name>
      <Type>{{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}}</Type>
      <FileSystem>FAT</FileSystem>
      <TotalSectors>65536</TotalSectors>
      <Bootable>true</Bootable>
      <RequiredToFlash>true</RequiredToFlash>
    </Partition>
    <Partition>
      <Name>MainOS</Name>
      <Type>{{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}}</Type>
      <FileSystem>NTFS</FileSystem>
      <MinFreeSectors>{min_free_sectors}</MinFreeSectors>
      <ByteAlignment>0x800000</ByteAlignment>
      <ClusterSize>0x1000</ClusterSize>
    </Partition>
    <Partition>
      <Name>Data</Name>
      <Type>{{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}}</Type>
      <FileSystem>NTFS</FileSystem>
      <UseAllSpace>true</UseAllSpace>
      <ByteAlignment>0x800000</ByteAlignment>
      <ClusterSize>0x4000</ClusterSize>
    </Partition>
  </Partitions>
  <SectorSize>512</SectorSize>
  <ChunkSize>128</ChunkSize>
  <DefaultPartitionByteAlignment>0x200000</DefaultPartitionByteAlignment>
  <VersionTag>IoTUAP</VersionTag>
</DeviceLayout>
""".encode()


def device_platform(oem: str, board: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<OEMDevicePlatform xmlns="{IU_NS}">
  <MinSectorCount>15269888</MinSectorCount>
  <DevicePlatformIDs>
    <ID>{escape(oem)}.{escape(board)}</ID>
  </DevicePlatformIDs>
  <CompressedPartitions>
    <Name>MainOS</Name>
  </CompressedPartitions>
</OEMDevicePlatform>
""".encode()
