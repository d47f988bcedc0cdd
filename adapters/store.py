"""The durable store: one SQLite file (`[bridge] store`) holding every station's state, and the
group-commit writer both back ends share (adapters/store_api.py: the interface and how a back end is
chosen; adapters/store_pg.py: PostgreSQL).

Rules
- One table, `state(station, tbl, key, value)`: each station core owns its rows and decides what they
  mean (transaction-id maps, seqNo counters, queued messages, idToken aliases); the store only keeps them.
  Values are JSON.
- A batch of `Persist` effects is written in one transaction. WAL journal, `synchronous=FULL`: once a
  batch is reported written, it survives a crash of the process or the machine (fsync'd), and a batch
  is either wholly there or not at all.
- `submit` (the drivers' way) hands a batch to the store's writer thread and returns at once; the
  thread commits every batch waiting at that moment in one transaction, one fsync for all of them
  (group commit), then calls each batch's `done(error)` on the event loop that submitted it. A group
  that fails is written again batch by batch, so one bad batch fails only its own station.
  Why: a commit costs an fsync (about 0.2 ms, with a tail of tens of ms on a busy disk), and made on
  the event loop's thread it held up every station (bench/, scale step at 10k stations: commits were
  the loop's longest stalls).
- `apply` writes one batch synchronously (tools, tests); `load` returns a station's rows as
  {table: {key: value}}, in key order (outbox keys are zero-padded sequence numbers, so key order is
  delivery order). Both first wait until every batch submitted before them is written, so they see
  what was submitted, in order.
- `":memory:"` gives a private in-memory store (tests, the demo); it works the same way.
- One process per store file: opening one takes an exclusive advisory lock (`flock`) on
  `<store>.lock` beside it, held until `close` (or the process ends, however it ends: the kernel
  releases it), and writes the holder's pid into it. A second process gets `StoreError`
  (`... is in use by another ocpp-bridge process (pid N)`), which `ocpp-bridge run` reports on one line
  with exit status 2. Why a file of its own: SQLite locks the database with POSIX record locks, which
  a process loses when it closes any descriptor of the file, and which WAL mode takes only while
  writing; an `flock` on a separate file interferes with none of SQLite's locking and is held for the
  whole life of the process, so two bridges never interleave their batches of one station.
- `close` writes what is still waiting, then stops the thread.
- `GroupCommitStore` is everything above but the database: the writer thread, the waiting list, the
  one-failing-batch rule, `load`/`apply` ordering. A back end gives `_transaction` (write batches in one
  transaction, durable when it returns), `_rows` (a station's rows as (table, key, JSON bytes or text))
  and `_close_db`; `Store` is SQLite's, `adapters.store_pg.PgStore` PostgreSQL's.
- `on_written(seconds)`, when set, is called on the writer thread for every batch with the time from
  its `submit` to its answer (what a station's acknowledgement waited for the store).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from adapters.store_api import Done, StoreError
from bridge.effects import Persist

__all__ = ["Done", "GroupCommitStore", "Store", "StoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    station TEXT NOT NULL,
    tbl     TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB NOT NULL,
    PRIMARY KEY (station, tbl, key)
) WITHOUT ROWID;
"""


class _Batch(NamedTuple):
    station: str
    changes: list[Persist]
    done: Done
    loop: asyncio.AbstractEventLoop  # where `done` is called
    submitted: float  # time.monotonic() at `submit`
    fence: int | None  # the station's lease epoch at `submit` (`_fence`), written with the batch


# (station, changes, lease epoch or None): what a back end's `_transaction` writes
Written = tuple[str, list[Persist], int | None]


class GroupCommitStore(abc.ABC):
    """The writer thread and its rules (module docstring); a back end fills in the database."""

    def __init__(self, path: str) -> None:
        self.path = path  # names the store in messages (never with a password)
        self._db_lock = threading.Lock()  # the connection: the writer thread's, or a caller's
        self._state = threading.Condition()  # guards the four below
        self._waiting: list[_Batch] = []
        self._writing = False
        self._closing = False
        self._writer: threading.Thread | None = None
        self.commits = 0  # transactions the writer thread committed (diagnostics, tests)
        self.on_written: Callable[[float], None] | None = None

    # --- the back end's part ------------------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self, batches: list[Written]) -> None:
        """Write `batches` in one transaction, durable when this returns (the caller holds the
        connection). Raises StoreError; any failure rolls the whole transaction back."""

    def _fence(self, station: str) -> int | None:
        """The lease epoch a batch of `station` carries, taken when it is submitted (None: none;
        adapters/store_pg.py fences writes with it)."""
        return None

    @abc.abstractmethod
    def _rows(self, station: str) -> Iterable[tuple[str, str, bytes | str]]:
        """The station's rows, (table, key, JSON), in table and key order (the caller holds the
        connection). Raises StoreError."""

    @abc.abstractmethod
    def _close_db(self) -> None:
        """Close the back end's connection (the caller holds it)."""

    # --- shared -------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._state:
            self._closing = True
            self._state.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
        self._close_db()

    def load(self, station: str) -> dict[str, dict[str, Any]]:
        self._wait_written()
        state: dict[str, dict[str, Any]] = {}
        with self._db_lock:
            rows = list(self._rows(station))
        for table, key, value in rows:
            state.setdefault(table, {})[key] = orjson.loads(value)
        return state

    def apply(self, station: str, changes: Iterable[Persist]) -> None:
        """Write a batch atomically and durably, now. Raises StoreError."""
        self._wait_written()
        with self._db_lock:
            self._transaction([(station, list(changes), self._fence(station))])

    def submit(self, station: str, changes: Iterable[Persist], done: Done) -> None:
        """Have the writer thread write a batch; `done(None)` once it is durable, `done(error)` if it
        could not be written, called on the running event loop. Raises StoreError once closed."""
        loop = asyncio.get_running_loop()
        with self._state:
            if self._closing:
                raise StoreError(f"{self.path}: the store is closed")
            self._waiting.append(
                _Batch(station, list(changes), done, loop, time.monotonic(), self._fence(station))
            )
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_waiting, name="ocpp-bridge-store", daemon=True
                )
                self._writer.start()
            self._state.notify_all()

    def _wait_written(self) -> None:
        with self._state:
            while self._waiting or self._writing:
                self._state.wait()

    def _write_waiting(self) -> None:
        """The writer thread: every batch waiting at once in one transaction, until closed."""
        while True:
            with self._state:
                while not self._waiting and not self._closing:
                    self._state.wait()
                if not self._waiting:
                    return
                group, self._waiting = self._waiting, []
                self._writing = True
            errors = self._write_group(group)
            if self.on_written is not None:
                written = time.monotonic()
                for batch in group:
                    self.on_written(written - batch.submitted)
            with self._state:
                self._writing = False
                self._state.notify_all()
            calls: dict[asyncio.AbstractEventLoop, list[tuple[Done, StoreError | None]]] = {}
            for batch, error in zip(group, errors, strict=True):
                calls.setdefault(batch.loop, []).append((batch.done, error))
            for loop, answers in calls.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(_answer, answers)

    def _write_group(self, group: list[_Batch]) -> list[StoreError | None]:
        with self._db_lock:
            try:
                self._transaction([(batch.station, batch.changes, batch.fence) for batch in group])
                return [None] * len(group)
            except StoreError as exc:
                if len(group) == 1:
                    return [exc]
            # one batch that cannot be written must not fail the stations batched with it
            errors: list[StoreError | None] = []
            for batch in group:
                try:
                    self._transaction([(batch.station, batch.changes, batch.fence)])
                    errors.append(None)
                except StoreError as exc:
                    errors.append(exc)
            return errors


class Store(GroupCommitStore):
    """SQLite (module rules)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        self._lock: int | None = None if self.path == ":memory:" else _take_lock(self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None

    def _close_db(self) -> None:
        self._db.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _rows(self, station: str) -> Iterable[tuple[str, str, bytes | str]]:
        rows: list[tuple[str, str, bytes]] = self._db.execute(
            "SELECT tbl, key, value FROM state WHERE station = ? ORDER BY tbl, key", (station,)
        ).fetchall()
        return rows

    def _transaction(self, batches: list[Written]) -> None:
        """Write `batches` in one transaction (the caller holds the connection). Raises StoreError;
        any failure rolls the whole transaction back. SQLite has no leases: the epoch is unused."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for station, changes, _ in batches:
                for change in changes:
                    if change.value is None:
                        self._db.execute(
                            "DELETE FROM state WHERE station = ? AND tbl = ? AND key = ?",
                            (station, change.table, change.key),
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO state (station, tbl, key, value)"
                            " VALUES (?, ?, ?, ?)",
                            (station, change.table, change.key, orjson.dumps(change.value)),
                        )
            self._db.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # noqa: BLE001 - whatever fails, each batch gets its answer
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot write: {exc}") from None


def _take_lock(path: str) -> int:
    """The descriptor of `<path>.lock`, exclusively `flock`ed; StoreError when another process holds
    it (see the module rules)."""
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(
            f"{path}: cannot open the store: {lock_path}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"{path}: the store is in use by another ocpp-bridge process (pid {holder});"
            " one bridge per store"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(
            f"{path}: cannot open the store: cannot lock {lock_path}: {exc.strerror or exc}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _answer(answers: list[tuple[Done, StoreError | None]]) -> None:
    for done, error in answers:
        done(error)
