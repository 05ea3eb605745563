"""One partition's content, from its packages: what ImageApp installs before it writes a volume.

Packages are installed from their CABs (see :mod:`ffuforge.install`); the registry values they
carry are merged into the offline hives under `\\Windows\\System32\\config`, `bcdStore` XML is
compiled into `\\EFI\\Microsoft\\Boot\\BCD`, and values under ``HKEY_LOCAL_MACHINE\\BCD`` (the form
Microsoft's BCD packages carry, EFIESP only) are merged into that store with the rule of
:mod:`ffuforge.formats.bcd.store`. The result is a staged tree plus a manifest of every
installed file and value with its owning package.

Hives as Windows has them:

* Only hives of the new-Windows skeleton ImageApp starts from (``wcp.dll!CreateNewWindows``,
  IUT ``Imaging.cs``): ``SYSTEM``, ``SOFTWARE``, ``DEFAULT``, ``SAM``, ``SECURITY``, ``DRIVERS``
  (``COMPONENTS`` belongs to the servicing stack; we write none). Their root key is named
  ``CsiTool-CreateHive-{00000000-0000-0000-0000-000000000000}``, the name hives created by
  Windows 8+ setup tooling carry (seen in real SYSTEM, SOFTWARE, SAM and NTUSER hives: libregf's
  root-key check, the test hives of EricZimmerman/Registry and python-registry).
* MainOS always gets ``SYSTEM`` with ``Select`` = Current 1, Default 1, Failed 0,
  LastKnownGood 1 (a new image has one control set, ``ControlSet001``, that nothing has
  rejected; value meanings: Microsoft KB Q102984; these values: offline hive dumps, see
  ``../shared/spec/drivers.md`` §5) and a ``ControlSet001`` key. ``CurrentControlSet`` is the
  link the kernel makes at boot: every package key below it lands in ``ControlSet001``.
  ``Select`` is ffuforge's; a package that writes it is refused.
* Keys a manifest gives a ``securityDescriptor`` get that descriptor in their own ``sk`` cell
  (:meth:`ffuforge.formats.hive.HiveBuilder.set_key_security`); every other key keeps the hive
  writer's default (owner Administrators, SYSTEM and Administrators full, Users read, all
  container-inherit). That default is *not* Windows' skeleton: keys Windows creates carry
  TrustedInstaller-owned WRP descriptors (``WRP_REGKEY_DEFAULT_SDDL`` in its manifests) and
  inherited ACEs. Keys below a key given a descriptor get its container-inheritable ACEs, marked
  inherited, as the registry gives a key created below its parent (documented; see
  ``HiveBuilder._descriptors``); the default is not propagated.
  What public evidence shows (issue 14 step n): manifests name ``WRP_REGKEY_DEFAULT_SDDL`` on
  selected keys only (a CLSID key, not its ``InprocServer32`` subkey), and Microsoft's pkg.xml
  converter (PkgBldr ``PkgToWm/RegKey.AddTrustIfNeeded``) adds it to keys under
  ``HKCR\\Interface``, ``$(hkcr.classes)`` and ``HKLM\\Software\\Classes`` only, so a key without
  one is not TrustedInstaller-owned by rule: it inherits its parent's container-inheritable ACEs,
  with an owner that depends on the installing process (not public). The default above is
  therefore kept, not replaced by a guess. No public source shows a ``Services\\<name>\\Security``
  value written for a service that does not declare one (SCM then uses its built-in default), so
  none is written.
* Other hives are written only when a package puts values in them. Microsoft's OS packages are
  expected to supply the rest of a bootable registry: ``SYSTEM\\ControlSet001\\Control`` (Session
  Manager, hive list, group order), the inbox ``Services``, ``SOFTWARE\\Microsoft\\Windows NT``,
  the ``SAM``/``SECURITY`` account and policy databases and the ``DEFAULT`` user hive. An image
  built without ``MSPACKAGE`` carries only the OEM part and does not boot on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..formats import bcd, hive, secdesc
from ..util.atomic import write_bytes
from . import extractcache, install

HIVE_DIR = ("Windows", "System32", "config")
BCD_PATH = ("EFI", "Microsoft", "Boot", "BCD")
REGISTRY_OWNER = "<registry>"
HIVE_ROOT_NAME = "CsiTool-CreateHive-{00000000-0000-0000-0000-000000000000}"
SELECT = (("Current", 1), ("Default", 1), ("Failed", 0), ("LastKnownGood", 1))
# trees given a new-image registry; EFIESP is the third hive partition, but its only store is the BCD
HIVE_PARTITIONS = ("mainos", "updateos")


def stage(
    name: str,
    cabs: list[Path],
    workdir: Path,
    *,
    epoch: int,
    disk_style: str = "gpt",
    disk_id: str | int | None = None,
    partition_ids: dict | None = None,
    cache_dir: Path | None = None,
    jobs: int = 1,
) -> install.Staging:
    """Install `cabs` into `workdir/root` and write hives and BCD. `workdir` is emptied first.

    `cache_dir`: where the partition's extracted packages are kept between builds (one directory
    per partition, on the file system of `workdir`); None extracts into `workdir`. `jobs`: worker
    processes for the packages that are not there yet."""
    if workdir.exists():
        shutil.rmtree(workdir)
    st = install.Staging(name, workdir / "root")
    st.root.mkdir(parents=True)
    cache = extractcache.ExtractCache(Path(cache_dir) if cache_dir is not None else workdir / "extract", name)
    records = list(cache.parsed([Path(c) for c in cabs], jobs))
    install.prime_spellings(st, [parsed for parsed, _ in records])
    for parsed, store in records:
        install.replay(st, parsed, store)
    cache.evict()
    bcd_values, bcd_keys = _take_bcd_registry(st)
    _write_hives(st, epoch)
    if st.bcd_sources or bcd_values or bcd_keys:
        out = st.root.joinpath(*BCD_PATH)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            store = (
                bcd.build_bcd(
                    [p for p, _ in st.bcd_sources],
                    timestamp=epoch,
                    disk_style=disk_style,
                    disk_id=disk_id,
                    partition_ids=partition_ids,
                    owners=[f"{pkg} (bcdStore XML)" for _, pkg in st.bcd_sources],
                )
                if st.bcd_sources
                else bcd.new_store(epoch)
            )
        except FFUError as exc:  # name the package, not the scratch copy of its XML
            owner = {str(p): pkg for p, pkg in st.bcd_sources}.get(exc.file or "")
            if owner is not None:
                exc.file = f"{owner} (bcdStore XML)"
            raise
        bcd.add_registry_values(store, bcd_values, bcd_keys)
        objects = {}
        for inner, _n, _t, _d, pkg in bcd_values:
            parts = inner.split("\\")
            if len(parts) > 1 and parts[0].lower() == "objects":
                objects.setdefault(parts[1].lower(), pkg)
        bcd.check_store(store, objects)
        store.write(out)
        owners = {pkg for _, pkg in st.bcd_sources} | {v[4] for v in bcd_values} | {k[1] for k in bcd_keys}
        record(st, "\\".join(BCD_PATH), out, ",".join(sorted(owners)))
    return st


def _take_bcd_registry(
    st: install.Staging,
) -> tuple[list[tuple[str, str, int, bytes, str]], list[tuple[str, str]]]:
    """Remove the registry data under ``HKEY_LOCAL_MACHINE\\BCD`` (Microsoft's form of a BCD
    package) from `st` and return it as (key inside the store, name, type, data, package) values
    and (key, package) empty keys. Only EFIESP holds the store."""
    values, keys = [], []

    def inner_of(full_key: str) -> str | None:
        try:
            name, inner = hive.hive_for_key(full_key, allow_bcd=True)
        except FFUError:
            return None  # reported with the other hives
        return inner if name == "BCD" else None

    for k, v in list(st.values.items()):
        inner = inner_of(v.key)
        if inner is None:
            continue
        if st.partition.lower() != "efiesp":
            raise ConfigError(
                f"registry key {v.key!r} (from {v.package}): the BCD store lives on EFIESP; give the "
                f"package targetPartition EFIESP (it is installed to {st.partition})"
            )
        if v.appenders:
            raise ConfigError(
                f"registry value {v.key}\\{v.name} (from {', '.join(v.appenders)}): operationHint "
                "'append' does not apply to BCD elements; set the whole value"
            )
        values.append((inner, v.name, v.type, v.data, v.package))
        del st.values[k]
    for canon, spelling in list(st.keys.items()):
        inner = inner_of(spelling)
        if inner is None:
            continue
        owner = next((v[4] for v in values if v[0].lower().startswith(inner.lower())), st.partition)
        if st.partition.lower() != "efiesp":
            raise ConfigError(
                f"registry key {spelling!r}: the BCD store lives on EFIESP; give the package "
                f"targetPartition EFIESP (it is installed to {st.partition})"
            )
        keys.append((inner, owner))
        del st.keys[canon]
    for spelling, _sddl, package in st.key_security.values():
        if inner_of(spelling) is not None:
            raise ConfigError(
                f"registry key {spelling!r} (from {package}): security descriptors on BCD keys are not "
                "supported; remove the securityDescriptor"
            )
    return values, keys


def _write_hives(st: install.Staging, epoch: int) -> None:
    mainos = st.partition.lower() in HIVE_PARTITIONS
    if not st.values and not st.keys and not mainos:
        return
    builders: dict[str, hive.HiveBuilder] = {}

    def builder(full_key: str, package: str | None) -> tuple[hive.HiveBuilder, str]:
        try:
            name, inner = hive.hive_for_key(full_key)
        except FFUError as exc:
            raise ConfigError(f"{exc.message} (value from {package})" if package else exc.message) from None
        if name == "SYSTEM" and (inner.lower() == "select" or inner.lower().startswith("select\\")):
            raise ConfigError(
                f"registry key {full_key} (from {package or 'a package'}) is written by ffuforge "
                "(control set selection of a new image); remove it from the package"
            )
        if name not in builders:
            builders[name] = hive.HiveBuilder(HIVE_ROOT_NAME, timestamp=epoch, file_name=name)
        return builders[name], inner

    for key in sorted(st.keys.values(), key=str.lower):
        b, inner = builder(key, None)
        b.ensure_key(inner)
    for v in sorted(st.values.values(), key=lambda v: (v.key.lower(), v.name.lower())):
        b, inner = builder(v.key, v.package)
        b.set_value(inner, v.name, v.type, v.data, owner=v.package)
    for key, sddl, package in sorted(st.key_security.values(), key=lambda t: t[0].lower()):
        b, inner = builder(key, package)
        b.set_key_security(inner, secdesc.sddl_to_binary(sddl), owner=package)
    if not mainos:
        owners = sorted({v.package for v in st.values.values()})
        raise ConfigError(
            f"registry values in partition {st.partition} (from {', '.join(owners)}): only MainOS "
            "(and UpdateOS) carry registry hives; move them to a MainOS package"
        )
    system = builders.setdefault(
        "SYSTEM", hive.HiveBuilder(HIVE_ROOT_NAME, timestamp=epoch, file_name="SYSTEM")
    )
    system.ensure_key("ControlSet001")
    for value_name, number in SELECT:
        system.set_value("Select", value_name, 4, number.to_bytes(4, "little"), owner=REGISTRY_OWNER)
    for name, b in sorted(builders.items()):
        rel = "\\".join((*HIVE_DIR, name))
        out = st.root.joinpath(*HIVE_DIR, name)
        out.parent.mkdir(parents=True, exist_ok=True)
        b.write(out)
        if rel.lower() in st.files:
            raise ConfigError(
                f"package {st.files[rel.lower()].package} installs \\{rel}, which ffuforge writes from "
                "the packages' registry values; remove that file from the package"
            )
        record(st, rel, out, REGISTRY_OWNER)


def record(st: install.Staging, rel: str, path: Path, owner: str) -> None:
    """Enter a file ffuforge wrote into the staged tree in the partition's manifest."""
    import hashlib

    data = path.read_bytes()
    st.files[rel.lower()] = install.InstalledFile(
        rel, len(data), hashlib.sha256(data).hexdigest(), owner, hashlib.sha1(data).hexdigest()
    )


def content_bytes(st: install.Staging) -> int:
    return sum(f.size for f in st.files.values())


def write_manifest(st: install.Staging, out: Path) -> None:
    write_bytes(out, json.dumps(st.manifest(), indent=1, sort_keys=True).encode() + b"\n")
