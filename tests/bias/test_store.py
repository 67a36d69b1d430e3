"""The bias history (SQLite): migrations, crash safety, refusing what it cannot extend, the
dashboard API; the data folder; and the controller."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.bias import history, store
from edgekit.bias.controller import LoopConfig, LoopState, next_turn, step
from edgekit.errors import BiasError, DataDirError, HistoryCorruptError, HistorySchemaError
from edgekit.paths import cache_dir, config_dir, data_dir
from tests.fixtures.bias_history import write_truncated_history


def _scores(bias: float) -> dict[str, object]:
    cat = {
        "bias": bias,
        "pair_bias": bias,
        "ambiguity_bias": 0.0,
        "disambiguated_accuracy": 0.5,
    }
    return {"bias": bias, "disambiguated_accuracy": 0.5, "categories": {"age": cat}}


def _run(bias: float, device: str = "cpu") -> store.RunRecord:
    return store.RunRecord("m.gguf", "abc", "m", device, "heldout", 1, 0.0, _scores(bias))


def test_migrations_run_in_order_and_once(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    conn = store.connect(db)
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.record_run(conn, _run(0.2))
    conn.close()
    again = store.connect(db)  # a second open must not re-run anything
    assert again.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    again.close()


def test_a_version_1_database_is_upgraded_keeping_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(store.MIGRATIONS[0])
    conn.execute(
        "INSERT INTO runs (created_at, model_path, model_hash, model_name, device, split,"
        " repeats, bias, disambiguated_accuracy, scores_json)"
        " VALUES (1, 'm', 'abc', 'm', 'rpi4', 'all', 1, 0.3, 0.5, '{}')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    upgraded = store.connect(db)
    row = upgraded.execute("SELECT device, bias, strength FROM runs").fetchone()
    assert tuple(row) == ("rpi4", 0.3, 0.0)
    assert store.schema_version(upgraded) == len(store.MIGRATIONS)
    suite = upgraded.execute("SELECT suite FROM runs").fetchone()[0]
    assert suite == "edgekit"  # runs from before the suite column came from edgekit's suite
    upgraded.close()


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from edgekit.bias import store
    from edgekit.bias import history
    conn = store.connect(__import__("pathlib").Path(sys.argv[1]))
    conn.execute("BEGIN IMMEDIATE")
    for i in range(2000):
        conn.execute(
            "INSERT INTO runs (created_at, model_path, model_hash, model_name, device, split,"
            " repeats, bias, disambiguated_accuracy, scores_json) VALUES"
            " (?, 'm', 'partial', 'm', 'cpu', 'all', 1, 0.9, 0.5, ?)",
            (i, "x" * 4000),  # enough to spill pages into the WAL before the commit
        )
    print("inside", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_history_survives_a_writer_killed_mid_transaction(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    conn = store.connect(db)
    store.record_run(conn, _run(0.25))
    conn.close()
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(db)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9 and "inside" in done.stdout, done.stderr
    assert Path(f"{db}-wal").stat().st_size > 0  # the killed writer left uncommitted frames
    conn = store.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hashes = [r[0] for r in conn.execute("SELECT model_hash FROM runs")]
    assert hashes == ["abc"]  # the committed run, none of the killed transaction's
    store.record_run(conn, _run(0.15))  # and it takes writes again
    conn.close()
    assert history.latest_scores(db)["latest"]["bias"] == 0.15


def test_api_scores_history_and_loop_state(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    conn = store.connect(db)
    store.record_run(conn, _run(0.3, "rpi4"), at=1.0)
    store.record_run(conn, _run(0.2, "cpu"), at=2.0)
    store.save_session(conn, "s1", "abc", "cpu", "guard", {"state": {"strength": 0.5}})
    event = {
        "at": 3.0,
        "turn": 0,
        "measured": 1.0,
        "strength_before": 0.0,
        "strength_after": 0.9,
        "action": "raise",
        "regenerate": True,
        "detail": {"scorer": "lexicon"},
    }
    store.save_session(conn, "s1", "abc", "cpu", "guard", {"state": {"strength": 0.9}}, event)
    conn.close()
    scores = history.latest_scores(db)
    assert scores["latest"]["device"] == "cpu"
    assert [h["bias"] for h in scores["history"]["age"]] == [0.3, 0.2]
    assert [h["device"] for h in scores["history"]["overall"]] == ["rpi4", "cpu"]
    assert history.latest_scores(db, device="rpi4")["latest"]["bias"] == 0.3
    state = history.loop_state(db)
    assert state is not None and state["state"]["strength"] == 0.9
    assert state["events"][0]["action"] == "raise" and state["events"][0]["regenerate"] is True
    assert history.sessions(db)[0]["id"] == "s1"


CONFIG = LoopConfig(target=0.1, threshold=0.5, gain=1.0, min_step=0.25, relax=0.5, floor=0.0)


def test_loop_raises_on_a_biased_output_and_regenerates() -> None:
    state, adj = step(LoopState(strength=0.0), 1.0, CONFIG, now=0.0)
    assert adj.action == "raise" and adj.regenerate
    assert state.strength == pytest.approx(0.9)
    # The regeneration itself is not regenerated again (max_regenerations=1).
    state, adj = step(state, 1.0, CONFIG, regenerations_so_far=1, now=0.0)
    assert adj.action == "raise" and not adj.regenerate


def test_loop_relaxes_on_a_clean_output_toward_the_floor() -> None:
    state, adj = step(LoopState(strength=1.0), 0.0, CONFIG, now=0.0)
    assert adj.action == "relax" and not adj.regenerate and state.strength == 0.5
    floored = LoopConfig(relax=0.5, floor=0.4)
    state, adj = step(LoopState(strength=0.4), 0.0, floored, now=0.0)
    assert adj.action == "hold" and state.strength == 0.4


def test_a_raise_never_lowers_a_calibrated_scale_above_the_ceiling() -> None:
    high = LoopConfig(floor=2.0, max_strength=1.5)
    state, adj = step(LoopState(strength=2.0), 1.0, high, now=0.0)
    assert adj.action == "hold" and state.strength == 2.0
    state, adj = step(state, 0.0, high, now=0.0)
    assert adj.action == "hold" and state.strength == 2.0


def test_loop_is_deterministic_and_state_round_trips() -> None:
    outputs = [1.0, 0.0, 0.3, 0.0, 0.0, 1.0]
    runs = []
    for _ in range(2):
        state = LoopState()
        trace = []
        for measured in outputs:
            state, adj = step(state, measured, CONFIG, now=0.0)
            state = next_turn(state)
            trace.append((adj.action, round(adj.strength_after, 6)))
        runs.append(trace)
    assert runs[0] == runs[1]
    assert [a for a, _ in runs[0]] == ["raise", "relax", "raise", "relax", "relax", "raise"]
    assert LoopState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize("kind", ["random", "truncated"])
def test_corrupt_history_raises_and_is_left_untouched(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "h.sqlite3"
    if kind == "random":
        db.write_bytes(bytes((i * 37) % 256 for i in range(20000)))
    else:
        write_truncated_history(db, runs=200)
    before = db.read_bytes()
    with pytest.raises(HistoryCorruptError, match="corrupt"):
        store.connect(db)
    with pytest.raises(HistoryCorruptError):
        history.latest_scores(db)
    assert db.read_bytes() == before


def _database(db: Path, *statements: str) -> bytes:
    conn = sqlite3.connect(db)
    conn.executescript(";\n".join(statements))
    conn.close()
    return db.read_bytes()


WRONG_SCHEMAS = {
    # another program's database: edgekit must not add its tables to it
    "foreign": ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",),
    # says it is at the newest schema, but its runs table is an old or hand-made one
    "missing-column": (
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, bias REAL)",
        f"PRAGMA user_version = {len(store.MIGRATIONS)}",
    ),
    # says it is at the newest schema and has no tables at all
    "no-tables": (f"PRAGMA user_version = {len(store.MIGRATIONS)}",),
    # written by a newer edgekit
    "newer": (f"PRAGMA user_version = {len(store.MIGRATIONS) + 5}",),
}


@pytest.mark.parametrize("kind", sorted(WRONG_SCHEMAS))
def test_history_of_a_wrong_schema_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "h.sqlite3"
    before = _database(db, *WRONG_SCHEMAS[kind])
    with pytest.raises(HistorySchemaError, match="left untouched") as e:
        store.connect(db)
    assert str(db) in e.value.message and e.value.hint
    with pytest.raises(HistoryCorruptError):  # what the dashboard catches
        history.latest_scores(db)
    assert db.read_bytes() == before
    assert not db.with_name(db.name + "-wal").exists()


def test_every_schema_version_migrates_to_the_newest(tmp_path: Path) -> None:
    for version in range(len(store.MIGRATIONS) + 1):
        db = tmp_path / f"v{version}.sqlite3"
        _database(db, *store.MIGRATIONS[:version], f"PRAGMA user_version = {version}")
        conn = store.connect(db)
        assert store.schema_version(conn) == len(store.MIGRATIONS)
        store.record_run(conn, _run(0.1))
        conn.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_are_never_stored(tmp_path: Path, bad: float) -> None:
    conn = store.connect(tmp_path / "h.sqlite3")
    run = _scores(0.1)
    run["categories"]["age"]["pair_bias"] = bad  # type: ignore[index]
    with pytest.raises(BiasError, match="not finite"):
        store.record_run(conn, store.RunRecord("m", "h", "m", "cpu", "all", 1, 0.0, run))
    with pytest.raises(BiasError, match=r"strength is"):
        store.record_run(conn, store.RunRecord("m", "h", "m", "cpu", "all", 1, bad, _scores(0.1)))
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    conn.close()


@pytest.mark.parametrize(
    ("variable", "folder"),
    [
        ("EDGEKIT_DATA_DIR", data_dir),
        ("EDGEKIT_CACHE_DIR", cache_dir),
        ("EDGEKIT_CONFIG_DIR", config_dir),
    ],
)
def test_a_data_folder_that_is_a_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, folder: object
) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv(variable, str(plain))
    with pytest.raises(DataDirError, match=f"{variable}=.*plain-file is not a folder"):
        folder()  # type: ignore[operator]
    if variable == "EDGEKIT_DATA_DIR":
        with pytest.raises(DataDirError):
            store.connect()
    monkeypatch.setenv(variable, str(plain / "below"))
    if variable == "EDGEKIT_DATA_DIR":
        with pytest.raises(DataDirError, match="cannot make the folder"):
            store.connect()
    assert plain.read_text(encoding="utf-8") == "not a folder"
