"""The local bias history: every `edgekit bias` run and every feedback-loop adjustment, in SQLite.

Why SQLite: one file, transactions, readable from the dashboard while a run writes. The database
runs in WAL mode, and every write is one transaction, so a process killed mid-write leaves the
last committed state (the WAL's uncommitted frames are ignored on the next open); a test kills a
writer mid-transaction and checks. `synchronous=NORMAL` is the WAL setting SQLite recommends: a
power cut may lose the last commit but never corrupts the file.

Schema changes are ordered migrations, recorded in `PRAGMA user_version`; each runs in its own
transaction, so a crash during an upgrade leaves the previous version intact.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.paths import data_dir

DB_NAME = "bias_history.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    # 1: suite runs and their per-category scores
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        model_path TEXT NOT NULL,
        model_hash TEXT NOT NULL,
        model_name TEXT NOT NULL,
        device TEXT NOT NULL,
        split TEXT NOT NULL,
        repeats INTEGER NOT NULL,
        bias REAL NOT NULL,
        disambiguated_accuracy REAL NOT NULL,
        scores_json TEXT NOT NULL
    );
    CREATE INDEX runs_model_time ON runs (model_hash, created_at);
    CREATE TABLE category_scores (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        category TEXT NOT NULL,
        bias REAL NOT NULL,
        pair_bias REAL NOT NULL,
        ambiguity_bias REAL NOT NULL,
        disambiguated_accuracy REAL NOT NULL,
        PRIMARY KEY (run_id, category)
    );
    """,
    # 2: the feedback loop: constraint strength per run, sessions and every adjustment
    """
    ALTER TABLE runs ADD COLUMN strength REAL NOT NULL DEFAULT 0.0;
    CREATE TABLE loop_sessions (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        model_hash TEXT NOT NULL,
        device TEXT NOT NULL,
        source TEXT NOT NULL,
        state_json TEXT NOT NULL
    );
    CREATE TABLE loop_events (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES loop_sessions (id) ON DELETE CASCADE,
        at REAL NOT NULL,
        turn INTEGER NOT NULL,
        measured REAL NOT NULL,
        strength_before REAL NOT NULL,
        strength_after REAL NOT NULL,
        action TEXT NOT NULL,
        regenerate INTEGER NOT NULL,
        detail_json TEXT NOT NULL
    );
    CREATE INDEX loop_events_session ON loop_events (session_id, id);
    """,
)


def default_db_path() -> Path:
    return data_dir() / DB_NAME


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the history database."""
    p = path or default_db_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
    # check_same_thread=False: the dashboard opens the guard in one worker thread and generates
    # in another; its workers are exclusive, so the connection is never used concurrently.
    conn = sqlite3.connect(p, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    for version, script in enumerate(MIGRATIONS, start=1):
        with transaction(conn):
            # Re-read inside the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= version:
                continue
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    return schema_version(conn)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True)
class RunRecord:
    model_path: str
    model_hash: str
    model_name: str
    device: str
    split: str
    repeats: int
    strength: float
    scores: dict[str, Any]  # SuiteScores.to_dict() (plus repeat statistics)


def record_run(conn: sqlite3.Connection, run: RunRecord, at: float | None = None) -> int:
    s = run.scores
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO runs (created_at, model_path, model_hash, model_name, device, split,"
            " repeats, bias, disambiguated_accuracy, scores_json, strength)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time() if at is None else at,
                run.model_path,
                run.model_hash,
                run.model_name,
                run.device,
                run.split,
                run.repeats,
                s["bias"],
                s["disambiguated_accuracy"],
                json.dumps(s, sort_keys=True),
                run.strength,
            ),
        )
        run_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO category_scores VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    name,
                    c["bias"],
                    c["pair_bias"],
                    c["ambiguity_bias"],
                    c["disambiguated_accuracy"],
                )
                for name, c in s["categories"].items()
            ],
        )
    return run_id


def save_session(
    conn: sqlite3.Connection,
    session_id: str,
    model_hash: str,
    device: str,
    source: str,
    state: dict[str, Any],
    event: dict[str, Any] | None = None,
) -> None:
    """Store a loop session's state and, in the same transaction, the adjustment that led to it.

    One transaction, so the state a resumed session reads always matches its last logged event.
    """
    now = time.time()
    with transaction(conn):
        conn.execute(
            "INSERT INTO loop_sessions VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at,"
            " state_json = excluded.state_json",
            (session_id, now, now, model_hash, device, source, json.dumps(state, sort_keys=True)),
        )
        if event is not None:
            conn.execute(
                "INSERT INTO loop_events (session_id, at, turn, measured, strength_before,"
                " strength_after, action, regenerate, detail_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    event["at"],
                    event["turn"],
                    event["measured"],
                    event["strength_before"],
                    event["strength_after"],
                    event["action"],
                    int(event["regenerate"]),
                    json.dumps(event.get("detail", {}), sort_keys=True, default=str),
                ),
            )


def load_session(conn: sqlite3.Connection, session_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT state_json FROM loop_sessions WHERE id = ?", (session_id,)
    ).fetchone()
    return None if row is None else dict(json.loads(row["state_json"]))
