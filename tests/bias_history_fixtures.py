"""A real bias history cut in half: the corrupt file the store must refuse and leave alone."""

from __future__ import annotations

from pathlib import Path

from edgekit.bias import store


def write_truncated_history(db: Path, runs: int) -> bytes:
    """Record `runs` scores, fold the WAL into the file, cut it mid-page; returns what is left."""
    conn = store.connect(db)
    for i in range(runs):
        scores = {"bias": 0.1 * (i % 3), "disambiguated_accuracy": 0.5, "categories": {}}
        store.record_run(conn, store.RunRecord("m", "h", "m", "cpu", "all", 1, 0.0, scores))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)
    data = db.read_bytes()
    content = data[: len(data) // 2 + 17]
    db.write_bytes(content)
    return content
