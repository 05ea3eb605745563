"""A package project for an app, as the kit's Add-IoTAppxPackage lays it out, on the AppInstall route.

The kit (ms-iot/iot-adk-addonkit ``Tools/IoTCoreImaging/IoTAddCommands.ps1`` Add-IoTAppxPackage and
``Classes/IoTProvisioningXML.ps1``) writes ``Appx.<Name>/`` with the app, its dependencies, its
certificate, a ``customizations.xml`` (UniversalAppInstall with the package family name,
RootCertificate named by the certificate's SHA-1 thumbprint, AllowAllTrustedApps, StartupApp or
StartupBackgroundTasks) and a wm.xml installing the compiled .ppkg. Those settings' compiled form is
not public, so the generated wm.xml installs the AppInstall route's folder instead (see
`approute`): ``$(BLDDIR)\\ppkgs\\Appx.<Name>.appinstall\\*`` to ``\\AppInstall\\<config name>`` and
``OEMCustomization.cmd`` to System32. The customizations.xml stays the kit's, so a .ppkg made from
it by Windows Configuration Designer can replace the route later.

PackageConfig ID is a uuid5 of the family name (stable across regenerations, unlike WCD's random
one); Version is the app's version (a new app version installs again).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ...errors import ConfigError
from ..appx import AppInfo
from .approute import DEVICE_ROOT, OEMCUSTOMIZATION, SCRIPT

ID_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace


@dataclass(frozen=True)
class AppProject:
    short: str  # e.g. HelloApp -> folder Appx.HelloApp
    app: AppInfo
    app_file: str
    dependencies: tuple[str, ...]
    cert_file: str | None
    cert_der: bytes | None
    startup: str  # headed | headless | none
    hook: bool = True  # the project installs OEMCustomization.cmd (no other package of the workspace does)

    @property
    def folder(self) -> str:
        return f"Appx.{self.short}"

    @property
    def config_name(self) -> str:
        return f"{self.short}Prov"

    @property
    def feature_id(self) -> str:
        return "APPX_" + self.short.upper()


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()


def customizations_xml(p: AppProject) -> bytes:
    app = p.app
    if p.startup != "none" and not app.aumid:
        raise ConfigError(f"{app.name} declares no <Application Id>; use --startup none", app.path)
    pid = uuid.uuid5(ID_NAMESPACE, f"ffuforge:app:{app.family_name}")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<WindowsCustomizations>",
        '  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">',
        f"    <ID>{{{pid}}}</ID>",
        f"    <Name>{escape(p.config_name)}</Name>",
        f"    <Version>{escape(app.version)}</Version>",
        "    <OwnerType>OEM</OwnerType>",
        "    <Rank>0</Rank>",
        "  </PackageConfig>",
        '  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">',
        "    <Customizations>",
        "      <Common>",
    ]
    if p.cert_der is not None:
        tp = thumbprint(p.cert_der)
        stem = p.cert_file.rsplit(".", 1)[0] if p.cert_file else tp
        lines += [
            "        <Policies><ApplicationManagement><AllowAllTrustedApps>Yes</AllowAllTrustedApps></ApplicationManagement></Policies>",
            "        <Certificates><RootCertificates>",
            f"          <RootCertificate CertificateName={quoteattr(tp)} Name={quoteattr(stem)}>",
            f"            <CertificatePath>{escape(p.cert_file or '')}</CertificatePath>",
            "          </RootCertificate>",
            "        </RootCertificates></Certificates>",
        ]
    if p.startup == "headed":
        lines.append(f"        <StartupApp><Default>{escape(app.aumid or '')}</Default></StartupApp>")
    elif p.startup == "headless":
        lines.append(
            f"        <StartupBackgroundTasks><ToAdd><Add PackageName={quoteattr(app.aumid or '')}></Add></ToAdd></StartupBackgroundTasks>"
        )
    fam = quoteattr(app.family_name)
    lines += [
        "        <UniversalAppInstall><UserContextApp>",
        f"          <Application PackageFamilyName={fam} Name={fam}>",
        f"            <ApplicationFile>{escape(p.app_file)}</ApplicationFile>",
    ]
    if p.dependencies:
        lines.append("            <DependencyAppxFiles>")
        lines += [
            f"              <Dependency Name={quoteattr(d)}>{escape(d)}</Dependency>" for d in p.dependencies
        ]
        lines.append("            </DependencyAppxFiles>")
    lines += [
        "            <DeploymentOptions>Force target application shutdown</DeploymentOptions>",
        "          </Application>",
        "        </UserContextApp></UniversalAppInstall>",
        "      </Common>",
        "    </Customizations>",
        "  </Settings>",
        "</WindowsCustomizations>",
        "",
    ]
    return "\r\n".join(lines).encode()


def project_xml(p: AppProject) -> bytes:
    src = f"$(BLDDIR)\\ppkgs\\{p.folder}.appinstall"
    dest = f"$(runtime.systemDrive)\\{DEVICE_ROOT}\\{p.config_name}"
    names = sorted([p.app_file, *p.dependencies, *([p.cert_file] if p.cert_file else []), SCRIPT])
    files = [f'    <file source="{src}\\{n}" destinationDir="{dest}" />' for n in names]
    if p.hook:
        files.append(f'    <file source="{src}\\{OEMCUSTOMIZATION}" destinationDir="$(runtime.system32)" />')
    return "\r\n".join(
        [
            '<?xml version="1.0" encoding="utf-8"?>',
            f"<!-- {p.app.family_name} {p.app.version} ({p.app.architecture}): generated by `ffuforge new app`;",
            "     installed at first boot by the AppInstall route (OEMCustomization.cmd) from customizations.xml -->",
            '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"',
            f'    name="{p.short}" namespace="Appx" owner="$(OEMNAME)" legacyName="$(OEMNAME).{p.folder}">',
            '  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />',
            "  <files>",
            *files,
            "  </files>",
            "</identity>",
            "",
        ]
    ).encode()
