"""The PostgreSQL store (`[bridge] store = "postgresql://USER@HOST:PORT/DB"`), through psycopg 3.

Rules
- The same store as the SQLite one (adapters/store.py: the rules, the group-commit writer thread it shares
  through `GroupCommitStore`): one table `state(station, tbl, key, value)`, a batch of `Persist` effects
  written in one transaction, every batch waiting at once committed together, each batch answered only
  after its COMMIT returned, and a group that fails written again batch by batch.
- Durable before acknowledged: the session sets `synchronous_commit = on` (whatever the server's or the
  database's default), so COMMIT returns only once the WAL is flushed on the server (and on synchronous
  standbys, if the operator configured any). A COMMIT that fails in flight (the connection lost) is
  answered as a failure even though it may have committed: the station's session ends, and the next one
  starts from what the store holds, which is the truth either way.
- One group is one transaction of at most two statements, whatever its size: the deletions, then the
  insertions (`INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE`), after collapsing the group's
  changes in order, so the last change of a key wins as it would applied one by one.
- `value` is `json` (kept as written, readable with SQL: `value->>'id'`); `tbl` and `key` are
  `COLLATE "C"` so `load` returns keys in byte order, as SQLite does (outbox keys are zero-padded
  sequence numbers: key order is delivery order).
- Migrations are the bridge's own: the `schema_version` table holds the versions applied; at open, under a
  transaction-level advisory lock (replicas starting together migrate once), each missing migration of
  `MIGRATIONS` runs in that transaction. A store whose version is newer than this bridge knows is refused
  (an older bridge must not write a newer schema).
- No file lock: several bridge processes may share one PostgreSQL store (that is what it is for).
- The connection is the writer thread's (with `load` and `apply` taking turns under the store's lock);
  a broken one is opened again at the next use; if that fails, the batch fails (`StoreError`). A group
  whose session turns out broken before its COMMIT was sent (the server restarted since the last
  write) is written again, once, on a new session: nothing of it was written.
- The password is libpq's: `PGPASSWORD` or a password file (`PGPASSFILE`, ~/.pgpass); TLS: libpq's URL
  parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) or environment (`PGSSLMODE`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from adapters.store import GroupCommitStore
from adapters.store_api import StoreError, describe
from bridge.effects import Persist

# Each migration runs once, in order, in the transaction that records it in schema_version.
MIGRATIONS: tuple[str, ...] = (
    # 1: every station's state (adapters/store.py)
    """
    CREATE TABLE state (
        station text COLLATE "C" NOT NULL,
        tbl     text COLLATE "C" NOT NULL,
        key     text COLLATE "C" NOT NULL,
        value   json NOT NULL,
        PRIMARY KEY (station, tbl, key)
    )
    """,
)

# pg_advisory_xact_lock key of the migrations: "ocppbrdg" as a 64-bit number
_MIGRATION_LOCK = int.from_bytes(b"ocppbrdg", "big")

_DELETE = """
DELETE FROM state s
USING unnest(%s::text[], %s::text[], %s::text[]) AS d(station, tbl, key)
WHERE s.station = d.station AND s.tbl = d.tbl AND s.key = d.key
"""
_UPSERT = """
INSERT INTO state (station, tbl, key, value)
SELECT station, tbl, key, value::json
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS u(station, tbl, key, value)
ON CONFLICT (station, tbl, key) DO UPDATE SET value = EXCLUDED.value
"""


def _columns(rows: Sequence[tuple[str, ...]]) -> list[list[str]]:
    """Rows as one list per column (the arrays `unnest` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


def connect(url: str, timeout: float = 10.0) -> psycopg.Connection[Any]:
    """A session on `url` with the store's settings. Raises StoreError."""
    extra: dict[str, Any] = {}
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            f"{describe(url)}: not a valid postgresql:// URL: {_one_line(exc)}"
        ) from None
    if "application_name" not in given:
        extra["application_name"] = "ocpp-bridge"
    if "connect_timeout" not in given:
        extra["connect_timeout"] = max(1, round(timeout))
    try:
        conn = psycopg.connect(url, autocommit=True, **extra)
        conn.execute("SET synchronous_commit TO on")
    except psycopg.Error as exc:
        raise StoreError(f"{describe(url)}: cannot connect: {_one_line(exc)}") from None
    return conn


def migrate(conn: psycopg.Connection[Any], name: str) -> int:
    """Apply the missing migrations; the schema version now. Raises StoreError."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{name}: the store's schema version {current} is newer than this bridge's"
                    f" ({len(MIGRATIONS)}); run a bridge of that version or later"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                conn.execute(MIGRATIONS[version - 1])
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    except psycopg.Error as exc:
        raise StoreError(f"{name}: cannot migrate the store's schema: {_one_line(exc)}") from None
    return len(MIGRATIONS)


class PgStore(GroupCommitStore):
    """PostgreSQL (module rules)."""

    def __init__(self, url: str) -> None:
        super().__init__(describe(url))
        self._url = url
        self._conn = connect(url)
        try:
            self.schema_version = migrate(self._conn, self.path)
        except StoreError:
            self._conn.close()
            raise

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = connect(self._url)
        return self._conn

    def _close_db(self) -> None:
        self._conn.close()

    def _rows(self, station: str) -> Iterable[tuple[str, str, bytes | str]]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                rows: list[tuple[str, str, str]] = conn.execute(
                    "SELECT tbl, key, value::text FROM state WHERE station = %s ORDER BY tbl, key",
                    (station,),
                ).fetchall()
                return rows
            except psycopg.OperationalError as exc:
                if not conn.broken or attempt == 2:  # a read is safe to make again on a new session
                    raise StoreError(f"{self.path}: cannot read: {_one_line(exc)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"{self.path}: cannot read: {_one_line(exc)}") from None
        raise AssertionError("unreachable")

    def _transaction(self, batches: list[tuple[str, list[Persist]]]) -> None:
        try:
            latest: dict[tuple[str, str, str], str | None] = {}
            for station, changes in batches:
                for change in changes:
                    latest[(station, change.table, change.key)] = (
                        None if change.value is None else orjson.dumps(change.value).decode()
                    )
            deleted = [where for where, value in latest.items() if value is None]
            written = [(*where, value) for where, value in latest.items() if value is not None]
            for attempt in (1, 2):
                conn = self._connection()
                committing = False
                try:
                    with conn.transaction():
                        if deleted:
                            conn.execute(_DELETE, _columns(deleted))
                        if written:
                            conn.execute(_UPSERT, _columns(written))
                        committing = True
                    break
                except psycopg.OperationalError:
                    # a session the server ended (a restart, a failover): when COMMIT was not sent yet,
                    # nothing was written, so the group is written once more on a new session
                    if committing or not conn.broken or attempt == 2:
                        raise
            self.commits += 1
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever fails, each batch gets its answer
            raise StoreError(f"{self.path}: cannot write: {_one_line(exc)}") from None


def probe(url: str, timeout: float = 5.0) -> str:
    """Reachability of the store at `url`, read only (store_api.probe). Raises StoreError."""
    conn = connect(url, timeout)
    try:
        version = conn.execute("SELECT current_setting('server_version')").fetchone()
        if conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,):
            schema = "schema not created yet (the bridge creates it when it starts)"
        else:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{describe(url)}: the store's schema version {current} is newer than this"
                    f" bridge's ({len(MIGRATIONS)}); run a bridge of that version or later"
                )
            schema = f"schema version {current} (this bridge's: {len(MIGRATIONS)})"
    except psycopg.Error as exc:
        raise StoreError(f"{describe(url)}: cannot read: {_one_line(exc)}") from None
    finally:
        conn.close()
    server = version[0] if version else "?"
    return f"{describe(url)}: reachable, PostgreSQL {server}, {schema}"
