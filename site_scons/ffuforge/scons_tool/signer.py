"""The signer a build uses: configured by FFU_SIGN, loaded and checked once per run.

Key material never enters the graph: signatures name the signer by identity (certificate
fingerprints or the command string); worker processes load their own copy from SIGNER_KEYS.
"""

from __future__ import annotations

import os

from ..errors import FFUError, SigningError
from ..signing import signers as signing
from ..signing import testpki
from .nodes import fail
from .state import CONFIGURED, SIGNER_KEYS, SIGNERS


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
            if key not in CONFIGURED:
                CONFIGURED[key] = testpki.ensure_test_pki(
                    directory, env.subst("$FFU_TEST_PKI_OWNER") or "Contoso"
                )
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
            if key not in CONFIGURED:
                CONFIGURED[key] = signing.load_key_signer(
                    key[1], key[2], chain, password=os.environ.get("FFU_SIGN_PASSWORD")
                )
        elif mode == "command":
            command = env.subst("$FFU_SIGN_COMMAND")
            if not command:
                raise SigningError(
                    "FFU_SIGN=command needs FFU_SIGN_COMMAND, a program that signs the file it is given"
                )
            key = ("command", command)
            if key not in CONFIGURED:
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


def signer_in_process(identity: str, key: tuple | None) -> signing.Signer:
    """The signer with this identity; a worker process loads it once from signer_of's key."""
    signer = SIGNERS.get(identity)
    if signer is None and key is not None:
        if key[0] == "test":
            signer = testpki.ensure_test_pki(key[1])
        elif key[0] == "key":
            signer = signing.load_key_signer(
                key[1], key[2], key[3], password=os.environ.get("FFU_SIGN_PASSWORD")
            )
        else:
            signer = signing.CommandSigner(key[1])
        if signer.identity != identity:
            raise SigningError(
                f"the signing certificate changed during the build ({key[1]}); run scons again"
            )
        SIGNERS[identity] = signer
    return SIGNERS[identity]
