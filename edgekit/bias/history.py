"""Reading the bias history back: the latest scores per category, a loop session's state and
events, the sessions list. What writes it (and the database itself) is store.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from edgekit.bias.store import connect


def latest_scores(
    db: Path | None = None,
    model_hash: str | None = None,
    device: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The newest run's scores per category, and each category's bias over the last runs.

    {"latest": {run fields, "categories": {...}} | None,
     "history": {"overall": [{"at", "bias", "device", "strength"}...],
                 "<category>": [{"at", "bias", "run_id"}...]}}
    """
    where, args = [], []
    if model_hash:
        where.append("model_hash = ?")
        args.append(model_hash)
    if device:
        where.append("device = ?")
        args.append(device)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    conn = connect(db)
    try:
        runs = conn.execute(
            f"SELECT * FROM runs {clause} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        if not runs:
            return {"latest": None, "history": {"overall": []}}
        ids = [r["id"] for r in runs]
        marks = ",".join("?" * len(ids))
        cats = conn.execute(
            f"SELECT * FROM category_scores WHERE run_id IN ({marks})", ids
        ).fetchall()
    finally:
        conn.close()
    at = {r["id"]: r["created_at"] for r in runs}
    hist: dict[str, list[dict[str, Any]]] = {
        "overall": [
            {
                "run_id": r["id"],
                "at": r["created_at"],
                "bias": r["bias"],
                "device": r["device"],
                "strength": r["strength"],
                "suite": r["suite"],
            }
            for r in reversed(runs)
        ]
    }
    for c in sorted(cats, key=lambda c: (at[c["run_id"]], c["run_id"])):
        hist.setdefault(c["category"], []).append(
            {"run_id": c["run_id"], "at": at[c["run_id"]], "bias": c["bias"]}
        )
    return {"latest": _run_dict(runs[0]), "history": hist}


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["scores"] = json.loads(d.pop("scores_json"))
    return d


def loop_state(
    db: Path | None = None, session_id: str | None = None, events: int = 50
) -> dict[str, Any] | None:
    """A loop session (the most recently updated one by default): state, config, adjustments."""
    conn = connect(db)
    try:
        if session_id is None:
            row = conn.execute(
                "SELECT * FROM loop_sessions ORDER BY updated_at DESC LIMIT 1"
            ).fetchone()
        else:
            row = conn.execute("SELECT * FROM loop_sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        rows = conn.execute(
            "SELECT * FROM loop_events WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            (row["id"], events),
        ).fetchall()
    finally:
        conn.close()
    saved = json.loads(row["state_json"])
    return {
        "session_id": row["id"],
        "source": row["source"],
        "model_hash": row["model_hash"],
        "device": row["device"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state": saved.get("state", {}),
        "config": saved.get("config", {}),
        "events": [_event_dict(e) for e in reversed(rows)],
    }


def _event_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d.pop("session_id")
    d["regenerate"] = bool(d["regenerate"])
    d["detail"] = json.loads(d.pop("detail_json"))
    return d


def sessions(db: Path | None = None, limit: int = 20) -> list[dict[str, Any]]:
    conn = connect(db)
    try:
        rows = conn.execute(
            "SELECT id, source, model_hash, device, created_at, updated_at FROM loop_sessions"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]
