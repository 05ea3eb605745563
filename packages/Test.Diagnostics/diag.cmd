@echo off
REM Contoso diagnostics (test images only)
ipconfig /all
