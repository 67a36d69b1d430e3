"""`edgekit run --bias-guard` wraps the runtime in the bias feedback loop, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app


@pytest.mark.usefixtures("isolated_data")
def test_run_with_bias_guard(tiny_model: Path) -> None:
    args = ["run", str(tiny_model), "-p", "the city", "-n", "8", "--temp", "0", "--json"]
    done = CliRunner().invoke(app, [*args, "--bias-guard"])
    assert done.exit_code == 0, done.stderr
    stats = json.loads(done.stdout)["stats"]
    assert stats["generated_tokens"] > 0
