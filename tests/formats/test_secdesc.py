"""SDDL <-> self-relative security descriptors, against binary forms written out by hand from
[MS-DTYP] 2.4.2 (SID), 2.4.4.1 (ACE header), 2.4.5 (ACL) and 2.4.6 (SECURITY_DESCRIPTOR)."""

from __future__ import annotations

import struct

import pytest

from ffuforge.errors import FormatError
from ffuforge.formats import secdesc

# SIDs: revision 1, sub-authority count, 6-byte big-endian authority, little-endian sub-authorities
WD = "01 01 000000000001 00000000"
SY = "01 01 000000000005 12000000"
BA = "01 02 000000000005 20000000 20020000"
BU = "01 02 000000000005 20000000 21020000"
CO = "01 01 000000000003 00000000"
AC = "01 02 00000000000f 02000000 01000000"  # S-1-15-2-1 ALL APPLICATION PACKAGES
ARAP = "01 02 00000000000f 02000000 02000000"  # S-1-15-2-2 ALL RESTRICTED APPLICATION PACKAGES
# S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464: 956008885 = 0x38FB89B5, …
TI = "01 06 000000000005 50000000 b589fb38 1984c2cb 5c6c236d 5700776e c0026487"


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def ace(kind: int, flags: int, mask: int, sid: str) -> bytes:
    body = struct.pack("<I", mask) + h(sid)
    return struct.pack("<BBH", kind, flags, 4 + len(body)) + body


def acl(*aces: bytes) -> bytes:
    body = b"".join(aces)
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body


def sd(control: int, owner: str = "", group: str = "", sacl: bytes = b"", dacl: bytes = b"") -> bytes:
    """Header, then SACL, DACL, owner, group (RtlMakeSelfRelativeSD's order)."""
    off, parts, offs = 20, b"", []
    for blob in (sacl, dacl, h(owner), h(group)):
        offs.append(off + len(parts) if blob else 0)
        parts += blob
    s_off, d_off, o_off, g_off = offs
    return struct.pack("<BBHIIII", 1, 0, control, o_off, g_off, s_off, d_off) + parts


def test_simple_descriptor_exact_bytes():
    want = h(
        "01 00 0480 30000000 40000000 00000000 14000000",  # rev, sbz1, control 0x8004, owner, group, sacl, dacl
        "02 00 1c00 0100 0000",  # ACL rev 2, size 28, 1 ACE
        "00 03 1400 ff011f00",  # ACCESS_ALLOWED, OI|CI, size 20, FILE_ALL_ACCESS
        WD,
        BA,
        SY,
    )
    assert secdesc.sddl_to_binary("O:BAG:SYD:(A;OICI;FA;;;WD)") == want
    assert secdesc.binary_to_sddl(want) == "O:BAG:SYD:(A;OICI;FA;;;WD)"


def test_fa_is_windows_file_all_access_not_samba():
    blob = secdesc.sddl_to_binary("D:(A;;FA;;;SY)")
    assert struct.unpack_from("<I", blob, 20 + 8 + 4)[0] == 0x1F01FF  # samba 4.17 writes 0x1FF


def test_wrp_file_default_exact_bytes():
    grgx = 0x80000000 | 0x20000000
    want = sd(
        0x8000 | 0x1000 | 0x0010 | 0x0004,  # self-relative, DACL protected, SACL and DACL present
        owner=TI,
        group=TI,
        sacl=acl(ace(0x02, 0xC0, 0x000D0116, WD)),  # SYSTEM_AUDIT, FAILED|SUCCESSFUL_ACCESS
        dacl=acl(
            ace(0, 0, 0x1F01FF, TI),
            ace(0, 0, grgx, BA),
            ace(0, 0, grgx, SY),
            ace(0, 0, grgx, BU),
            ace(0, 0, grgx, AC),
            ace(0, 0, grgx, ARAP),
        ),
    )
    assert secdesc.wrp_default(False) == want == secdesc.sddl_to_binary(secdesc.WRP_FILE_DEFAULT_SDDL)
    assert len(want) == 276


def test_wrp_directory_default_exact_bytes():
    oiciio, ciio, ga, gxgr, rx, mod = 0x0B, 0x0A, 0x10000000, 0xA0000000, 0x1200A9, 0x1301BF
    want = sd(
        0x8000 | 0x1000 | 0x0400 | 0x0004,  # self-relative, DACL protected + auto-inherited, DACL present
        owner=TI,
        group=TI,
        dacl=acl(
            ace(0, oiciio, ga, CO),
            ace(0, oiciio, ga, SY),
            ace(0, 0, mod, SY),
            ace(0, oiciio, ga, BA),
            ace(0, 0, mod, BA),
            ace(0, oiciio, gxgr, BU),
            ace(0, 0, rx, BU),
            ace(0, ciio, ga, TI),
            ace(0, 0, 0x1F01FF, TI),
            ace(0, 0, rx, AC),
            ace(0, oiciio, gxgr, AC),
            ace(0, 0, rx, ARAP),
            ace(0, oiciio, gxgr, ARAP),
        ),
    )
    assert secdesc.wrp_default(True) == want


@pytest.mark.parametrize(
    "sddl",
    [
        secdesc.WRP_FILE_DEFAULT_SDDL,
        secdesc.WRP_DIR_DEFAULT_SDDL,
        "O:SYG:SYD:PAI(A;OICI;FA;;;SY)(D;NP;0x1;;;BG)S:AI(AU;OICISAFA;FA;;;WD)",
        "O:BAG:BAD:NO_ACCESS_CONTROL",
        "D:(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;;GA;;;S-1-5-80-1-2-3)",
        "O:S-1-15-2-2G:S-1-15-2-1D:",
        "S:(ML;;0x1;;;HI)",
    ],
)
def test_round_trip(sddl):
    blob = secdesc.sddl_to_binary(sddl)
    again = secdesc.binary_to_sddl(blob)
    assert secdesc.sddl_to_binary(again) == blob


def test_parser_names_aliases_and_masks():
    text = secdesc.binary_to_sddl(secdesc.wrp_default(False))
    assert text == (
        f"O:{secdesc.TRUSTED_INSTALLER}G:{secdesc.TRUSTED_INSTALLER}D:P(A;;FA;;;{secdesc.TRUSTED_INSTALLER})"
        "(A;;GRGX;;;BA)(A;;GRGX;;;SY)(A;;GRGX;;;BU)(A;;GRGX;;;AC)(A;;GRGX;;;S-1-15-2-2)"
        "S:(AU;SAFA;0xd0116;;;WD)"
    )
    assert secdesc.sddl_to_binary("D:(A;;0x1200a9;;;bu)") == secdesc.sddl_to_binary("D:(A;;1179817;;;BU)")


@pytest.mark.parametrize(
    "sddl, message",
    [
        ("D:(OA;;CC;bf967aba-0de6-11d0-a285-00aa003049e2;;AO)", "object and conditional ACEs"),
        ("D:(A;;FA;;;XX)", "not a SID"),
        ("D:(A;;ZZ;;;SY)", "unknown access right"),
        ("D:(A;QQ;FA;;;SY)", "unknown ACE flag"),
        ("D:(A;;FA;;SY)", "6 fields"),
        ("D:(Q;;FA;;;SY)", "unknown ACE type"),
        ("X:foo", "must start with"),
        ("O:BAO:SY", "two O: parts"),
        ("D:ZZ(A;;FA;;;SY)", "unknown ACL flag"),
        ("D:(A;;0x1FFFFFFFF;;;SY)", "not a 32-bit number"),
        ("O:S-1-5-99999999999", "out of range"),
    ],
)
def test_bad_sddl(sddl, message):
    with pytest.raises(FormatError, match=message):
        secdesc.sddl_to_binary(sddl)


def test_parser_bounds_offsets():
    good = secdesc.sddl_to_binary("O:BAG:SYD:(A;;FA;;;WD)")
    for bad in (good[:10], good[:-3], b"\x02" + good[1:], good[:2] + b"\x04\x00" + good[4:]):
        with pytest.raises(FormatError):
            secdesc.binary_to_sddl(bad)


# --- samba's NDR parser as the independent reader --------------------------------------------------

_SAMBA = """
import json, sys
from samba.dcerpc import security
from samba.ndr import ndr_unpack
dom = security.dom_sid("S-1-5-21-1-2-3")
out = []
for blob, sddl in json.load(sys.stdin):
    ours = ndr_unpack(security.descriptor, bytes.fromhex(blob))
    ref = security.descriptor.from_sddl(sddl, dom)
    out.append([ours.as_sddl(dom), ref.as_sddl(dom)])
json.dump(out, sys.stdout)
"""

_SAMBA_CASES = [
    secdesc.WRP_FILE_DEFAULT_SDDL,
    secdesc.WRP_DIR_DEFAULT_SDDL,
    "O:BAG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)",  # the sample's private file
    "O:BAG:SYD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)",  # the sample's private key
    "O:SYG:SYD:(A;OICIIO;GA;;;CO)(D;;0x00010000;;;WD)(A;NP;0x120089;;;S-1-15-2-1)",
]


def _samba_rights(sddl: str) -> str:
    """The same SDDL as samba 4.17 must be told it: it maps FA to 0x1FF where Windows defines 0x1F01FF,
    and knows no registry rights (KA = KEY_ALL_ACCESS 0xF003F), so those are spelt as numbers."""
    import re

    hexed = {"FA": "0x1f01ff", "KA": "0xf003f"}
    return re.sub(r"\(([^;()]*;[^;()]*;)(FA|KA);", lambda m: f"({m.group(1)}{hexed[m.group(2)]};", sddl)


def test_samba_reads_our_descriptors_as_their_sddl():
    import json
    import shutil
    import subprocess

    from oracles import unavailable

    python = shutil.which("python3", path="/usr/bin")
    probe = python and subprocess.run([python, "-c", "import samba.ndr"], capture_output=True)
    if not probe or probe.returncode != 0:
        unavailable("samba's Python bindings are not installed (./bootstrap --test installs python3-samba)")
    cases = [[secdesc.sddl_to_binary(s).hex(), _samba_rights(s)] for s in _SAMBA_CASES]
    proc = subprocess.run(
        [python, "-c", _SAMBA], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    for sddl, (ours, ref) in zip(_SAMBA_CASES, json.loads(proc.stdout), strict=True):
        assert ours == ref, (sddl, ours, ref)


# What Windows 10/11 stores on a file and a directory created below the root of a freshly
# formatted (non-system) NTFS volume, as tabulated from real systems in public PowerShell tooling
# that restores default ACLs (owner = the creating user): the auto-inheritance test vectors.
_USER = "S-1-5-21-1111-2222-3333-1001"
_FILE_BELOW_ROOT = (
    f"O:{_USER}G:{_USER}D:AI(A;ID;0x1301bf;;;AU)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)"
)
_DIR_BELOW_ROOT = (
    f"O:{_USER}G:{_USER}D:AI(A;ID;0x1301bf;;;AU)(A;OICIIOID;SDGXGWGR;;;AU)(A;ID;FA;;;SY)"
    "(A;OICIIOID;GA;;;SY)(A;ID;FA;;;BA)(A;OICIIOID;GA;;;BA)(A;ID;0x1200a9;;;BU)(A;OICIIOID;GXGR;;;BU)"
)


@pytest.mark.parametrize("is_dir, expected", [(False, _FILE_BELOW_ROOT), (True, _DIR_BELOW_ROOT)])
def test_inheritance_as_windows_computes_it(is_dir, expected):
    root = secdesc.sddl_to_binary(secdesc.DATA_ROOT_SDDL)
    child = secdesc.sddl_to_binary(f"O:{_USER}G:{_USER}D:")
    assert secdesc.inherit(root, child, is_dir) == secdesc.sddl_to_binary(expected)


def test_inheritance_keeps_own_aces_first_and_replaces_creator_owner():
    parent = secdesc.sddl_to_binary("O:SYG:SYD:(A;OICIIO;GA;;;CO)(A;OI;FR;;;BU)(A;CINP;FA;;;SY)")
    child = secdesc.sddl_to_binary("O:BAG:SYD:(A;;FA;;;BA)")
    got = secdesc.binary_to_sddl(secdesc.inherit(parent, child, True))
    # CO: effective ACE for the owner (BA) + inherit-only copy; OI only: inherit-only; CI|NP: effective only
    assert got == "O:BAG:SYD:AI(A;;FA;;;BA)(A;ID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OIIOID;FR;;;BU)(A;ID;FA;;;SY)"
    got = secdesc.binary_to_sddl(secdesc.inherit(parent, child, False))
    assert got == "O:BAG:SYD:AI(A;;FA;;;BA)(A;ID;FA;;;BA)(A;ID;FR;;;BU)"


def test_protected_descriptors_inherit_nothing():
    root = secdesc.sddl_to_binary(secdesc.OS_ROOT_SDDL)
    assert secdesc.inherit(root, secdesc.wrp_default(True), True) == secdesc.wrp_default(True)
    nothing = secdesc.sddl_to_binary("O:BAG:SYD:(A;;FA;;;BA)")
    assert secdesc.inherit(nothing, nothing, False) == nothing  # nothing inheritable: same bytes


def test_volume_roots_and_label_rights():
    root = secdesc.binary_to_sddl(secdesc.sddl_to_binary(secdesc.OS_ROOT_SDDL))
    assert root.startswith(f"O:{secdesc.TRUSTED_INSTALLER}G:{secdesc.TRUSTED_INSTALLER}D:PAI(A;;0x4;;;AU)")
    assert root.endswith("S:(ML;OINPIO;0x1;;;HI)")  # NW = SYSTEM_MANDATORY_LABEL_NO_WRITE_UP
