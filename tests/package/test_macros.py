"""Macro expansion bounds and Windows-invalid device names (ffuforge.package.macros)."""

from __future__ import annotations

import re

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats.cab.structs import name_problem as cab_name_problem
from ffuforge.package import macros


def _chain(levels: int, leaf: str, per: int = 2) -> macros.Macros:
    m = macros.Macros(file="P.wm.xml")
    for i in range(levels):
        m.define(f"m{i}", f"$(m{i + 1})" * per, 10 + i)
    m.define(f"m{levels}", leaf, 10 + levels)
    return m


def test_forty_doubling_macros_stop_at_the_depth_bound():
    with pytest.raises(ConfigError, match=r"^P\.wm\.xml:5: macro \$\(m0\) nests more than 32 macros deep"):
        _chain(40, "x").expand("$(m0)", 5)


def test_doubling_macros_stop_at_the_size_bound_naming_the_macro():
    with pytest.raises(ConfigError) as exc:
        _chain(24, "xxxxxxxx").expand("a $(m0) b", 5)
    assert re.match(
        r"^P\.wm\.xml:5: macro \$\(m0\) \(defined on line 10\) expands to more than 1048576 characters "
        r"\(\$\(m0\) -> \$\(m1\) -> \$\(m2\) -> … -> ",
        str(exc.value),
    ), str(exc.value)


def test_the_bounds_are_inclusive():
    assert len(_chain(20, "x").expand("$(m0)")) == macros.MAX_EXPANDED == 1 << 20
    with pytest.raises(ConfigError, match="expands to more than"):
        _chain(20, "xx").expand("$(m0)")
    assert _chain(31, "x", per=1).expand("$(m0)") == "x"  # 32 macros, each using the next
    with pytest.raises(ConfigError, match="nests more than 32 macros deep"):
        _chain(32, "x", per=1).expand("$(m0)")


def test_a_macro_is_expanded_once_per_context():
    """Chains that expand to nothing cost one expansion per macro, not 2^levels."""
    assert _chain(31, "").expand("$(m0)$(m0)") == ""
    m = _chain(2, "$(runtime.system32)")
    assert m.expand("$(m0)", device=True) == "\\Windows\\System32" * 4
    assert m.expand("$(m0)") == "$(runtime.system32)" * 4  # the memo keeps device/csi apart
    m.define("late", "y")
    assert m.expand("$(late)") == "y"


def test_the_budget_covers_every_reference_in_one_value():
    m = _chain(17, "x")  # 128 KiB each
    m.expand("$(m0)" * 8)
    with pytest.raises(ConfigError, match=r"the value expands to more than 1048576|\$\(m0\)"):
        m.expand("$(m0)" * 9)


# --------------------------------------------------------------------- Windows-invalid names

RESERVED = [
    *("CON", "con", "Prn", "AUX", "nul", "NUL.txt", "nul.tar.gz", "nul .txt", "Con .x"),
    *(f"{d}{n}" for d in ("COM", "com", "LPT", "Lpt") for n in "123456789"),
    *("COM1.log", "lpt9.dat"),
    *("COM\u00b9", "COM\u00b2", "com\u00b3.txt", "LPT\u00b9.x", "lpt\u00b2", "LPT\u00b3"),
    *("CONIN$", "conout$.txt"),
]
ALLOWED = [
    "COM0",
    "LPT0",
    "COM10",
    "LPT",
    "CONSOLE",
    "NULL.txt",
    "aux_",
    "con-x",
    "xcon",
    ".nul",
    "COM\u2074",
]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_device_names(name):
    assert "reserved Windows device name" in macros.name_problem(name)
    if name.isascii() and "$" not in name:  # the CAB writer's own, separately written check agrees
        assert "reserved device name" in (cab_name_problem(name) or "")


@pytest.mark.parametrize("name", ALLOWED)
def test_names_that_only_look_reserved(name):
    assert macros.name_problem(name) is None
    if name.isascii():
        assert cab_name_problem(name) is None


@pytest.mark.parametrize("name", ["a.", "a ", "a. ", "..."])
def test_trailing_dot_or_space(name):
    assert "ends in a dot or a space" in macros.name_problem(name)


@pytest.mark.parametrize("char", [*'<>:"|?*', "\t", "\x01", "\x1f"])
def test_forbidden_characters(char):
    assert "does not allow" in macros.name_problem(f"a{char}b")
    assert re.search("forbidden character|drive letter", cab_name_problem(f"a{char}b"))


def test_destination_segments_and_directories_are_checked():
    with pytest.raises(ConfigError, match=r"^P:7: destinationDir .* has the path segment 'COM1'"):
        macros.split_destination("$(runtime.system32)\\COM1\\x", "P", 7)
    with pytest.raises(ConfigError, match=r"^P:7: directory path .* segment 'Logs\. '"):
        macros.split_destination("$(runtime.programData)\\Logs. \\x", "P", 7, "directory path")
    assert macros.split_destination("$(runtime.system32)\\a\\COM10\\", "P", 7) == (
        "runtime.system32",
        "a\\COM10",
    )


def test_file_names():
    macros.check_file_name("a.txt", "P", 3)
    for bad in ("", ".", "..", "a\\b", "a/b", "nul.txt", "a."):
        with pytest.raises(ConfigError, match=r"^P:3: file name .* is not a valid device file name"):
            macros.check_file_name(bad, "P", 3)
