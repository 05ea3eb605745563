"""Provisioning packages and the AppInstall route as graph targets, the way the kit's projects expect.

The kit's package projects install ``$(BLDDIR)\\ppkgs\\<Folder>.ppkg``, which its build compiled
from the ``customizations.xml`` beside the project (addonkit 17134 ``Appx.*``). Package() hands
every input below ``<BLDDIR>/ppkgs/`` to `declare`: ``<X>.ppkg`` becomes a target compiled from
that customizations.xml; files below ``<X>.appinstall/`` become the AppInstall route's folder
(scripts + the app's files). A project whose folder has no customizations.xml uses its .ppkg as it
is (one made by Windows Configuration Designer). `ProvisioningPackage()` declares one explicitly
(e.g. the kit's ``Products/<P>/prov/customizations.xml`` -> ``<P>Prov.ppkg``).

Which route each setting took is printed when the target builds and kept in `ROUTES` for the
image's packages.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .actions import build_errors, builder
from .configure import configured
from .nodes import declare_once, fail, rel_path, stop_on_error

if TYPE_CHECKING:
    from ..package.provisioning.customizations import Customizations

# The library is imported where it is used: a no-op build of a workspace without provisioning
# packages does not load it.
ROUTES: dict[str, dict] = {}  # project rel path -> what its provisioning inputs are and which route they took
_DECLARED: dict[str, str] = {}  # target abspath -> customizations.xml rel (one source per target)


def _summary(spec: dict) -> str:
    parts = []
    if spec.get("compiled") is not None:
        parts.append("compiled: " + (", ".join(spec["compiled"]) or "no settings"))
    if spec.get("script"):
        parts.append("AppInstall route (OEMCustomization.cmd): " + ", ".join(spec["script"]))
    return "; ".join(parts)


@build_errors()
def _ppkg_action(target, source, env):
    from ..package.provisioning import compiler, customizations, ppkg

    spec = json.loads(source[0].read())
    top = env.Dir("#").abspath
    c = customizations.load(os.path.join(top, spec["customizations"]), spec["customizations"])
    tree = compiler.compile_tree(c, script_routed=spec["script_routed"])
    ppkg.write_ppkg(tree, target[0].abspath, spec["epoch"])
    return 0


@build_errors()
def _appinstall_action(target, source, env):
    from ..package.provisioning import approute, customizations
    from ..util.atomic import write_bytes
    from ..util.paths import open_regular

    spec = json.loads(source[0].read())
    top = env.Dir("#").abspath
    c = customizations.load(os.path.join(top, spec["customizations"]), spec["customizations"])
    route = approute.plan_route(c)
    for t in target:
        name = t.name
        if name in route.scripts:
            write_bytes(t.abspath, route.scripts[name])
        else:
            try:
                with os.fdopen(open_regular(route.files[name]), "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                raise ConfigError(
                    f"{name}: {exc.strerror}; put the file beside customizations.xml", c.file
                ) from None
            write_bytes(t.abspath, data)
    return 0


PPKG_BUILDER = builder(
    _ppkg_action,
    "package.provisioning.ppkg",
    "Provisioning",
    strfunction=lambda target, source, env: (
        f"Provisioning {target[0].name} (route: ppkg; {_summary(json.loads(source[0].read()))})"
    ),
)
APPINSTALL_BUILDER = builder(
    _appinstall_action,
    "package.provisioning.approute",
    "AppInstall",
    strfunction=lambda target, source, env: (
        f"AppInstall {os.path.basename(os.path.dirname(target[0].path))} (route: script; "
        f"{_summary(json.loads(source[0].read()))})"
    ),
)


def _claim(target, cust_rel: str) -> None:
    prior = _DECLARED.setdefault(target.abspath, cust_rel)
    if prior != cust_rel:
        fail(f"{cust_rel}: {target.path} is also built from {prior}; keep one")


def _inputs(env, c: Customizations, script_routed: bool) -> list:
    """The files the settings name, as nodes: each must exist or be built by the graph."""
    from ..package.provisioning import compiler

    nodes = []
    for path, line in compiler.input_files(c, script_routed):
        node = env.File(str(path))
        if not node.exists() and not node.has_builder():
            raise ConfigError(f"{path.name} is not there; put it beside customizations.xml", c.file, line)
        nodes.append(node)
    return nodes


def declare_ppkg(env, cust_rel: str, target, script_routed: bool) -> dict:
    from ..package.provisioning import customizations

    c = customizations.load(env.File("#" + cust_rel).abspath, cust_rel)
    err = c.unsupported_error([] if script_routed else c.by_route("script"))
    if err:
        raise err
    inputs = _inputs(env, c, False)
    spec = {
        "customizations": cust_rel,
        "script_routed": script_routed,
        "epoch": env["SOURCE_DATE_EPOCH"],
        "compiled": [s.path for s in c.by_route("ppkg")],
        "script": [s.path for s in c.by_route("script")] if script_routed else [],
    }
    _claim(target, cust_rel)
    text = json.dumps(spec, sort_keys=True)
    declare_once(
        env,
        target,
        text,
        lambda: PPKG_BUILDER(env, target, [env.Value(text), env.File("#" + cust_rel)] + inputs),
    )
    return spec


def declare_appinstall(env, cust_rel: str, folder, wanted: set[str], project_rel: str) -> dict:
    from ..package.provisioning import approute, customizations

    c = customizations.load(env.File("#" + cust_rel).abspath, cust_rel)
    err = c.unsupported_error()
    if err:
        raise err
    if not c.by_route("script"):
        raise ConfigError(
            f"{cust_rel} has no app settings for the AppInstall route; remove the {folder.name} files",
            project_rel,
        )
    route = approute.plan_route(c)
    produced = set(route.scripts) | set(route.files)
    if approute.OEMCUSTOMIZATION not in wanted:  # the workspace's own OEMCustomization.cmd calls the route
        produced.discard(approute.OEMCUSTOMIZATION)
    missing = sorted(produced - wanted)
    extra = sorted(wanted - produced)
    if missing:
        raise ConfigError(
            f"the project does not install {', '.join(missing)} from {folder.name}; "
            "list exactly the AppInstall route's files",
            project_rel,
        )
    if extra:
        raise ConfigError(
            f"the project names {', '.join(extra)} in {folder.name}, which {cust_rel} does not make; "
            "list exactly the AppInstall route's files",
            project_rel,
        )
    spec = {"customizations": cust_rel, "script": route.settings}
    targets = [folder.File(n) for n in sorted(produced)]
    for t in targets:
        _claim(t, cust_rel)
    sources = [env.Value(json.dumps(spec, sort_keys=True)), env.File("#" + cust_rel)]
    sources += _inputs(env, c, True)
    declare_once(
        env, targets[0], json.dumps(spec, sort_keys=True), lambda: APPINSTALL_BUILDER(env, targets, sources)
    )
    return spec


def declare(env, project_rel: str, inputs: list[str]) -> None:
    """Targets for a project's inputs below <BLDDIR>/ppkgs/ (called by Package())."""
    bld = env.get("FFU_VARIABLES", {}).get("BLDDIR")
    if not bld:
        return
    ppkgs = rel_path(env, env.Dir(bld).Dir("ppkgs")) + os.sep
    groups: dict[str, dict] = {}
    for rel in sorted(set(inputs)):
        if not rel.startswith(ppkgs):
            continue
        first, _, rest = rel[len(ppkgs) :].partition(os.sep)
        if first.lower().endswith(".ppkg") and not rest:
            groups.setdefault(first[:-5], {"ppkg": None, "files": set()})["ppkg"] = rel
        elif first.lower().endswith(".appinstall") and rest and os.sep not in rest:
            groups.setdefault(first[: -len(".appinstall")], {"ppkg": None, "files": set()})["files"].add(rest)
    if not groups:
        return
    cust = Path(project_rel).parent / "customizations.xml"
    record: dict = {"customizations": None, "ppkgs": {}}
    for name, g in sorted(groups.items()):
        if not env.File("#" + str(cust)).exists():
            if g["ppkg"]:  # one made elsewhere (Windows Configuration Designer), used as it is
                node = env.File("#" + g["ppkg"])
                if node.exists() and not node.has_builder():
                    from ..package.provisioning.ppkg import check_ppkg

                    with stop_on_error(project_rel):
                        check_ppkg(node.abspath, g["ppkg"])
                record["ppkgs"][g["ppkg"]] = {"route": "prebuilt"}
            continue
        record["customizations"] = str(cust)
        entry: dict = {}
        with stop_on_error(project_rel):
            if g["ppkg"]:
                spec = declare_ppkg(env, str(cust), env.File("#" + g["ppkg"]), bool(g["files"]))
                entry.update(route="ppkg", compiled=spec["compiled"])
            if g["files"]:
                folder = env.Dir(bld).Dir("ppkgs").Dir(f"{name}.appinstall")
                spec = declare_appinstall(env, str(cust), folder, g["files"], project_rel)
                entry.update(route="ppkg+script" if g["ppkg"] else "script", script=spec["script"])
        record["ppkgs"][g["ppkg"] or rel_path(env, env.Dir(bld).Dir("ppkgs").Dir(f"{name}.appinstall"))] = (
            entry
        )
    ROUTES[project_rel] = record


def ProvisioningPackage(env, target, customizations_xml):
    """Compile `customizations_xml` into the .ppkg `target` (every setting must compile)."""
    configured(env)
    cust = env.File(customizations_xml).srcnode()
    rel = rel_path(env, cust)
    with stop_on_error(rel):
        declare_ppkg(env, rel, env.File(target), False)
    return [env.File(target)]


def report(origins: dict[str, str]) -> list[dict]:
    """packages.json's "provisioning": for each package of the image (name -> project) that
    installs a provisioning package or AppInstall folder, which route each took."""
    out = []
    for package, project in sorted(origins.items()):
        rec = ROUTES.get(project)
        if rec:
            for path, entry in sorted(rec["ppkgs"].items()):
                out.append({"package": package, "project": project, "path": path, **entry})
    return out
