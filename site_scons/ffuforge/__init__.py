"""ffuforge: build Windows 10 IoT Core / OneCore packages and FFU images with SCons on Linux."""

__version__ = "0.1.0"
