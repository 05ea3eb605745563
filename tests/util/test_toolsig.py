"""Code fingerprints: editing any library module changes the fingerprint of every builder that uses it.

The reference import graph is computed independently of toolsig, with `ast` and the language's
own rules for relative imports (including imports inside functions), on a copy of the library.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from ffuforge.util import toolsig

LIB = Path(toolsig.__file__).resolve().parents[1]


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _reference_imports(root: Path) -> dict[str, set[str]]:
    """module -> the ffuforge modules it imports (with their parent packages), by ast."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".") if pkg else []
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join([*base, *([node.module] if node.module else [])])
                elif node.module and (node.module == "ffuforge" or node.module.startswith("ffuforge.")):
                    stem = node.module.removeprefix("ffuforge").lstrip(".")
                else:
                    continue
                targets.append(stem)
                targets += [f"{stem}.{a.name}" if stem else a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets += [
                    a.name.removeprefix("ffuforge").lstrip(".")
                    for a in node.names
                    if a.name.startswith("ffuforge.")
                ]
            for t in targets:
                if t in mods:
                    parts = t.split(".") if t else []
                    deps |= {".".join(parts[:i]) for i in range(len(parts) + 1)}
        deps.discard(name)
        graph[name] = deps
    return graph


def _reference_closure(graph: dict[str, set[str]], module: str) -> set[str]:
    parts = module.split(".")
    seen: set[str] = set()
    todo = [".".join(parts[:i]) for i in range(len(parts) + 1)]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def _builder_modules() -> list[str]:
    """The modules named by the tool's builders and caches (what their signatures fingerprint)."""
    from ffuforge import scons_tool

    names = {a.module for a in scons_tool.signed_actions()}
    names |= {"image.install", "scons_tool.plancache", "features.merge"}
    return sorted(names)


def test_closure_covers_every_import():
    graph = _reference_imports(LIB)
    for module in graph:
        missing = _reference_closure(graph, module) - set(toolsig.closure(module))
        assert not missing, f"{module}: toolsig misses {sorted(missing)}"


def _clear():
    for f in (
        toolsig.source_file,
        toolsig.imports,
        toolsig.closure,
        toolsig.fingerprint,
        toolsig.source_digest,
    ):
        f.cache_clear()


@pytest.fixture
def library_copy(tmp_path, monkeypatch):
    copy = tmp_path / "ffuforge"
    shutil.copytree(LIB, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(toolsig, "PKG_DIR", copy)
    _clear()
    yield copy
    _clear()


def test_editing_a_module_changes_every_builder_that_uses_it(library_copy):
    builders = _builder_modules()
    assert {"package.build", "image.stages", "features.merge"} <= set(builders)
    graph = _reference_imports(library_copy)
    uses = {b: _reference_closure(graph, b) for b in builders}
    before = {b: toolsig.fingerprint(b) for b in builders}
    for module, f in _modules(library_copy).items():
        original = f.read_bytes()
        f.write_bytes(original + b"\n# edited\n")
        _clear()
        try:
            for b in builders:
                changed = toolsig.fingerprint(b) != before[b]
                assert changed == (module in uses[b]), (
                    f"editing {module or '__init__'}: builder {b} fingerprint {'changed' if changed else 'kept'}"
                )
        finally:
            f.write_bytes(original)
            _clear()


def test_every_builder_reaches_the_library_it_runs(library_copy):
    """Sanity of the reference itself: the package builder reaches the CAB writer and signing."""
    closure = set(toolsig.closure("package.build"))
    assert {"", "package", "package.build", "formats.cab", "signing"} <= closure
    assert not any(m.startswith("scons_tool") for m in closure)


def test_relative_imports_beyond_the_package_and_unknown_modules(library_copy):
    (library_copy / "util" / "probe.py").write_text(
        "from ... import nothing\nfrom .atomic import atomic_output\nfrom ..formats import cab, not_a_module\n"
        "def f():\n    from ffuforge.formats.pe import checksum  # lazy\n"
    )
    _clear()
    assert toolsig.imports("util.probe") >= {"util.atomic", "formats", "formats.cab", "formats.pe", ""}
    with pytest.raises(ValueError):
        toolsig.fingerprint("no.such.module")
