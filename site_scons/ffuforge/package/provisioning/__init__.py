"""Provisioning packages (.ppkg) from customizations.xml, and the AppInstall route for app settings.

customizations (parse, check, classify each setting's route)  compiler (the .ppkg file tree and
metadata)  ppkg (the WIM container)  approute (AppInstall.cmd + OEMCustomization.cmd)  appproject
(the package project `ffuforge new app` writes).
"""
