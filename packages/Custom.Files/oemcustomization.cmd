@echo off
REM Contoso OEM customization hook, run at every boot
echo Contoso %DATE% %TIME% >> C:\Data\oemcustomization.log
