"""The signer a build uses: configured by FFU_SIGN, loaded and checked once per run.

Key material never enters the graph: signatures name the signer by identity (certificate
fingerprints or the command string); worker processes load their own copy from SIGNER_KEYS.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import FFUError, SigningError
from . import plancache, signerfacts
from .nodes import fail
from .state import CONFIGURED, SIGNER_KEYS, SIGNERS

if TYPE_CHECKING:
    from ..signing import signers as signing

_TEST_FILES = ("leaf.crt", "leaf.key", "intermediate.crt", "root.crt")


def _configured(env, key: tuple, files: tuple[str, ...], load) -> None:
    """CONFIGURED[key]: the signer recorded by an earlier run (loaded when first used), else loaded now
    and recorded (:mod:`.signerfacts`)."""
    if key in CONFIGURED:
        return
    cache = plancache.cache_file(env, signerfacts.FILENAME)
    signer = signerfacts.lazy(cache, key, files, load)
    if signer is None:
        signer = load()
        signerfacts.remember(cache, key, files, signer)
    CONFIGURED[key] = signer


def signer_of(env) -> signing.Signer | None:
    """The signer configured by FFU_SIGN (test | key | command | none), loaded and checked once.

    Stops the build before any work when the certificate is unusable. The password comes from
    the FFU_SIGN_PASSWORD environment variable only, never from the command line or the graph."""
    mode = env.subst("$FFU_SIGN").lower()
    try:
        if mode == "none":
            return None
        if mode == "test":
            directory = env.Dir("#").Dir(env.subst("$FFU_TEST_PKI_DIR")).abspath
            key = ("test", directory)
            owner = env.subst("$FFU_TEST_PKI_OWNER") or "Contoso"
            files = tuple(os.path.join(directory, n) for n in _TEST_FILES)
            _configured(env, key, files, lambda: _test_pki(directory, owner))
        elif mode == "key":
            cert = env.subst("$FFU_SIGN_CERT")
            if not cert:
                raise SigningError(
                    "FFU_SIGN=key needs FFU_SIGN_CERT (a PEM certificate or a .pfx) and usually "
                    "FFU_SIGN_KEY; a release build needs your own code-signing certificate"
                )
            # relative to the top of the tree, whichever SConscript calls Package() first
            top = env.Dir("#")
            chain = tuple(top.File(c).abspath for c in env.Flatten(env.get("FFU_SIGN_CHAIN", [])))
            key_file = env.subst("$FFU_SIGN_KEY") or None
            key = ("key", top.File(cert).abspath, key_file and top.File(key_file).abspath, chain)
            load = lambda: _key_signer(key)  # noqa: E731
            if os.environ.get("FFU_SIGN_PASSWORD"):  # loaded now: a wrong password stops before any work
                if key not in CONFIGURED:
                    CONFIGURED[key] = load()
            else:
                _configured(env, key, tuple(f for f in (key[1], key[2], *chain) if f), load)
        elif mode == "command":
            command = env.subst("$FFU_SIGN_COMMAND")
            if not command:
                raise SigningError(
                    "FFU_SIGN=command needs FFU_SIGN_COMMAND, a program that signs the file it is given"
                )
            key = ("command", command)
            if key not in CONFIGURED:
                from ..signing import signers as signing

                CONFIGURED[key] = signing.CommandSigner(command)
        else:
            raise SigningError(f"FFU_SIGN={mode!r}; use test, key, command or none")
        signer = CONFIGURED[key]
        if hasattr(signer, "check_validity"):
            signer.check_validity(int(env["SOURCE_DATE_EPOCH"]))
    except FFUError as exc:
        fail(str(exc))
    SIGNERS[signer.identity] = signer
    SIGNER_KEYS[signer.identity] = key
    return signer


def _test_pki(directory: str, owner: str = "Contoso"):
    from ..signing import testpki

    return testpki.ensure_test_pki(directory, owner)


def _key_signer(key: tuple):
    from ..signing import signers as signing

    return signing.load_key_signer(key[1], key[2], key[3], password=os.environ.get("FFU_SIGN_PASSWORD"))


def signer_in_process(identity: str, key: tuple | None) -> signing.Signer:
    """The signer with this identity, loaded: a worker process loads it once from signer_of's key,
    and one only known by its identity so far (:class:`.signerfacts.LazySigner`) is loaded now."""
    signer = SIGNERS.get(identity)
    if signer is None and key is not None:
        if key[0] == "test":
            signer = _test_pki(key[1])
        elif key[0] == "key":
            signer = _key_signer(key)
        else:
            from ..signing import signers as signing

            signer = signing.CommandSigner(key[1])
        if signer.identity != identity:
            raise SigningError(
                f"the signing certificate changed during the build ({key[1]}); run scons again"
            )
        SIGNERS[identity] = signer
    if isinstance(signer, signerfacts.LazySigner):
        signer = SIGNERS[identity] = signer.real()
    return SIGNERS[identity]
