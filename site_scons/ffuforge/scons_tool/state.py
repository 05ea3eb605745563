"""What one scons run knows across SConscripts and actions: every registry in one place.

SCons reads all SConscripts first, then runs actions; what Package(), FeatureMerge() and Image()
learn while reading (which CAB lands on which partition, merged FM bytes, loaded signers) is kept
here for the resolver and the actions of the same run. Nothing here outlives the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: a no-op build never needs the package builder or crypto
    from ..package.build import SourceDigests
    from ..signing.signers import Signer


@dataclass(frozen=True)
class PackageRecord:
    """What the graph knows about a CAB before it is built (the resolver needs partitions)."""

    name: str
    partition: str
    release_type: str
    origin: str  # project file or FMFileList that declares it
    layout_files: tuple[tuple[str, str], ...] = ()  # (devicelayout.xml|oemdeviceplatform.xml, source path)
    owner_type: str = "OEM"  # the project's ownerType (Microsoft's packages: UpdateOS takes any name)
    warnings: tuple[str, ...] = ()  # the package's INF warnings ('file:line: warning: …')


PACKAGES: dict[str, PackageRecord] = {}  # CAB absolute path -> record, for every CAB this build makes
# A CAB whose content depends on the product: its shared path (as FMs name it) -> product -> own copy
PRODUCT_CABS: dict[str, dict[str, str]] = {}


# FeatureMerger

MERGES: list = []  # features.MergeResult of every FeatureMerge() in this build
MERGED_NODES: dict[str, object] = {}  # merged FM path -> its target node
MERGED_XML: dict[str, bytes] = {}  # merged FM target path -> bytes computed at SConscript time

# Signing: loaded once per run; workers load their own from SIGNER_KEYS.
SIGNERS: dict[str, Signer] = {}  # identity -> signer, for every signer this run uses
CONFIGURED: dict[tuple, Signer] = {}  # how it was configured -> signer (loaded once)
SIGNER_KEYS: dict[str, tuple] = {}  # identity -> key of CONFIGURED (how a worker process loads it)

DECLARED: dict[str, tuple[str, list]] = {}  # target path -> (spec, nodes): targets declared once per graph
OWNERS: dict[str, str] = {}  # CAB absolute path -> the project that declares it (two may not)

# Content signatures computed by actions, so SCons' taskmaster thread does not read files again.
PRESIGNED: dict[str, tuple[int, int, str]] = {}  # target path -> content_signature() from its action
SOURCE_SIGS: SourceDigests = {}  # payload path -> SHA-256 from the package build
