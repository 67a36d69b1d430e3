"""The import graph keeps the design's promises: one owner per native library, fronts over a
headless core, and no cycles. Read from the source with `ast`, so it checks every module, also
imports inside functions, without importing anything."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgekit"
NATIVE = ("llama_cpp", "onnxruntime", "onnxruntime_genai", "ctypes")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    type_checking = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from edgekit.bias import store` imports the submodule; a package's own
                # __init__ runs first for any submodule, which is no edge of this module's.
                sub = f"{node.module}.{alias.name}"
                yield (sub if sub in MODULES else node.module), id(node) in top_level


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges(module: str, *, top_level_only: bool) -> set[str]:
    return {
        name
        for name, top in _imports(MODULES[module])
        if name in MODULES and name != module and (top or not top_level_only)
    }


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_backends_import_native_libraries(module: str) -> None:
    if _starts(module, ("edgekit.backends",)):
        return
    native = {n for n, _ in _imports(MODULES[module]) if _starts(n, NATIVE)}
    assert not native, f"{module} imports {native}: that belongs in edgekit/backends/"


# Each layer imports only its own and lower layers: fronts -> pipelines -> backends -> formats and
# planning -> what every layer uses. Anything not named here is in the bottom layer.
LAYERS = (
    ("edgekit.cli", "edgekit.tui"),
    ("edgekit.converters", "edgekit.bias", "edgekit.serving"),
    ("edgekit.backends",),
    ("edgekit.quant", "edgekit.gguf", "edgekit.devices"),
)


def layer(module: str) -> int:
    """0 for the fronts, growing downwards; the bottom layer is len(LAYERS)."""
    return next((i for i, names in enumerate(LAYERS) if _starts(module, names)), len(LAYERS))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    if module.endswith("__main__"):  # `python -m` launchers are fronts themselves
        return
    upward = {m for m in _edges(module, top_level_only=False) if layer(m) < layer(module)}
    assert not upward, f"{module} imports {upward}, which sit above it"
    if _starts(module, ("edgekit.tui",)):
        assert not {m for m in _edges(module, top_level_only=False) if _starts(m, ("edgekit.cli",))}


def _private_imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("edgekit", "tests")
        ):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield f"{node.module}.{alias.name}"


@pytest.mark.parametrize(
    "path",
    sorted(
        [
            *PACKAGE.rglob("*.py"),
            *(ROOT / "tests").rglob("*.py"),
            *(ROOT / "benchmarks").rglob("*.py"),
        ]
    ),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_names_cross_modules(path: Path) -> None:
    """A leading underscore means "only this module uses it": make it public or move the code."""
    assert not list(_private_imports(path))


def test_no_import_cycles() -> None:
    graph = {m: _edges(m, top_level_only=False) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles


def test_every_module_has_one_import_path() -> None:
    links = [p for p in ROOT.rglob("*") if p.is_symlink() and ".venv" not in p.parts]
    assert not links
