"""Offline registry hives: our writer checked by independent readers, our reader against hostile input."""

import base64
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats import hive, regvalue

from oracles import require_tool

TS = 1577836800  # 2020-01-01
FILETIME_2020 = 132223104000000000


def sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def multi(*items: str) -> bytes:
    return "".join(i + "\0" for i in items).encode("utf-16-le") + b"\0\0"


BIG = bytes((i * 7 + i // 251) & 0xFF for i in range(40000))  # 3 big-data segments
EXPECTED: dict[str, dict[str, tuple[int, bytes]]] = {
    "": {},
    "Types": {
        "": (1, sz("default value")),
        "Sz": (1, sz("hello, world")),
        "Expand": (2, sz(r"%SystemRoot%\System32")),
        "Multi": (7, multi("one", "two", "three")),
        "Dword": (4, (0x12345678).to_bytes(4, "little")),
        "Qword": (11, (0x0102030405060708).to_bytes(8, "little")),
        "Binary": (3, bytes(range(20))),
        "BinaryInline": (3, b"\xaa\xbb\xcc"),
        "None": (0, b""),
        "NoneData": (0, b"\x01\x02\x03\x04\x05"),
        "EmptySz": (1, b""),
        "BigBinary": (3, BIG),
        "Exactly16344": (3, bytes([0x5A]) * 16344),
        "Just16345": (3, bytes([0xA5]) * 16345),
        'Quote"And\\Slash': (1, sz('va"l\\ue')),
        "Type 0x20001": (0x20001, b"\x01\x02"),
    },
    "Empty": {},
    "Empty\\Nested\\Deeper": {},
    "Ünïcødé": {"Ключ": (1, sz("значение"))},
    "Ünïcødé\\日本語キー": {"値": (4, (7).to_bytes(4, "little"))},
    "Many": {},
}
MANY = 1200
for _i in range(MANY):
    EXPECTED[f"Many\\Sub{_i:05d}"] = {"Index": (4, _i.to_bytes(4, "little"))} if _i % 100 == 0 else {}
# parents implied by paths
for _p in list(EXPECTED):
    _parts = _p.split("\\")
    for _n in range(1, len(_parts)):
        EXPECTED.setdefault("\\".join(_parts[:_n]), {})


def build(order: int = 1) -> hive.HiveBuilder:
    b = hive.HiveBuilder("ROOT", timestamp=TS)
    items = list(EXPECTED.items())[::order]
    for path, values in items:
        if path:
            b.ensure_key(path)
        for name, (typ, data) in list(values.items())[::order]:
            b.set_value(path, name, typ, data, owner="Test.Package")
    return b


@pytest.fixture(scope="module")
def hive_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hive") / "SOFTWARE"
    build().write(path)
    return path


# --- independent readers ----------------------------------------------------------------------

_REG_VALUE = re.compile(r'^(@|"((?:[^"\\]|\\.)*)")=(.*)$')


def parse_reg_export(text: str) -> dict[str, dict[str, tuple[int, bytes]]]:
    """Parse hivexregedit --export output (regedit v5 syntax) into {key: {name: (type, data)}}."""
    lines: list[str] = []
    for raw in text.splitlines():
        if lines and lines[-1].endswith("\\") and not lines[-1].startswith("["):
            lines[-1] = lines[-1][:-1] + raw.strip()
        else:
            lines.append(raw)
    out: dict[str, dict[str, tuple[int, bytes]]] = {}
    cur = None
    for line in lines:
        if not line or line.startswith("Windows Registry Editor"):
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = line[1:-1].lstrip("\\")
            assert cur not in out, f"key exported twice: {cur}"
            out[cur] = {}
            continue
        m = _REG_VALUE.match(line)
        assert m and cur is not None, f"unparsed export line: {line[:80]!r}"
        name = "" if m.group(1) == "@" else re.sub(r"\\(.)", r"\1", m.group(2))
        rhs = m.group(3)
        if rhs.startswith("dword:"):
            typ, data = 4, int(rhs[6:], 16).to_bytes(4, "little")
        elif rhs.startswith("hex:"):
            typ, data = 3, bytes.fromhex(rhs[4:].replace(",", ""))
        elif rhs.startswith("hex("):
            close = rhs.index(")")
            typ = int(rhs[4:close], 16)
            data = bytes.fromhex(rhs[close + 2 :].replace(",", ""))
        elif rhs.startswith('"'):
            typ, data = 1, sz(re.sub(r"\\(.)", r"\1", rhs[1:-1]))
        else:
            raise AssertionError(f"unknown value syntax: {rhs[:40]!r}")
        assert name not in out[cur], f"value exported twice: {cur}\\{name}"
        out[cur][name] = (typ, data)
    return out


def need(tool: str) -> str:
    return require_tool(tool)


def test_hivexregedit_round_trips_every_key_and_value(hive_file):
    tool = need("hivexregedit")
    env = dict(os.environ, PERL_UNICODE="SAO")  # UTF-8 output for every key, not only wide ones
    res = subprocess.run([tool, "--export", str(hive_file), "\\"], capture_output=True, env=env, check=True)
    exported = parse_reg_export(res.stdout.decode("utf-8"))
    assert exported == EXPECTED


def _hivexml_tree(path: Path) -> dict[str, dict[str, tuple[str, object]]]:
    res = subprocess.run([need("hivexml"), str(path)], capture_output=True, check=True)
    root = etree.fromstring(res.stdout)
    out: dict[str, dict[str, tuple[str, object]]] = {}

    def walk(node, path):
        vals = {}
        for v in node.findall("value"):
            name = v.get("key", "")
            if v.get("encoding") == "base64":
                data: object = base64.b64decode(v.get("value", ""))
            elif v.get("type") == "string-list":
                data = [s.text or "" for s in v.findall("string")]
            else:
                data = v.get("value")
            vals[name] = (v.get("type"), data)
        out[path] = vals
        for child in node.findall("node"):
            walk(child, f"{path}\\{child.get('name')}" if path else child.get("name"))

    walk(root.find("node"), "")
    return out


def _hivexml_expectation(typ: int, data: bytes) -> tuple[str, object]:
    if typ in (1, 2):
        text = data.decode("utf-16-le").split("\0", 1)[0]
        return ("string" if typ == 1 else "expand", text)
    if typ == 7:
        return ("string-list", data.decode("utf-16-le").split("\0")[:-1])
    if typ == 4:
        return ("int32", str(int.from_bytes(data, "little", signed=True)))
    if typ == 11:
        return ("int64", str(int.from_bytes(data, "little", signed=True)))
    if typ == 3:
        return ("binary", data)
    if typ == 0:
        return ("none", data)
    return (f"unknown ({typ})", data)


def test_hivexml_sees_the_same_tree(hive_file):
    tree = _hivexml_tree(hive_file)
    assert set(tree) == set(EXPECTED)
    for path, values in EXPECTED.items():
        got = tree[path]
        assert set(got) == set(values), path
        for name, (typ, data) in values.items():
            kind, value = got[name]
            want_kind, want_value = _hivexml_expectation(typ, data)
            if typ == 0x20001:
                assert value == data
                continue
            assert kind == want_kind, (path, name)
            assert value == want_value, (path, name)


def test_hivexsh_lists_values(hive_file):
    tool = need("hivexsh")
    script = "cd Types\nlsval\ncd \\Many\nls\n"
    res = subprocess.run([tool, str(hive_file)], input=script.encode(), capture_output=True, check=True)
    out = res.stdout.decode("utf-8", "replace")
    assert '"Dword"=dword:12345678' in out
    assert '"Qword"=hex(11):08,07,06,05,04,03,02,01' in out
    assert '"Sz"="hello, world"' in out
    assert '"@"="default value"' in out
    subkeys = [line for line in out.splitlines() if line.startswith("Sub")]
    assert subkeys == [f"Sub{i:05d}" for i in range(MANY)]


def test_regipy_reads_it_when_available(hive_file):
    registry = pytest.importorskip("regipy.registry")
    reg = registry.RegistryHive(str(hive_file))
    key = reg.get_key("\\Types")
    values = {v.name: v for v in key.iter_values()}
    assert values["(default)"].value == "default value"
    assert values["Dword"].value == 0x12345678
    assert values["Qword"].value == 0x0102030405060708
    assert values["BigBinary"].value == BIG
    assert values["Multi"].value == ["one", "two", "three"]
    assert reg.get_key("\\Many").header.subkey_count == MANY
    assert sum(1 for _ in reg.get_key("\\Many").iter_subkeys()) == MANY
    assert {v.name: v.value for v in reg.get_key("\\Ünïcødé\\日本語キー").iter_values()} == {"値": 7}


def test_own_reader_round_trips(hive_file):
    h = hive.read_hive(hive_file)
    assert h.as_dict() == EXPECTED
    assert h.root.name == "ROOT"
    assert h.file_name == "SOFTWARE"
    assert h.timestamp == FILETIME_2020 and not h.dirty and h.minor_version == 5
    assert all(k.timestamp == FILETIME_2020 for _p, k in h.walk())


# --- structure --------------------------------------------------------------------------------


def _cell(data: bytes, off: int) -> bytes:
    size = -int.from_bytes(data[0x1000 + off : 0x1004 + off], "little", signed=True)
    assert size > 0, f"cell 0x{off:x} not allocated"
    return data[0x1004 + off : 0x1000 + off + size]


def _nk(data: bytes, off: int):
    c = _cell(data, off)
    return hive.NK.parse(c[: hive.NK_SIZE]), c[hive.NK_SIZE :]


def _child(data: bytes, nk, name: str) -> int:
    idx = _cell(data, nk.subkey_list)
    leaves = [nk.subkey_list]
    if idx[:2] == b"ri":
        leaves = [
            int.from_bytes(idx[4 + 4 * i : 8 + 4 * i], "little")
            for i in range(int.from_bytes(idx[2:4], "little"))
        ]
    for leaf in leaves:
        lh = hive.HASH_LEAF.parse(_cell(data, leaf))
        for e in lh.entries:
            sub, raw = _nk(data, e.offset)
            if raw[: sub.name_length].decode("latin-1") == name:
                return e.offset
    raise KeyError(name)


def test_base_block_and_bins(hive_file):
    data = hive_file.read_bytes()
    base = hive.BASE_BLOCK.parse(data[:4096])
    assert base.primary_sequence == base.secondary_sequence == 1
    assert (base.major_version, base.minor_version, base.file_type, base.file_format) == (1, 5, 0, 1)
    assert base.hive_bins_size == len(data) - 4096 and base.hive_bins_size % 4096 == 0
    x = 0
    for i in range(0, 508, 4):
        x ^= int.from_bytes(data[i : i + 4], "little")
    assert base.checksum == x
    assert base.file_name.decode("utf-16-le").rstrip("\0") == "SOFTWARE"
    pos = 4096
    while pos < len(data):  # every bin: header, then cells that tile it exactly
        hb = hive.HBIN_HEADER.parse(data[pos : pos + 32])
        assert hb.offset == pos - 4096 and hb.size % 4096 == 0
        cell = pos + 32
        while cell < pos + hb.size:
            size = abs(int.from_bytes(data[cell : cell + 4], "little", signed=True))
            assert size >= 8 and size % 8 == 0
            cell += size
        assert cell == pos + hb.size
        pos += hb.size


def _lh_hash(name: str) -> int:
    h = 0
    for ch in name.upper():
        h = (h * 37 + ord(ch)) % 2**32
    return h


def test_key_nodes_counts_lengths_and_sorted_hash_lists(hive_file):
    data = hive_file.read_bytes()
    base = hive.BASE_BLOCK.parse(data[:4096])
    root, _ = _nk(data, base.root_cell)
    assert root.flags & hive.KEY_HIVE_ENTRY and root.flags & hive.KEY_NO_DELETE
    types_off = _child(data, root, "Types")
    types, _ = _nk(data, types_off)
    assert types.parent == base.root_cell
    assert types.value_count == len(EXPECTED["Types"]) and types.subkey_count == 0
    assert types.max_value_name == 2 * max(len(n) for n in EXPECTED["Types"])
    assert types.max_value_data == len(BIG)
    assert root.max_subkey_name == 2 * len("Ünïcødé")
    sk = _cell(data, types.security)
    assert sk[:2] == b"sk" and hive.SK.parse(sk).reference_count == len(EXPECTED)

    many, _ = _nk(data, _child(data, root, "Many"))
    assert many.subkey_count == MANY
    ri = _cell(data, many.subkey_list)
    assert ri[:2] == b"ri"  # > LEAF_MAX subkeys: index root over leaves
    names, total = [], 0
    for i in range(int.from_bytes(ri[2:4], "little")):
        lh = hive.HASH_LEAF.parse(_cell(data, int.from_bytes(ri[4 + 4 * i : 8 + 4 * i], "little")))
        for e in lh.entries:
            sub, raw = _nk(data, e.offset)
            name = raw[: sub.name_length].decode("ascii")
            assert e.hash == _lh_hash(name)
            names.append(name)
            total += 1
    assert total == MANY and names == sorted(names, key=lambda n: n.upper())


def test_fast_packers_match_the_construct_declarations():
    nk = dict(
        flags=0x20,
        timestamp=FILETIME_2020,
        access_bits=0,
        parent=1,
        subkey_count=2,
        volatile_subkey_count=0,
        subkey_list=3,
        volatile_subkey_list=hive.NIL,
        value_count=4,
        value_list=5,
        security=6,
        class_name=hive.NIL,
        max_subkey_name=7,
        max_subkey_class=0,
        max_value_name=8,
        max_value_data=9,
        work_var=0,
        name_length=10,
        class_length=0,
    )
    packed = hive.NK_P.pack(**nk)
    assert packed == hive.NK.build(nk) and len(packed) == hive.NK_SIZE == 76
    assert {k: v for k, v in hive.NK_P.unpack(packed).items() if k != "signature"} == nk
    vk = dict(name_length=3, data_size=0x80000004, data_offset=0x01020304, type=4, flags=1, spare=0)
    assert hive.VK_P.pack(**vk) == hive.VK.build(vk) and hive.VK_SIZE == 20


def test_lh_hash_and_upper_case_order():
    assert hive.name_hash("a") == hive.name_hash("A") == ord("A")
    assert hive.name_hash("ab") == (ord("A") * 37 + ord("B"))
    assert hive.name_hash("Sub01234") == _lh_hash("SUB01234") and hive.name_hash("ä") == ord("Ä")
    b = hive.HiveBuilder(timestamp=TS)
    for name in ("b", "_x", "A", "ä", "Z", "a1"):
        b.ensure_key(name)
    h = hive.parse_hive(b.to_bytes())
    # Windows compares upper-cased UTF-16 units: 'A' < 'A1' < 'B' < 'Z' < '_X' < 'Ä'
    assert [k.name for k in h.root.subkeys] == ["A", "a1", "b", "Z", "_x", "ä"]


def test_big_data_uses_db_cells_only_above_16344_bytes(hive_file):
    data = hive_file.read_bytes()
    base = hive.BASE_BLOCK.parse(data[:4096])
    root, _ = _nk(data, base.root_cell)
    types, _ = _nk(data, _child(data, root, "Types"))
    vl = _cell(data, types.value_list)
    seen = {}
    for i in range(types.value_count):
        c = _cell(data, int.from_bytes(vl[4 * i : 4 * i + 4], "little"))
        vk = hive.VK.parse(c[: hive.VK_SIZE])
        name = c[hive.VK_SIZE : hive.VK_SIZE + vk.name_length].decode("latin-1")
        if vk.data_size & 0x80000000:
            seen[name] = "inline"
        else:
            seen[name] = _cell(data, vk.data_offset)[:2]
    assert seen["Dword"] == seen["BinaryInline"] == seen["None"] == "inline"
    assert seen["Exactly16344"] == b"\x5a\x5a"
    assert seen["Just16345"] == seen["BigBinary"] == b"db"


# --- semantics --------------------------------------------------------------------------------


def test_deterministic_and_independent_of_insertion_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build(1).write(a, file_name="X")
    build(-1).write(b, file_name="X")
    assert a.read_bytes() == b.read_bytes()
    assert build(1).to_bytes("X") == a.read_bytes()


def test_timestamp_changes_bytes():
    one = hive.HiveBuilder(timestamp=TS)
    two = hive.HiveBuilder(timestamp=TS + 1)
    assert one.to_bytes() != two.to_bytes()
    assert hive.parse_hive(two.to_bytes()).root.timestamp == FILETIME_2020 + 10_000_000


def test_conflicting_value_names_both_owners():
    b = hive.HiveBuilder(timestamp=TS)
    b.set_value("Software\\Contoso", "Mode", 4, (1).to_bytes(4, "little"), owner="Contoso.A")
    b.set_value(
        "software\\CONTOSO", "mode", 4, (1).to_bytes(4, "little"), owner="Contoso.B"
    )  # identical: fine
    with pytest.raises(FFUError) as err:
        b.set_value("SOFTWARE\\contoso", "MODE", 4, (2).to_bytes(4, "little"), owner="Contoso.C")
    msg = str(err.value)
    assert "Contoso.A" in msg and "Contoso.C" in msg and "Mode" in msg
    with pytest.raises(FFUError, match="REG_DWORD.*REG_BINARY"):
        b.set_value("Software\\Contoso", "Mode", 3, (1).to_bytes(4, "little"), owner="Contoso.D")
    with pytest.raises(FFUError, match="set twice by Contoso.A"):
        b.set_value("Software\\Contoso", "Mode", 4, (3).to_bytes(4, "little"), owner="Contoso.A")


def test_first_spelling_wins_and_lookup_is_case_insensitive():
    b = hive.HiveBuilder(timestamp=TS)
    b.ensure_key("Software\\Contoso")
    b.set_value("SOFTWARE\\contoso\\Sub", "Value", 1, sz("x"))
    b.set_value("software\\CONTOSO\\SUB", "VALUE", 1, sz("x"))
    h = hive.parse_hive(b.to_bytes())
    assert list(h.as_dict()) == ["", "Software", "Software\\Contoso", "Software\\Contoso\\Sub"]
    assert h.as_dict()["Software\\Contoso\\Sub"] == {"Value": (1, sz("x"))}
    assert h.root.subkey("software\\contoso\\sub").value("value").data == sz("x")


@pytest.mark.parametrize("path", ["A\\\\B", "A\\" + "x" * 256, "A\\B\0C"])
def test_bad_key_names(path):
    with pytest.raises(FFUError):
        hive.HiveBuilder(timestamp=TS).ensure_key(path)


def test_too_deep_and_too_long_names():
    b = hive.HiveBuilder(timestamp=TS)
    with pytest.raises(FFUError, match="deeper"):
        b.ensure_key("\\".join(["k"] * 600))
    with pytest.raises(FFUError, match="longer"):
        b.set_value("K", "v" * 16384, 1, b"")
    b.set_value("K", "v" * 16383, 1, b"")  # the limit itself is fine


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        (r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\X", ("SYSTEM", r"ControlSet001\Services\X")),
        (r"hkey_local_machine\system\CurrentControlSet\Control", ("SYSTEM", r"ControlSet001\Control")),
        (r"HKEY_LOCAL_MACHINE\Software\Contoso\X", ("SOFTWARE", r"Contoso\X")),
        (r"HKLM\SOFTWARE", ("SOFTWARE", "")),
        (r"HKEY_LOCAL_MACHINE\Software\Classes\CLSID", ("SOFTWARE", r"Classes\CLSID")),
        (r"HKEY_CLASSES_ROOT\.txt", ("SOFTWARE", r"Classes\.txt")),
        (r"HKEY_USERS\.Default\Control Panel", ("DEFAULT", "Control Panel")),
        (r"HKEY_CURRENT_USER\Software\X", ("DEFAULT", r"Software\X")),
        (r"HKEY_LOCAL_MACHINE\SAM\SAM", ("SAM", "SAM")),
        (r"HKEY_LOCAL_MACHINE\Security\Policy", ("SECURITY", "Policy")),
        (r"HKEY_LOCAL_MACHINE\Drivers\DriverDatabase", ("DRIVERS", "DriverDatabase")),
    ],
)
def test_hive_for_key(full, expected):
    assert hive.hive_for_key(full) == expected


@pytest.mark.parametrize(
    ("full", "words"),
    [
        (r"HKEY_LOCAL_MACHINE\HARDWARE\DESCRIPTION", "volatile"),
        (r"HKEY_LOCAL_MACHINE\BCD\Objects", "bcdStore"),
        (r"HKEY_USERS\S-1-5-21-1\Software", ".DEFAULT"),
        (r"HKEY_LOCAL_MACHINE\Nope\X", "unknown hive"),
        (r"HKEY_CURRENT_CONFIG\System", "boot"),
        (r"HKEY_FOO\X", "unknown root"),
        (r"HKEY_LOCAL_MACHINE", "names no hive"),
        (r"HKEY_LOCAL_MACHINE\SOFTWARE\\X", "empty component"),
    ],
)
def test_hive_for_key_refusals(full, words):
    with pytest.raises(FFUError, match=re.escape(words)):
        hive.hive_for_key(full)


def test_hive_for_key_bcd_when_asked():
    assert hive.hive_for_key(r"HKEY_LOCAL_MACHINE\BCD\Objects", allow_bcd=True) == ("BCD", "Objects")


def test_default_security_descriptor_layout():
    sd = hive.default_security_descriptor()
    head = hive.SD_HEADER.parse(sd)
    assert head.revision == 1 and head.control == 0x8004 and head.sacl == 0
    acl = hive.ACL_HEADER.parse(sd[head.dacl :])
    assert acl.revision == 2 and acl.ace_count == 3 and head.dacl + acl.size <= len(sd)
    owner = hive.SID.parse(sd[head.owner :])
    assert (owner.authority, list(owner.sub_authorities)) == (5, [32, 544])
    pos, seen = head.dacl + 8, []
    for _ in range(3):
        ace = hive.ACE.parse(sd[pos:])
        seen.append((list(ace.sid.sub_authorities), ace.mask))
        pos += ace.size
    assert seen == [([18], 0xF003F), ([32, 544], 0xF003F), ([32, 545], 0x20019)]


# --- hostile input ----------------------------------------------------------------------------


def small_hive() -> bytes:
    b = hive.HiveBuilder(timestamp=TS)
    b.set_value("A", "v", 1, sz("value"))
    b.set_value("A", "big", 3, bytes(20000))
    b.ensure_key("B\\C")
    return b.to_bytes("small")


def _patch(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value) :]


def _fix_checksum(data: bytes) -> bytes:
    return _patch(data, 0x1FC, hive.checksum(data[:4096]).to_bytes(4, "little"))


def _root_nk_pos(data: bytes) -> int:
    return 0x1004 + hive.BASE_BLOCK.parse(data[:4096]).root_cell


def _corruptions() -> dict[str, bytes]:
    good = small_hive()
    root = _root_nk_pos(good)
    nk = hive.NK.parse(good[root : root + hive.NK_SIZE])
    a_off = hive.HASH_LEAF.parse(_cell(good, nk.subkey_list)).entries[0].offset
    a_pos = 0x1004 + a_off
    a_nk = hive.NK.parse(good[a_pos : a_pos + hive.NK_SIZE])
    loop = _patch(good, a_pos + 0x14, (2).to_bytes(4, "little"))  # A claims subkeys …
    loop = _patch(loop, a_pos + 0x1C, nk.subkey_list.to_bytes(4, "little"))  # … whose index lists A
    return {
        "empty": b"",
        "truncated header": good[:100],
        "truncated bins": good[: 4096 + 200],
        "cut in half": good[: len(good) // 2],
        "bad signature": _patch(good, 0, b"regx"),
        "bad checksum": _patch(good, 0x1FC, b"\0\0\0\0"),
        "major version": _fix_checksum(_patch(good, 0x14, (2).to_bytes(4, "little"))),
        "root offset out of range": _fix_checksum(_patch(good, 0x24, (0x7FFFFFF0).to_bytes(4, "little"))),
        "root offset into header": _fix_checksum(_patch(good, 0x24, (4).to_bytes(4, "little"))),
        "bins size too big": _fix_checksum(_patch(good, 0x28, (0x100000).to_bytes(4, "little"))),
        "bins size zero": _fix_checksum(_patch(good, 0x28, bytes(4))),
        "hbin signature": _patch(good, 0x1000, b"hbix"),
        "hbin size": _patch(good, 0x1008, (0x1234).to_bytes(4, "little")),
        "root cell size huge": _patch(good, root - 4, (-0x7FFFFFF0).to_bytes(4, "little", signed=True)),
        "root cell free": _patch(good, root - 4, (0x60).to_bytes(4, "little", signed=True)),
        "huge value count": _patch(good, a_pos + 0x24, (0xFFFFFFFF).to_bytes(4, "little")),
        "huge subkey count": _patch(good, root + 0x14, (0xFFFFFFFF).to_bytes(4, "little")),
        "subkey list out of range": _patch(good, root + 0x1C, (0x7FFFFFF8).to_bytes(4, "little")),
        "value list out of range": _patch(good, a_pos + 0x28, (0xFFFFFFF0).to_bytes(4, "little")),
        "name length huge": _patch(good, a_pos + 0x48, (0xFFFF).to_bytes(2, "little")),
        "value list points at key": _patch(good, a_pos + 0x28, a_off.to_bytes(4, "little")),
        "subkey loop": loop,
        "A has values list but not": _patch(good, a_pos + 0x24, (a_nk.value_count + 5).to_bytes(4, "little")),
    }


@pytest.mark.parametrize("case", sorted(_corruptions()))
def test_reader_rejects_hostile_input(case, tmp_path):
    path = tmp_path / "hive"
    path.write_bytes(_corruptions()[case])
    with pytest.raises(FFUError) as err:
        hive.read_hive(path)
    assert err.value.file == str(path)
    assert "hive" in str(err.value)


def test_reader_rejects_huge_big_data_claims():
    good = small_hive()
    h = hive.parse_hive(good)
    assert h.as_dict()["A"]["big"] == (3, bytes(20000))
    idx = good.index(b"db\x02\x00")  # the db cell: 2 segments
    bad = _patch(good, idx + 2, (0xFFFF).to_bytes(2, "little"))
    with pytest.raises(FFUError, match="segment"):
        hive.parse_hive(bad)


def test_read_missing_file(tmp_path):
    with pytest.raises(FFUError, match="cannot read"):
        hive.read_hive(tmp_path / "nope")


_SMALL = small_hive()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(4096, len(_SMALL)),
)
def test_reader_never_crashes_on_mutations(flips, cut):
    data = bytearray(_SMALL[:cut])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    try:
        hive.parse_hive(bytes(data), "fuzz")
    except FFUError:
        pass


# --- error kinds ------------------------------------------------------------------------------


def test_damaged_hives_are_format_errors(tmp_path):
    corruptions = _corruptions()
    for case in ("truncated header", "bad checksum", "subkey loop", "hbin signature"):
        with pytest.raises(FormatError):
            hive.parse_hive(corruptions[case])
    (tmp_path / "hive").write_bytes(_SMALL)
    with pytest.raises(FormatError, match="larger than"):
        hive.read_hive(tmp_path / "hive", max_size=len(_SMALL) - 1)


def test_bad_keys_and_values_are_config_errors():
    for full in ("HKEY_CURRENT_CONFIG\\X", "HKEY_LOCAL_MACHINE\\HARDWARE\\X", "HKLM\\NOPE\\X", "X\\Y"):
        with pytest.raises(ConfigError):
            hive.hive_for_key(full)
    b = hive.HiveBuilder(timestamp=0)
    with pytest.raises(ConfigError, match="empty component"):
        b.ensure_key("A\\\\B")
    b.set_value("A", "v", 4, b"\1\0\0\0", owner="pkg1")
    with pytest.raises(ConfigError, match="set by both"):
        b.set_value("A", "V", 4, b"\2\0\0\0", owner="pkg2")
    with pytest.raises(ConfigError, match="before 1601"):
        hive.HiveBuilder(timestamp=-(10**12))


@pytest.mark.parametrize(
    "type_name, text, legacy",
    [
        ("REG_DWORD", "0xZZ", False),
        ("REG_QWORD", "0x1" + "0" * 16, False),
        ("REG_BINARY", "ABC", False),
        ("REG_BINARY", "1,2,XYZ", True),
        ("REG_HEX", "hex(7):00", False),
        ("REG_HEX", "7:00", True),
        ("REG_WORD", "1", False),
    ],
)
def test_bad_authored_values_are_config_errors(type_name, text, legacy):
    with pytest.raises(ConfigError):
        regvalue.decode(type_name, text, legacy=legacy)
