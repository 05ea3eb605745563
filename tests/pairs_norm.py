"""Normalised view of a package project, for comparing a pkg.xml with its converted wm.xml."""

import re

from ffuforge.formats import regvalue
from ffuforge.package import macros, project


def _dir(raw):
    text = (raw or "$(runtime.system32)").strip().rstrip("\\")
    text = re.sub(r"(?i)\$\(runtime\.root\)", "$(runtime.bootDrive)", text)
    m = re.match(r"^\$\(([^()]*)\)(.*)$", text)
    if m and macros.canonical_runtime(m.group(1)):
        text = f"$({macros.canonical_runtime(m.group(1))})" + m.group(2)
    return text.lower()


def _base(src):
    return re.split(r"[\\/]", src.strip())[-1].lower()


def summary(p: project.Project) -> dict:
    files = set()
    for f in p.files:
        files.add((_base(f.source), _dir(f.dest_dir), (f.name or _base(f.source)).lower()))
    regs = set()
    for k in p.regkeys:
        key = re.sub(r"\$\(([^()]*)\)", lambda m: f"$({m.group(1).lower()})", k.key_name).lower()
        for v in k.values:
            data = regvalue.decode(v.type, v.value, legacy=p.schema == "pkg")
            regs.add((key, (v.name or "").lower(), data.type, data.data))
        if not k.values:
            regs.add((key, None, None, None))
    return {
        "owner": p.owner.lower(),
        "component": (p.namespace or "").lower(),
        "sub": (p.name or "").lower(),
        "partition": p.partition.lower(),
        "release": p.release_type,
        "ownerType": p.owner_type,
        "files": files,
        "registry": regs,
        "drivers": {_base(d.inf) for d in p.drivers},
        "bcd": _base(p.bcd.source) if p.bcd else None,
        "services": {
            (s.name.lower(), tuple(sorted((k, v.lower()) for k, v in s.attrs.items()))) for s in p.services
        },
    }
