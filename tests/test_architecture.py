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


MAX_PARAMETERS = 7  # more travel together as a request dataclass (Workspace, ConvertRequest)
MAX_COMMAND_LINES = 40  # a command's body, its option declarations and docstring aside
# Owned by the bias work still in progress (issue 32); remove each entry once it takes a dataclass.
PARAMETER_ALLOW_LIST = {
    "edgekit/bias/guard.py:__init__",  # BiasGuard's controller settings, to become one request
}


def _functions(path: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _is_typer_command(path: Path, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A CLI command or callback: its parameters are the command line's options."""
    if (PACKAGE / "cli") not in path.parents:
        return False
    decorators = [ast.unparse(d) for d in node.decorator_list]
    return node.name.endswith("_command") or any(
        ".command(" in d or ".callback(" in d for d in decorators
    )


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = node.args
    named = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    starred = [f"*{p.arg}" for p in (a.vararg, a.kwarg) if p is not None]
    return [n for n in named if n not in ("self", "cls")] + starred


def test_no_function_takes_more_than_seven_parameters() -> None:
    """Past seven, call sites pass values by position that nobody can check by eye: group what
    belongs together in a small dataclass. Typer commands are exempt (each parameter is an option;
    dataclass-generated __init__s are not in the source at all)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in _functions(path):
            where = f"{path.relative_to(ROOT)}:{node.name}"
            n = len(_parameters(node))
            if n > MAX_PARAMETERS and not _is_typer_command(path, node):
                offenders.append(f"{where}:{node.lineno} ({n} parameters)")
    unexpected = [o for o in offenders if o.rsplit(":", 1)[0] not in PARAMETER_ALLOW_LIST]
    assert not unexpected


def test_no_command_body_over_forty_lines() -> None:
    """A command parses options, builds one request and renders one result; the work in between
    belongs in small named functions."""
    offenders = []
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        for node in _functions(path):
            if not node.name.endswith("_command"):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1 if body else 0
            if lines > MAX_COMMAND_LINES:
                offenders.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert not offenders
