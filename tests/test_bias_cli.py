"""`edgekit bias` end to end on a tiny model: table/JSON, history, repeats, --mitigate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekit.bias import api
from edgekit.bias.calibrate import vectors_path
from edgekit.bias.cvec_file import read_with_llama_cpp
from edgekit.cli.bias import bias_command
from tests.tiny_models import write_tiny_llama

app = typer.Typer()
app.command()(bias_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("bias-cli") / "tiny4.gguf", n_layers=4)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEKIT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_bias_json_with_repeats_is_stored(tiny4: Path, data_dir: Path) -> None:
    done = runner.invoke(app, [str(tiny4), "--split", "heldout", "--repeat", "3", "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert len(out["scores"]["categories"]) == 9
    assert 0.0 <= out["scores"]["bias"] <= 1.0
    assert out["repeats"]["n"] == 3 and out["repeats"]["bias"]["std"] >= 0.0
    latest = api.latest_scores(data_dir / "bias_history.sqlite3")["latest"]
    assert latest["id"] == out["run_id"] and latest["model_hash"] == out["model_hash"]
    assert latest["scores"]["repeats"]["n"] == 3


def test_bias_table_and_no_history(tiny4: Path, data_dir: Path) -> None:
    done = runner.invoke(app, [str(tiny4), "--split", "calibration", "--no-history"])
    assert done.exit_code == 0, done.output
    assert "religion" in done.stdout and "overall" in done.stdout
    assert not (data_dir / "bias_history.sqlite3").exists()


def test_unknown_split_is_a_user_error(tiny4: Path, data_dir: Path) -> None:
    done = runner.invoke(app, [str(tiny4), "--split", "test", "--json"])
    assert done.exit_code == 2
    assert json.loads(done.stdout)["error"] == "BiasError"


def test_mitigate_saves_a_llama_cpp_control_vector(tiny4: Path, data_dir: Path) -> None:
    done = runner.invoke(app, [str(tiny4), "--mitigate", "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    steps = out["mitigation"]["steps"]
    assert steps and out["mitigation"]["baseline"]["strength"] == 0.0
    assert set(out) >= {"heldout_before", "heldout_after", "vectors"}
    cv = read_with_llama_cpp(vectors_path(out["model_hash"]), 4)
    assert cv.meta["calibrated_strength"] == out["mitigation"]["strength"]
    assert cv.meta["schedule"] == {"1": 1.0}
    state = api.loop_state(data_dir / "bias_history.sqlite3")
    assert state is not None and state["source"] == "mitigate"
    assert len(state["events"]) == len(steps) + 1  # the baseline, then every step
