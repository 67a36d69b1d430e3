"""The core and the CLI must stay cheap to import: `edgekit --help` has to be instant on a Pi."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "textual", "transformers", "onnxruntime", "llama_cpp")


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_edgekit_loads_no_heavy_module() -> None:
    loaded = _modules_after("import edgekit")
    assert not loaded & set(HEAVY)


def test_cli_help_loads_no_heavy_module() -> None:
    loaded = _modules_after(
        "from typer.testing import CliRunner\n"
        "from edgekit.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert not loaded & set(HEAVY)
    assert "gguf" not in loaded  # the header reader is only needed once a command runs


def test_core_never_imports_the_fronts() -> None:
    loaded = _modules_after(
        "import edgekit.backends.runner, edgekit.devices.memory, edgekit.devices.profiles,"
        " edgekit.gguf.reader"
    )
    assert not {m for m in loaded if m.startswith(("edgekit.tui", "edgekit.converters"))}
