"""The methods an SConstruct calls: env.Package, env.FeatureMerge and env.Image.

They run while SCons reads the SConscripts: they parse (through the library's one parser per
format), declare targets with exactly the inputs that matter, and record what the resolver and
the actions need in `state`. A user mistake stops the build here with one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError
from . import bigoutputs, plancache, products, provisioning, sbom, versionpkg
from .actions import GENERATED_BUILDER, MERGED_FM_BUILDER, RESOLUTION_BUILDER, build_options, plan_at
from .cabs import declare_cab
from .checks import announce, checked, deferred_error, fm_dirs, source_policy
from .configure import configured, plain_path
from .imageactions import FFU_BUILDER, LAYOUT_BUILDER, PARTITION_BUILDER
from .mstrust import trust_spec
from .nodes import (
    available,
    fail,
    layout_source,
    partition_of,
    rel_path,
    source_file,
    spec_value,
    stop_on_error,
    top_file,
)
from .resolution import packages_doc
from .signer import signer_of
from .state import MERGED_NODES, MERGED_XML, MERGES, OWNERS, PACKAGES, PRODUCT_CABS, PackageRecord
from .updateos import check_names as check_updateos_names
from .updateos import declare as declare_updateos

# ------------------------------------------------------------------------------ packages


def planned(env, project_rel: str, spec: dict) -> list[plancache.Planned]:
    """What Package() declares for the project, reused from the last run while its inputs are unchanged."""
    top = env.Dir("#").abspath
    file = plancache.cache_file(env)  # not a node: the cache is no part of the graph
    return plancache.plans(file, top, project_rel, spec, lambda: plan_at(top, project_rel, spec))


def Package(
    env,
    project_file,
    CPU=None,
    VARIABLES=None,
    VERSION=None,
    LANGUAGES=None,
    OUTDIR=None,
    COMPRESSION=None,
    BUILD_TYPE=None,
    SIGN_PE=None,
    SOURCE_BASE=None,
):
    """Declare the CAB(s) of one package project (base, languages, WOW); returns the CAB nodes.

    Each CAB is its own target, signed by the canonical description of its content, so a
    project edit rebuilds exactly the CABs whose content it changes. SIGN_PE overrides
    FFU_SIGN_PE for this package (Authenticode-sign its PE payloads before cataloguing); SOURCE_BASE
    overrides FFU_PKG_SOURCE_BASE (the folder relative sources are found in). With FFU_CHECK_ALL a
    project that fails to plan is recorded and reported with every other one (:func:`checked`). With
    FFU_PRODUCTS, a CAB whose content differs between products is built once per product."""
    configured(env)
    cpu = (CPU or env.subst("$FFU_CPU")).lower()
    variables = dict(env.get("FFU_VARIABLES", {}))
    variables.update(VARIABLES or {})
    spec = {
        "cpu": cpu,
        "version": VERSION or env.subst("$FFU_VERSION"),
        "variables": {str(k): str(v) for k, v in sorted(variables.items())},
        "languages": sorted(LANGUAGES if LANGUAGES is not None else env.get("FFU_LANGUAGES", [])),
        "build_type": BUILD_TYPE or env.subst("$FFU_BUILD_TYPE"),
        "compression": COMPRESSION or env.subst("$FFU_COMPRESSION"),
        "epoch": env["SOURCE_DATE_EPOCH"],
        **source_policy(env, SOURCE_BASE),
    }
    proj = source_file(env, project_file, "a package project (.wm.xml or .pkg.xml)")
    rel = rel_path(env, proj)
    outdir = env.Dir(OUTDIR or env.subst("$FFU_PKG_DIR"))
    with stop_on_error():  # build options are the command line's, not the project's: no project location
        if spec["compression"] not in ("none", "mszip"):
            raise ConfigError(f"COMPRESSION={spec['compression']!r}; use none or mszip")
        build_options(spec)
    per_product = products.product_specs(env, spec, proj.abspath)
    shared = None
    with deferred_error(env, rel):
        if per_product is None:
            shared, own = planned(env, rel, spec), {}
        else:
            shared, own = products.split({p: planned(env, rel, s) for p, s in per_product.items()})
            spec = next(iter(per_product.values()))  # the shared CABs are built as the first product's
    if shared is None:
        return []
    inputs = [i for v in shared for i in v.content["inputs"]]
    provisioning.declare(
        env, rel, inputs + [i for f in own.values() for v in f.values() for i in v.content["inputs"]]
    )
    signer = signer_of(env)
    nodes = []
    for v in shared:
        nodes += declare_cab(env, outdir.File(v.cab_name), v, rel, spec, signer, SIGN_PE)
    for cab_name, found in own.items():
        shared_path = outdir.File(cab_name).abspath  # as the FMs name it; Image() takes the product's
        if OWNERS.setdefault(shared_path, rel) != rel:
            fail(f"{rel}: package {cab_name} is also built from {OWNERS[shared_path]}; give one another name")
        for product, v in found.items():
            target = outdir.Dir(product).File(cab_name)
            nodes += declare_cab(env, target, v, rel, per_product[product], signer, SIGN_PE)
            PRODUCT_CABS.setdefault(shared_path, {})[product] = target.abspath
    return nodes


# ------------------------------------------------------------------ features (FeatureMerger)


def feature_variables(env) -> dict[str, str]:
    """Placeholders of FMs and OEMInputs (%PKGBLD_DIR%, %OEM_NAME%, %BLD_DIR%, …) for this build."""
    # Relative to the top of the tree: merged FMs and signatures stay free of checkout paths.
    pkg_dir = rel_path(env, env.Dir(env.subst("$FFU_PKG_DIR")))
    values = {
        "OEM_NAME": env["FFU_VARIABLES"].get("OEMNAME") or env["FFU_OEM_NAME"],
        "PKGBLD_DIR": pkg_dir,
        "BSPPKG_DIR": pkg_dir,
        "BLD_DIR": rel_path(env, env.Dir(env.subst("$FFU_BLD_DIR"))),
        "SRC_DIR": ".",
        "BUILDTYPE": env.subst("$FFU_BUILD_TYPE"),
    }
    values.update({str(k): str(v) for k, v in env.get("FFU_FEATURE_VARIABLES", {}).items()})
    return values


def FeatureMerge(env, fmfilelist, OUTDIR=None, VERSION=None, FM_DIR=None):
    """FeatureMerger for one FMFileList: merged FMs and the feature identifier packages (CABs).

    $(FMDirectory) is FM_DIR (else FFU_FM_DIR). Returns the merged FM and FIP nodes; the merge runs now
    (the resolver needs it), the targets write what it computed: an FM edit re-merges only that FM."""
    from ..features import merge as features

    configured(env)
    checked()
    cpu = env.subst("$FFU_CPU").lower()
    fl = source_file(env, fmfilelist, "an FMFileList")
    rel = rel_path(env, fl)
    out_dir = env.Dir(OUTDIR or env.subst("$FFU_MERGED_FM_DIR"))
    pkg_dir = env.Dir(env.subst("$FFU_PKG_DIR"))
    signer = signer_of(env)
    version = VERSION or env.subst("$FFU_VERSION")
    with stop_on_error(rel):
        settings = features.MergeSettings(
            cpu=cpu,
            out_pkg_dir=Path(rel_path(env, pkg_dir)),
            version=version,
            variables=feature_variables(env),
            top=Path(env.Dir("#").abspath),
            build_type=env.subst("$FFU_BUILD_TYPE"),
            fm_dirs=features.fm_search_path(fl.abspath, fm_dirs(env, FM_DIR)),
        )
        result = features.merge(
            fl.abspath,
            settings,
            out_fm_dir=out_dir.abspath,
            write=False,
            available=available,
            partition_of=partition_of,
        )
    MERGES.append(result)
    nodes = []
    for m in result.merged:
        target = top_file(env, m.out_path)
        MERGED_XML[target.abspath] = m.xml
        nodes += MERGED_FM_BUILDER(env, target, [env.Value(m.digest)])
        MERGED_NODES[target.abspath] = target
        env.Depends(target, [fl, top_file(env, m.source)])
    for fip in result.fips:
        target = top_file(env, fip.cab)
        if target.abspath in PACKAGES and PACKAGES[target.abspath].origin != rel:
            fail(
                f"{rel}: feature identifier package {fip.name} is also declared by "
                f"{PACKAGES[target.abspath].origin}; give the FMs different IDs"
            )
        spec = {
            "kind": "fip",
            "name": fip.name,
            "partition": fip.partition,
            "features": list(fip.feature_ids),
            "cpu": cpu,
            "version": version,
            "build_type": env.subst("$FFU_BUILD_TYPE"),
            "owner": fip.owner,
            "owner_type": fip.owner_type,
            "release_type": fip.release_type,
            "compression": env.subst("$FFU_COMPRESSION"),
            "epoch": env["SOURCE_DATE_EPOCH"],
            "signer": signer.identity if signer else None,
        }
        nodes += GENERATED_BUILDER(env, target, [spec_value(env, target, json.dumps(spec, sort_keys=True))])
        PACKAGES[target.abspath] = PackageRecord(fip.name, fip.partition, fip.release_type, rel)
    return nodes


# ------------------------------------------------------------------------------ images


def Image(env, oeminput, PRODUCT=None, CONFIG=None, OUTDIR=None, RAW=None, MSPACKAGE=None):
    """Declare an image: the package set from the OEMInput and the merged FMs of this build, the
    layout, one target per partition (depending on exactly the CABs that land on it) and the FFU.
    Where an FM names a CAB built per product (products.py), the image takes its product's copy.
    Returns [Flash.ffu (, Flash.img)]."""
    from ..features import resolve as features
    from ..formats.blocksig import SIDECAR_SUFFIX
    from ..image import extractcache, layout, updateos

    configured(env)
    checked()
    RAW = env["FFU_RAW"] if RAW is None else RAW
    MSPACKAGE = plain_path(MSPACKAGE or env["FFU_MSPACKAGE"]) or None
    PRODUCT = PRODUCT or env["FFU_PRODUCT"] or None
    CONFIG = CONFIG or env["FFU_CONFIG"] or None

    cpu = env.subst("$FFU_CPU").lower()
    oi = source_file(env, oeminput, "an OEMInput file")
    rel = rel_path(env, oi)
    product = PRODUCT or Path(rel).parent.name
    config = CONFIG or ("Retail" if Path(rel).name.lower().startswith("retail") else "Test")
    outdir = env.Dir(OUTDIR or f"#build/{cpu}/{product}/{config}")
    top = Path(env.Dir("#").abspath)
    fms = {}
    for m in MERGES:
        fms.update(m.by_path())
    with stop_on_error(rel):
        from ..features.oeminput import load as load_oeminput

        oi_model = load_oeminput(oi.abspath, rel)
        res = features.resolve(
            oi_model,
            cpu=cpu,
            variables=feature_variables(env),
            ms_root=MSPACKAGE,
            top=top,
            fms=fms,
            available=available,
            partition_of=partition_of,
        )
        announce(res, rel)
        if res.device_layout is None or res.device_platform is None:
            raise ConfigError(
                "the image has no device layout / device platform package (check SOC and Device "
                "against the FMs' DeviceLayoutPackages / OEMDevicePlatformPackages)",
                rel,
            )
        release_type = oi_model.release_type.value
        dl = layout.load_device_layout(
            layout_source(
                env, products.cab_for(str(top / res.device_layout.path), product), "devicelayout.xml"
            ),
            f"{res.device_layout.name}:DeviceLayout.xml",
        )
        # UpdateOS is no disk partition: its packages go into MainOS's UpdateOS.wim (image.updateos)
        on_disk = {n: pkgs for n, pkgs in res.partitions.items() if not updateos.is_updateos(n)}
        update_os = {
            os.path.relpath(str(top / pk.path), top): pk.fip
            for n in sorted(res.partitions.keys() - on_disk.keys())
            for pk in res.partitions[n]
        }
        layout.check_partitions(dl, [(name, rel, None) for name in on_disk])
        for n in sorted(res.partitions.keys() - on_disk.keys()):
            check_updateos_names(res.partitions[n], rel, top)
        if update_os and dl.find("MainOS") is None:
            raise ConfigError(
                "packages target UpdateOS, whose WIM lives on MainOS, but the layout has no MainOS", rel
            )
    # Every layout partition gets an image; packages land on theirs (names as the layout spells them).
    partitions = {p.name: [] for p in dl.partitions}
    own = lambda path: os.path.relpath(products.cab_for(str(top / path), product), top)  # noqa: E731
    for name, pkgs in on_disk.items():
        partitions[dl.find(name).name] = products.install_order(env, [own(pk.path) for pk in pkgs])
    signer = signer_of(env)
    epoch = env["SOURCE_DATE_EPOCH"]
    generated: list[tuple[str, str]] = []
    if "MainOS" in partitions:  # the product's version package, like the kit's Registry.Version
        owner = feature_variables(env)["OEM_NAME"]
        generated.append(
            versionpkg.declare(
                env, outdir, owner=owner, product=product, config=config, oeminput=rel, cpu=cpu, epoch=epoch,
                signer=signer,
            )
        )  # fmt: skip
        partitions["MainOS"] = products.install_order(env, partitions["MainOS"] + [generated[-1][1]])
    mainos = dl.find("MainOS")  # holds UpdateOS.wim, whatever case the layout spells it in
    wim = declare_updateos(env, outdir, rel, update_os, epoch, cpu) if mainos is not None else None
    wim_rel = rel_path(env, wim) if wim is not None else None
    layout_cab, platform_cab = own(res.device_layout.path), own(res.device_platform.path)
    all_cabs = sorted({c for cabs in partitions.values() for c in cabs} | {layout_cab, platform_cab})
    doc = products.relocate(
        packages_doc(res, top, generated, rel, partitions), products.product_mapping(env, product)
    )
    report = spec_value(
        env, outdir.File("packages.json"), json.dumps(doc, sort_keys=True, indent=1, default=str)
    )
    resolution_node = RESOLUTION_BUILDER(env, outdir.File("packages.json"), [report])
    # The OEMInput names merged FMs; the image is resolved from them (in memory), so they belong
    # to its graph: an FM edit re-merges that FM even when only the image is asked for.
    env.Depends(
        resolution_node,
        [MERGED_NODES[str(Path(p).resolve())] for p in fms if str(Path(p).resolve()) in MERGED_NODES],
    )
    spec = {
        "oeminput": rel,
        "release_type": release_type,
        "partitions": partitions,
        "layout_cab": layout_cab,
        "platform_cab": platform_cab,
        "updateos_wim": wim_rel,
    }
    trust = trust_spec(env, MSPACKAGE, all_cabs)  # MSPACKAGE_ROOTS: verified in the layout stage
    if trust is not None:
        spec["trust"] = trust
    layout_json = LAYOUT_BUILDER(
        env,
        outdir.File("layout.json"),
        [spec_value(env, outdir.File("layout.json"), json.dumps(spec, sort_keys=True))]
        + [env.File("#" + c) for c in all_cabs]
        + [env.File("#" + r) for r in (trust or {}).get("roots", [])]
        + [wim] * bool(wim),
    )
    images, manifests = [], {}
    for name, cabs in partitions.items():
        holds_wim = wim is not None and mainos is not None and name == mainos.name
        pspec = {"oeminput": rel, "partition": name, "cabs": cabs, "epoch": epoch}
        pspec |= {"updateos_wim": wim_rel} if holds_wim else {}
        nodes = PARTITION_BUILDER(
            env,
            [outdir.File(f"partitions/{name}.img"), outdir.File(f"partitions/{name}.json")],
            layout_json
            + [spec_value(env, outdir.File(f"partitions/{name}.img"), json.dumps(pspec, sort_keys=True))]
            + [env.File("#" + c) for c in cabs]
            + [wim] * holds_wim,
        )
        images.append(nodes[0])
        manifests[name] = nodes[1]
        env.Clean(nodes, outdir.Dir(f"partitions/{extractcache.DIRNAME}/{name}"))
        env.Clean(nodes, outdir.File(f"partitions/{name}.img{SIDECAR_SUFFIX}"))  # chunk digests for the FFU
    fspec = {
        "oeminput": rel,
        "partitions": list(partitions),
        "epoch": epoch,
        "signer": signer.identity if signer else None,
        "description": f"{product} {config} ({cpu}) built by ffuforge",
        "ffu_version": int(env.subst("$FFU_FORMAT_VERSION") or 1),
        "device_path": env.subst("$FFU_DEVICE_PATH"),
    }
    targets = [outdir.File("Flash.ffu")] + ([outdir.File("Flash.img")] if RAW else [])
    ffu_nodes = FFU_BUILDER(
        env, targets, layout_json + [spec_value(env, targets[0], json.dumps(fspec, sort_keys=True))] + images
    )
    env.NoCache(ffu_nodes)  # large and cheap to re-assemble from cached partitions
    bigoutputs.declare(env, images + ffu_nodes)  # old ones freed off the critical path
    for n in images + ffu_nodes:
        n.attributes.ffuforge_blocks = True  # content signature without reading holes: _get_csig
    sbom_spec = {"partitions": partitions, "product": product, "config": config, "cpu": cpu, "epoch": epoch}
    sbom_spec |= {"oem": feature_variables(env)["OEM_NAME"], "oeminput": rel}
    uos = (outdir.File("partitions/UpdateOS.json"), sorted(update_os)) if wim is not None else None
    sbom_node = sbom.declare(env, outdir, sbom_spec, manifests, all_cabs, updateos=uos)
    env.Requires(ffu_nodes, [resolution_node, sbom_node])  # the package report and SBOM come with every image
    env.Alias(f"image-{product}-{config}".lower(), ffu_nodes)
    return ffu_nodes
