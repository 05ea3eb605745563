"""The settings table: conversion, validation, release policy, help, and the README kept in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.scons_tool import settings

ROOT = Path(__file__).resolve().parents[2]


def _apply(env: dict | None = None, args: dict | None = None, monkeypatch=None) -> dict:
    values = settings.defaults()
    values.update(env or {})
    return settings.apply(values.__getitem__, args or {})


def test_defaults_are_valid_and_fresh():
    a, b = settings.defaults(), settings.defaults()
    assert a["FFU_LANGUAGES"] is not b["FFU_LANGUAGES"] and a["FFU_VARIABLES"] is not b["FFU_VARIABLES"]
    for s in settings.SETTINGS:
        settings.check(s, a[s.name])
    assert len(settings.BY_NAME) == len(settings.SETTINGS)  # no name declared twice
    assert len(settings.BY_ARG) == sum(1 for s in settings.SETTINGS if s.arg)


def test_command_line_wins_and_is_converted(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    v = _apply(
        {"FFU_CPU": "arm64", "FFU_LANGUAGES": ["en-us"]},
        {"CPU": "amd64", "LANGUAGES": "de-de;fr-fr", "RAW": "yes", "FFU": "2", "SOURCE_DATE_EPOCH": "86400"},
    )
    assert v["FFU_CPU"] == "amd64" and v["FFU_LANGUAGES"] == ["de-de", "fr-fr"]
    assert v["FFU_RAW"] is True and v["FFU_FORMAT_VERSION"] == 2 and v["SOURCE_DATE_EPOCH"] == 86400


@pytest.mark.parametrize(
    "env,args,message",
    [
        ({}, {"CPU": "mips"}, r"CPU='mips'; use one of arm, arm64, x86, amd64; see `scons -h`"),
        ({"FFU_CPU": "mips"}, {}, r"FFU_CPU='mips'; use one of"),
        ({}, {"RAW": "maybe"}, r"RAW='maybe' is not a yes/no value"),
        ({"FFU_RAW": "yes"}, {}, r"FFU_RAW='yes' is not True or False"),
        ({}, {"FFU": "3"}, r"FFU=3; use one of 1, 2"),
        ({}, {"SOURCE_DATE_EPOCH": "1.5e9"}, r"SOURCE_DATE_EPOCH='1\.5e9' is not an integer"),
        ({"SOURCE_DATE_EPOCH": -1}, {}, r"SOURCE_DATE_EPOCH=-1 is not a whole number"),
        ({"FFU_LANGUAGES": "en-us"}, {}, None),  # one string is one language
        ({"FFU_LANGUAGES": [1]}, {}, r"FFU_LANGUAGES=\[1\] is not a list of strings"),
        ({"FFU_VARIABLES": ["OEMNAME"]}, {}, r"FFU_VARIABLES=\['OEMNAME'\] is not a dictionary"),
        ({}, {"OEMNAME": "Contoso Ltd"}, r"an OEM name is one word"),
        ({"FFU_SIGN": "hsm"}, {}, r"FFU_SIGN='hsm'; use one of test, key, command, none"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(env, args, message, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    if message is None:
        assert _apply(env, args)["FFU_LANGUAGES"] == ["en-us"]
        return
    with pytest.raises(ConfigError, match=message) as info:
        _apply(env, args)
    assert "\n" not in str(info.value)


def test_environment_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000")
    assert _apply()["SOURCE_DATE_EPOCH"] == 1000
    # the standard variable a user exports wins over the SConstruct's fixed value; the command line over both
    assert _apply({"SOURCE_DATE_EPOCH": 5})["SOURCE_DATE_EPOCH"] == 1000
    assert _apply({"SOURCE_DATE_EPOCH": 5}, {"SOURCE_DATE_EPOCH": "7"})["SOURCE_DATE_EPOCH"] == 7
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match=r"SOURCE_DATE_EPOCH='yesterday' is not an integer"):
        _apply()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert _apply()["SOURCE_DATE_EPOCH"] == settings.DEFAULT_EPOCH


def test_signing_policy():
    assert _apply()["FFU_SIGN"] == "test" and _apply()["FFU_BLD_DIR"] == "#build/${FFU_CPU}"
    v = _apply({"FFU_SIGN_CERT": "oem.pfx", "FFU_CONFIG": "Retail"})
    assert v["FFU_SIGN"] == "key" and v["FFU_BLD_DIR"] == "#build/${FFU_CPU}/retail-signed"
    assert _apply({}, {"SIGN_COMMAND": "hsm-sign"})["FFU_SIGN"] == "command"
    assert _apply({}, {"SIGN_CERT": "a.crt", "SIGN_COMMAND": "x"})["FFU_SIGN"] == "command"
    assert _apply({"FFU_SIGN_CERT": "a.crt"})["FFU_BLD_DIR"] == "#build/${FFU_CPU}/signed"
    # a folder the user chose is kept
    assert _apply({"FFU_SIGN_CERT": "a.crt", "FFU_BLD_DIR": "#out"})["FFU_BLD_DIR"] == "#out"
    for env in ({"FFU_CONFIG": "Retail"}, {"FFU_CONFIG": "Retail", "FFU_SIGN": "test"}):
        with pytest.raises(ConfigError, match="CONFIG=Retail needs your own code-signing certificate"):
            _apply(env)


def test_policy_is_idempotent():
    once = _apply({"FFU_SIGN_CERT": "a.crt", "FFU_CONFIG": "Retail", "FFU_PRODUCT": "P"})
    assert settings.apply(once.__getitem__, {}) == once


def test_build_variables_get_the_oem_name_and_product():
    v = _apply({"FFU_PRODUCT": "SampleA", "FFU_VARIABLES": {"BSPARCH": "arm64"}})
    assert v["FFU_VARIABLES"] == {"BSPARCH": "arm64", "OEMNAME": "Contoso", "PROD": "SampleA"}
    v = _apply({"FFU_VARIABLES": {"OEMNAME": "Fabrikam"}}, {"OEMNAME": "Contoso"})
    assert v["FFU_VARIABLES"]["OEMNAME"] == "Fabrikam"  # an explicit build variable wins


def test_unknown_arguments():
    assert settings.unknown_arguments({"CPU": "x", "PRODCUT": "A", "MINE": "1"}, ("MINE",)) == ["PRODCUT"]


def test_help_lists_every_setting_with_current_defaults():
    text = settings.help_text({"FFU_CPU": "arm64"})
    for s in settings.SETTINGS:
        assert (f"  {s.arg}=" if s.arg else f"  {s.name} ") in text
    assert "CPU=arm|arm64|x86|amd64  (default arm64; sets FFU_CPU)" in text


def test_readme_lists_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- settings:begin.*?-->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert m, "README.md has no <!-- settings:begin --> … <!-- settings:end --> section"
    assert m.group(1) == settings.markdown(), (
        "README's variable list is out of date; regenerate it with `python -m ffuforge settings --markdown`"
    )
