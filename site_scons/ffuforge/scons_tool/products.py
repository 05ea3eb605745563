"""Every product in one graph: which CABs are shared and which each product gets its own of.

Products of one workspace share their packages. A package whose content depends on the product
(`$(PROD)` in a registry value, a path, a name) would otherwise be rebuilt at every product switch,
as both products write the same CAB; with FFU_PRODUCTS naming every product the SConstruct builds,
Package() plans such a project once per product and compares the plans: a CAB whose content is the
same for all is built once in FFU_PKG_DIR, one that differs gets a CAB per product in
`FFU_PKG_DIR/<product>/`, and Image() takes its product's copy wherever the FMs name the shared path.
So `scons all` builds each package once per distinct content, and switching products rebuilds nothing.

`for_config` gives an SConstruct an environment for another configuration (Test/Retail) with the
folders that depend on it (test-signed, retail-signed) derived again.
"""

from __future__ import annotations

import os
import re

from ..util import paths
from . import settings
from .configure import configured
from .nodes import fail, rel_path
from .state import PRODUCT_CABS

_DERIVED_BLD_DIR = re.compile(r"^#build/\$\{FFU_CPU\}/([a-z]+-)?signed$")


# `$(PROD)` as a project spells it (ids are case-insensitive), in UTF-8/ANSI or UTF-16 text
_USES_PROD = (
    re.compile(rb"\$\([pP][rR][oO][dD]\)"),
    re.compile(rb"\$\x00\(\x00[pP]\x00[rR]\x00[oO]\x00[dD]\x00\)\x00"),
)


def uses_product(path: str) -> bool:
    """Whether a project can depend on the product: only its own text names build variables (macros
    are local to the file; INFs and payloads are not expanded), so one without `$(PROD)` is planned
    once, not once per product."""
    try:
        fd = paths.open_regular(path)  # never blocks: a FIFO in place of a project is planning's error
    except OSError:
        return True  # planning reports it
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    return any(r.search(data) for r in _USES_PROD)


def product_specs(env, spec: dict, project: str) -> dict[str, dict] | None:
    """The package build spec per product (PROD = the product's name), or None when the project
    cannot differ between products: fewer than two products, PROD pinned in FFU_VARIABLES, or a
    project that does not name $(PROD)."""
    names = sorted({*env.get("FFU_PRODUCTS", []), env["FFU_PRODUCT"]} - {""})
    if len(names) < 2 or spec["variables"].get("PROD") != env["FFU_PRODUCT"] or not uses_product(project):
        return None
    return {p: {**spec, "variables": {**spec["variables"], "PROD": p}} for p in names}


def split(plans: dict[str, list]) -> tuple[list, dict[str, dict]]:
    """From each product's plans (`Planned` lists): the CABs with the same content for every product
    (one `Planned` each, the first product's) and, by CAB name, the product-dependent ones
    ({product: Planned}, only products that have the CAB)."""
    products = list(plans)
    by_product = {p: {v.cab_name: v for v in plans[p]} for p in products}
    names = list(dict.fromkeys(v.cab_name for p in products for v in plans[p]))
    shared, own = [], {}
    for name in names:
        found = {p: by_product[p][name] for p in products if name in by_product[p]}
        contents = [v.content for v in found.values()]
        if len(found) == len(products) and all(c == contents[0] for c in contents):
            shared.append(found[products[0]])
        else:
            own[name] = found
    return shared, own


def cab_for(path: str, product: str) -> str:
    """The CAB `product` installs where an FM names `path` (absolute): its own copy for a package
    that depends on the product, else `path` itself."""
    copies = PRODUCT_CABS.get(path)
    if copies is None:
        return path
    if product not in copies:
        fail(
            f"{os.path.basename(path)} depends on the product and is built for "
            f"{', '.join(sorted(copies))} only; add {product} to FFU_PRODUCTS"
        )
    return copies[product]


def install_order(env, cabs) -> list[str]:
    """CABs (relative to the top) in install order: sorted by the path the FMs name, so a product's
    own copy installs where the shared CAB would (append order of REG_MULTI_SZ values, hive
    layout): the same image bytes as a one-product build."""
    shared = {
        rel_path(env, own): rel_path(env, path)
        for path, copies in PRODUCT_CABS.items()
        for own in copies.values()
    }
    return sorted(cabs, key=lambda c: (shared.get(c, c), c))


def relocate(data, mapping: dict[str, str]):
    """The same JSON with every string in `mapping` replaced (paths of shared CABs by the product's)."""
    if isinstance(data, dict):
        return {k: relocate(v, mapping) for k, v in data.items()}
    if isinstance(data, list):
        return [relocate(v, mapping) for v in data]
    if isinstance(data, str):
        return mapping.get(data, data)
    return data


def product_mapping(env, product: str) -> dict[str, str]:
    """Shared CAB path -> the product's own, both relative to the top of the tree."""
    return {
        rel_path(env, shared): rel_path(env, cab_for(shared, product))
        for shared in PRODUCT_CABS
        if product in PRODUCT_CABS[shared]
    }


def for_config(env, config: str):
    """A configured clone of `env` for CONFIG=`config`: the build folder that depends on the
    configuration and the signer (build/<cpu>/retail-signed, …) is derived again for it."""
    overrides: dict = {"FFU_CONFIG": config}
    if _DERIVED_BLD_DIR.match(str(env["FFU_BLD_DIR"])):
        overrides["FFU_BLD_DIR"] = settings.BY_NAME["FFU_BLD_DIR"].default
    return configured(env.Clone(**overrides))
