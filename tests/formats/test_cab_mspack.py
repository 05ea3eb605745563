"""LZX and Quantum folders (libmspack through ctypes) against independent readers.

Oracles: cabextract for every cabinet of libmspack's own test set (../shared/corpus/cab-libmspack),
7-Zip (its own LZX and Quantum decoders, no libmspack) for the MSZIP+LZX+Quantum cabinet. Each
cabinet is read by ``ffuforge cab extract`` in a child process with a time limit and an address-space
limit, so a hang, a crash or unbounded memory fails the test instead of the test run. The large
folder is LZX made of uncompressed blocks (LZX block type 3, the one LZX form that can be written
without an encoder); cabextract is the oracle for it too, so the stream layout is checked as well.
"""

from __future__ import annotations

import hashlib
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ffuforge.errors import FormatError
from ffuforge.formats.cab import CFFOLDER, CFHEADER, CabReader, mspack
from lzxcab import lzx_cab

from oracles import needs, require_tool

ROOT = Path(__file__).resolve().parents[2]
# Cabinets embedded in other data: cabextract searches a file for them, we read files that are cabinets.
EMBEDDED = {"search_basic.cab": "not a cabinet file", "search_tricky1.cab": "multi-cabinet"}
MEM_LIMIT = 768 * 1024 * 1024  # address space of the child: Python, lxml, construct and one decoder
needs_cabextract = needs("cabextract")


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def _run_limited(script: str, timeout: int) -> subprocess.CompletedProcess:
    """`script` in a child Python with the library on its path, under _limit's resource limits."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "site_scons"))
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit,
    )


def run_extract(cab: Path, dest: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "site_scons"))
    return subprocess.run(
        [sys.executable, "-m", "ffuforge", "cab", *(extra or ("extract", str(cab), str(dest)))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit,
    )


def tree(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def cabextract(cab: Path, dest: Path) -> bool:
    r = subprocess.run(["cabextract", "-q", "-d", str(dest), str(cab)], capture_output=True, timeout=120)
    return r.returncode == 0


@needs_cabextract
def test_libmspack_corpus_matches_cabextract(corpus, tmp_path):
    cabs = sorted((corpus / "cab-libmspack").glob("*.cab"))
    assert len(cabs) >= 50
    agreed = refused = 0
    for cab in cabs:
        ours, theirs = tmp_path / "ours" / cab.stem, tmp_path / "theirs" / cab.stem
        theirs.mkdir(parents=True)
        ok = cabextract(cab, theirs)
        r = run_extract(cab, ours)
        err = r.stderr.strip()
        assert r.returncode in (0, 1, 2), f"{cab.name}: crashed ({r.returncode}): {err[-500:]}"
        assert "Traceback" not in err, f"{cab.name}: {err}"
        if ok and cab.name not in EMBEDDED:
            assert r.returncode == 0, f"{cab.name}: cabextract extracts it, we say {err}"
            assert tree(ours) == tree(theirs), cab.name
            agreed += 1
        else:
            assert r.returncode != 0, f"{cab.name}: cabextract refuses it, we extracted {tree(ours)}"
            assert len(err.splitlines()) == 1 and err.startswith(f"ffuforge: error: {cab}: "), (
                f"{cab.name}: {err!r}"
            )
            assert EMBEDDED.get(cab.name, "") in err
            assert not ours.exists() or tree(ours) == {}, f"{cab.name}: partial output {tree(ours)}"
            refused += 1
    assert agreed >= 12 and refused >= 35


def test_mszip_lzx_quantum_against_7z(corpus, tmp_path):
    cab = corpus / "cab-libmspack" / "mszip_lzx_qtm.cab"
    require_tool("7z")
    subprocess.run(["7z", "x", "-y", f"-o{tmp_path / 'theirs'}", str(cab)], check=True, capture_output=True)
    with CabReader(cab) as r:
        assert [r.read(m)[:0] == b"" for m in r.members]
        kinds = sorted(f.comp & 0xF for f in r._folders)
        assert kinds == [1, 2, 3]  # one MSZIP, one Quantum, one LZX folder
        r.extract_all(tmp_path / "ours")
        # members read out of order and again: the decoder restarts from the folder's start
        names = [m.name for m in r.members]
        first = {n: r.read(n) for n in reversed(names)}
        assert {n: r.read(n) for n in names} == first
    assert tree(tmp_path / "ours") == tree(tmp_path / "theirs") != {}


def test_cli_lists_lzx(corpus):
    r = run_extract(Path(), Path(), "list", str(corpus / "cab-libmspack" / "mszip_lzx_qtm.cab"))
    assert r.returncode == 0 and "lzx.txt" in r.stdout and "qtm.txt" in r.stdout


# --- a large LZX folder, made of uncompressed LZX blocks ------------------------------------------


def _payload(corpus: Path, size: int) -> bytes:
    """The corpus LZX member (decoded by our reader) repeated with a counter up to ``size`` bytes."""
    with CabReader(corpus / "cab-libmspack" / "mszip_lzx_qtm.cab") as r:
        seed = r.read("lzx.txt")
    out, i = bytearray(), 0
    while len(out) < size:
        out += b"%08d:" % i + seed
        i += 1
    return bytes(out[:size])


@needs_cabextract
def test_large_lzx_folder_streams_in_bounded_memory(corpus, tmp_path):
    data = _payload(corpus, 48 * 1024 * 1024 + 12345)
    cut1, cut2 = 5_000_001, 40 * 1024 * 1024 + 3
    members = [("a.bin", data[:cut1]), ("dir\\b.bin", data[cut1:cut2]), ("c.bin", data[cut2:])]
    cab = tmp_path / "big.cab"
    lzx_cab(cab, members)
    assert cabextract(cab, tmp_path / "theirs")  # the oracle accepts our stream layout
    r = run_extract(cab, tmp_path / "ours")
    assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "ours") == tree(tmp_path / "theirs")
    assert (tmp_path / "ours" / "dir" / "b.bin").read_bytes() == data[cut1:cut2]
    # peak memory of a reader in this process: a 48 MiB folder costs about one chunk and a window
    script = (
        "import resource,sys,hashlib\n"
        "from ffuforge.formats.cab import CabReader\n"
        f"r=CabReader({str(cab)!r})\n"
        "base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "h=hashlib.sha256()\n"
        "for m in r.members:\n"
        "    for c in r.iter_chunks(m): h.update(c)\n"
        "print(h.hexdigest(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-base)\n"
    )
    out = _run_limited(script, timeout=120)
    assert out.returncode == 0, out.stderr
    digest, grown_kib = out.stdout.split()
    assert digest == hashlib.sha256(data).hexdigest()
    assert int(grown_kib) < 24 * 1024, f"reader grew by {grown_kib} KiB for a 48 MiB folder"


def test_corrupt_block_in_large_lzx_folder(corpus, tmp_path):
    data = _payload(corpus, 3 * 1024 * 1024)
    cab = tmp_path / "bad.cab"
    lzx_cab(cab, [("a.bin", data)], csum=False)
    with CabReader(cab) as r:
        assert r.read("a.bin") == data
    blob = bytearray(cab.read_bytes())
    # the second LZX block (after 1 MiB of stored bytes): its 3+24-bit header is the two 16-bit
    # words before R0..R2; block type 7 does not exist
    pos = blob.find(struct.pack("<III", 1, 1, 1) + data[1 << 20 : (1 << 20) + 64])
    assert pos > 0
    blob[pos - 3] |= 0xE0  # high byte of the first header word: the type's 3 bits
    cab.write_bytes(bytes(blob))
    with CabReader(cab) as r:
        with pytest.raises(
            FormatError, match=r"member 'a.bin': folder 0: corrupt LZX data in bytes 786432\.\."
        ):
            r.read("a.bin")


def test_libmspack_missing_is_one_line(monkeypatch, corpus):
    monkeypatch.setattr(mspack, "SONAME", "libmspack-not-there.so.0")
    monkeypatch.setattr(mspack, "_lib", None)
    from ffuforge.errors import ToolError

    with CabReader(corpus / "cab-libmspack" / "mszip_lzx_qtm.cab") as r:
        assert r.read("mszip.txt")
        with pytest.raises(ToolError, match="install the Debian package libmspack0"):
            r.read("lzx.txt")


def test_virtual_cabinet_cuts_folder_in_chunks():
    head = mspack.virtual_cabinet(3 | (21 << 8), 100, 3 * mspack.CHUNK + 5, 0, 1000)
    h = CFHEADER.parse(head)
    assert h.cFiles == 4 and h.cbCabinet == len(head) + 1000 and h.cFolders == 1
    f = CFFOLDER.parse(head[h.end : h.end + 8])
    assert (f.coffCabStart, f.cCFData, f.typeCompress) == (len(head), 100, 3 | (21 << 8))


def test_lzx_package_installs_like_its_mszip_twin(corpus, tmp_path):
    """Microsoft compresses packages with LZX: the extract cache and the installer take them."""
    from ffuforge.image import partition
    from ffuforge.package.build import build_variant

    from helpers import plan, wm

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(_payload(corpus, 300_000))
    v = plan(
        wm(src, '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)"/></files>', name="L")
    )[0]
    mszip = tmp_path / "mszip" / v.cab_name
    build_variant(v, mszip)
    with CabReader(mszip) as r:
        members = [(m.name, r.read(m)) for m in r.members]
    lzx = tmp_path / "lzx" / v.cab_name
    lzx.parent.mkdir()
    lzx_cab(lzx, members)
    with CabReader(lzx) as r:
        assert {f.comp & 0xF for f in r._folders} == {3}
    staged = {}
    for kind, c in (("mszip", mszip), ("lzx", lzx)):
        st = partition.stage(
            "MainOS", [c], tmp_path / kind / "w", epoch=1577836800, cache_dir=tmp_path / kind / "cache"
        )
        root = tmp_path / kind / "w" / "root"
        staged[kind] = (st.manifest(), tree(root))
    assert staged["lzx"] == staged["mszip"]
    assert (tmp_path / "lzx/w/root/Windows/System32/a.txt").read_bytes() == (src / "a.txt").read_bytes()


def test_mutated_lzx_and_quantum_data_never_crash(corpus, tmp_path):
    """Byte flips inside the LZX and Quantum folders with CFDATA checksums cleared, so that the
    decoders themselves see the damage. A child process under time and memory limits: a crash or
    hang fails the test; every outcome is bytes or one FFUError."""
    src = corpus / "cab-libmspack" / "mszip_lzx_qtm.cab"
    script = f"""
import random, struct, sys
from ffuforge.errors import FFUError
from ffuforge.formats.cab import CabReader
blob = bytearray(open({str(src)!r}, "rb").read())
r = CabReader({str(src)!r})
spans = []
for f in r._folders:
    pos = f.coff
    for _ in range(f.blocks):
        cb = struct.unpack_from("<H", blob, pos + 4)[0]
        blob[pos : pos + 4] = bytes(4)  # no checksum
        if f.comp & 0xF in (2, 3):
            spans.append((pos + 8, pos + 8 + cb))
        pos += 8 + cb
rng = random.Random(1234)
path = {str(tmp_path / "m.cab")!r}
outcomes = {{"ok": 0, "refused": 0}}
for i in range(1500):
    m = bytearray(blob)
    for _ in range(rng.randint(1, 4)):
        a, b = rng.choice(spans)
        m[rng.randrange(a, b)] = rng.randrange(256)
    open(path, "wb").write(m)
    try:
        with CabReader(path) as c:
            for e in c.members:
                assert len(c.read(e)) == e.size
        outcomes["ok"] += 1
    except FFUError as exc:
        assert "\\n" not in str(exc)
        outcomes["refused"] += 1
print(outcomes["ok"], outcomes["refused"])
"""
    out = _run_limited(script, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ok, refused = map(int, out.stdout.split())
    assert refused > 100 and ok + refused == 1500
