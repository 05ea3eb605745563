"""`ffuforge new NOUN …`: package projects, products, boards and features from arguments.

The counterpart of IoTCorePShell's ``Add-IoTDriverPackage``, ``Add-IoTFilePackage``,
``Add-IoTRegistryPackage``, ``Add-IoTProduct`` and ``Add-IoTBSP``, for ffuforge's workspace
(``packages/``, ``bsp/<Board>/Packages/``, ``products/<Product>/``): each noun creates the project
and its payload, adds the package to an FM (a new feature by default), optionally selects the
feature in a product's OEMInputs, and prints one line per file it created or changed. Every change
is planned and checked first (:class:`ffuforge.util.changeset.ChangeSet`): a second run prints
"already present" and exits 0, and an existing file is never overwritten.

Nouns register with :func:`noun`; a noun in another module (``cli/app.py``: ``from .new import
Workspace, noun, placement_args, place``) is made known by one import line in
:func:`_load_extensions`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..features import edit, templates
from ..package import scaffold
from ..util.changeset import ChangeSet
from ..util.xmledit import Doc


@dataclass
class Noun:
    help: str
    run: Callable[[list[str]], int]


NOUNS: dict[str, Noun] = {}


def noun(name: str, help_text: str):
    """Register `fn(argv) -> int` as ``ffuforge new <name>``."""

    def register(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        NOUNS[name] = Noun(help_text, fn)
        return fn

    return register


def _load_extensions() -> None:
    """Modules that register more nouns with :func:`noun` (one ``from . import x`` line each)."""
    from . import new_app  # noqa: F401  (ffuforge new app)


class Workspace:
    """The workspace top (``--top``, default the current directory) and the planned changes."""

    def __init__(self, top: str):
        self.top = Path(top)
        if not (self.top / "packages").is_dir() and not (self.top / "bsp").is_dir():
            raise ConfigError(
                f"{top} is not an ffuforge workspace (no packages/ or bsp/); run in the top folder or pass --top"
            )
        self.changes = ChangeSet(self.top)
        self.docs: dict[Path, Doc] = {}

    def rel(self, p: Path) -> str:
        return self.changes.rel(p)

    def doc(self, path: Path) -> Doc:
        key = path.resolve()
        if key not in self.docs:
            if not path.is_file():
                raise ConfigError("does not exist", self.rel(path))
            self.docs[key] = Doc.load(path, self.rel(path))
        return self.docs[key]

    def edited(self, path: Path, note: str | None, present: str) -> None:
        """Record an edit of the document at `path` (None: it was already there)."""
        if note is None:
            self.changes.already(path, present)
        else:
            self.changes.edit(path, self.doc(path).bytes(), note)

    def copy(self, src: Path, dst: Path) -> None:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", str(src)) from None
        self.changes.create(dst, data, f"from {src}")

    def finish(self) -> int:
        for line in self.changes.apply():
            print(line)
        return 0


def feature_id(ns: str, name: str) -> str:
    """The kit's feature ID spelling for a package: upper case, ``.``/``-`` as ``_``."""
    return re.sub(r"[^A-Z0-9_]", "_", f"{ns}_{name}".upper())


def placement_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--name", help="Namespace.Name of the package (the kit's CompName.SubCompName)")
    ap.add_argument(
        "--fm", help="FM to add the package to (default packages/OEMFM.xml); the project goes beside it"
    )
    ap.add_argument("--feature", help="feature ID (default NAMESPACE_NAME)")
    ap.add_argument(
        "--base", action="store_true", help="a base package (in every image using the FM), no feature"
    )
    ap.add_argument("--product", help="select the feature in products/PRODUCT/<config>OEMInput.xml")
    ap.add_argument(
        "--config", choices=templates.CONFIGS, help="only this config's OEMInput (default: every one)"
    )
    ap.add_argument("--top", default=".", help="workspace top (default the current directory)")


def _parse(ap: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return ap.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def oeminputs(ws: Workspace, product: str, config: str | None) -> list[Path]:
    folder = ws.top / "products" / product
    configs = [config] if config else list(templates.CONFIGS)
    found = [folder / f"{c}OEMInput.xml" for c in configs if (folder / f"{c}OEMInput.xml").is_file()]
    if not found:
        raise ConfigError(
            f"product {product!r} has no {' or '.join(f'{c}OEMInput.xml' for c in configs)} in "
            f"{ws.rel(folder)}; create it with `ffuforge new product {product}`"
        )
    return found


def select(ws: Workspace, product: str, config: str | None, feature: str, fm: Path | None) -> None:
    """Select an OEM feature in the product's OEMInputs, with the FM it comes from."""
    for oi in oeminputs(ws, product, config):
        if fm is not None:
            note = edit.oeminput_add_fm(ws.doc(oi), f"%BLD_DIR%\\MergedFMs\\{fm.name}")
            if note is not None:  # already listed: nothing to report
                ws.edited(oi, note, "")
        ws.edited(oi, edit.oeminput_add_feature(ws.doc(oi), feature), f"OEM feature {feature}")


def _path_var(doc: Doc) -> str:
    """The CAB folder the FM's entries use most (``%PKGBLD_DIR%`` for the OEM's, ``%BSPPKG_DIR%`` for a board's)."""
    used = Counter(pf.attrs.get("Path", "") for pf in edit.fm_package_files(doc) if pf.attrs.get("Path"))
    return used.most_common(1)[0][0] if used else "%PKGBLD_DIR%"


def place(ws: Workspace, args: argparse.Namespace, ns: str, name: str, fm: Path) -> None:
    """Add the package's CAB to `fm` and select its feature where asked."""
    doc = ws.doc(fm)
    path_var = _path_var(doc)
    feature = None if args.base else (args.feature or feature_id(ns, name))
    cab = f"%OEM_NAME%.{ns}.{name}.cab"
    ws.edited(fm, edit.fm_add_package(doc, path_var, cab, feature), f"{cab} ({feature or 'base'})")
    if args.product:
        if feature is None:
            raise ConfigError(
                "a --base package is in every image that uses its FM; --product needs a feature"
            )
        select(ws, args.product, args.config, feature, fm)


def _fm_of(ws: Workspace, args: argparse.Namespace) -> Path:
    fm = Path(args.fm) if args.fm else ws.top / "packages" / "OEMFM.xml"
    if not fm.is_file():
        raise ConfigError(
            f"FM {ws.rel(fm)} does not exist; give --fm (a board's: bsp/<Board>/Packages/<Board>FM.xml)"
        )
    return fm


def _project(ws: Workspace, fm: Path, ns: str, name: str) -> tuple[Path, Path]:
    folder = fm.parent / f"{ns}.{name}"
    return folder, folder / f"{ns}.{name}.wm.xml"


def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text.split(".")[0]) or "Package"


@noun("driver", "a driver package from an INF (Add-IoTDriverPackage)")
def new_driver(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge new driver", description="create a driver package from an INF"
    )
    ap.add_argument("inf", help="the INF; the files it copies are taken from beside it")
    ap.add_argument("--import-path", help="defaultImportPath for the INF's files (then they are not copied)")
    placement_args(ap)
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    inf = Path(args.inf)
    if not inf.is_file():
        raise ConfigError("INF does not exist", args.inf)
    ns, name = scaffold.split_name(args.name or f"Drivers.{_stem(inf.name)}", "Drivers")
    fm = _fm_of(ws, args)
    folder, project = _project(ws, fm, ns, name)
    ws.copy(inf, folder / inf.name)
    if not args.import_path:
        for rel in scaffold.driver_payload(inf, args.inf):
            src = inf.parent.joinpath(*rel.split("\\"))
            if not src.is_file():
                raise ConfigError(
                    f"{rel}, which the INF copies, is not beside it; put it there or give --import-path",
                    args.inf,
                )
            ws.copy(src, folder.joinpath(*rel.split("\\")))
    data = scaffold.driver(ns, name, f".\\{inf.name}", args.import_path, ws.rel(project))
    ws.changes.create(project, data, f"driver package {ns}.{name}")
    place(ws, args, ns, name, fm)
    return ws.finish()


@noun("file", "a package of files (Add-IoTFilePackage)")
def new_file(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge new file", description="create a package that installs files")
    ap.add_argument("sources", nargs="+", metavar="SRC", help="files to install (copied into the project)")
    ap.add_argument(
        "--dest", required=True, help="device folder: $(runtime.system32), $(runtime.bootDrive)\\X or \\X"
    )
    placement_args(ap)
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    ns, name = scaffold.split_name(args.name or f"Files.{_stem(Path(args.sources[0]).name)}", "Files")
    fm = _fm_of(ws, args)
    folder, project = _project(ws, fm, ns, name)
    dest = scaffold.device_dir(args.dest)
    seen: set[str] = set()
    items: list[tuple[str, str, str | None]] = []
    for s in args.sources:
        src = Path(s)
        if not src.is_file():
            raise ConfigError("does not exist or is not a file", s)
        if src.name.lower() in seen:
            raise ConfigError(f"two sources are named {src.name}; one device folder holds one of them", s)
        seen.add(src.name.lower())
        ws.copy(src, folder / src.name)
        items.append((f".\\{src.name}", dest, None))
    ws.changes.create(project, scaffold.files(ns, name, items, ws.rel(project)), f"file package {ns}.{name}")
    place(ws, args, ns, name, fm)
    return ws.finish()


@noun("registry", "a package of registry values (Add-IoTRegistryPackage)")
def new_registry(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge new registry", description="create a package that sets registry values"
    )
    ap.add_argument("key", help="HKLM\\SOFTWARE\\…, HKLM\\SYSTEM\\… or a $(hklm.…) macro form")
    ap.add_argument(
        "values", nargs="*", metavar="NAME=TYPE:VALUE", help="e.g. Timeout=REG_DWORD:30 (@ = default value)"
    )
    placement_args(ap)
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    key = scaffold.registry_key(args.key)
    ns, name = scaffold.split_name(args.name or f"Registry.{_stem(key.rsplit(chr(92), 1)[-1])}", "Registry")
    values = [scaffold.registry_value(v) for v in args.values]
    fm = _fm_of(ws, args)
    _folder, project = _project(ws, fm, ns, name)
    ws.changes.create(
        project, scaffold.registry(ns, name, key, values, ws.rel(project)), f"registry package {ns}.{name}"
    )
    place(ws, args, ns, name, fm)
    return ws.finish()


def _boards(ws: Workspace) -> dict[str, Path]:
    out = {}
    for fm in sorted((ws.top / "bsp").glob("*/Packages/*FM.xml")):
        out[fm.parent.parent.name] = fm
    return out


def _fm_leaves(ws: Workspace) -> list[str]:
    """The FM files the OEM FMFileLists under packages/ name (merged to %BLD_DIR%\\MergedFMs)."""
    out = []
    for fl in sorted((ws.top / "packages").glob("*FMFileList.xml")):
        fms = ws.doc(fl).root.find("FMs")
        for fm in fms.all("FM") if fms else []:
            out.append(fm.attrs.get("Path", "").replace("/", "\\").rsplit("\\", 1)[-1])
    return [x for x in out if x]


@noun("product", "a product folder with Test and Retail OEMInputs (Add-IoTProduct)")
def new_product(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge new product", description="create products/NAME with its OEMInputs"
    )
    ap.add_argument("name")
    ap.add_argument("--board", help="the board (a folder under bsp/); default the only one")
    ap.add_argument("--feature", action="append", default=[], help="OEM feature to select (repeatable)")
    ap.add_argument("--top", default=".", help="workspace top (default the current directory)")
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    scaffold.split_name(f"P.{args.name}", "P", "product name")
    boards = _boards(ws)
    if args.board is None and len(boards) != 1:
        raise ConfigError(f"choose --board: one of {', '.join(boards) or '(none: ffuforge new board NAME)'}")
    board = args.board or next(iter(boards))
    if board not in boards:
        raise ConfigError(f"no board {board!r} under bsp/ (boards: {', '.join(boards) or 'none'})")
    fm = ws.doc(boards[board]).root
    soc = next(
        (
            pf.attrs["SOC"]
            for g in fm.all("DeviceLayoutPackages")
            for pf in g.all("PackageFile")
            if "SOC" in pf.attrs
        ),
        board,
    )
    device = next(
        (
            pf.attrs["Device"]
            for g in fm.all("OEMDevicePlatformPackages")
            for pf in g.all("PackageFile")
            if "Device" in pf.attrs
        ),
        board,
    )
    fms = [f"%BLD_DIR%\\MergedFMs\\{boards[board].name}"] + [
        f"%BLD_DIR%\\MergedFMs\\{x}" for x in _fm_leaves(ws)
    ]
    for config in templates.CONFIGS:
        path = ws.top / "products" / args.name / f"{config}OEMInput.xml"
        data = templates.oeminput(args.name, config, soc, device, fms, args.feature)
        ws.changes.create(path, data, f"{config} image of {args.name} on {board}")
    return ws.finish()


@noun("board", "a board support folder: FM, FMFileList, device layout and platform (Add-IoTBSP)")
def new_board(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge new board", description="create bsp/NAME/Packages")
    ap.add_argument("name")
    ap.add_argument("--oem", default="Contoso", help="OEM name in the device platform ID (OEM.Board)")
    ap.add_argument("--top", default=".", help="workspace top (default the current directory)")
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    b = args.name
    scaffold.split_name(f"B.{b}", "B", "board name")
    pkgs = ws.top / "bsp" / b / "Packages"
    layout_dir = pkgs / f"{b}.DeviceLayout"
    fm_id = re.sub(r"[^A-Z0-9]", "", b.upper())[:8] or "BOARD"
    ws.changes.create(pkgs / f"{b}FM.xml", templates.board_fm(b), "feature manifest")
    ws.changes.create(
        pkgs / f"{b}FMFileList.xml", templates.fmfilelist(fm_id, f"{b}FM.xml"), f"FM ID {fm_id}"
    )
    ws.changes.create(layout_dir / "DeviceLayout.xml", templates.device_layout(), "GPT: EFIESP, MainOS, Data")
    ws.changes.create(
        layout_dir / "OEMDevicePlatform.xml", templates.device_platform(args.oem, b), "device platform"
    )
    project = layout_dir / f"{b}.DeviceLayout.wm.xml"
    items: list[tuple[str, str, str | None]] = [
        (".\\DeviceLayout.xml", "$(runtime.windows)\\ImageUpdate", None),
        (".\\OEMDevicePlatform.xml", "$(runtime.windows)\\ImageUpdate", None),
    ]
    ws.changes.create(project, scaffold.files(b, "DeviceLayout", items, ws.rel(project)), "layout package")
    return ws.finish()


@noun("feature", "a feature grouping packages of an FM")
def new_feature(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge new feature", description="give packages of an FM a (new) feature ID"
    )
    ap.add_argument("id", help="the feature ID (e.g. CONTOSO_TOOLS)")
    ap.add_argument("--package", action="append", required=True, metavar="NAMESPACE.NAME", help="repeatable")
    ap.add_argument("--fm", help="the FM (default packages/OEMFM.xml)")
    ap.add_argument("--product", help="also select the feature in this product's OEMInputs")
    ap.add_argument("--config", choices=templates.CONFIGS)
    ap.add_argument("--top", default=".")
    args = _parse(ap, argv)
    if isinstance(args, int):
        return args
    ws = Workspace(args.top)
    if not re.match(r"^[A-Za-z0-9_.-]+$", args.id):
        raise ConfigError(f"feature ID {args.id!r}: use letters, digits, '_', '.' and '-'")
    fm = _fm_of(ws, args)
    doc = ws.doc(fm)
    for pkg in args.package:
        ns, name = scaffold.split_name(pkg, "", "--package")
        cab = f"%OEM_NAME%.{ns}.{name}.cab"
        if not any(p.is_file() for p in (fm.parent / f"{ns}.{name}").glob("*.xml")):
            raise ConfigError(f"--package {pkg}: no project in {ws.rel(fm.parent / f'{ns}.{name}')}")
        ws.edited(fm, edit.fm_tag_feature(doc, cab, args.id, _path_var(doc)), f"{cab} in {args.id}")
    if args.product:
        select(ws, args.product, args.config, args.id, fm)
    return ws.finish()


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in NOUNS:
        ap = argparse.ArgumentParser(
            prog="ffuforge new", description="create package projects, products, boards"
        )
        sub = ap.add_subparsers(dest="noun", required=True, metavar="NOUN")
        for name, n in NOUNS.items():
            sub.add_parser(name, help=n.help, add_help=False)
        r = _parse(ap, argv)
        return r if isinstance(r, int) else 2
    return NOUNS[argv[0]].run(argv[1:])
