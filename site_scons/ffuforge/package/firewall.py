"""A wm.xml `<firewallRule>` as the registry value Windows Firewall reads (the `v2.26` rule string
under FirewallRules). Separate from :mod:`.variant` to keep that module within its size."""

from __future__ import annotations

from ..formats import regvalue
from . import macros, project

FIREWALL_KEY = (
    r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules"
)
_PROTOCOLS = {"tcp": "6", "udp": "17", "icmpv4": "1", "icmp": "1", "icmpv6": "58", "any": None}
_FIELDS = (
    ("profile", "Profile"),
    ("lport", "LPort"),
    ("rport", "RPort"),
    ("binary", "App"),
    ("svc", "Svc"),
    ("icmp4", "ICMP4"),
    ("icmp6", "ICMP6"),
    ("name", "Name"),
    ("desc", "Desc"),
    ("group", "EmbedCtxt"),
)


def rule_value(rule: project.FirewallItem, m: macros.Macros) -> tuple[str, str, regvalue.RegData]:
    """(key, value name, data) of one rule."""
    a = {k: m.expand(val, rule.where.line, device=True) for k, val in rule.attrs.items()}
    fields = ["v2.26"]
    fields.append("Action=" + a.get("action", "Allow"))
    fields.append("Active=" + a.get("active", "True").upper())
    fields.append("Dir=" + a.get("dir", "In"))
    proto = a.get("protocol")
    if proto:
        num = _PROTOCOLS.get(proto.lower(), proto)
        if num is not None and not num.isdigit():
            raise rule.where.error(
                f"firewallRule protocol {proto!r}; use TCP, UDP, ICMPv4, ICMPv6 or a number"
            )
        if num:
            fields.append("Protocol=" + num)
    for attr, label in _FIELDS:
        if a.get(attr):
            fields.append(f"{label}={a[attr]}")
    value_name = a.get("internalname") or a.get("name")
    return FIREWALL_KEY, value_name, regvalue.decode("REG_SZ", "|".join(fields) + "|", legacy=False)
