"""The signer at SConscript time: identity and validity from an earlier run's record, loaded on first use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ffuforge.errors import SigningError
from ffuforge.scons_tool import signerfacts
from ffuforge.signing import testpki

FILES = ("leaf.crt", "leaf.key", "intermediate.crt", "root.crt")


@pytest.fixture
def pki(tmp_path, monkeypatch):
    monkeypatch.setattr(signerfacts, "RACY_NS", 0)  # the chain was just written
    d = tmp_path / "certs"
    testpki.ensure_test_pki(d)
    return d, tuple(str(d / f) for f in FILES)


def test_recorded_signer_answers_without_loading(pki, tmp_path):
    d, files = pki
    cache, key = str(tmp_path / "signers"), ("test", str(d))
    loads = []

    def load():
        loads.append(1)
        return testpki.ensure_test_pki(d)

    assert signerfacts.lazy(cache, key, files, load) is None  # nothing recorded yet
    real = load()
    signerfacts.remember(cache, key, files, real)
    lazy = signerfacts.lazy(cache, key, files, load)
    assert isinstance(lazy, signerfacts.LazySigner) and lazy.identity == real.identity
    lazy.check_validity(1577836800)
    assert len(loads) == 1  # identity and validity: not loaded
    assert lazy.certificates == real.certificates and len(loads) == 2  # anything else loads it, once
    assert lazy.real() is lazy.real() and len(loads) == 2


def test_a_changed_file_or_another_key_is_not_trusted(pki, tmp_path):
    d, files = pki
    cache, key = str(tmp_path / "signers"), ("test", str(d))
    signerfacts.remember(cache, key, files, testpki.ensure_test_pki(d))
    assert signerfacts.lazy(cache, ("test", "elsewhere"), files, lambda: None) is None
    leaf = d / "leaf.crt"
    st = leaf.stat()
    os.utime(leaf, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert signerfacts.lazy(cache, key, files, lambda: None) is None
    (d / "root.crt").unlink()
    assert signerfacts.lazy(cache, key, files, lambda: None) is None


def test_files_written_just_now_are_not_recorded(tmp_path):
    d = tmp_path / "certs"
    signer = testpki.ensure_test_pki(d)
    files = tuple(str(d / f) for f in FILES)
    cache = str(tmp_path / "signers")
    signerfacts.remember(cache, ("test", str(d)), files, signer)  # RACY_NS as shipped: 2 s
    assert (
        not Path(cache).exists() or signerfacts.lazy(cache, ("test", str(d)), files, lambda: signer) is None
    )


def test_a_loaded_signer_of_another_identity_stops(pki):
    d, _ = pki
    lazy = signerfacts.LazySigner("key:sha256=00", [(0, 2**40)], lambda: testpki.ensure_test_pki(d))
    with pytest.raises(SigningError, match="signing certificate changed during the build"):
        lazy.real()


def test_an_expired_window_is_decided_and_worded_by_the_real_signer(pki):
    d, _ = pki
    real = testpki.ensure_test_pki(d)

    class Expired:
        identity = real.identity

        def check_validity(self, epoch):
            raise SigningError("certificate 'x' has expired")

    lazy = signerfacts.LazySigner(real.identity, [(0, int(time.time()) - 10)], lambda: Expired())
    with pytest.raises(SigningError, match="has expired"):
        lazy.check_validity(1577836800)
    ok = signerfacts.LazySigner(real.identity, [(0, 2**40)], lambda: Expired())
    ok.check_validity(1577836800)  # inside every window: the real one is not asked


@pytest.mark.e2e
def test_a_no_op_build_does_not_load_the_signer(tmp_path):
    """The sample's second run reads the record and never imports the signing code or the key."""
    from scons_util import copy_workspace, scons

    ws = copy_workspace(tmp_path)
    cab = "build/arm64/packages/Contoso.COM.Sample.cab"  # one signed CAB: the whole graph is read
    scons(ws, cab)
    time.sleep(signerfacts.RACY_NS / 1e9)  # the test chain made by the first run is now settled
    scons(ws, cab)  # records the signer
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "SCons", "-Q", cab],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "ffuforge.signing.signers" not in imported and "ffuforge.package.build" not in imported
    assert "up to date" in proc.stdout
