"""Opens the store `[bridge] store` names: the one module that knows both back ends.

Rules
- `open_store(value)` opens the back end `adapters.store_api` describes for `value` (psycopg is imported
  only for a PostgreSQL store). Raises `StoreError` with one line.
- `probe(value)` (`ocpp-bridge check`): connects, reads the server version and the schema version, writes
  nothing. Returns one line; raises `StoreError` with one line.
- Apart from the interface (`adapters.store_api`), which the back ends import, so that the import graph
  has no cycle (tests/test_import_graph.py).
"""

from __future__ import annotations

from typing import Any

from adapters.store_api import StateStore, is_postgresql


def open_store(value: str, **leases: Any) -> StateStore:
    """The back end `value` names (module rules); `leases` (`lease_seconds`, `require_leases`) go to
    a PostgreSQL store (SQLite has none). Raises StoreError."""
    if is_postgresql(value):
        from adapters.store_pg import PgStore

        return PgStore(value, **leases)
    from adapters.store import Store

    return Store(value)


def probe(value: str, timeout: float = 5.0) -> str:
    """One line on a PostgreSQL store's reachability (writes nothing). Raises StoreError."""
    from adapters.store_pg import probe as probe_pg

    return probe_pg(value, timeout)
