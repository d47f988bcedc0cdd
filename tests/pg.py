"""A throwaway PostgreSQL server for tests: the real server (Debian's `postgresql` package, installed by
.ci/run), never a mock.

`PgServer` is the demo's and the bench's `adapters.cli.local_pg.LocalPostgres` (initdb into a fresh
folder, `postgres` on 127.0.0.1 with a free port, as the `postgres` user when the tests run as root,
bounded waits, `restart()`, `stop()` removes the folder) with fsync on, its failures turned into test
failures, and `database()`: a fresh database per test, so each starts empty.
Without the server binaries the fixtures skip on a developer's machine and fail in CI (`CI=true`).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import psycopg
import pytest

from adapters.cli.local_pg import USER, LocalPostgres, PostgresMissing, server_bin


def require_server_bin() -> Path:
    folder = server_bin()
    if folder is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


class PgServer(LocalPostgres):
    def __init__(self) -> None:
        super().__init__(durable=True)
        self._names = itertools.count(1)

    def start(self) -> str:
        try:
            return super().start()
        except (PostgresMissing, RuntimeError) as exc:
            pytest.fail(str(exc))

    def restart(self) -> None:
        try:
            super().restart()
        except RuntimeError as exc:
            pytest.fail(str(exc))

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"
