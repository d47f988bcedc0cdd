"""Fixtures shared by every test folder, and the --run-slow option (tests marked `slow`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
import structlog

from adapters.schemas import OfficialSchemas
from adapters.store_pg import PgStore
from tests.pg import PgServer, require_server_bin


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the long fault-injection run)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _logging_configuration_restored() -> Iterator[None]:
    """A test that runs the CLI in-process (`CliRunner`) configures structlog as a command does (its
    level, cached loggers); undone after it, so a later test's `capture_logs` sees every event again
    (tests/e2e/test_stop_quiet.py waits for info lines, which a warning level dropped)."""
    saved = dict(structlog.get_config())
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def schemas() -> OfficialSchemas:
    """The official OCPP schemas, compiled once per test session."""
    return OfficialSchemas()


@pytest.fixture
def ids() -> Callable[[], str]:
    """A deterministic message-id source: b1, b2, ..."""
    counter = itertools.count(1)
    return lambda: f"b{next(counter)}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server for the whole session (tests/pg.py); skipped without PostgreSQL,
    failed in CI."""
    require_server_bin()
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return pg_server.database()


@pytest.fixture
def replicas(pg_url: str) -> Iterator[Callable[..., PgStore]]:
    """PgStore(pg_url, ...), each closed at the end of the test."""
    stores: list[PgStore] = []

    def opening(**options: object) -> PgStore:
        stores.append(PgStore(pg_url, **options))  # type: ignore[arg-type]
        return stores[-1]

    yield opening
    for store in stores:
        store.close()
