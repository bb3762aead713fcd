"""SQLite index of stored scores (WAL mode, safe for several writer processes).

Two tables:

* ``runs``: append-only history, one row per scoring attempt (scored or failed), with full provenance;
* ``scores``: the current result per (model, benchmark, benchmark version, metric version, variant), pointing at
  its netCDF file and that file's sha256. A failed run never replaces a stored score, so a leaderboard can tell
  "scored", "failed" and "never run" apart.

``variant`` is ``default`` for a run with the plugins' default options and ``options-<digest>`` for a run with
model or benchmark options (``--weights``, ``--model-option``, ``--benchmark-option``): a score computed under other
settings never overwrites the default one.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    benchmark_version TEXT NOT NULL,
    metric TEXT NOT NULL,
    metric_version TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT 'default',
    state TEXT NOT NULL CHECK (state IN ('scored', 'failed')),
    score REAL,
    score_error REAL,
    ceiling REAL,
    error_message TEXT,
    path TEXT,
    sha256 TEXT,
    provenance TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    model TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    benchmark_version TEXT NOT NULL,
    metric_version TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT 'default',
    metric TEXT NOT NULL,
    state TEXT NOT NULL,
    score REAL,
    score_error REAL,
    ceiling REAL,
    path TEXT,
    sha256 TEXT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (model, benchmark, benchmark_version, metric_version, variant)
);
CREATE INDEX IF NOT EXISTS runs_by_pair ON runs(model, benchmark);
"""
SCHEMA_VERSION = 2
KEY = ("model", "benchmark", "benchmark_version", "metric_version", "variant")


@dataclass(frozen=True)
class ScoreRow:
    model: str
    benchmark: str
    benchmark_version: str
    metric: str
    metric_version: str
    variant: str
    state: str
    score: float | None
    score_error: float | None
    ceiling: float | None
    path: str | None
    sha256: str | None
    run_id: str
    updated_at: str


class Index:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version < SCHEMA_VERSION and "scores" in tables:
                _migrate_to_variants(conn)
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction: one writer process at a time, all or nothing."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def insert_run(conn: sqlite3.Connection, run: dict[str, Any]) -> None:
        run = dict(run, provenance=json.dumps(run["provenance"], sort_keys=True, default=str))
        columns = ", ".join(run)
        conn.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(run))})", tuple(run.values()))

    @staticmethod
    def upsert_score(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        updates = ", ".join(f"{k}=excluded.{k}" for k in row if k not in KEY)
        conn.execute(
            f"INSERT INTO scores ({columns}) VALUES ({', '.join('?' * len(row))}) "
            f"ON CONFLICT({', '.join(KEY)}) DO UPDATE SET {updates}",
            tuple(row.values()))

    def _select(self, table: str, order: str, **filters: str | None) -> list[dict[str, Any]]:
        clauses = [(column, value) for column, value in filters.items() if value]
        where = " WHERE " + " AND ".join(f"{column} = ?" for column, _ in clauses) if clauses else ""
        with self.connect() as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table}{where} ORDER BY {order}",
                                                  [value for _, value in clauses])]

    def scores(self, model: str | None = None, benchmark: str | None = None, variant: str | None = None
               ) -> list[ScoreRow]:
        return [ScoreRow(**row) for row in self._select("scores", "benchmark, model, updated_at DESC", model=model,
                                                        benchmark=benchmark, variant=variant)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run of the history by id (None if unknown)."""
        rows = self._select("runs", "created_at", run_id=run_id)
        if not rows:
            return None
        return dict(rows[0], provenance=json.loads(rows[0]["provenance"]))

    def runs(self, model: str | None = None, benchmark: str | None = None) -> list[dict[str, Any]]:
        rows = self._select("runs", "created_at", model=model, benchmark=benchmark)
        for row in rows:
            row["provenance"] = json.loads(row["provenance"])
        return rows


def _migrate_to_variants(conn: sqlite3.Connection) -> None:
    """Index files written before variants existed: every stored score becomes the ``default`` variant."""
    conn.execute("BEGIN IMMEDIATE")                      # a second process waits here, then finds it done
    try:
        if "variant" in {r[1] for r in conn.execute("PRAGMA table_info(scores)")}:
            conn.execute("COMMIT")
            return
        conn.execute("ALTER TABLE runs ADD COLUMN variant TEXT NOT NULL DEFAULT 'default'")
        conn.execute("ALTER TABLE scores RENAME TO scores_before_variants")
        conn.execute("CREATE TABLE scores" + SCHEMA.split("CREATE TABLE IF NOT EXISTS scores")[1].split(";")[0])
        old = [r[1] for r in conn.execute("PRAGMA table_info(scores_before_variants)")]
        conn.execute(f"INSERT INTO scores ({', '.join(old)}) SELECT {', '.join(old)} FROM scores_before_variants")
        conn.execute("DROP TABLE scores_before_variants")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
