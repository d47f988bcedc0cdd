"""The SQLite store: atomic, durable batches of Persist effects; per-station state survives reopening."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from adapters.store import Store, StoreError
from bridge.effects import Persist


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    store = Store(path)
    store.apply("CP1", [Persist("tx", "1", {"id": "a", "seq": 0}), Persist("meta", "next", 2)])
    store.apply("CP2", [Persist("tx", "1", {"id": "other"})])
    store.close()
    reopened = Store(path)
    assert reopened.load("CP1") == {"meta": {"next": 2}, "tx": {"1": {"id": "a", "seq": 0}}}
    assert reopened.load("CP2") == {"tx": {"1": {"id": "other"}}}
    assert reopened.load("CP3") == {}


def test_none_deletes_and_keys_come_back_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    store.apply("CP1", [Persist("outbox", f"{n:012d}", n) for n in (3, 1, 2)])
    store.apply("CP1", [Persist("outbox", f"{2:012d}", None)])
    assert list(store.load("CP1")["outbox"].values()) == [1, 3]


def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    store.apply("CP1", [Persist("t", "k", 1)])

    class Unserializable:
        pass

    with pytest.raises(StoreError, match="cannot write"):
        store.apply("CP1", [Persist("t", "k", 2), Persist("t", "j", Unserializable())])  # type: ignore[arg-type]
    assert store.load("CP1") == {"t": {"k": 1}}
    store.apply("CP1", [Persist("t", "k", 3)])  # the store is still usable
    assert store.load("CP1") == {"t": {"k": 3}}


def test_a_committed_batch_survives_a_killed_process(tmp_path: Path) -> None:
    """Write from a child process that is killed right after apply() returns."""
    path = tmp_path / "b.db"
    script = (
        "import os, signal\n"
        "from adapters.store import Store\n"
        "from bridge.effects import Persist\n"
        f"store = Store({str(path)!r})\n"
        "store.apply('CP1', [Persist('tx', str(n), n) for n in range(100)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert completed.returncode == -9
    assert len(Store(path).load("CP1")["tx"]) == 100


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "missing-folder" / "b.db")


# --- the writer thread: group commit, answers on the loop ------------------------------------------


async def _submitted(store: Store, batches: list[tuple[str, list[Persist]]]) -> list[object]:
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
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "b.db")
    batches = [(f"CP{n}", [Persist("outbox", "1", n), Persist("meta", "n", n)]) for n in range(200)]
    assert await _submitted(store, batches) == [None] * 200
    assert 1 <= store.commits < 200  # grouped: the thread takes whatever waits when it looks
    store.close()
    reopened = Store(tmp_path / "b.db")
    assert all(
        reopened.load(f"CP{n}") == {"outbox": {"1": n}, "meta": {"n": n}} for n in range(200)
    )
    reopened.close()


async def test_a_batch_that_cannot_be_written_fails_only_its_own_station(tmp_path: Path) -> None:
    class Unserializable:
        pass

    store = Store(tmp_path / "b.db")
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


async def test_load_and_apply_come_after_every_batch_submitted_before_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[StoreError | None] = loop.create_future()
    store.submit("CP1", [Persist("t", "k", 1)], answered.set_result)
    assert store.load("CP1") == {"t": {"k": 1}}  # waited for the writer, not for the answer
    store.submit("CP1", [Persist("t", "k", 2)], lambda error: None)
    store.apply("CP1", [Persist("t", "k", 3)])  # after the submitted batch, never overwritten by it
    assert store.load("CP1") == {"t": {"k": 3}}
    assert await asyncio.wait_for(answered, 30) is None
    store.close()


async def test_close_writes_what_still_waits_then_refuses_more(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    for n in range(50):
        store.submit(f"CP{n}", [Persist("t", "k", n)], lambda error: None)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.submit("CP1", [Persist("t", "k", 1)], lambda error: None)
    reopened = Store(tmp_path / "b.db")
    assert [reopened.load(f"CP{n}") for n in range(50)] == [{"t": {"k": n}} for n in range(50)]
    reopened.close()


async def test_each_batch_reports_how_long_it_waited_to_be_durable(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
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
