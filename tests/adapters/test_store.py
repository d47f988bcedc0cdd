"""The store, both back ends (SQLite and PostgreSQL, a real server: tests/pg.py): atomic, durable batches
of Persist effects; per-station state survives reopening. Each test taking `where` runs against both."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.store import GroupCommitStore, Store, StoreError
from adapters.store_api import StateStore, store_url_problem
from adapters.store_open import open_store, probe
from adapters.store_pg import MIGRATIONS, PgStore
from bridge.effects import Persist
from tests.pg import PgServer


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "b.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def opened() -> Iterator[Callable[[str], StateStore]]:
    """`open_store`, each store closed at the end of the test (closing twice is harmless)."""
    stores: list[StateStore] = []

    def opening(where: str) -> StateStore:
        stores.append(open_store(where))
        return stores[-1]

    yield opening
    for store in stores:
        store.close()


def test_state_survives_reopening(where: str, opened: Callable[[str], StateStore]) -> None:
    store = opened(where)
    store.apply("CP1", [Persist("tx", "1", {"id": "a", "seq": 0}), Persist("meta", "next", 2)])
    store.apply("CP2", [Persist("tx", "1", {"id": "other"})])
    store.close()
    reopened = opened(where)
    assert reopened.load("CP1") == {"meta": {"next": 2}, "tx": {"1": {"id": "a", "seq": 0}}}
    assert reopened.load("CP2") == {"tx": {"1": {"id": "other"}}}
    assert reopened.load("CP3") == {}


def test_none_deletes_and_keys_come_back_in_order(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(where)
    store.apply("CP1", [Persist("outbox", f"{n:012d}", n) for n in (3, 1, 2)])
    store.apply("CP1", [Persist("outbox", f"{2:012d}", None)])
    assert list(store.load("CP1")["outbox"].values()) == [1, 3]


def test_a_failing_batch_leaves_nothing_behind(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(where)
    store.apply("CP1", [Persist("t", "k", 1)])

    class Unserializable:
        pass

    with pytest.raises(StoreError, match="cannot write"):
        store.apply("CP1", [Persist("t", "k", 2), Persist("t", "j", Unserializable())])  # type: ignore[arg-type]
    assert store.load("CP1") == {"t": {"k": 1}}
    store.apply("CP1", [Persist("t", "k", 3)])  # the store is still usable
    assert store.load("CP1") == {"t": {"k": 3}}


def test_a_committed_batch_survives_a_killed_process(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    """Write from a child process that is killed right after apply() returns."""
    script = (
        "import os, signal\n"
        "from adapters.store_open import open_store\n"
        "from bridge.effects import Persist\n"
        f"store = open_store({where!r})\n"
        "store.apply('CP1', [Persist('tx', str(n), n) for n in range(100)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert completed.returncode == -9
    assert len(opened(where).load("CP1")["tx"]) == 100


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "missing-folder" / "b.db")


# --- the writer thread: group commit, answers on the loop ------------------------------------------


async def _submitted(store: StateStore, batches: list[tuple[str, list[Persist]]]) -> list[object]:
    """Submit every batch at once (no await between them); each one's answer and its thread."""
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future[tuple[StoreError | None, int]]] = []
    for station, changes in batches:
        answer: asyncio.Future[tuple[StoreError | None, int]] = loop.create_future()
        answers.append(answer)
        store.submit(
            station, changes, lambda error, a=answer: a.set_result((error, threading.get_ident()))
        )
    results = await asyncio.wait_for(asyncio.gather(*answers), 30)
    assert {thread for _, thread in results} == {threading.get_ident()}  # on the loop's thread
    return [error for error, _ in results]


async def test_batches_submitted_together_share_commits_and_are_all_durable(
    where: str,
) -> None:
    store = open_store(where)
    batches = [(f"CP{n}", [Persist("outbox", "1", n), Persist("meta", "n", n)]) for n in range(200)]
    assert await _submitted(store, batches) == [None] * 200
    assert 1 <= store.commits < 200  # grouped: the thread takes whatever waits when it looks
    store.close()
    reopened = open_store(where)
    assert all(
        reopened.load(f"CP{n}") == {"outbox": {"1": n}, "meta": {"n": n}} for n in range(200)
    )
    reopened.close()


async def test_a_batch_that_cannot_be_written_fails_only_its_own_station(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    class Unserializable:
        pass

    store = opened(where)
    assert isinstance(store, GroupCommitStore)
    # hold the connection so that the three batches after the first wait for the writer together
    with store._db_lock:
        first = asyncio.ensure_future(_submitted(store, [("CP0", [Persist("t", "k", 0)])]))
        await asyncio.sleep(0)
        for _ in range(200):
            if store._writing:
                break
            await asyncio.sleep(0.01)
        group = asyncio.ensure_future(
            _submitted(
                store,
                [
                    ("CP1", [Persist("t", "k", 1)]),
                    ("CP2", [Persist("t", "k", 2), Persist("t", "j", Unserializable())]),  # type: ignore[arg-type]
                    ("CP3", [Persist("t", "k", 3)]),
                ],
            )
        )
        await asyncio.sleep(0.05)
    assert await first == [None]
    ok1, failed, ok3 = await group
    assert ok1 is None and ok3 is None
    assert isinstance(failed, StoreError) and "cannot write" in str(failed)
    assert [store.load(f"CP{n}") for n in range(4)] == [
        {"t": {"k": 0}},
        {"t": {"k": 1}},
        {},  # nothing of the failed batch, not even its first change
        {"t": {"k": 3}},
    ]
    store.close()


async def test_load_and_apply_come_after_every_batch_submitted_before_them(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(where)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[StoreError | None] = loop.create_future()
    store.submit("CP1", [Persist("t", "k", 1)], answered.set_result)
    assert store.load("CP1") == {"t": {"k": 1}}  # waited for the writer, not for the answer
    store.submit("CP1", [Persist("t", "k", 2)], lambda error: None)
    store.apply("CP1", [Persist("t", "k", 3)])  # after the submitted batch, never overwritten by it
    assert store.load("CP1") == {"t": {"k": 3}}
    assert await asyncio.wait_for(answered, 30) is None
    store.close()


async def test_close_writes_what_still_waits_then_refuses_more(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(where)
    for n in range(50):
        store.submit(f"CP{n}", [Persist("t", "k", n)], lambda error: None)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.submit("CP1", [Persist("t", "k", 1)], lambda error: None)
    reopened = opened(where)
    assert [reopened.load(f"CP{n}") for n in range(50)] == [{"t": {"k": n}} for n in range(50)]
    reopened.close()


async def test_each_batch_reports_how_long_it_waited_to_be_durable(
    where: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(where)
    waits: list[float] = []
    store.on_written = waits.append  # called on the writer thread; list.append is atomic
    assert (
        await _submitted(store, [(f"CP{n}", [Persist("t", "k", n)]) for n in range(5)])
        == [None] * 5
    )
    assert len(waits) == 5 and all(0 <= wait < 30 for wait in waits)
    store.close()


def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    first = Store(path)
    with pytest.raises(StoreError, match=r"in use by another ocpp-bridge process \(pid \d+\)"):
        Store(path)
    first.close()
    second = Store(path)  # released with the first
    second.close()


def test_a_second_bridge_process_on_the_same_store_exits_2_with_one_line(tmp_path: Path) -> None:
    """The lock is the kernel's: held here, it refuses `ocpp-bridge run` in another process before
    anything listens (issue 17 item 5)."""
    store = tmp_path / "bridge.db"
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstore = "{store}"\nhealth = ""\n'
        '[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n'
        '[south]\nlisten = "127.0.0.1:0"\n'
        '[[stations]]\nid = "CP16"\nprotocol = "ocpp1.6"\n'
    )
    held = Store(store)
    try:
        completed = subprocess.run(
            [str(Path(sys.executable).with_name("ocpp-bridge")), "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        held.close()
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"bridge.store: {store}: the store is in use by another ocpp-bridge process"
        f" (pid {os.getpid()}); one bridge per store"
    )


# --- PostgreSQL only: migrations, replicas, the connection ------------------------------------------


def _pg(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def test_postgresql_migrations_run_once_and_record_their_version(
    pg_url: str, opened: Callable[[str], StateStore]
) -> None:
    opened(pg_url).apply("CP1", [Persist("t", "k", 1)])
    opened(pg_url)  # a second bridge on the same database: nothing to migrate, nothing lost
    with _pg(pg_url) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(version,) for version in range(1, len(MIGRATIONS) + 1)]
        assert conn.execute("SELECT station, tbl, key, value::text FROM state").fetchall() == [
            ("CP1", "t", "k", "1")
        ]


def test_postgresql_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores: list[StateStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert errors == [] and len(stores) == 4
    with _pg(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_postgresql_a_newer_schema_is_refused(
    pg_url: str, opened: Callable[[str], StateStore]
) -> None:
    opened(pg_url).close()
    with _pg(pg_url) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match=r"schema version \d+ is newer than this bridge's"):
        open_store(pg_url)


def test_postgresql_two_stores_on_one_database_are_allowed_and_see_each_other(
    pg_url: str, opened: Callable[[str], StateStore]
) -> None:
    """No file lock: replicas share the store (issue 20); what one commits the other loads."""
    first, second = opened(pg_url), opened(pg_url)
    first.apply("CP1", [Persist("tx", "1", {"id": "a"})])
    assert second.load("CP1") == {"tx": {"1": {"id": "a"}}}


def test_postgresql_values_are_json_readable_with_sql_and_keys_in_byte_order(
    pg_url: str, opened: Callable[[str], StateStore]
) -> None:
    store = opened(pg_url)
    keys = ["b", "B", "a", "_", "é", "10", "9"]
    store.apply("CP1", [Persist("t", key, {"k": key, "n": [1.5, None]}) for key in keys])
    assert list(store.load("CP1")["t"]) == sorted(keys, key=lambda key: key.encode())
    with _pg(pg_url) as conn:
        assert conn.execute(
            "SELECT value->>'k' FROM state WHERE station = 'CP1' AND key = 'é'"
        ).fetchone() == ("é",)


def test_postgresql_a_session_without_durable_commits_is_set_back_to_them(pg_url: str) -> None:
    """Durable before acknowledged: the store's session commits synchronously even when the database
    default says otherwise."""
    with _pg(pg_url) as conn:
        database = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit TO off')
    store = open_store(pg_url)
    try:
        assert isinstance(store, PgStore)
        with store._db_lock:
            assert store._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        store.close()


def test_postgresql_the_store_reconnects_after_a_server_restart(
    pg_server: PgServer, opened: Callable[[str], StateStore]
) -> None:
    url = pg_server.database()
    store = opened(url)
    store.apply("CP1", [Persist("t", "k", 1)])
    pg_server.restart()
    # the old session is gone; nothing of the batch was sent, so it is written on a new one
    store.apply("CP1", [Persist("t", "k", 2)])
    assert store.load("CP1") == {"t": {"k": 2}}
    pg_server.restart()
    assert store.load("CP1") == {"t": {"k": 2}}  # reading, too, opens a new session


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://bridge@127.0.0.1:notaport/db", "not a valid postgresql:// URL"),
        ("postgresql://bridge:secret@127.0.0.1/db", "a password in the URL is a secret"),
        ("postgresql://bridge@127.0.0.1:5432", "names no database"),
        ("postgresql://bridge@127.0.0.1/db?nosuchoption=1", "not a valid postgresql:// URL"),
    ],
)
def test_postgresql_a_bad_url_is_one_line(url: str, reason: str) -> None:
    problem = store_url_problem(url)
    assert problem is not None and reason in problem and "\n" not in problem
    assert "secret" not in problem.replace("a secret in the file", "")


def test_postgresql_an_unreachable_server_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("PGPASSWORD", "hunter2-hunter2")
    with pytest.raises(StoreError) as raised:
        open_store(f"postgresql://bridge@127.0.0.1:{port}/db")
    assert f"postgresql://bridge@127.0.0.1:{port}/db: cannot connect:" in str(raised.value)
    assert "\n" not in str(raised.value) and "hunter2" not in str(raised.value)
    with pytest.raises(StoreError, match="cannot connect"):
        probe(f"postgresql://bridge@127.0.0.1:{port}/db")


def test_postgresql_probe_reports_the_server_and_schema(pg_url: str) -> None:
    assert "reachable, PostgreSQL 1" in probe(pg_url)
    assert "schema not created yet" in probe(pg_url)
    open_store(pg_url).close()
    assert f"schema version {len(MIGRATIONS)} (this bridge's: {len(MIGRATIONS)})" in probe(pg_url)
