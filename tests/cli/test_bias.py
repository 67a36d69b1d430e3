"""`edgekit bias` end to end on a tiny model: table/JSON, history, repeats, --mitigate, every
suite of the registry, and the inputs that must give one clear error (never a traceback, a NaN
or a crashed table)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgekit.bias import history
from edgekit.bias.controller import write_erasure
from edgekit.bias.erasure import Directions, ModelWeights, check_adapter
from edgekit.cli.bias import bias_command
from edgekit.gguf.reader import load_model_info
from tests.fixtures.bias_data import (
    CROWS_CSV,
    CROWS_HEADER,
    bbq_item,
    poison_pieces,
    write_bbq_dir,
    write_jsonl,
)
from tests.fixtures.bias_history import write_truncated_history
from tests.fixtures.tiny_models import write_tiny_llama

app = typer.Typer()
app.command()(bias_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny4(tiny4_model: Path) -> Path:
    return tiny4_model


@pytest.fixture
def data_dir(isolated_data: Path) -> Path:
    return isolated_data


def test_bias_json_with_repeats_is_stored(tiny4: Path, data_dir: Path) -> None:
    done = runner.invoke(app, [str(tiny4), "--split", "heldout", "--repeat", "3", "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert len(out["scores"]["categories"]) == 9
    assert 0.0 <= out["scores"]["bias"] <= 1.0
    assert out["repeats"]["n"] == 3 and out["repeats"]["bias"]["std"] >= 0.0
    latest = history.latest_scores(data_dir / "bias_history.sqlite3")["latest"]
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


def test_mitigate_checks_bbq_only(tiny4: Path, data_dir: Path, tmp_path: Path) -> None:
    crows = tmp_path / "crows.csv"
    crows.write_text(CROWS_CSV, encoding="utf-8")
    args = [str(tiny4), "--mitigate", "--suite", "crows-pairs", str(crows), "--json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    out = json.loads(done.stdout)
    assert out["error"] == "OptionError" and "BBQ only" in out["message"]


def test_mitigate_writes_a_calibrated_erasure_adapter(tiny4: Path, data_dir: Path) -> None:
    args = [str(tiny4), "--mitigate", "--iterations", "2", "--bands", "2", "--json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    search = out["search"]
    assert 1 <= len(search["steps"]) <= 4  # two block sets, two ranks each at most
    assert all(step["blocks"] and step["rank"] in (54, 81) for step in search["steps"])
    assert search["steps"] and search["baseline"]["strength"] == 0.0
    assert set(out) >= {"adapter", "scale", "heldout_before", "heldout_after", "heldout_change"}
    assert out["scale"] == search["strength"]
    meta = check_adapter(Path(out["adapter"]), load_model_info(tiny4))
    assert meta["scale"] == out["scale"] and meta["model_hash"] == out["model_hash"]
    change = out["heldout_change"]["bias_reduction"]
    assert change["low"] <= change["value"] <= change["high"]
    state = history.loop_state(data_dir / "bias_history.sqlite3")
    assert state is not None and state["source"] == "mitigate"
    assert len(state["events"]) >= len(search["steps"]) + 1  # the baseline, then every step


def test_corrupt_history_is_a_clear_error_and_left_untouched(tiny4: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "bias_history.sqlite3"
    for content in (bytes(range(256)) * 64, None):
        if content is None:  # a real history, truncated mid-page
            db.unlink()
            content = write_truncated_history(db, runs=50)
        db.write_bytes(content)
        done = runner.invoke(app, [str(tiny4), "--json"])
        assert done.exit_code == 2, done.output
        error = json.loads(done.stdout)
        assert error["error"] == "HistoryCorruptError" and str(db) in error["message"]
        assert db.read_bytes() == content
    db.unlink()


def test_adapter_for_another_model_is_refused(tiny4: Path, data_dir: Path, tmp_path: Path) -> None:
    wide = write_tiny_llama(tmp_path / "wide.gguf", n_layers=4, n_embd=32, n_ff=64)
    bases = {b: np.eye(32, dtype=np.float32)[:1] for b in range(4)}
    adapter = write_erasure(
        tmp_path / "wide-erase.gguf",
        ModelWeights(wide),
        Directions.orthogonal(bases),
        dict.fromkeys(bases, 1.0),
        {},
    )
    done = runner.invoke(app, [str(tiny4), "--adapter", str(adapter), "--json", "--no-history"])
    assert done.exit_code == 2, done.output
    error = json.loads(done.stdout)
    assert error["error"] == "AdapterFileError" and "made for another model" in error["message"]
    crows = tmp_path / "crows.csv"  # a few pairs: what counts is that the adapter is taken
    crows.write_text(CROWS_CSV, encoding="utf-8")
    args = [
        "--adapter",
        str(adapter),
        "--suite",
        "crows-pairs",
        str(crows),
        "--json",
        "--no-history",
    ]
    done = runner.invoke(app, [str(wide), *args])
    assert done.exit_code == 0, done.output


def test_standard_suites_from_the_cli_are_stored_with_their_name(
    tiny4: Path, data_dir: Path, tmp_path: Path
) -> None:
    bbq = tmp_path / "bbq"
    bbq.mkdir()
    write_jsonl(bbq / "Age.jsonl", [bbq_item("neg", "disambig", 0), bbq_item("neg", "ambig", 2)])
    done = runner.invoke(app, [str(tiny4), "--suite", "bbq", str(bbq), "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["suite"] == "bbq" and set(out["scores"]["Age"]) >= {"s_dis", "s_amb"}
    crows = tmp_path / "crows.csv"
    crows.write_text(CROWS_CSV, encoding="utf-8")
    done = runner.invoke(app, [str(tiny4), "--suite", "crows-pairs", str(crows), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["scores"]["stereotype_share"]["n"] == 3
    latest = history.latest_scores(data_dir / "bias_history.sqlite3")
    assert latest["latest"]["suite"] == "crows-pairs"
    assert [r["suite"] for r in latest["history"]["overall"]][-2:] == ["bbq", "crows-pairs"]
    crows.write_bytes(CROWS_CSV.encode().replace(b"old woman", b"old w\xf6man"))
    done = runner.invoke(app, [str(tiny4), "--suite", "crows-pairs", str(crows), "--json"])
    assert done.exit_code == 2 and "line 4 is not UTF-8" in json.loads(done.stdout)["message"]


def _runs(data_dir: Path) -> int:
    db = data_dir / "bias_history.sqlite3"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["[/]", "[red]Age", "[/red]", "[link=x]", "Age\x1b[2J"])
def test_names_from_data_files_print_as_text(
    tiny4: Path, data_dir: Path, tmp_path: Path, name: str
) -> None:
    """A category is data: `[/]` used to crash rich's table, ESC sequences to drive the
    terminal."""
    bbq = write_bbq_dir(tmp_path / "bbq", category=name)
    crows = tmp_path / "crows.csv"
    crows.write_text(CROWS_CSV.replace(",age,", f",{name},"), encoding="utf-8")
    for args in (["bbq", str(bbq)], ["crows-pairs", str(crows)]):
        done = runner.invoke(app, [str(tiny4), "--suite", *args, "--no-history"])
        assert done.exit_code == 0, done.output
        assert name.replace("\x1b", "\u241b") in done.stdout and "\x1b" not in done.stdout


def test_a_history_path_with_markup_prints_as_text(
    tiny4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "[/]data"
    monkeypatch.setenv("EDGEKIT_DATA_DIR", str(data))
    crows = tmp_path / "crows.csv"
    crows.write_text(CROWS_CSV, encoding="utf-8")
    done = runner.invoke(app, [str(tiny4), "--suite", "crows-pairs", str(crows)])
    assert done.exit_code == 0, done.output
    assert f"stored in the history: {data}" in " ".join(done.output.split())


@pytest.mark.parametrize(
    ("suite", "content"),
    [
        ("bbq", ""),
        ("bbq", "\n"),
        ("crows-pairs", ""),
        ("crows-pairs", CROWS_HEADER),
    ],
)
def test_empty_suites_are_refused_and_not_stored(
    tiny4: Path, data_dir: Path, tmp_path: Path, suite: str, content: str
) -> None:
    """An empty BBQ or CrowS file used to be stored as bias 0 (or NaN) and printed as such."""
    path = tmp_path / ("Age.jsonl" if suite == "bbq" else "crows.csv")
    path.write_text(content, encoding="utf-8")
    done = runner.invoke(app, [str(tiny4), "--suite", suite, str(path), "--json"])
    assert done.exit_code == 2, done.output
    error = json.loads(done.stdout)
    assert error["error"] == "BiasDataError" and "holds no" in error["message"]
    assert _runs(data_dir) == 0


def test_nan_log_probabilities_are_an_error_not_a_score(
    tiny4: Path, data_dir: Path, tmp_path: Path
) -> None:
    """NaN weights past the first token load fine, then every probe scores NaN: that was
    printed as `NaN` (not JSON) and stored in the history."""
    poisoned = tmp_path / "nan.gguf"
    poisoned.write_bytes(tiny4.read_bytes())
    poison_pieces(poisoned, ("\u2581The", "\u2581the", "\u2581a", "a", "e", "o"))
    done = runner.invoke(app, [str(poisoned), "--split", "heldout", "--json"])
    assert done.exit_code == 2, done.output
    error = _strict(done.stdout)
    assert error["error"] == "BiasError" and "not finite" in error["message"]
    assert _runs(data_dir) == 0


def _strict(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity refused."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "statements",
    [
        ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",),
        ("CREATE TABLE runs (id INTEGER PRIMARY KEY, bias REAL)", "PRAGMA user_version = 3"),
        ("PRAGMA user_version = 99",),
    ],
)
def test_a_history_of_the_wrong_schema_fails_before_scoring(
    tiny4: Path, data_dir: Path, statements: tuple[str, ...]
) -> None:
    data_dir.mkdir(parents=True)
    db = data_dir / "bias_history.sqlite3"
    conn = sqlite3.connect(db)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    before = db.read_bytes()
    done = runner.invoke(app, [str(tiny4), "--json"])
    assert done.exit_code == 2, done.output
    error = _strict(done.stdout)
    assert error["error"] == "HistorySchemaError"
    assert str(db) in error["message"] and "probes" not in done.output  # no scoring started
    assert db.read_bytes() == before


def test_a_data_dir_that_is_a_file_is_a_clear_error(
    tiny4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "data"
    plain.write_text("a file", encoding="utf-8")
    monkeypatch.setenv("EDGEKIT_DATA_DIR", str(plain))
    for extra in (["--json"], ["--mitigate", "--json"]):
        done = runner.invoke(app, [str(tiny4), *extra])
        assert done.exit_code == 2, done.output
        error = json.loads(done.stdout)
        assert error["error"] == "DataDirError" and "is not a folder" in error["message"]
