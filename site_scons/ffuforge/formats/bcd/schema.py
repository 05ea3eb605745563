"""BCD element types and well-known objects: the friendly-name tables of BootConfiguration XML.

Pure data (names → element IDs, names → object GUIDs and types, the partition GUIDs ImgGen gives
the main-OS store); separate from XML reading (:mod:`.document`) and encoding (:mod:`.compiler`)
so the tables can be read and checked on their own.
"""

from __future__ import annotations

import uuid

__all__ = [
    "BCD_NS",
    "ELEMENT_TYPES",
    "ELEMENTS_FOLDED",
    "FORMAT_NAMES",
    "GPT_PARTITION_IDS",
    "OBJECTS_FOLDED",
    "RAMDISK_OPTIONS",
    "WELL_KNOWN_OBJECTS",
    "element_id",
]

BCD_NS = "http://schemas.microsoft.com/phone/2011/10/BootConfiguration"

# --- element types ----------------------------------------------------------------------------

LIBRARY, APPLICATION, DEVICE_CLASS, OEM = 1, 2, 3, 5
F_DEVICE, F_STRING, F_OBJECT, F_OBJECTLIST, F_INTEGER, F_BOOLEAN, F_INTEGERLIST = 1, 2, 3, 4, 5, 6, 7
FORMAT_NAMES = {
    F_DEVICE: "device",
    F_STRING: "string",
    F_OBJECT: "object",
    F_OBJECTLIST: "object list",
    F_INTEGER: "integer",
    F_BOOLEAN: "boolean",
    F_INTEGERLIST: "integer list",
}


def element_id(cls: int, fmt: int, sub: int) -> int:
    return (cls << 28) | (fmt << 24) | sub


_TABLE = [
    # Library class (apply to every application)
    ("Boot Device", LIBRARY, F_DEVICE, 0x01),
    ("Application Path", LIBRARY, F_STRING, 0x02),
    ("Description", LIBRARY, F_STRING, 0x04),
    ("Preferred Locale", LIBRARY, F_STRING, 0x05),
    ("Inherit", LIBRARY, F_OBJECTLIST, 0x06),
    ("Recovery Sequence", LIBRARY, F_OBJECTLIST, 0x08),
    ("Auto-recovery Enabled", LIBRARY, F_BOOLEAN, 0x09),
    ("Debugger Enabled", LIBRARY, F_BOOLEAN, 0x10),
    ("Debugger Type", LIBRARY, F_INTEGER, 0x11),
    ("Debugger Port Address", LIBRARY, F_INTEGER, 0x12),
    ("Port Number", LIBRARY, F_INTEGER, 0x13),
    ("Debugger Baud Rate", LIBRARY, F_INTEGER, 0x14),
    ("Debugger USB Target Name", LIBRARY, F_STRING, 0x16),
    ("Debugger Ignore Usermode Exceptions", LIBRARY, F_BOOLEAN, 0x17),
    ("Debugger Start Policy", LIBRARY, F_INTEGER, 0x18),
    ("Debugger Bus Parameters", LIBRARY, F_STRING, 0x19),
    ("Debugger Network Host IP", LIBRARY, F_INTEGER, 0x1A),
    ("Debugger Network Port", LIBRARY, F_INTEGER, 0x1B),
    ("Debugger Network DHCP", LIBRARY, F_BOOLEAN, 0x1C),
    ("Debugger Network Key", LIBRARY, F_STRING, 0x1D),
    ("EMS Enabled", LIBRARY, F_BOOLEAN, 0x20),
    ("Load Options", LIBRARY, F_STRING, 0x30),
    ("Display Advanced Options", LIBRARY, F_BOOLEAN, 0x40),
    ("Display Option Edit", LIBRARY, F_BOOLEAN, 0x41),
    ("BSD Filepath", LIBRARY, F_STRING, 0x44),
    ("BSD Preserve Previous Entries", LIBRARY, F_BOOLEAN, 0x45),
    ("Graphics Mode Disable", LIBRARY, F_BOOLEAN, 0x46),
    ("Disable Integrity Checks", LIBRARY, F_BOOLEAN, 0x48),
    ("Allow Pre-release Signatures", LIBRARY, F_BOOLEAN, 0x49),
    ("Console Extended Input", LIBRARY, F_BOOLEAN, 0x50),
    ("Boot UX Text Disable", LIBRARY, F_BOOLEAN, 0x68),
    ("Boot UX Progress Animation Disable", LIBRARY, F_BOOLEAN, 0x69),
    ("Boot UX Fade Disable", LIBRARY, F_BOOLEAN, 0x6A),
    ("Force No Keyboard", LIBRARY, F_BOOLEAN, 0x72),
    ("Boot UX Logo Transition Time", LIBRARY, F_INTEGER, 0x79),
    ("Boot UX Logo Transition Enable", LIBRARY, F_BOOLEAN, 0x7A),
    ("Boot UX Error Screen", LIBRARY, F_INTEGER, 0x7D),
    ("Allow Flight Signatures", LIBRARY, F_BOOLEAN, 0x7E),
    # Application class (meaning depends on the application: boot manager, OS loader, …)
    ("OS Loader Type", APPLICATION, F_DEVICE, 0x01),
    ("BCD Device", APPLICATION, F_DEVICE, 0x22),
    ("System Root", APPLICATION, F_STRING, 0x02),
    ("Debug Transport Path", APPLICATION, F_STRING, 0x13),
    ("File Path", APPLICATION, F_STRING, 0x23),
    ("Manufacturing Mode", APPLICATION, F_STRING, 0x140),
    ("WpDmp Settings File", APPLICATION, F_STRING, 0x501),
    ("WpDmp Log File", APPLICATION, F_STRING, 0x502),
    ("Default Object", APPLICATION, F_OBJECT, 0x03),
    ("Resume Object", APPLICATION, F_OBJECT, 0x06),
    ("Display Order", APPLICATION, F_OBJECTLIST, 0x01),
    ("Boot Sequence", APPLICATION, F_OBJECTLIST, 0x02),
    ("Tools Display Order", APPLICATION, F_OBJECTLIST, 0x10),
    ("Timeout Value", APPLICATION, F_INTEGER, 0x04),
    ("NX Policy", APPLICATION, F_INTEGER, 0x20),
    ("PAE Policy", APPLICATION, F_INTEGER, 0x21),
    ("Remove Memory", APPLICATION, F_INTEGER, 0x31),
    ("Boot Menu Policy", APPLICATION, F_INTEGER, 0xC2),
    ("Boot Status Policy", APPLICATION, F_INTEGER, 0xE0),
    ("Hypervisor Debugger Type", APPLICATION, F_INTEGER, 0xF3),
    ("Hypervisor Debugger Port Number", APPLICATION, F_INTEGER, 0xF4),
    ("Hypervisor Debugger Baud Rate", APPLICATION, F_INTEGER, 0xF5),
    ("UFP Log Location", APPLICATION, F_INTEGER, 0x209),
    ("Memory Capture Mode Address", APPLICATION, F_INTEGER, 0x500),
    ("OEM Charging Boot Threshold", APPLICATION, F_INTEGER, 0x510),
    ("OEM Charging Mode Threshold", APPLICATION, F_INTEGER, 0x511),
    ("BootFlowAPI Global", APPLICATION, F_INTEGER, 0xAAA),
    ("Debugging Enabled", APPLICATION, F_BOOLEAN, 0x06),
    ("Detect Kernel and HAL", APPLICATION, F_BOOLEAN, 0x10),
    ("Display Boot Menu", APPLICATION, F_BOOLEAN, 0x20),
    ("WinPE Image", APPLICATION, F_BOOLEAN, 0x22),
    ("Process Custom Actions First", APPLICATION, F_BOOLEAN, 0x28),
    ("Persist Boot Sequence", APPLICATION, F_BOOLEAN, 0x31),
    ("Quiet Boot Enable", APPLICATION, F_BOOLEAN, 0x41),
    ("Kernel Debugger Enabled", APPLICATION, F_BOOLEAN, 0xA0),
    ("Kernel EMS Enabled", APPLICATION, F_BOOLEAN, 0xB0),
    ("Enable Boot Debug Policy", APPLICATION, F_BOOLEAN, 0x145),
    ("Enable Boot Order Clean", APPLICATION, F_BOOLEAN, 0x146),
    ("Enable Device Id", APPLICATION, F_BOOLEAN, 0x147),
    ("Enable FFU Loader", APPLICATION, F_BOOLEAN, 0x148),
    ("Enable IU Loader", APPLICATION, F_BOOLEAN, 0x149),
    ("Enable Mass Storage", APPLICATION, F_BOOLEAN, 0x14A),
    ("Enable RPMB Provisioning", APPLICATION, F_BOOLEAN, 0x14B),
    ("Enable Secure Boot Policy", APPLICATION, F_BOOLEAN, 0x14C),
    ("Enable Start Charge", APPLICATION, F_BOOLEAN, 0x14D),
    ("Enable Reset TPM", APPLICATION, F_BOOLEAN, 0x14E),
    ("FFU Update Mode", APPLICATION, F_BOOLEAN, 0x201),
    ("Force FFU", APPLICATION, F_BOOLEAN, 0x203),
    ("Enable Platform ID Check", APPLICATION, F_BOOLEAN, 0x204),
    ("Disable Platform ID Check", APPLICATION, F_BOOLEAN, 0x205),
    ("Allow User To Reset Phone", APPLICATION, F_BOOLEAN, 0x206),
    ("Enable UFP Mode", APPLICATION, F_BOOLEAN, 0x207),
    ("Use Mincrypl for Hashing", APPLICATION, F_BOOLEAN, 0x208),
    ("OEM Charging Mode Enabled", APPLICATION, F_BOOLEAN, 0x512),
    ("Custom Action List", APPLICATION, F_INTEGERLIST, 0x30),
    # Device class (ramdisk options object)
    ("Ramdisk SDI Device", DEVICE_CLASS, F_DEVICE, 0x03),
    ("Ramdisk SDI Path", DEVICE_CLASS, F_STRING, 0x04),
    # OEM class
    ("Flashing Action", OEM, F_OBJECTLIST, 0x01),
    ("Reset My Phone Action", OEM, F_OBJECTLIST, 0x02),
    ("Developer Menu Action", OEM, F_OBJECTLIST, 0x03),
    # ffuforge aliases
    ("Timeout", APPLICATION, F_INTEGER, 0x04),
    ("Application Device", LIBRARY, F_DEVICE, 0x01),
]
ELEMENT_TYPES: dict[str, int] = {name: element_id(c, f, s) for name, c, f, s in _TABLE}
ELEMENTS_FOLDED = {name.casefold(): (name, eid) for name, eid in ELEMENT_TYPES.items()}

# --- well-known objects -----------------------------------------------------------------------

WELL_KNOWN_OBJECTS: dict[str, tuple[str, int]] = {
    "Windows Boot Manager": ("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", 0x10100002),
    "Windows Loader": ("{7619dcc9-fafe-11d9-b411-000476eba25f}", 0x10200003),
    "Firmware BootMgr": ("{a5a30fa2-3d06-4e9f-b5f4-a01df9d1fcba}", 0x10200003),
    "Windows Phone Update OS": ("{311b88b5-9b30-491d-bad9-167ca3e2d417}", 0x10200003),
    "MMOS": ("{a5935ff2-32ba-4617-bf36-5ac314b3f9bf}", 0x10200003),
    "Mobile Startup App": ("{01de5a27-8705-40db-bad6-96fa5187d4a6}", 0x1020000A),
    "Full Flash Update": ("{0ff5f24a-3785-4aeb-b8fe-4226215b88c4}", 0x1020000A),
    "Reset My Phone App": ("{bd8951c4-eabd-4c6f-aafb-4ddb4eb0469b}", 0x1020000A),
    "Preboot Crash Dump Application": ("{012cdeb8-68fe-4fb9-be98-dbf20d98c261}", 0x1020000A),
    "MMOS Launcher App": ("{874ef8bb-d20f-4364-b545-a36e88ec40b0}", 0x1020000A),
    "Developer Menu App": ("{0d1b5e40-42f1-41e7-a690-8dd3ce23cc11}", 0x1020000A),
    "Relock App": ("{f8e167d7-bedf-41ff-a32e-27043a83cc89}", 0x1020000A),
    "HoloLens Display Initialization App": ("{17b80a47-c57b-460f-af39-9bd2d4080a26}", 0x1020000A),
    "Windows Memory Tester": ("{b2721d73-1db4-4c62-bf78-c548a880142d}", 0x10200005),
    "Windows Resume App": ("{147aa509-0358-4473-b83b-d950dda00615}", 0x10200004),
    "Debugger Settings Group": ("{4636856e-540f-4170-a130-a84776f4c654}", 0x20100000),
    "EMS Settings Group": ("{0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9}", 0x20100000),
    "Global Settings Group": ("{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}", 0x20100000),
    "Hypervisor Settings Group": ("{7ff607e0-4395-11db-b0de-0800200c9a66}", 0x20200003),
    "Boot Loader Settings Group": ("{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}", 0x20200003),
    "Ramdisk Options": ("{ae5534e0-a924-466c-b836-758539a3ee3a}", 0x30000004),
}
OBJECTS_FOLDED = {name.casefold(): (name, guid, typ) for name, (guid, typ) in WELL_KNOWN_OBJECTS.items()}
RAMDISK_OPTIONS = uuid.UUID(WELL_KNOWN_OBJECTS["Ramdisk Options"][0])

# Unique partition GUIDs ImgGen gives the main-OS store's protected partitions (GPT).
GPT_PARTITION_IDS = {
    "mainos": "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}",
    "efiesp": "{8183040a-8b44-4592-92f7-c6d9ee0560f7}",
    "mmos": "{27a47557-8243-4c8e-9d30-846844c29c52}",
}
