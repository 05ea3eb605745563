"""Benchmarks, each measured side by side with a reference measured in the same run.

    python -m bench scale      [--packages 300] [--mib 1024] [--dist lognormal]   (issue 7)
    python -m bench partition  [--packages 300] [--mib 1024]                      (issue 5)
    python -m bench ntfs       [--mib 1024] [--repeat 5]                          (issue 14)
    python -m bench ffu        [--disk-gib 8] [--data-mib 1536]                   (issue 6)
    python -m bench cab        [--packages 200] [--mib 256]                       (issue 2)
    python -m bench sign       [--packages 200] [--mib 128]                       (issue 3)

Results are printed as a table and appended to bench/RESULTS.md with machine, date and load.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure, workspace

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _scons(ws: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "SCons", "-Q", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env=workspace.environ(),
    )
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"scons failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return dt, proc


def _gzip_seconds(files: list[Path]) -> float:
    t0 = time.perf_counter()
    cat = subprocess.Popen(["cat", *map(str, files)], stdout=subprocess.PIPE)
    gz = subprocess.run(["gzip", "-6", "-c"], stdin=cat.stdout, stdout=subprocess.DEVNULL)
    cat.wait()
    if gz.returncode:
        raise SystemExit("gzip failed")
    return time.perf_counter() - t0


def bench_cab(args) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-", dir=args.workdir) as tmp:
        ws = Path(tmp) / "ws"
        nbytes = workspace.generate(ws, args.packages, args.mib << 20)
        files = workspace.payload_files(ws)
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        gz = min(_gzip_seconds(files) for _ in range(2))
        t_zip, proc = _scons(ws, "-j1", "COMPRESSION=mszip")
        ncabs = proc.stdout.count("Package ")
        _scons(ws, "-c")
        t_none, _ = _scons(ws, "-j1", "COMPRESSION=none")
        t_noop, _ = _scons(ws, "-j1", "COMPRESSION=none")
        mib = nbytes / (1 << 20)
        rows = [
            (
                "payload",
                f"{args.packages} projects → {ncabs} CABs, {mib:.0f} MiB (half random, half text)",
                "",
            ),
            ("gzip -6 (1 core), same bytes", f"{gz:.2f} s", f"{mib / gz:.0f} MiB/s"),
            ("scons -j1, MSZIP CABs", f"{t_zip:.2f} s", f"{mib / t_zip:.0f} MiB/s"),
            (
                "ratio MSZIP build / gzip -6 (target ≥ 0.8)",
                f"{gz / t_zip:.2f}×",
                "met" if gz / t_zip >= 0.8 else "MISSED",
            ),
            ("scons -j1, uncompressed CABs (pkggen default)", f"{t_none:.2f} s", f"{mib / t_none:.0f} MiB/s"),
            ("ratio uncompressed build / gzip -6", f"{gz / t_none:.2f}×", ""),
            ("no-op scons", f"{t_noop:.2f} s", ""),
            (
                "peak RSS of scons (children)",
                f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB",
                "",
            ),
        ]
    return rows


def bench_sign(args) -> list[tuple[str, str, str]]:
    modes = {
        "none": ("SIGN=none",),
        "cat+cab": ("SIGN=test", "SIGN_PE=0"),
        "pe+cat+cab": ("SIGN=test", "SIGN_PE=1"),
    }
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-", dir=args.workdir) as tmp:
        ws = Path(tmp) / "ws"
        nbytes = workspace.generate(ws, args.packages, args.mib << 20, pe_per_package=1)
        times: dict[str, float] = {}
        for _ in range(args.repeat):  # alternating, best of each: the machine's noise hits all modes alike
            for mode, argv in modes.items():
                _scons(ws, "-c")
                dt, _ = _scons(ws, "-j1", *argv)
                times[mode] = min(times.get(mode, dt), dt)
        mib = nbytes / (1 << 20)
        base = times["none"]

        def ratio(mode: str) -> tuple[str, str, str]:
            r = times[mode] / base
            return f"{r:.2f}×", "met" if r <= 1.15 else "MISSED"

        return [
            (
                "payload",
                f"{args.packages} packages (1 PE driver each), {mib:.0f} MiB",
                f"best of {args.repeat}",
            ),
            ("unsigned package build (scons -j1)", f"{base:.2f} s", f"{mib / base:.0f} MiB/s"),
            (
                "signed: catalog and CAB (sign.cmd default)",
                f"{times['cat+cab']:.2f} s",
                f"{mib / times['cat+cab']:.0f} MiB/s; 2 RSA signatures per CAB",
            ),
            ("ratio catalog+CAB / unsigned (target ≤ 1.15)", *ratio("cat+cab")),
            (
                "signed: PE payloads, catalog and CAB (FFU_SIGN_PE)",
                f"{times['pe+cat+cab']:.2f} s",
                f"{mib / times['pe+cat+cab']:.0f} MiB/s; 3 RSA signatures per CAB",
            ),
            ("ratio PE+catalog+CAB / unsigned (target ≤ 1.15)", *ratio("pe+cat+cab")),
        ]


def _report(title: str, rows, args, argv: list[str], start_load: str) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    for a, b, c in rows:
        print(f"  {a:<{width}}  {b:>14}  {c}")
    if args.no_record:
        return
    lines = [
        f"\n### {title} — {measure.now()}\n",
        f"Machine: {measure.machine()}; load average (1/5 min) at "
        f"start {start_load}, at end {measure.load()}\n\n",
        f"Command: `python -m bench {shlex.join(argv)}`" + (f" — {args.note}" if args.note else "") + "\n\n",
        "| measure | value | notes |\n",
        "|---|---|---|\n",
    ] + [f"| {a} | {b} | {c} |\n" for a, b, c in rows]
    with open(RESULTS, "a") as fh:
        fh.writelines(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--note", default="", help="a remark recorded with the results (e.g. 'before the fix')")
    ap.add_argument(
        "--workdir",
        default=None,
        help="where to put the temporary workspace (created if missing; default: $TMPDIR)",
    )
    sub = ap.add_subparsers(dest="what", required=True)
    sc = sub.add_parser(
        "scale", help="the whole pipeline up to Flash.ffu: -j1/-j2, no-op, one edit, FFU, memory"
    )
    sc.add_argument("--packages", type=int, default=300)
    sc.add_argument("--mib", type=int, default=1024, help="total payload in MiB")
    sc.add_argument(
        "--dist", choices=workspace.DISTRIBUTIONS, default="lognormal", help="payload file size distribution"
    )
    sc.add_argument("--sign", choices=("test", "none"), default="test", help="FFU_SIGN of the build")
    sc.add_argument("--j2-first", action="store_true", help="build -j2 before -j1")
    sc.add_argument("--repeat", type=int, default=2, help="full builds per -j (alternating; best is kept)")
    sc.add_argument(
        "--scons-arg",
        action="append",
        help="extra scons argument for every build (repeatable), e.g. --scons-arg=--hash-format=sha256",
    )
    pa = sub.add_parser(
        "partition", help="install packages into MainOS and write NTFS, against cp -r + mkntfs"
    )
    pa.add_argument("--packages", type=int, default=300)
    pa.add_argument("--mib", type=int, default=1024, help="total payload in MiB")
    pa.add_argument("--dist", choices=workspace.DISTRIBUTIONS, default="lognormal")
    nt = sub.add_parser("ntfs", help="the MainOS volume write alone against cp -r of the tree (issue 14)")
    nt.add_argument("--mib", type=int, default=1024, help="total payload in MiB")
    nt.add_argument("--files", type=int, default=2100)
    nt.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    ff = sub.add_parser("ffu", help="FFU writer throughput against sha256sum, and its memory")
    ff.add_argument("--disk-gib", type=int, default=8, help="disk size in GiB")
    ff.add_argument("--data-mib", type=int, default=1536, help="bytes of partition data on the disk, in MiB")
    ff.add_argument("--sign", choices=("test", "none"), default="test", help="sign the FFU catalog")
    fw = sub.add_parser("ffu-worker", help=argparse.SUPPRESS)
    fw.add_argument("spec")
    pw = sub.add_parser("partition-worker", help=argparse.SUPPRESS)
    pw.add_argument("spec")
    c = sub.add_parser("cab", help="package build throughput against gzip -6 of the same bytes")
    c.add_argument("--packages", type=int, default=200)
    c.add_argument("--mib", type=int, default=256, help="total payload in MiB")
    s = sub.add_parser("sign", help="signed package builds against unsigned ones")
    s.add_argument("--packages", type=int, default=200)
    s.add_argument("--mib", type=int, default=128, help="total payload in MiB")
    s.add_argument("--repeat", type=int, default=3, help="builds per mode (alternating; best is kept)")
    args = ap.parse_args(argv)
    if args.workdir:  # every benchmark makes its temporary workspace in it: create it as asked
        try:
            os.makedirs(args.workdir, exist_ok=True)
        except OSError as exc:
            ap.error(f"--workdir {args.workdir}: {exc.strerror}")
    start = measure.load()
    if args.what == "scale":
        from bench.scale import bench_scale

        _report(
            f"Scale: full pipeline, {args.packages} packages, {args.mib} MiB",
            bench_scale(args),
            args,
            argv,
            start,
        )
    elif args.what == "partition":
        from bench.partition import bench_partition

        _report(
            f"MainOS partition, {args.packages} packages, {args.mib} MiB",
            bench_partition(args),
            args,
            argv,
            start,
        )
    elif args.what == "ntfs":
        from bench.ntfs import bench_ntfs

        _report(f"NTFS volume write, {args.mib} MiB", bench_ntfs(args), args, argv, start)
    elif args.what == "ffu":
        from bench.ffu import bench_ffu

        _report(
            f"FFU writer, {args.disk_gib} GiB disk, {args.data_mib} MiB data",
            bench_ffu(args),
            args,
            argv,
            start,
        )
    elif args.what == "ffu-worker":
        from bench.ffu import worker

        return worker(args.spec)
    elif args.what == "partition-worker":
        from bench.partition import worker

        return worker(args.spec)
    elif args.what == "cab":
        _report(f"CAB build, {args.packages} packages", bench_cab(args), args, argv, start)
    elif args.what == "sign":
        _report(f"Signing cost, {args.packages} packages", bench_sign(args), args, argv, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
