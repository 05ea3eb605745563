"""Benchmarks, each measured side by side with a reference tool in the same run.

    python -m bench cab [--packages 200] [--mib 256]

Results are printed as a table and appended to bench/RESULTS.md with machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import workspace

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node() and 'linux'} {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def _scons(ws: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", *args], cwd=ws, capture_output=True, text=True,
                          env=workspace.environ())
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
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-") as tmp:
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
            ("payload", f"{args.packages} projects → {ncabs} CABs, {mib:.0f} MiB (half random, half text)", ""),
            ("gzip -6 (1 core), same bytes", f"{gz:.2f} s", f"{mib / gz:.0f} MiB/s"),
            ("scons -j1, MSZIP CABs", f"{t_zip:.2f} s", f"{mib / t_zip:.0f} MiB/s"),
            ("ratio MSZIP build / gzip -6 (target ≥ 0.8)", f"{gz / t_zip:.2f}×", ""),
            ("scons -j1, uncompressed CABs (pkggen default)", f"{t_none:.2f} s", f"{mib / t_none:.0f} MiB/s"),
            ("ratio uncompressed build / gzip -6", f"{gz / t_none:.2f}×", ""),
            ("no-op scons", f"{t_noop:.2f} s", ""),
            ("peak RSS of scons (children)", f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB", ""),
        ]
    return rows


def bench_sign(args) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-") as tmp:
        ws = Path(tmp) / "ws"
        nbytes = workspace.generate(ws, args.packages, args.mib << 20, pe_per_package=1)
        times = {}
        for mode in ("none", "test", "none", "test"):
            _scons(ws, "-c")
            dt, _ = _scons(ws, "-j1", f"SIGN={mode}")
            times[mode] = min(times.get(mode, dt), dt)
        mib = nbytes / (1 << 20)
        return [
            ("payload", f"{args.packages} packages (1 PE driver each, signed too), {mib:.0f} MiB", ""),
            ("unsigned package build (scons -j1)", f"{times['none']:.2f} s", f"{mib / times['none']:.0f} MiB/s"),
            ("signed: PE payloads, catalog and CAB", f"{times['test']:.2f} s", f"{mib / times['test']:.0f} MiB/s"),
            ("ratio signed / unsigned (target ≤ 1.15)", f"{times['test'] / times['none']:.2f}×", ""),
        ]


def _report(title: str, rows, args) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    for a, b, c in rows:
        print(f"  {a:<{width}}  {b:>14}  {c}")
    if args.no_record:
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n### {title} — {stamp}\n", f"Machine: {_machine()}\n\n", "| measure | value | rate |\n",
             "|---|---|---|\n"] + [f"| {a} | {b} | {c} |\n" for a, b, c in rows]
    with open(RESULTS, "a") as fh:
        fh.writelines(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cab", help="package build throughput against gzip -6 of the same bytes")
    c.add_argument("--packages", type=int, default=200)
    c.add_argument("--mib", type=int, default=256, help="total payload in MiB")
    s = sub.add_parser("sign", help="signed package builds against unsigned ones")
    s.add_argument("--packages", type=int, default=200)
    s.add_argument("--mib", type=int, default=128, help="total payload in MiB")
    args = ap.parse_args(argv)
    if args.what == "cab":
        _report(f"CAB build, {args.packages} packages", bench_cab(args), args)
    elif args.what == "sign":
        _report(f"Signing cost, {args.packages} packages", bench_sign(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
