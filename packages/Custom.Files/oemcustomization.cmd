@echo off
REM Contoso OEM customization hook, run at every boot
echo Contoso %DATE% %TIME% >> C:\Data\oemcustomization.log
REM apps installed at first boot by the AppInstall route (ffuforge new app)
for /d %%D in ("%SystemDrive%\AppInstall\*") do if exist "%%D\AppInstall.cmd" call "%%D\AppInstall.cmd"
