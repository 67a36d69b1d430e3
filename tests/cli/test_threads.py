"""-t/--threads on `run` and `dashboard`, as llama-cli's -t: a fixed count overrides auto."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()


def test_run_takes_a_thread_count(tiny_model: Path) -> None:
    args = ["run", str(tiny_model), "-p", "the city", "-n", "4", "--temp", "0", "--json"]
    result = runner.invoke(app, [*args, "-t", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["threads"] == 1


def test_run_without_threads_chooses_within_the_profile(tiny_model: Path) -> None:
    args = ["run", str(tiny_model), "-p", "the city", "-n", "4", "--temp", "0", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["threads"] >= 1


def test_a_zero_thread_count_is_refused(tiny_model: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_model), "-p", "x", "-t", "0"])
    assert result.exit_code == 2
    assert "--threads" in result.output or "-t" in result.output


def test_dashboard_takes_a_thread_count() -> None:
    result = runner.invoke(app, ["dashboard", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--threads" in result.stdout
