@echo off
echo Contoso legacy tools
