"""`python -m bench partition`: install N packages into MainOS and write its NTFS image, against
`cp -r` of the same staged tree plus `mkntfs` alone, in the same run (issue 5)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import measure, scale, workspace

OUT = "build/arm64/Bench/Test"


def worker(spec_path: str) -> int:
    """image.build_partition as the Partition action calls it, timed phase by phase (the library's
    functions are wrapped here, in the benchmark process only), in three runs: from an empty
    extraction cache with one job and with two, then with one CAB rewritten (the edit build);
    then stage once more into spec["stage"] for the reference copy."""
    spec = json.loads(Path(spec_path).read_text())
    sys.path.insert(0, spec["site_scons"])
    from ffuforge.formats import fstools, ntfs
    from ffuforge.image import partition
    from ffuforge.image import stages as image
    from ffuforge.util import workers  # noqa: PLC0415

    phases: dict[str, float] = {}

    def timed(label, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                key = label(*a) if callable(label) else label
                phases[key] = phases.get(key, 0.0) + time.perf_counter() - t0

        return wrapper

    def tool(argv, *a, **kw):
        if os.path.basename(argv[0]) == "eatmydata":  # fstools.no_fsync
            argv = argv[1:]
        name = os.path.basename(argv[0])
        if any(str(x).endswith("ntfswrite.py") for x in argv):
            return "libntfs-3g tree → NTFS"
        return name

    stage = partition.stage
    partition.stage = timed("install packages (extract, hives)", stage)
    fstools.run = timed(tool, fstools.run)
    ntfs.normalize_ntfs = timed("normalize NTFS times", ntfs.normalize_ntfs)
    layout_json = Path(spec["layout"])
    cabs = [Path(c) for c in spec["cabs"]]
    cache = Path(spec["cache"])
    runs = []
    for label, jobs in (("empty cache, -j1", 1), ("empty cache, -j2", 2), ("one CAB rewritten, -j1", 1)):
        if label.startswith("empty"):
            shutil.rmtree(cache, ignore_errors=True)
        else:
            edited = cabs[len(cabs) // 2]
            shutil.copy2(edited, f"{edited}.tmp")
            os.replace(f"{edited}.tmp", edited)
        if jobs > 1:
            list(workers.imap(abs, [(-1,), (-2,)], jobs=jobs))  # the pool SCons has running by then
        phases.clear()
        t0 = time.perf_counter()
        image.build_partition(
            layout_json,
            "MainOS",
            cabs,
            Path(spec["out"]),
            Path(spec["manifest"]),
            epoch=spec["epoch"],
            cache_dir=cache,
            jobs=jobs,
        )
        runs.append({"label": label, "seconds": time.perf_counter() - t0, "phases": dict(phases)})
    workers.shutdown()
    disk = image.load_layout(layout_json)
    p = disk.partition("MainOS")
    stage(
        "MainOS",
        cabs,
        Path(spec["stage"]),
        epoch=spec["epoch"],
        disk_style=disk.style,
        disk_id=disk.disk_id,
        partition_ids={q.name: q.id for q in disk.partitions if q.id} or None,
    )
    print(
        json.dumps(
            {
                "runs": runs,
                "size": disk.size(p),
                "cluster": p.cluster_size or 4096,
                "sector": disk.sector_size,
                "hidden": p.first_sector,
            }
        )
    )
    return 0


def bench_partition(args) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="ffuforge-bench-", dir=args.workdir) as tmp:
        ws = Path(tmp) / "ws"
        print(f"[partition] generating {args.packages} packages, {args.mib} MiB", file=sys.stderr)
        info = workspace.generate_image(ws, args.packages, args.mib << 20, dist=args.dist)
        print("[partition] building the packages and the layout (scons -j2, not timed)", file=sys.stderr)
        scale.scons(ws, "-j2", "packages", f"{OUT}/layout.json", f"{OUT}/packages.json")
        resolution = json.loads((ws / OUT / "packages.json").read_text())
        cabs = sorted(str(ws / p["path"]) for p in resolution["partitions"]["MainOS"])
        cab_bytes = sum(os.path.getsize(c) for c in cabs)
        work = Path(tmp) / "part"
        work.mkdir()
        spec = work / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "site_scons": str(ws / "site_scons"),
                    "layout": str(ws / OUT / "layout.json"),
                    "cabs": cabs,
                    "out": str(work / "MainOS.img"),
                    "manifest": str(work / "MainOS.json"),
                    "stage": str(work / "stage"),
                    "cache": str(work / "cache"),
                    "epoch": 1577836800,
                }
            )
        )
        measure.timed(["cat", *cabs])  # warm
        print(f"[partition] install + NTFS (load {measure.load()})", file=sys.stderr)
        r = measure.run([sys.executable, "-m", "bench", "partition-worker", str(spec)], cwd=workspace.ROOT)
        ours = json.loads(r.stdout.strip().splitlines()[-1])
        staged = work / "stage" / "root"
        nfiles = sum(len(f) for _, _, f in os.walk(staged))
        staged_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, f in os.walk(staged) for n in f)
        print(f"[partition] reference: cp -r + mkntfs (load {measure.load()})", file=sys.stderr)

        def cp() -> float:
            shutil.rmtree(work / "copy", ignore_errors=True)
            return measure.timed(["cp", "-r", str(staged), str(work / "copy")])

        t_cp = measure.best_of(2, cp)
        blank = work / "blank.img"

        def mkntfs() -> float:
            with open(blank, "wb") as fh:
                fh.truncate(ours["size"])
            return measure.timed(
                [
                    "/usr/sbin/mkntfs",
                    "-F",
                    "-Q",
                    "-T",
                    "-q",
                    "-s",
                    str(ours["sector"]),
                    "-c",
                    str(ours["cluster"]),
                    "-L",
                    "MainOS",
                    "-p",
                    str(ours["hidden"]),
                    "-H",
                    "0",
                    "-S",
                    "0",
                    str(blank),
                ]
            )

        t_mk = measure.best_of(2, mkntfs)
    ref = t_cp + t_mk
    rows = [
        (
            "packages into MainOS",
            f"{len(cabs)} CABs, {cab_bytes / (1 << 20):.0f} MiB",
            f"{info['packages']} projects, {args.dist} sizes → {nfiles} files, {staged_bytes / (1 << 20):.0f} MiB staged;"
            f" NTFS volume {ours['size'] / (1 << 30):.2f} GiB",
        )
    ]
    for run in ours["runs"]:
        t = run["seconds"]
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run["phases"].items(), key=lambda x: -x[1]))
        rows.append(
            (
                f"image.build_partition, {run['label']}",
                f"{t:.1f} s",
                f"{phases}, other {t - sum(run['phases'].values()):.1f} s; {t / ref:.2f}× (cp -r + mkntfs)",
            )
        )
    rows += [
        ("peak RSS, load", measure.mib(r.maxrss), f"load {r.load_before}→{r.load_after}"),
        ("cp -r of the staged tree, same run", f"{t_cp:.1f} s", ""),
        ("mkntfs alone, same size", f"{t_mk:.1f} s", ""),
    ]
    return rows
