@echo off
rem Contoso SampleA: runs once when the provisioning package is applied.
echo provisioned %DATE% %TIME%>> %SystemRoot%\Temp\contoso-provisioning.log
exit /b 0
