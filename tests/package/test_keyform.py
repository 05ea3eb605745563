import pytest

from ffuforge.package.keyform import key_form, pseudo_key

MS = {"publicKeyToken": "31bf3856ad364e35", "processorArchitecture": "amd64", "versionScope": "nonSxS"}

VECTORS = [
    (
        "Microsoft-Windows-ServicingStack",
        "neutral",
        "10.0.19041.1",
        "amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.19041.1_none_bf506ecc66a800df",
    ),
    (
        "Microsoft-OneCore-DirectX-DXCore",
        "neutral",
        "10.0.26100.4768",
        "amd64_microsoft-onecore-directx-dxcore_31bf3856ad364e35_10.0.26100.4768_none_4f6f5ec1b0a1f76e",
    ),
    ("Microsoft-Windows-Win32kBaseRs", "neutral", "10.0.26100.4768", "8bfab514d7c2665f"),
    ("Microsoft-Windows-Win32kBase", "neutral", "10.0.26100.4946", "4a05939716e99c7e"),
    (
        "Microsoft-Windows-GDI32",
        "neutral",
        "10.0.26100.4768",
        "amd64_microsoft-windows-gdi32_31bf3856ad364e35_10.0.26100.4768_none_f5256aa6f96bf968",
    ),
    (
        "wvms_vsft.inf.resources",
        "en-US",
        "10.0.14393.0",
        "amd64_wvms_vsft.inf.resources_31bf3856ad364e35_10.0.14393.0_en-us_f32e284e2439eb0b",
    ),
]


@pytest.mark.parametrize("name,culture,version,expected", VECTORS)
def test_spec_vectors(name, culture, version, expected):
    ident = {"name": name, "language": culture, "version": version, **MS}
    if "_" in expected:
        assert key_form(ident) == expected
    else:
        assert pseudo_key(ident) == expected


def test_version_scope_changes_hash():
    ident = {
        "name": "Microsoft-OneCore-DirectX-DXCore",
        "language": "neutral",
        "version": "10.0.26100.4768",
        **MS,
    }
    del ident["versionScope"]
    assert pseudo_key(ident) == "f915f795546230d3"


def test_winners_form():
    ident = {"name": "Microsoft-Windows-GDI32", "language": "neutral", "version": "10.0.26100.4768", **MS}
    assert (
        key_form(ident, winners=True)
        == "amd64_microsoft-windows-gdi32_31bf3856ad364e35_none_b2f3be9aaa9f8d8d"
    )


def test_long_names_and_cultures_are_shortened():
    ident = {"name": "A" * 50, "language": "sr-Latn-RS", "version": "1.0.0.0", **MS}
    kf = key_form(ident)
    assert "_" + "a" * 19 + ".." + "a" * 19 + "_" in kf
    assert "_sr-..-rs_" in kf
