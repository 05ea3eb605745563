"""The SCons glue: the only package that imports SCons.

Use it as `Environment(tools=[ffuforge.scons_tool.generate])` or through the `ffuforge_tool` site
tool. The glue is thin: `settings` declares every construction variable (defaults, command-line
options, validation, help); `methods` holds env.Package / FeatureMerge / Image, which declare
targets with the library's parsers; `actions` runs the library when a target is out of date;
`overrides` holds the few documented replacements of SCons internals; `state` what one run knows.
"""

from __future__ import annotations

from .actions import PACKAGE_BUILDER, signed_actions
from .bsp import BSP
from .cachedir import SparseCacheDir
from .checks import checked
from .configure import configure
from .contentsig import content_signature
from .methods import FeatureMerge, Image, Package, feature_variables
from .outputs import clean_caches
from .overrides import install as _install_overrides
from .products import for_config
from .provisioning import ProvisioningPackage
from .settings import SETTINGS, defaults
from .standin import StandInBinary, StandInPE, TestAppx
from .state import MERGES, PACKAGES, PackageRecord

__all__ = [
    "MERGES",
    "PACKAGES",
    "SETTINGS",
    "PackageRecord",
    "clean_caches",
    "configure",
    "content_signature",
    "exists",
    "feature_variables",
    "for_config",
    "generate",
    "signed_actions",
]


def generate(env):
    # SCons hashes every source and CAB it sees (gigabytes per product) on its one taskmaster
    # thread; SHA-256 runs 2.3× faster than its default MD5 on CPUs with SHA extensions. A
    # --hash-format given on the command line still wins.
    from SCons.Script import SetOption

    SetOption("hash_format", "sha256")
    _install_overrides()
    env["CACHEDIR_CLASS"] = SparseCacheDir
    env.SetDefault(**defaults())
    env.AddMethod(Package, "Package")
    env.AddMethod(FeatureMerge, "FeatureMerge")
    env.AddMethod(Image, "Image")
    env.AddMethod(BSP, "BSP")
    env.AddMethod(lambda env: checked(), "CheckPackages")
    env.AddMethod(StandInPE, "StandInPE")
    env.AddMethod(StandInBinary, "StandInBinary")
    env.AddMethod(ProvisioningPackage, "ProvisioningPackage")
    env.AddMethod(TestAppx, "TestAppx")
    env.AddMethod(configure, "FFUConfigure")
    env["BUILDERS"]["FFUPackageCab"] = PACKAGE_BUILDER


def exists(env):
    return True
