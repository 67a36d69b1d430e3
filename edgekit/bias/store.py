"""The local bias history (SQLite), what the dashboard reads from it, and model identity.

Every `edgekit bias` run (with the suite its scores came from) and every feedback-loop adjustment
is stored. Why SQLite: one file, transactions, readable from the dashboard while a run writes.
The database runs in WAL mode and every write is one transaction, so a process killed mid-write
leaves the last committed state; `synchronous=NORMAL` may lose the last commit on a power cut but
never corrupts the file. Schema changes are ordered migrations recorded in `PRAGMA user_version`.

A file that is not a readable SQLite database (random bytes, a truncated copy), or one whose
tables are not those of a known schema version (another program's database, a newer edgekit's
history), raises HistoryCorruptError before anything is written, and the file is left exactly as
it was: `edgekit bias` opens the history before it scores, so this costs no model time. NaN and
infinities are refused too (they are not JSON, and a NaN bias would read as a score).

Model identity: hashing a multi-GB file on a Pi on every run is not acceptable, so the
fingerprint is SHA-256 over the file size, the whole GGUF header and the first and last MiB of
tensor data.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from edgekit.errors import BiasError, DataDirError, HistoryCorruptError, HistorySchemaError
from edgekit.gguf.reader import read_header
from edgekit.paths import data_dir

_SAMPLE = 1 << 20


def model_fingerprint(path: Path) -> str:
    header = read_header(path)
    h = hashlib.sha256()
    h.update(header.file_size.to_bytes(8, "little"))
    with path.open("rb") as f:
        h.update(f.read(header.data_offset))
        h.update(f.read(_SAMPLE))
        f.seek(max(header.data_offset, header.file_size - _SAMPLE))
        h.update(f.read(_SAMPLE))
    return h.hexdigest()


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
    # 3: which suite a score came from (edgekit's probes, BBQ, CrowS-Pairs)
    """
    ALTER TABLE runs ADD COLUMN suite TEXT NOT NULL DEFAULT 'edgekit';
    """,
)
SQLITE_MAGIC = b"SQLite format 3\x00"


def default_db_path() -> Path:
    return data_dir() / DB_NAME


def _corrupt(p: Path, why: str) -> HistoryCorruptError:
    return HistoryCorruptError(
        f"the bias history {p} is corrupt ({why}); it was left untouched",
        hint="Move it aside (or delete it) to start a new history.",
    )


def check_readable(p: Path) -> None:
    """Refuse a history file that is not an intact SQLite database of a known schema, without
    writing to it."""
    if not p.exists():
        return
    if not p.is_file():
        raise _corrupt(p, "not a file")
    if p.stat().st_size == 0:
        return
    with p.open("rb") as f:
        if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise _corrupt(p, "not an SQLite database")
    try:
        ro = sqlite3.connect(f"{p.as_uri()}?mode=ro", uri=True)
        try:
            verdict = ro.execute("PRAGMA quick_check").fetchone()
            if verdict is not None and verdict[0] == "ok":
                check_schema(p, schema_version(ro), tables_of(ro))
        finally:
            ro.close()
    except sqlite3.DatabaseError as e:
        raise _corrupt(p, str(e)) from None
    if verdict is None or verdict[0] != "ok":
        raise _corrupt(p, str(verdict[0]) if verdict else "no answer to an integrity check")


Columns = tuple[tuple[str, str, int], ...]  # (name, declared type, NOT NULL) per column


def tables_of(conn: sqlite3.Connection) -> dict[str, Columns]:
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {
        str(n[0]): tuple(
            (str(c[1]), str(c[2]).upper(), int(c[3]))
            for c in conn.execute("SELECT * FROM pragma_table_info(?)", (n[0],))
        )
        for n in names
    }


@cache
def expected_tables(version: int) -> dict[str, Columns]:
    """The tables a history has after the first `version` migrations."""
    mem = sqlite3.connect(":memory:")
    try:
        for script in MIGRATIONS[:version]:
            mem.executescript(script)
        return tables_of(mem)
    finally:
        mem.close()


def check_schema(p: Path, version: int, found: dict[str, Columns]) -> None:
    """Refuse what migrations cannot safely extend: a newer schema, or tables that differ from
    the ones this version had (writing would fail after minutes of scoring, or write edgekit's
    tables into another program's database)."""
    known = len(MIGRATIONS)
    if version > known:
        raise HistorySchemaError(
            f"the bias history {p} has schema version {version}; this edgekit knows up to "
            f"{known}. It was left untouched",
            hint="It was written by a newer edgekit: upgrade, or move the file aside.",
        )
    want = expected_tables(version)
    if found == want:
        return
    missing = sorted(set(want) - set(found))
    extra = sorted(set(found) - set(want))
    if missing:
        why = f"no table {missing[0]!r}"
    elif extra:
        why = f"a table {extra[0]!r} edgekit never made"
    else:
        table = next(t for t in sorted(want) if found[t] != want[t])
        why = f"table {table!r} has columns {', '.join(c[0] for c in found[table])}"
    raise HistorySchemaError(
        f"the bias history {p} is not an edgekit history of schema version {version} ({why}); "
        "it was left untouched",
        hint="Move it aside (or delete it) to start a new history.",
    )


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the history database.

    Raises HistoryCorruptError for a file that is no intact SQLite database of a known schema,
    DataDirError when its folder cannot be made.
    """
    p = path or default_db_path()
    check_readable(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataDirError(
            f"cannot make the folder of the bias history {p.parent}: {e.strerror or e}",
            hint="Set EDGEKIT_DATA_DIR to a folder you can write to.",
        ) from None
    try:
        return _connect(p)
    except sqlite3.DatabaseError as e:
        raise _corrupt(p, str(e)) from None


def _connect(p: Path) -> sqlite3.Connection:
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
class ScoredModel:
    """Which model a score belongs to, on which device."""

    path: str
    hash: str  # model_fingerprint
    name: str
    device: str


def require_finite(value: Any, where: str = "scores") -> None:
    """Refuse NaN and infinities anywhere in a result, before it is printed or stored. They
    come from a model whose log-probabilities are not finite on some text (NaN weights past the
    first token, or an adapter at a wild scale)."""
    if isinstance(value, dict):
        for key, item in value.items():
            require_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            require_finite(item, f"{where}[{n}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise BiasError(
            f"the bias scores are not finite numbers ({where} is {value}); nothing was stored",
            hint="The model's log-probabilities are NaN or infinite on some probe: its weights "
            "(or the --adapter at this --scale) are damaged.",
        )


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
    suite: str = "edgekit"  # a name in edgekit.bias.suites.SUITES


def record_run(conn: sqlite3.Connection, run: RunRecord, at: float | None = None) -> int:
    s = run.scores
    require_finite({"strength": run.strength, **s})
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO runs (created_at, model_path, model_hash, model_name, device, split,"
            " repeats, bias, disambiguated_accuracy, scores_json, strength, suite)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                run.suite,
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


def latest_session_of(
    conn: sqlite3.Connection, model_hash: str, source: str
) -> dict[str, Any] | None:
    """The most recently updated loop session of one source ("mitigate", "guard", "serve")
    for a model: its id and saved state, or None."""
    row = conn.execute(
        "SELECT id, state_json FROM loop_sessions WHERE model_hash = ? AND source = ?"
        " ORDER BY updated_at DESC LIMIT 1",
        (model_hash, source),
    ).fetchone()
    return None if row is None else {"id": row["id"], **json.loads(row["state_json"])}
