"""`python -m bench ntfs`: the MainOS volume write alone (mkntfs + the tree through libntfs-3g +
time normalisation, as `formats.ntfs.write_ntfs` does it) against `cp -r` of the same tree, run
interleaved in the same session (issue 14: ≤ 1.2 s at 1 GiB and ≤ 1.3× cp -r).

The tree is shaped like the partition benchmark's staged MainOS (lognormal sizes, half random and
half text, ~300 directories). Each run starts after an untimed `sync`, with the tree in the page
cache, so both sides read from memory; the volume is 1.28× the payload, as the layout sizes it.

After each write the volume's block content signature is taken as the partition action takes it
(`blocksig.file_signature`, holes unread, the image just written): what reading the image back
costs against writing it (issue 14 step n: the signature is not computed inside the writer)."""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure, workspace

_WRITE = (
    "import sys; sys.path.insert(0, sys.argv[1]); from ffuforge.formats.ntfs import write_ntfs; "
    "write_ntfs(sys.argv[2], sys.argv[3], size_bytes=int(sys.argv[4]), label='MainOS', timestamp=1577836800)"
)


def bench_ntfs(args) -> list[tuple[str, str, str]]:
    site = str(Path(__file__).resolve().parents[1] / "site_scons")
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-", dir=args.workdir) as tmp:
        src = Path(tmp) / "tree"
        rng = random.Random(14)
        sizes = workspace.file_sizes(rng, args.files, args.mib << 20, "lognormal")
        for i, size in enumerate(sizes):
            p = src / f"d{i % 300:03d}" / f"f{i:05d}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(workspace._payload(rng, size, text=bool(i % 2)))
        total = sum(sizes)
        volume = (int(total * 1.28) + (64 << 20)) // 4096 * 4096
        out, copy = Path(tmp) / "MainOS.img", Path(tmp) / "copy"
        print(
            f"[ntfs] {len(sizes)} files, {total >> 20} MiB; {args.repeat} interleaved runs", file=sys.stderr
        )

        sys.path.insert(0, site)
        from ffuforge.formats.blocksig import file_signature

        sig: list[float] = []

        def write() -> float:
            out.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", _WRITE, site, str(src), str(out), str(volume)], check=True)
            done = time.perf_counter()
            file_signature(out)
            sig.append(time.perf_counter() - done)
            return done - t

        def cp() -> float:
            shutil.rmtree(copy, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            t = time.perf_counter()
            subprocess.run(["cp", "-r", str(src), str(copy)], check=True)
            return time.perf_counter() - t

        subprocess.run(["cat", *map(str, src.rglob("*.bin"))], stdout=subprocess.DEVNULL, check=True)
        w: list[float] = []
        c: list[float] = []
        for _ in range(args.repeat):
            w.append(write())
            c.append(cp())
    mw, mc = statistics.median(w), statistics.median(c)
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    met = "met" if mw <= 1.2 * args.mib / 1024 and mw <= 1.3 * mc else "not met"
    return [
        (
            "tree",
            f"{len(sizes)} files, {total >> 20} MiB",
            f"volume {volume >> 20} MiB, load {measure.load()}",
        ),
        (
            "MainOS volume write (mkntfs + tree + normalise)",
            f"{mw:.2f} s median",
            f"min {min(w):.2f} s; runs {runs(w)}",
        ),
        ("cp -r of the same tree, same run", f"{mc:.2f} s median", f"min {min(c):.2f} s; runs {runs(c)}"),
        ("ratio write / cp -r (medians)", f"{mw / mc:.2f}×", f"target ≤ 1.2 s at 1 GiB and ≤ 1.3×: {met}"),
        (
            "block signature of the written volume (read back)",
            f"{statistics.median(sig):.2f} s median",
            f"min {min(sig):.2f} s; runs {runs(sig)}; ratio to the write {statistics.median(sig) / mw:.2f}×",
        ),
    ]
