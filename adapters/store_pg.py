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
  a broken one is opened again at the next use. A group whose write fails for a reason of the server or
  the network (a restart, "the database system is shutting down", a refused connection, a session
  ended before or during its COMMIT) is written again on a new session, with a back-off from 50 ms to
  0.5 s, for up to `WRITE_RETRY_SECONDS`; only then does the batch fail (`StoreError`: the station's
  connections close, the station is rebuilt from the store). Why: a failed batch that recorded the
  CSMS's answer to a queued TransactionEvent left it queued, and the rebuilt station sent it again
  (the replica fault runs, PostgreSQL restarts). Writing a group twice is safe: it is the latest value
  of each key and its deletions, the writer thread writes one group at a time, and the fences are
  checked again (a lease lost meanwhile refuses it).
- The password is libpq's: `PGPASSWORD` or a password file (`PGPASSFILE`, ~/.pgpass); TLS: libpq's URL
  parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) or environment (`PGSSLMODE`, ...).

Station leases and fencing (issue 20 item 2)
- A replica serves a station only while it holds the station's lease: a row `leases(station, owner,
  epoch, expires)`. `owner` names this store (host/pid/random: unique per process run); `epoch` grows by
  one each time the lease changes owner.
- `take_lease(station, force)`: the lease row, locked (`FOR UPDATE`), is created at epoch 1, kept (this
  owner already holds it: its expiry pushed back), or taken over at epoch + 1: always with `force` (a
  charger connected here, so its previous replica lost it), otherwise only when it has expired. Returns
  the epoch held, or None (another owner holds a live lease and `force` is off).
  `take_free_leases(stations)` does the same without `force` for many stations in one statement (a
  row lock each, as `FOR UPDATE`): the epochs of those now held here (the lease keeper's dial-out
  claims: one round trip, not one per station); `load_many(stations)` reads their state likewise.
- `renew_leases()`: every lease this store holds in one statement (`UPDATE ... FROM unnest(stations,
  epochs)`, matched on owner and epoch); those that did not match were taken over and are lost. Call it
  every `lease_seconds / 3` (adapters/leases.py). `orphans(stations)`: those with queued messages
  whose lease is free or expired (nobody delivers them). `release_lease(station)` deletes this owner's
  row after the station's submitted batches are written; `close` releases every lease held.
- Fencing: a batch carries its station's epoch from `submit` (or `apply`); the write's transaction first
  reads the lease rows of its stations `FOR SHARE` and refuses the whole transaction when a row's owner
  or epoch is not the batch's (another replica took the station over since). The shared row lock makes
  a takeover wait for a write that passed the check, and a write wait for a takeover under way: a
  successor's `load` after its `take_lease` sees every write that was allowed, and no write of the
  predecessor lands after it. A refusal fails only that station's batch (the group is written again
  batch by batch), counts in `fencing_refusals`, drops the lease here and reports it lost.
- Live replicas: `heartbeat()` keeps a row `replicas(owner, expires)` of this store, pushed back by
  `lease_seconds` at each renewal tick, and counts the rows not expired (this one included); `close`
  deletes it. `heartbeat(config)` also records this replica's configuration hash in its row (`config`,
  migration 4) and leaves in `other_configs` the live replicas whose hash is another one (owner →
  hash; replicas of one configuration must have the same stations). `free(stations)`: those whose lease is free or expired. The lease keeper spreads dial-out
  104 stations with them (adapters/leases.py).
- A store's sessions end on the server when idle inside a transaction for `lease_seconds`
  (`idle_in_transaction_session_timeout`): a replica paused in the middle of a write (SIGSTOP, a
  stalled VM) cannot hold the lease rows' locks, and so a takeover, for longer than a lease lasts.
- With `require_leases` set, a station written without a lease held is refused too (a replica must not
  write a station it does not serve); off, such writes are not fenced (one bridge, or bridges sharded by
  station, as before leases).
- `on_lease_lost(station)`, when set, is called (on the writer or renewal thread) for every lease lost:
  by renewal or by a refused write. Counters: `lease_takeovers` (taken from a previous owner),
  `fencing_refusals`, `leases_lost`; `leases_held()`.
- Why rows and not advisory locks: an advisory lock lives as long as the session that took it, so a
  network blip between a replica and the server drops every lease of that replica at once, and while
  the replica reconnects it cannot tell which ones another replica has taken meanwhile; a lock carries
  no epoch, so a write made on another session (or after reconnecting) cannot be checked against the
  current holder, which is the whole point of fencing; and session locks do not survive a transaction
  pooler (PgBouncer in transaction mode). A row survives reconnects, carries the epoch every write is
  checked against in the same transaction, has an expiry that one statement renews for thousands of
  stations, and can be read with SQL (`SELECT owner, count(*) FROM leases GROUP BY owner`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict

from adapters.store import GroupCommitStore, Written
from adapters.store_api import FencedError, StoreError, describe

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
    # 2: station leases (module rules)
    """
    CREATE TABLE leases (
        station text COLLATE "C" PRIMARY KEY,
        owner   text NOT NULL,
        epoch   bigint NOT NULL,
        expires timestamptz NOT NULL
    )
    """,
    # 3: live replicas, for spreading dial-out 104 stations (module rules)
    """
    CREATE TABLE replicas (
        owner   text COLLATE "C" PRIMARY KEY,
        expires timestamptz NOT NULL
    )
    """,
    # 4: each replica's configuration hash, to tell replicas of different configurations (module rules)
    "ALTER TABLE replicas ADD COLUMN config text NOT NULL DEFAULT ''",
)

LEASE_SECONDS = 15.0  # a lease not renewed for this long may be taken by another replica

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


def connect(
    url: str, timeout: float = 10.0, idle_timeout: float | None = None
) -> psycopg.Connection[Any]:
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
        if idle_timeout is not None:
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{max(1, round(idle_timeout * 1000))}ms",),
            )
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


# How long a group's write is tried again while the server restarts or cannot be reached (module rules).
WRITE_RETRY_SECONDS = 10.0


class PgStore(GroupCommitStore):
    """PostgreSQL (module rules)."""

    def __init__(
        self, url: str, *, lease_seconds: float = LEASE_SECONDS, require_leases: bool = False
    ) -> None:
        super().__init__(describe(url))
        self._url = url
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self._gave_up_at = float("-inf")  # when a write last ran out of WRITE_RETRY_SECONDS
        self.require_leases = require_leases
        self._held: dict[str, int] = {}  # station -> epoch; changed under _held_lock
        self._held_lock = threading.Lock()
        self.lease_takeovers = 0
        self.fencing_refusals = 0
        self.leases_lost = 0
        self.other_configs: dict[str, str] = {}  # `heartbeat`: live replicas of another config
        self.on_lease_lost: Callable[[str], None] | None = None
        self._conn = connect(url, idle_timeout=lease_seconds)
        try:
            self.schema_version = migrate(self._conn, self.path)
        except StoreError:
            self._conn.close()
            raise

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = connect(self._url, idle_timeout=self.lease_seconds)
        return self._conn

    def _close_db(self) -> None:
        with self._db_lock:
            with contextlib.suppress(StoreError):  # the server is gone: the leases expire
                self._release([*self._held])
            with contextlib.suppress(psycopg.Error, StoreError):  # the others' share grows now
                self._connection().execute("DELETE FROM replicas WHERE owner = %s", (self.owner,))
            self._conn.close()

    # --- leases (module rules) ---------------------------------------------------------------------

    def _fence(self, station: str) -> int | None:
        with self._held_lock:
            return self._held.get(station)

    def leases_held(self) -> int:
        with self._held_lock:
            return len(self._held)

    def take_lease(self, station: str, *, force: bool = True) -> int | None:
        """This store's epoch of `station`'s lease, taken if need be; None when another owner holds a
        live lease and `force` is off. Raises StoreError."""
        with self._db_lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    row = self._lease_row(conn, station)
                    if row is None:
                        conn.execute(
                            "INSERT INTO leases (station, owner, epoch, expires)"
                            " VALUES (%s, %s, 0, now()) ON CONFLICT (station) DO NOTHING",
                            (station, self.owner),
                        )
                        row = self._lease_row(conn, station)  # ours at epoch 0, or a racer's
                        assert row is not None
                    owner, epoch, live = row
                    if epoch == 0:  # the row just inserted: nobody held the lease before
                        owner, live = None, False
                    if owner == self.owner:
                        pass  # held already: renewed below
                    elif live and not force:
                        return None
                    else:
                        epoch += 1
                    conn.execute(
                        "UPDATE leases SET owner = %s, epoch = %s,"
                        " expires = now() + make_interval(secs => %s) WHERE station = %s",
                        (self.owner, epoch, self.lease_seconds, station),
                    )
            except psycopg.Error as exc:
                raise StoreError(
                    f"{self.path}: cannot take the lease of {station}: {_one_line(exc)}"
                ) from None
            with self._held_lock:
                self._held[station] = epoch
            if owner is not None and owner != self.owner:
                self.lease_takeovers += 1
            return epoch

    def take_free_leases(self, stations: list[str]) -> dict[str, int]:
        """`take_lease(station, force=False)` for each of `stations` in one statement (module rules):
        station → epoch for those held here now. Raises StoreError."""
        if not stations:
            return {}
        with self._db_lock:
            with self._held_lock:
                held_before = set(self._held)
            rows = self._again(  # twice is harmless: the second finds them ours and keeps them
                "cannot take leases",
                "INSERT INTO leases AS l (station, owner, epoch, expires)"
                " SELECT s, %s, 1, now() + make_interval(secs => %s)"
                " FROM unnest(%s::text[]) AS s ON CONFLICT (station) DO UPDATE"
                " SET owner = EXCLUDED.owner, expires = EXCLUDED.expires,"
                " epoch = CASE WHEN l.owner = EXCLUDED.owner THEN l.epoch ELSE l.epoch + 1 END"
                " WHERE l.owner = EXCLUDED.owner OR l.expires < now()"
                " RETURNING l.station, l.epoch, xmax = 0",
                (self.owner, self.lease_seconds, stations),
            )
        taken = {str(station): int(epoch) for station, epoch, _ in rows}
        with self._held_lock:
            self._held.update(taken)
        # a row that existed and was not ours: taken over from its expired owner
        self.lease_takeovers += sum(
            1 for station, _, inserted in rows if not inserted and station not in held_before
        )
        return taken

    @staticmethod
    def _lease_row(
        conn: psycopg.Connection[Any], station: str
    ) -> tuple[str | None, int, bool] | None:
        row = conn.execute(
            "SELECT owner, epoch, expires > now() FROM leases WHERE station = %s FOR UPDATE",
            (station,),
        ).fetchone()
        return None if row is None else (row[0], int(row[1]), bool(row[2]))

    def renew_leases(self) -> list[str]:
        """Push back the expiry of every lease held, in one statement; the stations whose lease was
        taken over (now lost). Raises StoreError."""
        with self._db_lock:
            with self._held_lock:
                held = dict(self._held)
            if not held:
                return []
            rows = self._again(
                "cannot renew the leases",
                "UPDATE leases l SET expires = now() + make_interval(secs => %s)"
                " FROM unnest(%s::text[], %s::bigint[]) AS h(station, epoch)"
                " WHERE l.station = h.station AND l.epoch = h.epoch AND l.owner = %s"
                " RETURNING l.station",
                (self.lease_seconds, list(held), list(held.values()), self.owner),
            )
        kept = {row[0] for row in rows}
        lost = [station for station in held if station not in kept]
        for station in lost:
            self._lost(station, held[station])
        return lost

    def orphans(self, stations: list[str]) -> list[str]:
        """Of `stations`, those not held here that have queued messages (an `outbox` row) and whose
        lease is free or expired: nobody delivers their queue. Raises StoreError."""
        with self._held_lock:
            candidates = [station for station in stations if station not in self._held]
        if not candidates:
            return []
        with self._db_lock:
            rows = self._again(
                "cannot find orphans",
                "SELECT DISTINCT s.station FROM state s"
                " LEFT JOIN leases l ON l.station = s.station"
                " WHERE s.station = ANY(%s) AND s.tbl = 'outbox'"
                " AND (l.station IS NULL OR l.expires < now())"
                " ORDER BY s.station",
                (candidates,),
            )
        return [row[0] for row in rows]

    def heartbeat(self, config: str = "") -> int:
        """This replica's `replicas` row pushed back by `lease_seconds`, with its configuration
        hash; the number of live replicas, this one included (rows not expired); `other_configs`
        set. Raises StoreError."""
        with self._db_lock:
            rows = self._again(
                "cannot record this replica",
                "WITH beat AS ("
                " INSERT INTO replicas (owner, expires, config)"
                " VALUES (%s, now() + make_interval(secs => %s), %s)"
                " ON CONFLICT (owner) DO UPDATE SET expires = EXCLUDED.expires,"
                " config = EXCLUDED.config RETURNING owner)"
                " SELECT owner, config FROM replicas WHERE owner <> %s AND expires > now()",
                (self.owner, self.lease_seconds, config, self.owner),
            )
        self.other_configs = {str(row[0]): str(row[1]) for row in rows if row[1] != config}
        return len(rows) + 1

    def free(self, stations: list[str]) -> list[str]:
        """Of `stations`, those not held here whose lease is free or expired. Raises StoreError."""
        with self._held_lock:
            candidates = [station for station in stations if station not in self._held]
        if not candidates:
            return []
        with self._db_lock:
            rows = self._again(
                "cannot find free leases",
                "SELECT c.station FROM unnest(%s::text[]) AS c(station)"
                " LEFT JOIN leases l ON l.station = c.station"
                " WHERE l.station IS NULL OR l.expires < now() ORDER BY c.station",
                (candidates,),
            )
        return [row[0] for row in rows]

    def holds(self, station: str) -> bool:
        with self._held_lock:
            return station in self._held

    def release_lease(self, station: str) -> None:
        """Give `station`'s lease up, once its submitted batches are written. Raises StoreError."""
        self.release_leases([station])

    def release_leases(self, stations: list[str]) -> None:
        """`release_lease` of each of `stations`, in one statement. They are no longer held here
        even when the statement fails (they run out then). Raises StoreError."""
        self._wait_written()
        with self._db_lock:
            self._release(stations)

    def _release(self, stations: list[str]) -> None:
        with self._held_lock:
            held = {
                station: self._held.pop(station) for station in stations if station in self._held
            }
        if not held:
            return
        try:
            self._connection().execute(
                "DELETE FROM leases l USING unnest(%s::text[], %s::bigint[]) AS h(station, epoch)"
                " WHERE l.station = h.station AND l.epoch = h.epoch AND l.owner = %s",
                (list(held), list(held.values()), self.owner),
            )
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: cannot release leases: {_one_line(exc)}") from None

    def _lost(self, station: str, epoch: int) -> None:
        with self._held_lock:
            if self._held.get(station) != epoch:
                return  # already dropped, or taken again since
            del self._held[station]
        self.leases_lost += 1
        if self.on_lease_lost is not None:
            self.on_lease_lost(station)

    def _check_fences(self, conn: psycopg.Connection[Any], batches: list[Written]) -> None:
        """In the write's transaction: refuse it when a station's lease is not the batch's."""
        wanted = {station: epoch for station, _, epoch in batches if epoch is not None}
        unleased = sorted({station for station, _, epoch in batches if epoch is None})
        if unleased and self.require_leases:
            if len(batches) == 1:  # counted once, when the batch is written on its own
                self.fencing_refusals += 1
            raise FencedError(f"{self.path}: {unleased[0]}: no lease held for this station: fenced")
        if not wanted:
            return
        rows = conn.execute(
            "SELECT station, owner, epoch FROM leases WHERE station = ANY(%s) FOR SHARE",
            (list(wanted),),
        ).fetchall()
        current = {row[0]: (row[1], int(row[2])) for row in rows}
        for station, epoch in wanted.items():
            owner, now_epoch = current.get(station, (None, 0))
            if owner == self.owner and now_epoch == epoch:
                continue
            if len(batches) == 1:  # counted once, when the batch is written on its own
                self.fencing_refusals += 1
                self._lost(station, epoch)
            holder = "nobody" if owner is None else f"{owner} at epoch {now_epoch}"
            raise FencedError(
                f"{self.path}: {station}: fenced: its lease is held by {holder},"
                f" this write carries epoch {epoch}"
            )

    def load_many(self, stations: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """`load` of each of `stations` in one query (the lease keeper's claims: the survivors of a
        killed replica read its stations' state in batches, not one round trip each). Raises
        StoreError."""
        self._wait_written()
        states: dict[str, dict[str, dict[str, Any]]] = {station: {} for station in stations}
        if not stations:
            return states
        with self._db_lock:
            rows = self._again(
                "cannot read",
                "SELECT station, tbl, key, value::text FROM state WHERE station = ANY(%s)"
                " ORDER BY station, tbl, key",
                (stations,),
            )
        for station, table, key, value in rows:
            states[station].setdefault(table, {})[key] = orjson.loads(value)
        return states

    def _rows(self, station: str) -> Iterable[tuple[str, str, bytes | str]]:
        return self._again(
            "cannot read",
            "SELECT tbl, key, value::text FROM state WHERE station = %s ORDER BY tbl, key",
            (station,),
        )

    def _again(self, doing: str, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one statement that is safe to make twice (a read, a renewal), made once more
        on a new session when the server ended the old one (the caller holds the connection).
        Raises StoreError."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError as exc:
                if not conn.broken or attempt == 2:
                    raise StoreError(f"{self.path}: {doing}: {_one_line(exc)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"{self.path}: {doing}: {_one_line(exc)}") from None
        raise AssertionError("unreachable")

    def _transaction(self, batches: list[Written]) -> None:
        try:
            latest: dict[tuple[str, str, str], str | None] = {}
            for station, changes, _ in batches:
                for change in changes:
                    latest[(station, change.table, change.key)] = (
                        None if change.value is None else orjson.dumps(change.value).decode()
                    )
            deleted = [where for where, value in latest.items() if value is None]
            written = [(*where, value) for where, value in latest.items() if value is not None]
            started = time.monotonic()
            # just given up on the server: the batches that follow (the group's, one by one) fail at
            # once instead of each waiting as long again
            recent = started - self._gave_up_at < WRITE_RETRY_SECONDS
            give_up = started if recent else started + WRITE_RETRY_SECONDS
            pause = 0.05
            while True:
                try:
                    conn = self._connection()
                    with conn.transaction():
                        self._check_fences(conn, batches)
                        if deleted:
                            conn.execute(_DELETE, _columns(deleted))
                        if written:
                            conn.execute(_UPSERT, _columns(written))
                    break
                except FencedError:
                    raise
                except (psycopg.OperationalError, StoreError):
                    # the server restarting or unreachable for a moment: written again on a new
                    # session (the group is the latest value of each key and its deletions, so
                    # writing it twice is writing it once; the fences are checked again)
                    if time.monotonic() + pause > give_up:
                        self._gave_up_at = time.monotonic()
                        raise
                    time.sleep(pause)
                    pause = min(pause * 2, 0.5)
            self.commits += 1
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever fails, each batch gets its answer
            raise StoreError(f"{self.path}: cannot write: {_one_line(exc)}") from None


def probe(url: str, timeout: float = 5.0) -> str:
    """Reachability of the store at `url`, read only (adapters.store_open.probe). Raises StoreError."""
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
