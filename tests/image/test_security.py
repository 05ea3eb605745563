"""Security descriptors packages give files, directories and registry keys (issue 14 Deliver 2,
issue 15 Deliver 3): wm.xml → component manifest → install → NTFS ``$Secure`` and hive ``sk`` cells.

Independent readers: regipy reads each key's ``sk`` cell (owner, group, ACEs); ntfssecaudit reads
``$Secure`` of the NTFS image. The ``sk`` ring is also walked cell by cell from the raw bytes.
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from ffuforge.errors import ConfigError, FormatError
from ffuforge.formats import hive, secdesc
from ffuforge.formats.cab import CabReader
from ffuforge.formats.ntfs import write_ntfs
from ffuforge.image import partition, security
from ffuforge.package import security as package_security
from ffuforge.package.build import build_variant

from helpers import plan, wm
from oracles import require_tool

EPOCH = 1577836800
FILE_SD = "O:BAG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)"
KEY_SD = "O:BAG:SYD:P(A;CI;KA;;;SY)(A;CI;KR;;;BU)"
KEY_SD2 = "O:SYG:SYD:P(A;CI;KA;;;SY)"


def _defs(*pairs: tuple[str, str]) -> str:
    items = "".join(f'<securityDescriptorDefinition name="{n}" sddl="{s}"/>' for n, s in pairs)
    return (
        "<trustInfo><security><accessControl><securityDescriptorDefinitions>"
        f"{items}</securityDescriptorDefinitions></accessControl></security></trustInfo>"
    )


SAMPLE = (
    _defs(("SECRET", FILE_SD), ("KEYSD", KEY_SD))
    + '\n<files><file source="a.txt" destinationDir="$(runtime.system32)\\Contoso" securityDescriptor="SECRET"/>'
    + '<file source="b.txt" destinationDir="$(runtime.system32)\\Contoso"/></files>'
    + '\n<directories><directory path="$(runtime.programData)\\Contoso" securityDescriptor="SECRET"/>'
    + '<directory path="$(runtime.programData)\\Plain"/></directories>'
    + '\n<regKeys><regKey keyName="$(hklm.software)\\Contoso\\Secret" securityDescriptor="KEYSD">'
    + '<regValue name="x" type="REG_DWORD" value="1"/></regKey>'
    + '<regKey keyName="$(hklm.software)\\Contoso\\Empty" securityDescriptor="KEYSD"/>'
    + '<regKey keyName="$(hklm.software)\\Contoso\\Open"><regValue name="y" type="REG_DWORD" value="2"/></regKey>'
    + "</regKeys>"
)


def _cab(tmp_path: Path, body: str, name: str) -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    for f in ("a.txt", "b.txt"):
        (d / f).write_text(f"{name} {f}\n")
    v = plan(wm(d, body, name=name))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def _component_manifest(cab: Path) -> bytes:
    with CabReader(cab) as r:
        (m,) = [m for m in r.members if m.name.endswith(".manifest") and "-component_" in m.name]
        return r.read(m, 1 << 20)


# --- project parsing ----------------------------------------------------------------------------


def test_project_forms_are_read(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    v = plan(wm(tmp_path, SAMPLE))[0]
    p = v.project
    assert {n: d.sddl for n, d in p.security.items()} == {"SECRET": FILE_SD, "KEYSD": KEY_SD}
    assert [f.security for f in p.files] == ["SECRET", None]
    assert [(d.path, d.security) for d in p.directories] == [
        ("$(runtime.programData)\\Contoso", "SECRET"),
        ("$(runtime.programData)\\Plain", None),
    ]
    assert [k.security for k in p.regkeys] == ["KEYSD", "KEYSD", None]


@pytest.mark.parametrize(
    "body,message",
    [
        (
            '<files><file source="a.txt" securityDescriptor="NOPE"/></files>\n' + _defs(("X", FILE_SD)),
            r"Pkg\.wm\.xml:2: security descriptor 'NOPE' is not defined \(defined: X\)",
        ),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\A" securityDescriptor="K"/></regKeys>',
            r"Pkg\.wm\.xml:2: security descriptor 'K' is not defined \(defined: none\)",
        ),
        (_defs(("X", "O:BAG:SYD:(A;;QQ;;;SY)")), r"Pkg\.wm\.xml:2: security descriptor 'X': .*QQ"),
        (_defs(("X", "D:(OA;;CC;;;SY)")), r"Pkg\.wm\.xml:2: security descriptor 'X': .*OA"),
        (_defs(("X", FILE_SD), ("X", KEY_SD)), r"Pkg\.wm\.xml:2: security descriptor 'X' is already defined"),
        (
            _defs(("X", FILE_SD)).replace('sddl="', 'colour="red" sddl="'),
            r"Pkg\.wm\.xml:2: unknown attribute colour= on <securityDescriptorDefinition>",
        ),
        (
            "<trustInfo><security><bogus/></security></trustInfo>",
            r"Pkg\.wm\.xml:2: <security> must hold exactly one <accessControl>",
        ),
        (
            '<directories><directory path="$(runtime.programData)" mode="x"/></directories>',
            r"Pkg\.wm\.xml:2: unknown attribute mode= on <directory>; <directory> takes path, securityDescriptor",
        ),
        (
            '<directories><directory path="$(runtime.programData)"/></directories>',
            r"Pkg\.wm\.xml:2: directory .* is a root macro's own directory",
        ),
    ],
)
def test_project_errors_name_file_and_line(tmp_path, body, message):
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(ConfigError, match=message):
        for v in plan(wm(tmp_path, body)):
            package_security.for_variant(v)  # what the package's signature and manifest need


# --- the component manifest round trip ------------------------------------------------------


def test_manifest_carries_descriptors_as_windows_spells_them(tmp_path):
    cab = _cab(tmp_path, SAMPLE, "A")
    data = _component_manifest(cab)
    root = etree.fromstring(data)
    ns = {"a": "urn:schemas-microsoft-com:asm.v3"}
    a_file = root.find("a:file[@name='a.txt']", ns)
    assert [etree.QName(c).localname for c in a_file][:2] == ["securityDescriptor", "hash"]
    assert a_file.find("a:securityDescriptor", ns).get("name") == "SECRET"
    assert root.find("a:file[@name='b.txt']/a:securityDescriptor", ns) is None
    key = root.find(
        "a:registryKeys/a:registryKey[@keyName='HKEY_LOCAL_MACHINE\\Software\\Contoso\\Secret']", ns
    )
    assert etree.QName(key[-1]).localname == "securityDescriptor" and key[-1].get("name") == "KEYSD"
    defs = root.findall(
        "a:trustInfo/a:security/a:accessControl/a:securityDescriptorDefinitions/a:securityDescriptorDefinition",
        ns,
    )
    assert [(d.get("name"), d.get("sddl"), d.get("operationHint")) for d in defs] == [
        ("KEYSD", KEY_SD, "replace"),
        ("SECRET", FILE_SD, "replace"),
    ]
    assert etree.QName(root[-1]).localname == "trustInfo"
    files, dirs, keys = security.manifest_security(data, "m")
    assert files == [("$(runtime.system32)\\Contoso\\a.txt", FILE_SD)]
    assert dirs == [("$(runtime.programData)\\Contoso", FILE_SD), ("$(runtime.programData)\\Plain", None)]
    assert sorted(keys) == [
        ("HKEY_LOCAL_MACHINE\\Software\\Contoso\\Empty", KEY_SD),
        ("HKEY_LOCAL_MACHINE\\Software\\Contoso\\Secret", KEY_SD),
    ]


def test_a_package_without_descriptors_has_no_trace_of_them(tmp_path):
    cab = _cab(tmp_path, '<files><file source="a.txt"/></files>', "Plain")
    data = _component_manifest(cab)
    assert b"securityDescriptor" not in data and b"trustInfo" not in data and b"directories" not in data


MS_MANIFEST = b"""<?xml version="1.0" encoding="utf-8"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v3" manifestVersion="1.0">
  <file name="x.dll" destinationPath="$(runtime.system32)\\" sourceName="x.dll">
    <securityDescriptor name="WRP_FILE_DEFAULT_SDDL" />
  </file>
  <registryKey keyName="HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\" owner="false">
    <securityDescriptor name="%s" />
  </registryKey>
  <trustInfo><security><accessControl><securityDescriptorDefinitions>
    <securityDescriptorDefinition name="WRP_FILE_DEFAULT_SDDL" sddl="%s" operationHint="replace"
      description="Default SDDL for Windows Resource Protected file" />
  </securityDescriptorDefinitions></accessControl></security></trustInfo>
</assembly>
"""


def test_microsoft_shaped_manifests_are_read(tmp_path):
    good = MS_MANIFEST % (b"WRP_FILE_DEFAULT_SDDL", secdesc.WRP_FILE_DEFAULT_SDDL.encode())
    files, dirs, keys = security.manifest_security(good, "ms.manifest")
    assert files == [("$(runtime.system32)\\x.dll", secdesc.WRP_FILE_DEFAULT_SDDL)]
    assert keys == [("HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor", secdesc.WRP_FILE_DEFAULT_SDDL)] and dirs == []
    undefined = MS_MANIFEST % (b"WRP_REGKEY_DEFAULT_SDDL", secdesc.WRP_FILE_DEFAULT_SDDL.encode())
    with pytest.raises(
        FormatError, match=r"ms\.manifest:7: security descriptor 'WRP_REGKEY_DEFAULT_SDDL' is not"
    ):
        security.manifest_security(undefined, "ms.manifest")
    bad = MS_MANIFEST % (b"WRP_FILE_DEFAULT_SDDL", b"D:(XA;;FA;;;WD)")
    with pytest.raises(FormatError, match=r"ms\.manifest:11: security descriptor 'WRP_FILE_DEFAULT_SDDL': "):
        security.manifest_security(bad, "ms.manifest")


# --- install: agreement and conflicts -------------------------------------------------------


def _key_pkg(name: str, sddl: str, key: str = "Shared") -> str:
    return _defs(("K", sddl)) + (
        f'\n<regKeys><regKey keyName="$(hklm.software)\\Contoso\\{key}" securityDescriptor="K">'
        f'<regValue name="{name}" type="REG_DWORD" value="1"/></regKey></regKeys>'
    )


def test_two_packages_giving_one_key_different_descriptors_are_named(tmp_path):
    one = _cab(tmp_path, _key_pkg("a", KEY_SD), "One")
    two = _cab(tmp_path, _key_pkg("b", KEY_SD2), "Two")
    with pytest.raises(
        ConfigError,
        match=r"registry key .*Contoso\\Shared gets .* from Contoso-Test-One .* from Contoso-Test-Two",
    ):
        partition.stage("MainOS", [one, two], tmp_path / "stage", epoch=EPOCH)
    # the same descriptor, spelt differently (KA = 0xF003F), is one descriptor
    same = _cab(tmp_path, _key_pkg("c", KEY_SD.replace("KA", "0xf003f")), "Same")
    st = partition.stage("MainOS", [one, same], tmp_path / "stage2", epoch=EPOCH)
    assert [pkg for _, _, pkg in st.key_security.values()] == ["Contoso-Test-One"]


def test_two_packages_giving_one_directory_different_descriptors_are_named(tmp_path):
    body = (
        _defs(("D", "{}"))
        + '\n<directories><directory path="$(runtime.programData)\\Shared" securityDescriptor="D"/></directories>'
    )
    one = _cab(tmp_path, body.replace("{}", FILE_SD), "One")
    two = _cab(tmp_path, body.replace("{}", KEY_SD2), "Two")
    with pytest.raises(
        ConfigError, match=r"directory ProgramData\\Shared gets .* Contoso-Test-One .* Contoso-Test-Two"
    ):
        partition.stage("MainOS", [one, two], tmp_path / "stage", epoch=EPOCH)


# --- hive sk cells ------------------------------------------------------------------------------


def _sk_ring(data: bytes, start: int) -> list[tuple[int, int, int, int, bytes]]:
    """Follow flink from `start` through the raw hive: (offset, flink, blink, refs, descriptor)."""
    out, off = [], start
    while True:
        pos = 4096 + off + 4
        sig, _, flink, blink, refs, size = struct.unpack_from("<2sHIIII", data, pos)
        assert sig == b"sk"
        out.append((off, flink, blink, refs, data[pos + 20 : pos + 20 + size]))
        off = flink
        if off == start or len(out) > 100:
            return out


def test_sk_cells_are_shared_counted_and_ringed(tmp_path):
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    sd1, sd2 = secdesc.sddl_to_binary(KEY_SD), secdesc.sddl_to_binary(KEY_SD2)
    for path in ("A", "A\\B", "C", "C\\D", "E"):
        b.ensure_key(path)
    b.set_key_security("A", sd1, owner="P1")
    b.set_key_security("C\\D", sd1, owner="P2")  # same bytes: one cell, two references
    b.set_key_security("E", sd2, owner="P3")
    b.set_key_security("E", sd2, owner="P4")  # agreeing twice is fine
    with pytest.raises(ConfigError, match="registry key E gets a security descriptor from both P3 and P5"):
        b.set_key_security("E", sd1, owner="P5")
    out = tmp_path / "H"
    b.write(out)
    h = hive.read_hive(out)
    keys = dict(h.walk())
    default = hive.default_security_descriptor()
    below = secdesc.sddl_to_binary("O:BAG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KR;;;BU)")  # A\\B inherits from A
    want = {"": default, "A": sd1, "A\\B": below, "C": default, "C\\D": sd1, "E": sd2}
    assert {k: key.security for k, key in keys.items()} == want
    data = out.read_bytes()
    ring = _sk_ring(data, keys[""].security_cell)
    assert len(ring) == 4  # four distinct descriptors, one cell each
    assert {r[4]: r[3] for r in ring} == {default: 2, sd1: 2, below: 1, sd2: 1}  # reference counts
    for i, (_, flink, blink, _, _) in enumerate(ring):  # a closed ring both ways
        assert flink == ring[(i + 1) % 4][0] and blink == ring[i - 1][0]
    assert {keys[k].security_cell for k in ("A", "C\\D")} == {ring[[r[4] for r in ring].index(sd1)][0]}
    if require_tool("hivexsh"):  # hivex accepts the hive
        res = subprocess.run(["hivexsh", "-d", str(out)], input="ls\n", capture_output=True, text=True)
        assert res.returncode == 0 and "A" in res.stdout, res.stderr


@pytest.mark.parametrize(
    ("given", "own", "want_child", "want_grandchild"),
    [
        # a protected DACL passes its CI ACEs on, marked inherited, to every level below
        (
            KEY_SD,
            None,
            "O:BAG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KR;;;BU)",
            "O:BAG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KR;;;BU)",
        ),
        # NP: one level only; an ACE without CI is not inherited by keys
        (
            "O:SYG:SYD:P(A;CINP;KA;;;SY)(A;CI;KR;;;BU)(A;;KA;;;BA)",
            None,
            "O:BAG:SYD:AI(A;ID;KA;;;SY)(A;CIID;KR;;;BU)",
            "O:BAG:SYD:AI(A;CIID;KR;;;BU)",
        ),
        # the child's own, not protected: its ACEs first, then what it inherits
        (KEY_SD, "O:BAG:SYD:(A;;KA;;;LS)", "O:BAG:SYD:AI(A;;KA;;;LS)(A;CIID;KA;;;SY)(A;CIID;KR;;;BU)", None),
        # the child's own, protected: kept byte for byte
        (KEY_SD, KEY_SD2, KEY_SD2, None),
        # nothing inheritable: the child keeps the hive's default
        ("O:BAG:SYD:P(A;;KA;;;SY)", None, "default", "default"),
    ],
)
def test_keys_below_a_given_descriptor_inherit_as_the_registry_does(given, own, want_child, want_grandchild):
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    b.ensure_key("A\\B\\C")
    b.ensure_key("Other\\X")
    b.set_key_security("A", secdesc.sddl_to_binary(given))
    if own is not None:
        b.set_key_security("A\\B", secdesc.sddl_to_binary(own))
    keys = dict(hive.parse_hive(b.to_bytes("H")).walk())
    default = hive.default_security_descriptor()

    def got(k: str) -> str:
        return "default" if keys[k].security == default else secdesc.binary_to_sddl(keys[k].security)

    def norm(want: str) -> str:  # our SDDL spelling of `want`
        return want if want == "default" else secdesc.binary_to_sddl(secdesc.sddl_to_binary(want))

    assert got("A\\B") == norm(want_child)
    if want_grandchild is not None:
        assert got("A\\B\\C") == norm(want_grandchild)
    assert keys["Other\\X"].security == default and keys[""].security == default  # untouched elsewhere


def test_a_hive_without_descriptors_keeps_its_bytes(tmp_path):
    """One default sk cell after the root, counting every key: the layout of before."""
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    b.set_value("A\\B", "v", 4, b"\1\0\0\0")
    data = b.to_bytes("H")
    ring = _sk_ring(data, hive.parse_hive(data).root.security_cell)
    assert [(r[3], r[4]) for r in ring] == [(3, hive.default_security_descriptor())]


def _aces(info: dict) -> list[tuple[str, str, bool]]:
    return [(a["sid"], a["ace_type"], a["flags"]["CONTAINER_INHERIT_ACE"]) for a in info["dacl"] or []]


def test_installed_keys_read_back_by_regipy(tmp_path):
    regipy = pytest.importorskip("regipy.registry")
    cab = _cab(tmp_path, SAMPLE, "A")
    st = partition.stage("MainOS", [cab], tmp_path / "stage", epoch=EPOCH)
    reg = regipy.RegistryHive(str(st.root / "Windows/System32/config/SOFTWARE"))
    for path in ("\\Contoso\\Secret", "\\Contoso\\Empty"):
        info = reg.get_key(path).get_security_key_info()
        assert (info["owner"], info["group"]) == ("S-1-5-32-544", "S-1-5-18")
        assert _aces(info) == [("S-1-5-18", "ACCESS_ALLOWED", True), ("S-1-5-32-545", "ACCESS_ALLOWED", True)]
    plain = reg.get_key("\\Contoso\\Open").get_security_key_info()  # no descriptor given: the default
    assert [a[0] for a in _aces(plain)] == ["S-1-5-18", "S-1-5-32-544", "S-1-5-32-545"]
    ours = dict(hive.read_hive(st.root / "Windows/System32/config/SOFTWARE").walk())
    assert ours["Contoso\\Secret"].security == secdesc.sddl_to_binary(KEY_SD)
    assert secdesc.binary_to_sddl(ours["Contoso\\Empty"].security) == secdesc.binary_to_sddl(
        secdesc.sddl_to_binary(KEY_SD)
    )
    manifest = st.manifest()["security"]
    assert {
        "key": "HKEY_LOCAL_MACHINE\\Software\\Contoso\\Secret",
        "sddl": KEY_SD,
        "package": "Contoso-Test-A",
    } in manifest


# --- NTFS -----------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    return require_tool(name)


def audited(img: Path, path: str) -> bytes:
    """The descriptor ntfssecaudit -v dumps for `path` (its hex lines)."""
    out = subprocess.run(
        [_tool("ntfssecaudit"), "-v", str(img), path], capture_output=True, text=True, check=True
    )
    words = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s+[0-9a-f]{6}\s+((?:[0-9a-f]{2,8}\s*)+)$", line)
        if m:
            words += m.group(1).split()
    assert words, out.stdout
    return bytes.fromhex("".join(words))


def test_installed_files_and_directories_get_their_descriptor_on_ntfs(tmp_path):
    _tool("mkntfs")
    cab = _cab(tmp_path, SAMPLE, "A")
    st = partition.stage("MainOS", [cab], tmp_path / "stage", epoch=EPOCH)
    assert (st.root / "ProgramData" / "Contoso").is_dir() and (st.root / "ProgramData" / "Plain").is_dir()
    img = tmp_path / "MainOS.img"
    write_ntfs(
        st.root,
        img,
        size_bytes=64 << 20,
        label="MainOS",
        timestamp=EPOCH,
        security={rel.replace("\\", "/"): sddl for rel, sddl, _ in st.security.values()},
    )
    given = secdesc.sddl_to_binary(FILE_SD)
    assert audited(img, "/Windows/System32/Contoso/a.txt") == given
    assert audited(img, "/ProgramData/Contoso") == given
    assert audited(img, "/Windows/System32/Contoso/b.txt") == secdesc.wrp_default(False)
    assert audited(img, "/ProgramData/Plain") == secdesc.wrp_default(True)


def test_a_key_pointing_elsewhere_for_its_security_is_refused():
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    b.ensure_key("A")
    data = bytearray(b.to_bytes("H"))
    root = hive.parse_hive(bytes(data)).root
    root_cell = int.from_bytes(data[36:40], "little")  # base block: root cell offset
    assert data[4096 + root_cell + 4 : 4096 + root_cell + 6] == b"nk"
    pos = 4096 + root_cell + 4 + 44  # CM_KEY_NODE.Security
    assert int.from_bytes(data[pos : pos + 4], "little") == root.security_cell
    data[pos : pos + 4] = root_cell.to_bytes(4, "little")  # the key node itself
    with pytest.raises(FormatError, match="not an sk cell"):
        hive.parse_hive(bytes(data))


def test_inherited_key_aces_read_back_by_regipy(tmp_path):
    """An independent reader finds the subkey's own sk cell: the parent's SIDs, container-inherit (regipy
    does not decode INHERITED_ACE; samba checks that below)."""
    regipy = pytest.importorskip("regipy.registry")
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    b.set_value("A\\B", "v", 4, b"\1\0\0\0")
    b.set_key_security("A", secdesc.sddl_to_binary(KEY_SD))
    b.write(tmp_path / "H")
    info = regipy.RegistryHive(str(tmp_path / "H")).get_key("\\A\\B").get_security_key_info()
    assert (info["owner"], info["group"]) == ("S-1-5-32-544", "S-1-5-18")
    assert _aces(info) == [("S-1-5-18", "ACCESS_ALLOWED", True), ("S-1-5-32-545", "ACCESS_ALLOWED", True)]


def test_inherited_key_descriptor_read_by_samba(tmp_path):
    """samba's NDR parser reads the subkey's sk cell bytes as the inherited SDDL (ID flags, AI)."""
    import json
    import shutil

    from oracles import unavailable

    python = shutil.which("python3", path="/usr/bin")
    probe = python and subprocess.run([python, "-c", "import samba.ndr"], capture_output=True)
    if not probe or probe.returncode != 0:
        unavailable("samba's Python bindings are not installed (./bootstrap --test installs python3-samba)")
    b = hive.HiveBuilder("ROOT", timestamp=EPOCH)
    b.ensure_key("A\\B")
    b.set_key_security("A", secdesc.sddl_to_binary("O:SYG:SYD:P(A;CI;0xf003f;;;SY)(A;CINP;0x20019;;;BU)"))
    blob = dict(hive.parse_hive(b.to_bytes("H")).walk())["A\\B"].security
    script = (
        "import sys; from samba.dcerpc import security; from samba.ndr import ndr_unpack; "
        "print(ndr_unpack(security.descriptor, bytes.fromhex(sys.stdin.read())).as_sddl())"
    )
    proc = subprocess.run(
        [python, "-c", script], input=blob.hex(), capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "O:BAG:SYD:AI(A;CIID;RPWPCCDCLCRCWOWDSDSW;;;SY)(A;ID;RPCCRCSW;;;BU)", (
        json.dumps(proc.stdout)
    )  # samba spells KEY_ALL_ACCESS and KEY_READ as directory-service letters: 0xf003f, 0x20019
