"""The store interface the runtime, the station hosts and the tools use, and what `[bridge] store` names.

Rules
- `StateStore` is the one interface (a Protocol): `submit` (a batch, answered on the submitting event
  loop once durable), `apply` (a batch, synchronously), `load` (a station's rows), `close`, and the
  `on_written` hook and `commits` counter. Both back ends share the group-commit writer
  (`adapters.store.GroupCommitStore`) and pass the same tests (tests/adapters/test_store.py runs each
  test against both).
- Back ends, by the value of `[bridge] store`:
  - a `postgresql://` (or `postgres://`) URL: PostgreSQL (`adapters.store_pg.PgStore`), for several
    bridge processes sharing one store. The password comes from the environment, as libpq reads it
    (`PGPASSWORD`, or a `PGPASSFILE`/~/.pgpass file), never from the file; TLS is set with libpq's URL
    parameters (`?sslmode=verify-full&sslrootcert=...`) or its environment (`PGSSLMODE`, ...).
  - anything else: a SQLite file (`adapters.store.Store`), the embedded default; `":memory:"` a private
    in-memory one.
- `store_url_problem(value)` is the configuration's check of a URL (None when it is usable as written);
  `describe(value)` names a store in messages without a password.
- Opening one is `adapters.store_open`'s (it imports the back ends, which import this module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from bridge.effects import Persist

POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


class StoreError(Exception):
    """The store cannot be opened or written."""


class FencedError(StoreError):
    """A write of a station refused because this bridge does not hold its lease (another replica
    serves it: expected during a failover, adapters/store_pg.py)."""


Done = Callable[[StoreError | None], None]


class StateStore(Protocol):
    """Per-station durable state: {table: {key: JSON value}} (module rules of adapters.store)."""

    commits: int
    on_written: Callable[[float], None] | None

    def load(self, station: str) -> dict[str, dict[str, Any]]: ...

    def apply(self, station: str, changes: Iterable[Persist]) -> None: ...

    def submit(self, station: str, changes: Iterable[Persist], done: Done) -> None: ...

    def close(self) -> None: ...


def is_postgresql(value: str) -> bool:
    return value.startswith(POSTGRESQL_SCHEMES)


def describe(value: str) -> str:
    """`value` for messages: a URL without its password."""
    if not is_postgresql(value):
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def store_url_problem(value: str) -> str | None:
    """Why a PostgreSQL URL cannot be used (None: it can, or it is no URL)."""
    if not is_postgresql(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid postgresql:// URL: {exc}"
    if parts.password is not None:
        return (
            "a password in the URL is a secret in the file; give it in the environment"
            " (PGPASSWORD or a PGPASSFILE)"
        )
    if not parts.path.strip("/"):
        return "the URL names no database: postgresql://USER@HOST:PORT/DATABASE"
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(value)
    except ProgrammingError as exc:
        return f"not a valid postgresql:// URL: {str(exc).strip().splitlines()[0]}"
    return None
