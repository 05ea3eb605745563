"""A CacheDir that keeps partition images sparse on the way in and out of the shared cache.

A plain cache copy turned the 8 GiB Data image into 8 GiB of written zeros.
"""

from __future__ import annotations

import os

import SCons.CacheDir

from ..util.atomic import sparse_copy


class SparseCacheDir(SCons.CacheDir.CacheDir):
    """CacheDir that keeps partition images sparse on the way in and out of the cache."""

    @classmethod
    def copy_from_cache(cls, env, src, dst) -> str:

        sparse_copy(src, dst)
        return dst

    @classmethod
    def copy_to_cache(cls, env, src, dst) -> str:

        sparse_copy(src, dst)
        os.chmod(dst, os.stat(dst).st_mode | 0o200)
        return dst
