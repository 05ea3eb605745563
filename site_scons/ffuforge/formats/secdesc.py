"""Windows security descriptors: SDDL to the self-relative binary form and back.

NTFS stores a file's descriptor in ``$Secure`` in the self-relative form of [MS-DTYP] 2.4.6:
a 20-byte header, then the SACL, the DACL, the owner SID and the group SID, the order in which
``RtlMakeSelfRelativeSD`` lays them out (ReactOS ``sdk/lib/rtl/sd.c``, which is what Windows'
own bytes show). SDDL is [MS-DTYP] 2.5.1. What is not written: object ACEs (OA/OD/OU/OL),
conditional/callback ACEs (XA/XD/ZA) and resource attributes -- an error says so.

Rights aliases are Windows' values, not samba's: ``FA`` is FILE_ALL_ACCESS = 0x1F01FF (samba
4.17 maps it to 0x1FF), ``FR`` 0x120089, ``FX`` 0x1200A9 is *not* an alias (``FX`` = 0x1200A0).

The two descriptors Windows gives component content (sources in :data:`WRP_FILE_DEFAULT_SDDL`
and :data:`WRP_DIR_DEFAULT_SDDL`) are defined here, so that every writer uses the same bytes.
"""

from __future__ import annotations

import re

from construct import Array, BytesInteger, Const, Int8ul, Int16ul, Int32ul, Struct, this

from ..errors import FormatError

SID = Struct(
    "revision" / Const(1, Int8ul),
    "sub_authority_count" / Int8ul,
    "authority" / BytesInteger(6),  # big-endian, [MS-DTYP] 2.4.1.1
    "sub_authorities" / Array(this.sub_authority_count, Int32ul),
)
ACE_HEADER = Struct("type" / Int8ul, "flags" / Int8ul, "size" / Int16ul)
ACE = Struct("type" / Int8ul, "flags" / Int8ul, "size" / Int16ul, "mask" / Int32ul, "sid" / SID)
ACL_HEADER = Struct(
    "revision" / Int8ul, "sbz1" / Int8ul, "size" / Int16ul, "ace_count" / Int16ul, "sbz2" / Int16ul
)
SD_HEADER = Struct(
    "revision" / Const(1, Int8ul),
    "sbz1" / Int8ul,
    "control" / Int16ul,
    "owner" / Int32ul,
    "group" / Int32ul,
    "sacl" / Int32ul,
    "dacl" / Int32ul,
)

# SECURITY_DESCRIPTOR_CONTROL, [MS-DTYP] 2.4.6
SE_OWNER_DEFAULTED, SE_GROUP_DEFAULTED = 0x0001, 0x0002
SE_DACL_PRESENT, SE_SACL_PRESENT = 0x0004, 0x0010
SE_DACL_AUTO_INHERIT_REQ, SE_SACL_AUTO_INHERIT_REQ = 0x0100, 0x0200
SE_DACL_AUTO_INHERITED, SE_SACL_AUTO_INHERITED = 0x0400, 0x0800
SE_DACL_PROTECTED, SE_SACL_PROTECTED = 0x1000, 0x2000
SE_SELF_RELATIVE = 0x8000

TRUSTED_INSTALLER = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

# Windows 10 component manifests, trustInfo/securityDescriptorDefinition name="WRP_FILE_DEFAULT_SDDL"
# (e.g. amd64 Microsoft-Windows-LockScreenData 10.0.19041.4412, as quoted in public manifest dumps).
WRP_FILE_DEFAULT_SDDL = (
    f"O:{TRUSTED_INSTALLER}G:{TRUSTED_INSTALLER}D:P(A;;FA;;;{TRUSTED_INSTALLER})"
    "(A;;GRGX;;;BA)(A;;GRGX;;;SY)(A;;GRGX;;;BU)(A;;GRGX;;;S-1-15-2-1)(A;;GRGX;;;S-1-15-2-2)"
    "S:(AU;FASA;0x000D0116;;;WD)"
)
# C:\Windows and C:\Windows\System32 as Windows 10/11 leave them (Get-Acl ... .Sddl captured on real
# machines and quoted verbatim by DiscUtils' SecurityTests/Sddl.cs and Carbon's Test-Acl tests): the
# component directory default, with inheritable ACEs so that files created later get the WRP rights.
WRP_DIR_DEFAULT_SDDL = (
    f"O:{TRUSTED_INSTALLER}G:{TRUSTED_INSTALLER}D:PAI(A;OICIIO;GA;;;CO)(A;OICIIO;GA;;;SY)"
    "(A;;0x1301bf;;;SY)(A;OICIIO;GA;;;BA)(A;;0x1301bf;;;BA)(A;OICIIO;GXGR;;;BU)(A;;0x1200a9;;;BU)"
    f"(A;CIIO;GA;;;{TRUSTED_INSTALLER})(A;;FA;;;{TRUSTED_INSTALLER})(A;;0x1200a9;;;AC)"
    "(A;OICIIO;GXGR;;;AC)(A;;0x1200a9;;;S-1-15-2-2)(A;OICIIO;GXGR;;;S-1-15-2-2)"
)

# [MS-DTYP] 2.5.1.1 SID strings (the aliases a manifest is likely to use)
SID_ALIASES = {
    "WD": "S-1-1-0",
    "CO": "S-1-3-0",
    "CG": "S-1-3-1",
    "OW": "S-1-3-4",
    "NU": "S-1-5-2",
    "IU": "S-1-5-4",
    "SU": "S-1-5-6",
    "AN": "S-1-5-7",
    "ED": "S-1-5-9",
    "PS": "S-1-5-10",
    "AU": "S-1-5-11",
    "RC": "S-1-5-12",
    "SY": "S-1-5-18",
    "LS": "S-1-5-19",
    "NS": "S-1-5-20",
    "BA": "S-1-5-32-544",
    "BU": "S-1-5-32-545",
    "BG": "S-1-5-32-546",
    "PU": "S-1-5-32-547",
    "AO": "S-1-5-32-548",
    "SO": "S-1-5-32-549",
    "PO": "S-1-5-32-550",
    "BO": "S-1-5-32-551",
    "RE": "S-1-5-32-552",
    "RU": "S-1-5-32-554",
    "RD": "S-1-5-32-555",
    "NO": "S-1-5-32-556",
    "WR": "S-1-5-33",
    "AC": "S-1-15-2-1",
    "LW": "S-1-16-4096",
    "ME": "S-1-16-8192",
    "HI": "S-1-16-12288",
    "SI": "S-1-16-16384",
}
_SID_NAMES = {v: k for k, v in SID_ALIASES.items()}

ACE_TYPES = {"A": 0x00, "D": 0x01, "AU": 0x02, "AL": 0x03, "ML": 0x11}
_ACE_TYPE_NAMES = {v: k for k, v in ACE_TYPES.items()}
_UNSUPPORTED_ACE = {"OA", "OD", "OU", "OL", "XA", "XD", "XU", "ZA", "RA", "SP", "SC"}
ACE_FLAGS = {"OI": 0x01, "CI": 0x02, "NP": 0x04, "IO": 0x08, "ID": 0x10, "SA": 0x40, "FA": 0x80}

# Whole-mask aliases first (file and key rights), then single bits; [MS-DTYP] 2.5.1.1 and winnt.h.
RIGHTS_WHOLE = {
    "FA": 0x001F01FF,
    "FR": 0x00120089,
    "FW": 0x00120116,
    "FX": 0x001200A0,
    "KA": 0x000F003F,
    "KR": 0x00020019,
    "KW": 0x00020006,
    "KX": 0x00020019,
}
RIGHTS_BITS = {
    "GA": 0x10000000,
    "GR": 0x80000000,
    "GW": 0x40000000,
    "GX": 0x20000000,
    "SD": 0x00010000,
    "RC": 0x00020000,
    "WD": 0x00040000,
    "WO": 0x00080000,
    "CC": 0x00000001,
    "DC": 0x00000002,
    "LC": 0x00000004,
    "SW": 0x00000008,
    "RP": 0x00000010,
    "WP": 0x00000020,
    "DT": 0x00000040,
    "LO": 0x00000080,
    "CR": 0x00000100,
    "NW": 0x00000001,  # mandatory label ACEs: SYSTEM_MANDATORY_LABEL_NO_WRITE_UP, NO_READ_UP, NO_EXECUTE_UP
    "NR": 0x00000002,
    "NX": 0x00000004,
}
_MASK_NAMES = {"FA": 0x001F01FF, "FR": 0x00120089, "FW": 0x00120116, "FX": 0x001200A0, "KA": 0x000F003F}

_SID_RE = re.compile(r"S-1-(\d+)((?:-\d+)*)\Z", re.IGNORECASE)
_PART_RE = re.compile(r"(O|G|D|S):")


def sid_to_binary(text: str) -> bytes:
    """``S-1-…`` or an alias (BA, SY, …) as a binary SID."""
    full = SID_ALIASES.get(text.upper(), text)
    m = _SID_RE.match(full)
    if not m:
        raise FormatError(f"{text!r} is not a SID (S-1-…) or a known SDDL alias (BA, SY, BU, …)")
    authority = int(m.group(1))
    subs = [int(x) for x in m.group(2).split("-")[1:]]
    if authority >= 1 << 48 or len(subs) > 15 or any(s >= 1 << 32 for s in subs):
        raise FormatError(f"SID {text!r} is out of range (authority < 2^48, at most 15 parts < 2^32)")
    return SID.build({"sub_authority_count": len(subs), "authority": authority, "sub_authorities": subs})


def _sid_text(data: bytes, off: int) -> tuple[str, int]:
    if off + 8 > len(data) or data[off] != 1:
        raise FormatError(f"security descriptor: no valid SID at offset {off}")
    n = data[off + 1]
    end = off + 8 + 4 * n
    if n > 15 or end > len(data):
        raise FormatError(f"security descriptor: SID at offset {off} runs past the end")
    sid = SID.parse(data[off:end])
    text = "S-1-" + "-".join(str(x) for x in [sid.authority, *sid.sub_authorities])
    return _SID_NAMES.get(text, text), end


def _mask(text: str) -> int:
    if text[:2].lower() == "0x":
        try:
            value = int(text, 16)
        except ValueError:
            value = -1
    elif text.isdigit():
        value = int(text)
    else:
        value = 0
        for i in range(0, len(text), 2):
            tok = text[i : i + 2].upper()
            bit = RIGHTS_WHOLE.get(tok, RIGHTS_BITS.get(tok))
            if len(tok) != 2 or bit is None:
                raise FormatError(f"unknown access right {tok!r} in {text!r}; use FA, GR, GX, … or 0x…")
            value |= bit
    if not 0 <= value < 1 << 32:
        raise FormatError(f"access mask {text!r} is not a 32-bit number")
    return value


def _mask_text(mask: int) -> str:
    for name, value in _MASK_NAMES.items():
        if mask == value:
            return name
    generic = ("GA", "GR", "GW", "GX")  # spelt out only when nothing else is set, as Windows prints them
    if mask and not mask & ~0xF0000000:
        return "".join(n for n in generic if mask & RIGHTS_BITS[n])
    return f"0x{mask:x}"


def _acl(text: str, is_sacl: bool) -> tuple[int, bytes | None]:
    """One D:/S: part -> (control bits, ACL bytes or None for NO_ACCESS_CONTROL)."""
    flags_part, _, aces_part = text.partition("(")
    aces_part = "(" + aces_part if aces_part else ""
    control = 0
    rest = flags_part.upper()
    null_acl = False
    if rest.startswith("NO_ACCESS_CONTROL"):
        null_acl, rest = True, rest[len("NO_ACCESS_CONTROL") :]
    while rest:
        tok = next((t for t in ("P", "AI", "AR") if rest.startswith(t)), None)
        if tok is None:
            raise FormatError(f"unknown ACL flag in {flags_part!r}; use P, AI, AR or NO_ACCESS_CONTROL")
        control |= {
            "P": SE_SACL_PROTECTED if is_sacl else SE_DACL_PROTECTED,
            "AI": SE_SACL_AUTO_INHERITED if is_sacl else SE_DACL_AUTO_INHERITED,
            "AR": SE_SACL_AUTO_INHERIT_REQ if is_sacl else SE_DACL_AUTO_INHERIT_REQ,
        }[tok]
        rest = rest[len(tok) :]
    if null_acl:
        if aces_part:
            raise FormatError("NO_ACCESS_CONTROL cannot be followed by ACEs")
        return control, None
    aces = b""
    count = 0
    for ace in re.findall(r"\(([^()]*)\)|([^()]+)", aces_part):
        body, junk = ace
        if junk.strip():
            raise FormatError(f"unexpected text {junk!r} between ACEs; each ACE is (type;flags;rights;;;sid)")
        fields = body.split(";")
        if len(fields) != 6:
            raise FormatError(f"ACE ({body}) must have 6 fields: type;flags;rights;object;inherit;sid")
        kind, aflags, rights, obj, inh, sid = (f.strip() for f in fields)
        if kind.upper() in _UNSUPPORTED_ACE or obj or inh:
            raise FormatError(
                f"ACE ({body}): object and conditional ACEs are not supported; use A, D, AU or ML"
            )
        if kind.upper() not in ACE_TYPES:
            raise FormatError(f"ACE ({body}): unknown ACE type {kind!r}; use A, D, AU, AL or ML")
        fl = 0
        for i in range(0, len(aflags), 2):
            tok = aflags[i : i + 2].upper()
            if tok not in ACE_FLAGS:
                raise FormatError(f"ACE ({body}): unknown ACE flag {tok!r}; use OI, CI, NP, IO, ID, SA, FA")
            fl |= ACE_FLAGS[tok]
        sid_bytes = sid_to_binary(sid)
        size = 8 + len(sid_bytes)
        aces += ACE_HEADER.build({"type": ACE_TYPES[kind.upper()], "flags": fl, "size": size})
        aces += Int32ul.build(_mask(rights)) + sid_bytes
        count += 1
    # ACL_REVISION 2 for these ACE types ([MS-DTYP] 2.4.5)
    header = ACL_HEADER.build(
        {"revision": 2, "sbz1": 0, "size": 8 + len(aces), "ace_count": count, "sbz2": 0}
    )
    return control, header + aces


def sddl_to_binary(sddl: str) -> bytes:
    """A self-relative security descriptor from SDDL (raises FormatError naming what is wrong)."""
    text = "".join(sddl.split())
    parts: dict[str, str] = {}
    matches = list(_PART_RE.finditer(text))
    # A component starts at "X:" only outside parentheses (SIDs and ACEs contain no ':').
    starts = [m for m in matches if text.count("(", 0, m.start()) == text.count(")", 0, m.start())]
    if not starts or starts[0].start() != 0:
        raise FormatError(f"SDDL {sddl!r} must start with O:, G:, D: or S:")
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        key = m.group(1)
        if key in parts:
            raise FormatError(f"SDDL {sddl!r} has two {key}: parts")
        parts[key] = text[m.end() : end]
    control = SE_SELF_RELATIVE
    owner = sid_to_binary(parts["O"]) if "O" in parts else b""
    group = sid_to_binary(parts["G"]) if "G" in parts else b""
    sacl = dacl = None
    if "S" in parts:
        bits, sacl = _acl(parts["S"], True)
        control |= SE_SACL_PRESENT | bits
    if "D" in parts:
        bits, dacl = _acl(parts["D"], False)
        control |= SE_DACL_PRESENT | bits
    off = SD_HEADER.sizeof()
    offsets = {}
    body = b""
    for name, blob in (("sacl", sacl), ("dacl", dacl), ("owner", owner), ("group", group)):
        if blob:
            offsets[name] = off + len(body)
            body += blob
        else:
            offsets[name] = 0
    return SD_HEADER.build({"sbz1": 0, "control": control, **offsets}) + body


def _acl_text(data: bytes, off: int, what: str) -> str:
    if off + 8 > len(data):
        raise FormatError(f"security descriptor: {what} header runs past the end")
    hdr = ACL_HEADER.parse(data[off : off + 8])
    end = off + hdr.size
    if hdr.size < 8 or end > len(data):
        raise FormatError(f"security descriptor: {what} size {hdr.size} runs past the end")
    out, pos = [], off + 8
    for _ in range(hdr.ace_count):
        if pos + 8 > end:
            raise FormatError(f"security descriptor: an ACE of the {what} runs past the ACL")
        ah = ACE_HEADER.parse(data[pos : pos + 4])
        if ah.type not in _ACE_TYPE_NAMES or ah.size < 16 or pos + ah.size > end:
            raise FormatError(
                f"security descriptor: {what} ACE type {ah.type:#x} size {ah.size} not supported"
            )
        mask = Int32ul.parse(data[pos + 4 : pos + 8])
        sid, _ = _sid_text(data[: pos + ah.size], pos + 8)
        flags = "".join(n for n, b in ACE_FLAGS.items() if ah.flags & b)
        out.append(f"({_ACE_TYPE_NAMES[ah.type]};{flags};{_mask_text(mask)};;;{sid})")
        pos += ah.size
    return "".join(out)


def binary_to_sddl(data: bytes) -> str:
    """SDDL of a self-relative descriptor (aliases where Windows has one; masks as FA, GRGX or 0x…)."""
    if len(data) < SD_HEADER.sizeof() or data[0] != 1:
        raise FormatError("security descriptor: too short or not revision 1")
    hdr = SD_HEADER.parse(data[: SD_HEADER.sizeof()])
    if not hdr.control & SE_SELF_RELATIVE:
        raise FormatError("security descriptor is not self-relative")
    out = ""
    if hdr.owner:
        out += "O:" + _sid_text(data, hdr.owner)[0]
    if hdr.group:
        out += "G:" + _sid_text(data, hdr.group)[0]
    for tag, present, prot, auto, req, off in (
        ("D", SE_DACL_PRESENT, SE_DACL_PROTECTED, SE_DACL_AUTO_INHERITED, SE_DACL_AUTO_INHERIT_REQ, hdr.dacl),
        ("S", SE_SACL_PRESENT, SE_SACL_PROTECTED, SE_SACL_AUTO_INHERITED, SE_SACL_AUTO_INHERIT_REQ, hdr.sacl),
    ):
        if not hdr.control & present:
            continue
        flags = "".join(n for n, b in (("P", prot), ("AR", req), ("AI", auto)) if hdr.control & b)
        out += f"{tag}:{flags}" + (_acl_text(data, off, f"{tag}ACL") if off else "NO_ACCESS_CONTROL")
    return out


def wrp_default(is_dir: bool) -> bytes:
    """The binary descriptor Windows gives a component file or directory."""
    return sddl_to_binary(WRP_DIR_DEFAULT_SDDL if is_dir else WRP_FILE_DEFAULT_SDDL)


# --------------------------------------------------------------------------- volume roots

# C:\ of Windows 10/11: TrustedInstaller-owned, protected, Authenticated Users may add folders (LC)
# and get Modify on what they create below (inherit-only), High integrity label no-write-up for
# files created directly in the root. The DACL as probed on Windows 11 and quoted in public code
# (the same ACEs, in another order, in Microsoft's All-In-One Code Framework CppCheckSD sample output
# for ``c:\``, which also shows the label); icacls C:\ prints the same rights.
OS_ROOT_SDDL = (
    f"O:{TRUSTED_INSTALLER}G:{TRUSTED_INSTALLER}D:PAI(A;;LC;;;AU)(A;OICIIO;SDGXGWGR;;;AU)"
    "(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)S:(ML;OINPIO;NW;;;HI)"
)
# X:\ of an NTFS volume Windows 10/11 formats that is not the system drive (Get-Acl of a freshly
# formatted data volume, as tabulated in public PowerShell tooling that restores default ACLs).
DATA_ROOT_SDDL = (
    "O:SYG:SYD:AI(A;OICIIO;SDGXGWGR;;;AU)(A;;0x1301bf;;;AU)(A;;FA;;;SY)(A;OICIIO;GA;;;SY)"
    "(A;OICIIO;GA;;;BA)(A;;FA;;;BA)(A;;0x1200a9;;;BU)(A;OICIIO;GXGR;;;BU)"
)


# ----------------------------------------------------------------------------- inheritance

_OI, _CI, _NP, _IO, _ID = 0x01, 0x02, 0x04, 0x08, 0x10
_GENERIC_FILE = {
    0x80000000: 0x00120089,
    0x40000000: 0x00120116,
    0x20000000: 0x001200A0,
    0x10000000: 0x001F01FF,
}
_CREATOR_OWNER, _CREATOR_GROUP = sid_to_binary("CO"), sid_to_binary("CG")
Ace = tuple[int, int, int, bytes]  # type, flags, mask, SID


def _parts(data: bytes) -> tuple[int, bytes, bytes, list[Ace] | None, list[Ace] | None]:
    """(control, owner, group, SACL ACEs, DACL ACEs) of a self-relative descriptor (None: no ACL)."""
    binary_to_sddl(data)  # validates every offset and ACE
    hdr = SD_HEADER.parse(data[: SD_HEADER.sizeof()])

    def sid_at(off: int) -> bytes:
        return data[off : off + 8 + 4 * data[off + 1]] if off else b""

    def aces_at(off: int, present: int) -> list[Ace] | None:
        if not hdr.control & present or not off:
            return None
        out, pos = [], off + 8
        for _ in range(ACL_HEADER.parse(data[off : off + 8]).ace_count):
            h = ACE_HEADER.parse(data[pos : pos + 4])
            out.append(
                (h.type, h.flags, Int32ul.parse(data[pos + 4 : pos + 8]), bytes(data[pos + 8 : pos + h.size]))
            )
            pos += h.size
        return out

    return (
        hdr.control,
        sid_at(hdr.owner),
        sid_at(hdr.group),
        aces_at(hdr.sacl, SE_SACL_PRESENT),
        aces_at(hdr.dacl, SE_DACL_PRESENT),
    )


def _acl_bytes(aces: list[Ace]) -> bytes:
    body = b"".join(
        ACE_HEADER.build({"type": t, "flags": f, "size": 8 + len(s)}) + Int32ul.build(m) + s
        for t, f, m, s in aces
    )
    return (
        ACL_HEADER.build({"revision": 2, "sbz1": 0, "size": 8 + len(body), "ace_count": len(aces), "sbz2": 0})
        + body
    )


def _inherited(parent: list[Ace], is_dir: bool, owner: bytes, group: bytes) -> list[Ace]:
    """The ACEs a new child receives from its parent's ACL, marked INHERITED_ACE ([MS-DTYP] 2.5.3.4):
    files take OI ACEs as effective ACEs; directories take CI ACEs, split into an effective ACE
    (generic rights mapped, CREATOR OWNER/GROUP replaced) and an inherit-only copy when either
    needs changing, and keep OI-only ACEs as inherit-only; NP stops propagation below the child."""
    out: list[Ace] = []
    for kind, flags, mask, sid in parent:
        mapped = mask & 0x0FFFFFFF
        for bit, rights in _GENERIC_FILE.items():
            if mask & bit:
                mapped |= rights
        real = owner if sid == _CREATOR_OWNER and owner else group if sid == _CREATOR_GROUP and group else sid
        effective = (kind, _ID, mapped, real)
        if not is_dir:
            if flags & _OI:
                out.append(effective)
        elif flags & _CI:
            if flags & _NP:
                out.append(effective)
            elif mapped != mask or real != sid:
                out += [effective, (kind, (flags & (_OI | _CI)) | _IO | _ID, mask, sid)]
            else:
                out.append((kind, (flags & (_OI | _CI)) | _ID, mask, sid))
        elif flags & _OI and not flags & _NP:
            out.append((kind, _OI | _IO | _ID, mask, sid))
    return out


def inherit(parent: bytes, child: bytes, is_dir: bool) -> bytes:
    """`child` as Windows stores it when created below `parent`: its own ACEs, then the inheritable
    ACEs of `parent` marked INHERITED_ACE, with SE_DACL/SACL_AUTO_INHERITED set (what
    CreatePrivateObjectSecurityEx with SEF_DACL/SACL_AUTO_INHERIT gives). A protected ACL (``P``)
    takes nothing; one with nothing to inherit is returned unchanged, byte for byte. ACEs the
    child itself marks inherited (``ID``, e.g. SDDL copied from Get-Acl) are replaced by the ones
    computed here."""
    control = child[2] | child[3] << 8 if len(child) >= 4 else 0
    if control & SE_DACL_PROTECTED and control & SE_SACL_PROTECTED:
        return child
    p_control, _, _, p_sacl, p_dacl = _parts(parent)
    c_control, owner, group, sacl, dacl = _parts(child)
    changed = False
    acls: dict[str, list[Ace] | None] = {"sacl": sacl, "dacl": dacl}
    for name, theirs, protected, auto in (
        ("sacl", p_sacl, SE_SACL_PROTECTED, SE_SACL_AUTO_INHERITED),
        ("dacl", p_dacl, SE_DACL_PROTECTED, SE_DACL_AUTO_INHERITED),
    ):
        if c_control & protected:
            continue
        got = _inherited(theirs or [], is_dir, owner, group)
        if got:
            acls[name] = [a for a in acls[name] or [] if not a[1] & _ID] + got
            c_control |= auto | (SE_SACL_PRESENT if name == "sacl" else SE_DACL_PRESENT)
            changed = True
    if not changed:
        return child
    off = SD_HEADER.sizeof()
    offsets, body = {}, b""
    for name, blob in (
        ("sacl", None if acls["sacl"] is None else _acl_bytes(acls["sacl"])),
        ("dacl", None if acls["dacl"] is None else _acl_bytes(acls["dacl"])),
        ("owner", owner),
        ("group", group),
    ):
        offsets[name] = off + len(body) if blob else 0
        body += blob or b""
    return SD_HEADER.build({"sbz1": 0, "control": c_control, **offsets}) + body
