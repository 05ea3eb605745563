"""CSI registry rules and hives as Windows has them (issue 15, steps 2 and 3).

Each rule is checked through the whole path a real package takes: wm.xml → CAB (component
manifest) → install → hive file, and the hive is read back by our reader and, where installed,
by hivex (``hivexregedit --export``) and regipy as independent readers.
"""

import subprocess
import uuid

import pytest

from ffuforge.errors import ConfigError, FFUError
from ffuforge.formats import hive
from ffuforge.image import install, partition
from ffuforge.package.build import build_variant

from helpers import plan, wm
from oracles import require_tool

SVCHOST = "$(hklm.svchost)"
EPOCH = 1577836800
ROOT_NAME = "CsiTool-CreateHive-{00000000-0000-0000-0000-000000000000}"


def _cab(tmp_path, body, name):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    v = plan(wm(d, body, name=name))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def _reg(key, values):
    return f'<regKeys><regKey keyName="{key}">{values}</regKey></regKeys>'


def _multi(*items):
    return "".join(f"{i}\0" for i in items).encode("utf-16-le") + b"\0\0"


def _stage(tmp_path, cabs, where="stage"):
    st = partition.stage("MainOS", cabs, tmp_path / where, epoch=EPOCH)
    return st, st.root / "Windows/System32/config"


def _svchost_packages(tmp_path):
    base = _cab(
        tmp_path,
        _reg(SVCHOST, '<regValue name="netsvcs" type="REG_MULTI_SZ" value="Alpha;Beta"/>'),
        "Base",
    )
    one = _cab(
        tmp_path,
        _reg(
            SVCHOST,
            '<regValue name="netsvcs" type="REG_MULTI_SZ" value="Gamma;beta" operationHint="append"/>',
        ),
        "One",
    )
    two = _cab(
        tmp_path,
        _reg(SVCHOST, '<regValue name="netsvcs" type="REG_MULTI_SZ" value="Delta" operationHint="append"/>'),
        "Two",
    )
    return base, one, two


def test_two_packages_append_to_one_multi_string(tmp_path):
    base, one, two = _svchost_packages(tmp_path)
    st, config = _stage(tmp_path, [base, one, two])
    # Existing items first, then each new one once; "beta" is already there (case-insensitive).
    want = _multi("Alpha", "Beta", "Gamma", "Delta")
    software = hive.read_hive(config / "SOFTWARE").as_dict()
    assert software[r"Microsoft\Windows NT\CurrentVersion\SvcHost"]["netsvcs"] == (7, want)
    row = next(r for r in st.manifest()["registry"] if r["name"] == "netsvcs")
    assert row["package"] == "Contoso-Test-Base" and row["appended_by"] == [
        "Contoso-Test-One",
        "Contoso-Test-Two",
    ]
    # The package that sets the value may come after the ones that append to it.
    _, config2 = _stage(tmp_path, [two, one, base], "stage2")
    assert hive.read_hive(config2 / "SOFTWARE").as_dict()[r"Microsoft\Windows NT\CurrentVersion\SvcHost"][
        "netsvcs"
    ] == (7, _multi("Alpha", "Beta", "Delta", "Gamma"))


def test_the_manifest_carries_the_append_hint(tmp_path):
    _, one, _ = _svchost_packages(tmp_path)
    from ffuforge.formats.cab import CabReader

    with CabReader(one) as cab:
        text = b"".join(cab.read(m) for m in cab.members if m.name.endswith(".manifest")).decode()
    assert 'operationHint="append"' in text and 'value="&quot;Gamma&quot;,&quot;beta&quot;"' in text


def test_append_needs_a_multi_string(tmp_path):
    with pytest.raises(
        ConfigError, match=r"Pkg\.wm\.xml:\d+: operationHint='append' needs type REG_MULTI_SZ"
    ):
        _cab(
            tmp_path,
            _reg(SVCHOST, '<regValue name="x" type="REG_SZ" value="a" operationHint="append"/>'),
            "Pkg",
        )
    with pytest.raises(ConfigError, match="only hint is 'append'"):
        _cab(
            tmp_path,
            _reg(SVCHOST, '<regValue name="x" type="REG_MULTI_SZ" value="a" operationHint="merge"/>'),
            "Pkg",
        )
    with pytest.raises(ConfigError, match="unknown attribute hint= on <regValue>"):
        _cab(tmp_path, _reg(SVCHOST, '<regValue name="x" type="REG_SZ" value="a" hint="x"/>'), "Pkg")
    sz = _cab(tmp_path, _reg(SVCHOST, '<regValue name="netsvcs" type="REG_SZ" value="a"/>'), "Sz")
    _, one, _ = _svchost_packages(tmp_path)
    with pytest.raises(
        FFUError,
        match="Contoso-Test-One appends REG_MULTI_SZ items to it, but Contoso-Test-Sz sets it as REG_SZ",
    ):
        _stage(tmp_path, [sz, one])


def test_semicolon_inside_a_multi_string_item(tmp_path):
    cab = _cab(
        tmp_path,
        _reg(
            "$(hklm.software)\\Contoso",
            '<regValue name="q" type="REG_MULTI_SZ" value=\'"a;b","say ""hi"", c"\'/>'
            '<regValue name="plain" type="REG_MULTI_SZ" value="x;y"/>',
        ),
        "Semi",
    )
    _, config = _stage(tmp_path, [cab])
    values = hive.read_hive(config / "SOFTWARE").as_dict()["Contoso"]
    assert values["q"] == (7, _multi("a;b", 'say "hi", c'))
    assert values["plain"] == (7, _multi("x", "y"))
    require_tool("hivexregedit")
    out = subprocess.run(
        ["hivexregedit", "--export", str(config / "SOFTWARE"), "\\Contoso"],
        capture_output=True,
        text=True,
    ).stdout
    assert '"q"=hex(7):' + ",".join(f"{b:02x}" for b in _multi("a;b", 'say "hi", c')) in out.replace(
        "\\\n  ", ""
    )


@pytest.mark.parametrize("value", ["a;;b", "a;b;", ";a", '"a","","b"'])
def test_empty_multi_string_item_is_refused(tmp_path, value):
    body = _reg("$(hklm.software)\\Contoso", f'<regValue name="m" type="REG_MULTI_SZ" value=\'{value}\'/>')
    with pytest.raises(
        ConfigError, match=r"Pkg\.wm\.xml:\d+: REG_MULTI_SZ item \d of \d is empty; Windows ends the list"
    ):
        plan(wm(tmp_path, body))


def test_select_and_control_set_001(tmp_path):
    cab = _cab(
        tmp_path,
        '<regKeys><regKey keyName="$(hklm.currentcontrolset)\\Services\\Foo">'
        '<regValue name="Start" type="REG_DWORD" value="0x3"/></regKey>'
        '<regKey keyName="$(hklm.system)\\CurrentControlSet\\Control\\Foo"><regValue name="x" type="REG_DWORD" value="1"/>'
        "</regKey></regKeys>",
        "Ccs",
    )
    _, config = _stage(tmp_path, [cab])
    system = hive.read_hive(config / "SYSTEM")
    tree = system.as_dict()
    assert system.root.name == ROOT_NAME
    assert tree["Select"] == {
        n: (4, v.to_bytes(4, "little"))
        for n, v in (("Current", 1), ("Default", 1), ("Failed", 0), ("LastKnownGood", 1))
    }
    assert tree[r"ControlSet001\Services\Foo"]["Start"] == (4, (3).to_bytes(4, "little"))
    assert tree[r"ControlSet001\Control\Foo"]["x"] == (4, (1).to_bytes(4, "little"))
    assert not any(k.lower().startswith("currentcontrolset") for k in tree)
    require_tool("hivexregedit")
    out = subprocess.run(
        ["hivexregedit", "--export", str(config / "SYSTEM"), "\\"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        '[\\Select]\n"Current"=dword:00000001\n"Default"=dword:00000001\n"Failed"=dword:00000000\n"LastKnownGood"=dword:00000001'
        in out
    )
    assert "[\\ControlSet001\\Services\\Foo]" in out and "CurrentControlSet" not in out
    regipy = pytest.importorskip("regipy.registry")
    reg = regipy.RegistryHive(str(config / "SYSTEM"))
    assert {v.name: v.value for v in reg.get_key("\\Select").iter_values()} == {
        "Current": 1,
        "Default": 1,
        "Failed": 0,
        "LastKnownGood": 1,
    }
    assert reg.get_key("\\ControlSet001\\Services\\Foo").get_value("Start") == 3


def test_mainos_always_has_a_system_hive_and_select_is_ours(tmp_path):
    d = tmp_path / "F"
    d.mkdir()
    (d / "a.txt").write_text("a\n")
    files_only = tmp_path / "f.cab"
    build_variant(plan(wm(d, '<files><file source=".\\a.txt"/></files>'))[0], files_only)
    st, config = _stage(tmp_path, [files_only])
    assert sorted(p.name for p in config.iterdir()) == ["SYSTEM"]
    assert "Select" in hive.read_hive(config / "SYSTEM").as_dict()
    sel = _cab(
        tmp_path,
        _reg("$(hklm.system)\\Select", '<regValue name="Current" type="REG_DWORD" value="0x2"/>'),
        "Sel",
    )
    with pytest.raises(ConfigError, match=r"Select \(from Contoso-Test-Sel\) is written by ffuforge"):
        _stage(tmp_path, [sel], "sel")


def test_runtime_and_build_variables_are_expanded_as_csi_does(tmp_path):
    cab = _cab(
        tmp_path,
        _reg(
            "$(hklm.software)\\Contoso",
            '<regValue name="drv" type="REG_EXPAND_SZ" value="$(runtime.system32)\\drivers\\foo.sys"/>'
            '<regValue name="data" type="REG_SZ" value="$(runtime.programData)\\x"/>'
            '<regValue name="list" type="REG_MULTI_SZ" value="$(runtime.windows)\\a;$(runtime.bootDrive)\\b"/>'
            '<regValue name="arch" type="REG_SZ" value="$(build.arch)-$(build.WindowsPublicKeyToken)"/>',
        ),
        "Vars",
    )
    _, config = _stage(tmp_path, [cab])
    values = hive.read_hive(config / "SOFTWARE").as_dict()["Contoso"]
    assert values["drv"] == (2, "%SystemRoot%\\System32\\drivers\\foo.sys\0".encode("utf-16-le"))
    assert values["data"] == (1, "%ProgramData%\\x\0".encode("utf-16-le"))
    assert values["list"] == (7, _multi("%SystemRoot%\\a", "%SystemDrive%\\b"))
    assert values["arch"] == (1, "arm64-31bf3856ad364e35\0".encode("utf-16-le"))
    host = _cab(
        tmp_path,
        _reg("$(hklm.software)\\C", '<regValue name="p" type="REG_SZ" value="$(build.nttree)\\x"/>'),
        "Host",
    )
    with pytest.raises(FFUError, match=r"\$\(build\.nttree\) is a path on the build host"):
        _stage(tmp_path, [host], "host")


def test_service_layouts(tmp_path):
    cab = _cab(
        tmp_path,
        '<service name="Svc" start="auto" type="win32OwnProcess" failureActionsFlag="true" '
        'imagePath="$(runtime.system32)\\svc.exe">'
        '<failureActions resetPeriod="86400" command="c.exe" rebootMessage="bye"><actions>'
        '<action type="restartService" delay="1000"/><action type="runCommand" delay="5"/></actions></failureActions>'
        '<serviceTrigger action="start" type="DeviceInterfaceArrival" subtype="{53f56307-b6bf-11d0-94f2-00a0c91efb8b}">'
        '<triggerData type="string" value="USBSTOR\\GenDisk;USB\\Class_08"/></serviceTrigger>'
        '<serviceTrigger action="stop" type="DomainJoin" subtype="DOMAIN_LEAVE_GUID"/>'
        '<serviceTrigger action="start" type="Custom" subtype="{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}">'
        '<triggerData type="level" value="4"/><triggerData type="keywordAny" value="0x8000000000000001"/>'
        '<triggerData type="binary" value="0102"/></serviceTrigger>'
        "</service>",
        "Svc",
    )
    _, config = _stage(tmp_path, [cab])
    tree = hive.read_hive(config / "SYSTEM").as_dict()
    svc = tree[r"ControlSet001\Services\Svc"]
    dw = lambda n: (4, n.to_bytes(4, "little"))  # noqa: E731
    assert svc["PreshutdownTimeout"] == dw(20000) and svc["FailureActionsOnNonCrashFailures"] == dw(1)
    # pkggen's layout: reset, "reboot message set", "command set", count, 20, then (type, delay) pairs.
    assert svc["FailureActions"] == (
        3,
        b"".join(n.to_bytes(4, "little") for n in (86400, 1, 1, 2, 20, 1, 1000, 3, 5)),
    )
    assert svc["FailureCommand"] == (1, "c.exe\0".encode("utf-16-le"))
    t0 = tree[r"ControlSet001\Services\Svc\TriggerInfo\0"]
    assert t0["Type"] == dw(1) and t0["Action"] == dw(1)
    assert t0["GUID"] == (3, uuid.UUID("53f56307-b6bf-11d0-94f2-00a0c91efb8b").bytes_le)
    assert t0["GUID"][1][:4] == bytes.fromhex("0763f553")  # first field little-endian, as in a hive
    assert t0["Data0"] == (7, _multi("USBSTOR\\GenDisk", "USB\\Class_08")) and t0["DataType0"] == dw(2)
    t1 = tree[r"ControlSet001\Services\Svc\TriggerInfo\1"]
    assert t1["Type"] == dw(3) and t1["Action"] == dw(2)
    assert t1["GUID"] == (3, uuid.UUID("ddaf516e-58c2-4866-9574-c3b615d42ea1").bytes_le)
    t2 = tree[r"ControlSet001\Services\Svc\TriggerInfo\2"]
    assert t2["Type"] == dw(20)
    assert t2["Data0"] == (3, b"\x04") and t2["DataType0"] == dw(3)
    assert t2["Data1"] == (3, (0x8000000000000001).to_bytes(8, "little")) and t2["DataType1"] == dw(4)
    assert t2["Data2"] == (3, b"\x01\x02") and t2["DataType2"] == dw(1)


def test_bad_triggers_name_the_line(tmp_path):
    for trigger, message in (
        ('<serviceTrigger action="start" type="Sometimes" subtype="DOMAIN_JOIN_GUID"/>', "type='Sometimes'"),
        (
            '<serviceTrigger action="start" type="DomainJoin" subtype="NOT_A_GUID"/>',
            "subtype='NOT_A_GUID' is not a GUID",
        ),
        ('<serviceTrigger action="pause" type="DomainJoin" subtype="DOMAIN_JOIN_GUID"/>', "action='pause'"),
        (
            '<serviceTrigger action="start" type="Custom" subtype="DOMAIN_JOIN_GUID"><triggerData type="float" value="1"/></serviceTrigger>',
            "triggerData type='float'",
        ),
    ):
        body = f'<service name="S" start="demand" type="win32OwnProcess">{trigger}</service>'
        with pytest.raises(ConfigError, match=r"Pkg\.wm\.xml:\d+: .*" + message.replace("(", r"\(")):
            plan(wm(tmp_path, body))


def test_installer_reads_vendor_manifests_with_quoted_items(tmp_path):
    """A Microsoft-shaped manifest value: quoted items with ';' and an append hint."""
    from lxml import etree

    from ffuforge.image import registry

    el = etree.fromstring(
        '<registryValue xmlns="urn:schemas-microsoft-com:asm.v3" name="g" valueType="REG_MULTI_SZ" '
        'value="&quot;a;b&quot;,&quot;c&quot;" operationHint="append"/>'
    )
    data, append = registry.manifest_value(el, registry.build_values("arm64", "1.0.0.0"), "x.manifest")
    assert append and data.data == _multi("a;b", "c")
    bad = etree.fromstring(
        '<registryValue xmlns="urn:schemas-microsoft-com:asm.v3" name="g" valueType="REG_MULTI_SZ" '
        'value="&quot;a&quot;,&quot;&quot;"/>'
    )
    with pytest.raises(FFUError, match="x.manifest: REG_MULTI_SZ item 2 of 2 is empty"):
        registry.manifest_value(bad, {}, "x.manifest")
    assert install.SERVICES_KEY.endswith(r"ControlSet001\Services")
