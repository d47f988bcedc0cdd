"""The durable store: one SQLite file (`[bridge] store`) holding every station's state.

Rules
- One table, `state(station, tbl, key, value)`: each station core owns its rows and decides what they
  mean (transaction-id maps, seqNo counters, queued messages, idToken aliases); the store only keeps them.
  Values are JSON.
- `apply` writes a batch of `Persist` effects in one transaction. WAL journal, `synchronous=FULL`: when
  `apply` returns, the batch survives a crash of the process or the machine (fsync'd), and a batch is
  either wholly there or not at all.
- `load` returns a station's rows as {table: {key: value}}, in key order (outbox keys are zero-padded
  sequence numbers, so key order is delivery order).
- `":memory:"` gives a private in-memory store (tests, the demo).
- Used from the event-loop thread only. sqlite3 is not asynchronous; a commit costs one fsync (see
  bench/ for the measured figure).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bridge.effects import Persist

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    station TEXT NOT NULL,
    tbl     TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB NOT NULL,
    PRIMARY KEY (station, tbl, key)
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The store cannot be opened or written."""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def load(self, station: str) -> dict[str, dict[str, Any]]:
        state: dict[str, dict[str, Any]] = {}
        rows = self._db.execute(
            "SELECT tbl, key, value FROM state WHERE station = ? ORDER BY tbl, key", (station,)
        )
        for table, key, value in rows:
            state.setdefault(table, {})[key] = orjson.loads(value)
        return state

    def apply(self, station: str, changes: Iterable[Persist]) -> None:
        """Write a batch atomically and durably."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for change in changes:
                if change.value is None:
                    self._db.execute(
                        "DELETE FROM state WHERE station = ? AND tbl = ? AND key = ?",
                        (station, change.table, change.key),
                    )
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO state (station, tbl, key, value) VALUES (?, ?, ?, ?)",
                        (station, change.table, change.key, orjson.dumps(change.value)),
                    )
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot write: {exc}") from None
            raise
