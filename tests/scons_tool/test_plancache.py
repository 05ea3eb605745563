"""The plan cache: a stored plan is reused only while everything planning saw still holds, and the
graph it declares is the same, byte for byte, as without the cache."""

import json
import marshal
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from ffuforge.errors import FFUError
from ffuforge.package import project, sources, variant
from ffuforge.scons_tool import plancache
from ffuforge.util import paths

from scons_util import built, copy_workspace, scons

SPEC = {
    "cpu": "arm64",
    "version": "10.0.1.0",
    "languages": ["de-de", "en-us"],
    "build_type": "fre",
    "variables": {
        "BLDDIR": "#build/arm64/payload",
        "BSPARCH": "arm64",
        "OEMNAME": "Contoso",
        "PROD": "SampleA",
    },
    "compression": "none",
    "epoch": 1577836800,
}
GPIO = "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/ContosoBoard.GPIO.wm.xml"
FILES = "packages/Custom.Files/Custom.Files.wm.xml"
REGISTRY = "packages/Registry.Settings/Registry.Settings.wm.xml"


@pytest.fixture(autouse=True)
def _payloads_are_generated():
    """The sample's stand-in payloads under build/ are targets of its SConscripts; planned here
    without SCons, planning is told so as the tool tells it (`scons_tool.checks`)."""

    def check(path) -> bool:
        return "build" in Path(path).parts

    sources.GENERATED.append(check)
    yield
    sources.GENERATED.remove(check)


def _fresh(top: Path, rel: str, spec: dict) -> list[variant.Variant]:
    opts = variant.BuildOptions(
        cpu=spec["cpu"],
        version=spec["version"],
        variables=tuple(sorted(spec["variables"].items())),
        languages=tuple(spec["languages"]),
        build_type=spec["build_type"],
    )
    return variant.plan(project.load(top / rel, rel), opts, os.path.dirname(rel), top)


def _cache_file(top: Path) -> Path:
    return top / "build/.ffuforge/plans"


def _run(top: Path, rel: str, spec: dict = SPEC) -> tuple[list[plancache.Planned], bool]:
    """Like one scons process: load the cache, plan `rel`, save. Returns (plans, planned afresh?)."""
    cache = plancache.PlanCache(str(_cache_file(top)), str(top))
    result = cache.plans(rel, spec, lambda: _fresh(top, rel, spec))
    cache.save()
    return result, cache.planned == 1


def _expected(top: Path, rel: str, spec: dict = SPEC) -> str:
    return _dump(plancache.summarize(_fresh(top, rel, spec), top))


def _dump(planned: list[plancache.Planned]) -> str:
    return json.dumps([p._asdict() for p in planned], sort_keys=True)


def _edit(path: Path, data: bytes) -> None:
    """Write `data` as an editor would have some seconds ago (older than the racy window)."""
    path.write_bytes(data)
    stamp = time.time_ns() - 10 * plancache.RACY_NS
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def ws(tmp_path):
    return copy_workspace(tmp_path / "ws")


# ------------------------------------------------------------------------------ the module


@pytest.mark.parametrize("rel", [GPIO, FILES, REGISTRY])
def test_unchanged_inputs_reuse_the_plan(ws, rel):
    first, planned = _run(ws, rel)
    assert planned and _dump(first) == _expected(ws, rel)
    st = _cache_file(ws).stat()
    again, planned = _run(ws, rel)
    assert not planned
    assert again == first and _dump(again) == _dump(first)
    after = _cache_file(ws).stat()  # nothing changed: not rewritten
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


def test_project_edit_replans(ws):
    _run(ws, REGISTRY)
    p = ws / REGISTRY
    _edit(p, p.read_bytes().replace(b'value="Contoso sample device"', b'value="Contoso sample board"'))
    result, planned = _run(ws, REGISTRY)
    assert planned and _dump(result) == _expected(ws, REGISTRY)
    assert "Contoso sample board".encode("utf-16-le").hex() in _dump(result)
    assert not _run(ws, REGISTRY)[1]


def test_inf_edit_replans(ws):
    before, _ = _run(ws, GPIO)
    inf = ws / "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf"
    text = inf.read_bytes().decode("utf-16")
    assert "DefaultDestDir = 12" in text
    _edit(inf, b"\xff\xfe" + text.replace("DefaultDestDir = 12", "DefaultDestDir = 11").encode("utf-16-le"))
    result, planned = _run(ws, GPIO)
    assert planned and _dump(result) == _expected(ws, GPIO) != _dump(before)


def test_a_source_appearing_under_another_spelling_replans(ws):
    pkg = ws / "packages/Custom.Files"
    _edit(
        pkg / "Custom.Files.wm.xml",
        (pkg / "Custom.Files.wm.xml")
        .read_bytes()
        .replace(b'source=".\\settings.json"', b'source=".\\Settings.JSON"'),
    )
    (pkg / "settings.json").rename(pkg / "elsewhere.json")
    with pytest.raises(FFUError, match="Settings.JSON does not exist"):
        _run(ws, FILES)  # a missing source fails planning (never stored)
    (pkg / "elsewhere.json").rename(pkg / "settings.json")  # found case-insensitively now
    result, planned = _run(ws, FILES)
    assert planned and "packages/Custom.Files/settings.json" in _dump(result)
    assert _dump(result) == _expected(ws, FILES)


def test_a_source_appearing_under_its_own_name_changes_nothing(ws):
    """Payloads generated by the build (StandInPE) do not exist when first planned."""
    first, _ = _run(ws, GPIO)
    drivers = ws / "build/arm64/payload/drivers"
    drivers.mkdir(parents=True)
    (drivers / "contosogpio.sys").write_bytes(b"MZ")
    result, planned = _run(ws, GPIO)
    assert not planned and result == first and _dump(result) == _expected(ws, GPIO)


def test_a_vcxproj_naming_the_project_replans(ws):
    """The WDK convention (package.sources): a .vcxproj added beside the project's folder makes its
    folder the sources' base, so a stored plan must not outlive its appearance."""
    pkg = ws / "packages"
    for d in (pkg, pkg / "Custom.Files"):
        os.utime(d, ns=(time.time_ns() - 10 * plancache.RACY_NS,) * 2)
    first, planned = _run(ws, FILES)
    assert planned and not _run(ws, FILES)[1]
    _edit(
        pkg / "Package.vcxproj",
        b'<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003"><ItemGroup>'
        b'<PkgGen Include="Custom.Files\\Custom.Files.wm.xml"/></ItemGroup></Project>',
    )
    result, planned = _run(ws, FILES)  # sources are now looked for in packages/ first
    assert planned and _dump(result) == _dump(first) == _expected(ws, FILES)


def test_deleted_payload_gives_what_a_fresh_plan_gives(ws):
    _run(ws, FILES)
    (ws / "packages/Custom.Files/settings.json").unlink()
    for again in (lambda: _run(ws, FILES), lambda: _expected(ws, FILES)):
        with pytest.raises(FFUError, match="settings.json does not exist"):
            again()


def test_other_build_options_are_other_entries(ws):
    b = {**SPEC, "variables": {**SPEC["variables"], "PROD": "SampleB"}}
    a_plan, _ = _run(ws, REGISTRY)
    b_plan, planned = _run(ws, REGISTRY, b)
    assert planned and _dump(b_plan) == _expected(ws, REGISTRY, b) != _dump(a_plan)
    for spec in (SPEC, b, {**SPEC, "compression": "mszip", "epoch": 0}):  # not planning options
        assert not _run(ws, REGISTRY, spec)[1]
    assert _run(ws, REGISTRY, {**SPEC, "version": "10.0.2.0"})[1]
    assert _run(ws, REGISTRY, {**SPEC, "languages": ["en-us"]})[1]
    assert _run(ws, REGISTRY, {**SPEC, "cpu": "arm"})[1]


def test_failed_plan_is_never_stored(ws):
    p = ws / REGISTRY
    _edit(p, p.read_bytes().replace(b"<regKeys>", b"<bogus/><regKeys>"))
    for _ in range(2):
        cache = plancache.PlanCache(str(_cache_file(ws)), str(ws))
        with pytest.raises(FFUError, match="<bogus> is not allowed"):
            cache.plans(REGISTRY, SPEC, lambda: _fresh(ws, REGISTRY, SPEC))
        cache.save()
        assert cache.planned == 1 and not cache.entries


def test_freshly_modified_input_is_not_stored(ws):
    p = ws / REGISTRY
    p.write_bytes(p.read_bytes() + b"\n")  # modified just now: a same-size edit could follow unseen
    assert _run(ws, REGISTRY)[1] and _run(ws, REGISTRY)[1]
    _edit(p, p.read_bytes())
    assert _run(ws, REGISTRY)[1] and not _run(ws, REGISTRY)[1]


def test_project_loaded_twice_in_one_process_is_watched_for_both(ws):
    b = {**SPEC, "variables": {**SPEC["variables"], "PROD": "SampleB"}}
    cache = plancache.PlanCache(str(_cache_file(ws)), str(ws))
    for spec in (SPEC, b):  # the second load comes from project's in-process cache
        cache.plans(REGISTRY, spec, lambda spec=spec: _fresh(ws, REGISTRY, spec))
    cache.save()
    assert all(any(path == str(ws / REGISTRY) for path, _ in e[1]) for e in cache.entries.values())
    p = ws / REGISTRY
    _edit(p, p.read_bytes().replace(b"Heartbeat;", b"Heartbeat2;"))
    assert _run(ws, REGISTRY)[1] and _run(ws, REGISTRY, b)[1]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"\xff" * 64,
        "truncated",
        marshal.dumps([1, 2, 3]),
        marshal.dumps((1, 2, 3, 4, 5)),
        "bad-entry",
    ],
)
def test_unreadable_cache_file_is_ignored(ws, content):
    good, _ = _run(ws, GPIO)
    data = _cache_file(ws).read_bytes()
    fmt, top, code, gen, entries = marshal.loads(data)
    if content == "truncated":
        content = data[: len(data) // 2]
    elif content == "bad-entry":
        content = marshal.dumps((fmt, top, code, gen, {k: (gen, None, 5, "x") for k in entries}))
    _cache_file(ws).write_bytes(content)
    result, planned = _run(ws, GPIO)
    assert planned and _dump(result) == _dump(good)
    assert not _run(ws, GPIO)[1]  # rewritten, valid


def test_other_checkout_or_other_code_is_ignored(ws, tmp_path, monkeypatch):
    _run(ws, GPIO)
    other = tmp_path / "other"
    shutil.copytree(ws, other, symlinks=True)  # the cache file comes along, naming ws
    result, planned = _run(other, GPIO)
    assert planned and _dump(result) == _expected(other, GPIO)
    monkeypatch.setattr(plancache.toolsig, "fingerprint", lambda module: "edited code")
    assert _run(ws, GPIO)[1]


def test_unused_entries_expire(ws, monkeypatch):
    monkeypatch.setattr(plancache, "KEEP_GENERATIONS", 2)
    assert plancache._generation(("x",)) == plancache._generation(None) == -1  # malformed: dropped
    _run(ws, GPIO)
    for i in range(3):  # three saves that do not use GPIO's plan
        _run(ws, REGISTRY, {**SPEC, "version": f"10.0.{i + 5}.0"})
    assert _run(ws, GPIO)[1]


def test_no_cache_file_plans_every_time(ws):
    got = plancache.plans("", str(ws), GPIO, SPEC, lambda: _fresh(ws, GPIO, SPEC))
    assert _dump(got) == _expected(ws, GPIO)
    assert not _cache_file(ws).exists()


def test_recording_lists_reads_lookups_and_resolutions(tmp_path):
    (tmp_path / "Dir").mkdir()
    (tmp_path / "Dir/File.txt").write_text("x")
    with paths.recording() as outer:
        with paths.recording() as inner:
            found = paths.resolve(tmp_path, "dir\\file.TXT")
            os.close(paths.open_regular(found))
            assert paths.kind(tmp_path / "missing") is None
        assert found == tmp_path / "Dir/File.txt"
    assert inner.resolutions == {str(tmp_path / "dir/file.TXT"): str(found)}
    assert inner.paths[str(found)][:2] == ("f", 1) and inner.paths[str(tmp_path / "missing")] is None
    assert outer.paths == inner.paths and outer.resolutions == inner.resolutions and outer.consistent
    assert paths.kind(tmp_path) == "d"  # outside any recording: nothing recorded, no error
    log = paths.Observations()
    log.seen("/a", "f")
    log.seen("/a", ("f", 1, 2, 3))
    log.seen("/a", "f")
    assert log.consistent and log.paths["/a"] == ("f", 1, 2, 3)
    log.seen("/a", ("f", 2, 2, 3))
    assert not log.consistent


# --------------------------------------------------------------------------- real scons

PROBE = """
import json, os
SConscript("SConstruct")
from ffuforge import scons_tool
top = Dir("#").abspath
values = {os.path.relpath(p, top): File(p).sources[0].read() for p in scons_tool.PACKAGES}
with open(os.environ["PROBE_OUT"], "w") as fh:
    json.dump(values, fh, sort_keys=True)
"""
STATS = {"FFUFORGE_PLAN_STATS": "1"}


SAMPLE_PROJECTS = 15  # the sample workspace's package projects (packages/ and bsp/)
# Registry.Settings names $(PROD): planned for each product (SampleA, SampleB)
PLANS = SAMPLE_PROJECTS + 1


def _stats(proc) -> tuple[int, int]:
    m = re.search(r"plan cache: (\d+) reused, (\d+) planned", proc.stderr)
    assert m, proc.stderr
    return int(m[1]), int(m[2])


def _values(ws: Path, out: Path) -> dict:
    """Every CAB target's signed Value, as this run declares it."""
    (ws / "SConstruct.probe").write_text(PROBE)
    scons(ws, "-f", "SConstruct.probe", "-n", "packages", env={**STATS, "PROBE_OUT": str(out)})
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def built_ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("pc") / "ws")
    proc = scons(ws, "packages", env=STATS)
    assert _stats(proc) == (0, PLANS)
    # The first build writes the sample's test app into its project's folder (beside customizations.xml,
    # as the kit keeps it): that folder, searched for a .vcxproj, changed, so its project plans again,
    # and is stored once the folder is older than the racy window.
    time.sleep(2 * plancache.RACY_NS / 1e9)
    assert _stats(scons(ws, "packages", env=STATS)) == (PLANS - 1, 1)
    return ws


@pytest.mark.e2e
def test_scons_noop_reuses_every_plan(built_ws):
    ws = built_ws
    proc = scons(ws, "packages", "-q", check=False, env=STATS)
    assert proc.returncode == 0 and _stats(proc) == (PLANS, 0)


@pytest.mark.e2e
def test_scons_same_values_and_cabs_with_and_without_cache(built_ws, tmp_path):
    ws = built_ws
    cabs = ws / "build/arm64/packages"
    before = {p.name: p.read_bytes() for p in cabs.glob("*.cab")}
    with_cache = _values(ws, tmp_path / "a.json")
    _cache_file(ws).unlink()
    without = _values(ws, tmp_path / "b.json")
    assert with_cache == without and len(without) >= 15
    assert scons(ws, "packages", "-q", check=False).returncode == 0
    for cab in cabs.glob("*.cab"):
        cab.unlink()
    proc = scons(ws, "packages", env=STATS)  # every CAB again, declared from stored plans
    assert _stats(proc) == (PLANS, 0) and len(built(proc)) == len(before)
    assert {p.name: p.read_bytes() for p in cabs.glob("*.cab")} == before


def _same_as_without_cache(ws: Path, *args: str) -> None:
    """`scons -q` says up to date both with the stored plans and with fresh ones."""
    assert scons(ws, "packages", "-q", *args, check=False).returncode == 0
    saved = _cache_file(ws).read_bytes()
    _cache_file(ws).unlink()
    assert scons(ws, "packages", "-q", *args, check=False).returncode == 0
    _cache_file(ws).write_bytes(saved)


@pytest.mark.e2e
def test_scons_edits_rebuild_exactly_their_cab(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    scons(ws, "packages")
    reg = ws / REGISTRY
    reg.write_text(reg.read_text().replace("Heartbeat;Telemetry", "Heartbeat;Telemetry;Update"))
    assert scons(ws, "packages", "-q", check=False).returncode != 0
    assert built(scons(ws, "packages")) == ["Contoso.Registry.Settings.cab"] * 2  # SampleA's, SampleB's
    _same_as_without_cache(ws)

    inf = ws / "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf"
    text = inf.read_bytes().decode("utf-16")
    inf.write_bytes(
        b"\xff\xfe"
        + text.replace('Contoso GPIO Controller"', 'Contoso GPIO Controller v3"').encode("utf-16-le")
    )
    assert built(scons(ws, "packages")) == ["Contoso.ContosoBoard.GPIO.cab"]
    _same_as_without_cache(ws)

    # both products' copies of the $(PROD) package are in the graph: a product switch is a no-op
    assert scons(ws, "packages", "-q", "PRODUCT=SampleB", check=False).returncode == 0
    _same_as_without_cache(ws, "PRODUCT=SampleB")
    assert built(scons(ws, "packages")) == []

    files = ws / "packages/Custom.Files"
    (files / "settings.json").unlink()
    cached = scons(ws, "packages", check=False)
    _cache_file(ws).unlink()
    fresh = scons(ws, "packages", check=False)
    assert cached.returncode == fresh.returncode != 0
    errors = [[x for x in p.stderr.splitlines() if x.startswith("scons: ***")] for p in (cached, fresh)]
    assert errors[0] == errors[1] and "settings.json" in errors[0][0], errors


@pytest.mark.e2e
def test_scons_corrupt_cache_file_is_rebuilt(built_ws):
    ws = built_ws
    _cache_file(ws).write_bytes(b"\x00not a plan cache")
    proc = scons(ws, "packages", "-q", check=False, env=STATS)
    assert proc.returncode == 0 and _stats(proc) == (0, PLANS)
    proc = scons(ws, "packages", "-q", check=False, env=STATS)
    assert proc.returncode == 0 and _stats(proc) == (PLANS, 0)


@pytest.mark.e2e
def test_scons_invalid_project_errors_on_every_run(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    scons(ws, "packages")
    reg = ws / REGISTRY
    reg.write_text(reg.read_text().replace("<regKeys>", "<bogus/>\n  <regKeys>"))
    _edit(reg, reg.read_bytes())  # not merely too fresh to be stored
    for _ in range(2):
        proc = scons(ws, "packages", check=False, env=STATS)
        assert proc.returncode == 2
        errors = [x for x in proc.stderr.splitlines() if x.startswith("scons: ***")]
        assert errors == [
            f"scons: *** {REGISTRY}:9: <bogus> is not allowed inside <identity> in the wm.xml schema"
        ], proc.stderr
        assert _stats(proc)[1] == 2  # it names $(PROD): planned (and refused) for SampleA and SampleB


MINI_SCONSTRUCT = """
from ffuforge import scons_tool
env = Environment(tools=[scons_tool.generate], FFU_CPU="arm64", FFU_PLAN_CACHE=ARGUMENTS["PLANS"])
Default(env.Package("pkg/P.wm.xml"))
"""


@pytest.mark.e2e
def test_scons_plan_cache_location_or_none(tmp_path):
    ws = tmp_path / "mini"
    (ws / "pkg").mkdir(parents=True)
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "site_scons",
        ws / "site_scons",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (ws / "SConstruct").write_text(MINI_SCONSTRUCT)
    _edit(ws / "pkg/a.txt", b"a")  # planning checks the payload is there: it is an input of the plan
    _edit(
        ws / "pkg/P.wm.xml",
        b'<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" '
        b'namespace="T" name="P"><files><file source=".\\a.txt"/></files></identity>\n',
    )
    stamp = time.time_ns() - 10 * plancache.RACY_NS  # the folder (searched for a .vcxproj) too
    os.utime(ws / "pkg", ns=(stamp, stamp))
    proc = scons(ws, "PLANS=", env=STATS)
    assert built(proc) == ["Contoso-T-P.cab"] and "plan cache" not in proc.stderr
    assert not (ws / "build").exists() or not list((ws / "build").rglob("plans*"))
    assert _stats(scons(ws, "PLANS=#cache/plans.bin", env=STATS)) == (0, 1)
    proc = scons(ws, "-q", "PLANS=#cache/plans.bin", check=False, env=STATS)
    assert proc.returncode == 0 and _stats(proc) == (1, 0)
    assert (ws / "cache/plans.bin").is_file()


def test_temp_file_of_a_killed_save_is_removed(ws):
    _run(ws, GPIO)
    leftover = _cache_file(ws).parent / ".plans.k1ll3d.partial"
    leftover.write_bytes(b"half")
    assert not _run(ws, GPIO)[1]
    assert not leftover.exists()
