"""Station leases and fencing on a PostgreSQL store (adapters/store_pg.py, issue 20 item 2), on a real
server (tests/pg.py): stores in this process stand for replicas, and two bridge-store processes, one of
them paused (SIGSTOP) while the other takes its station over, show that a paused replica never writes
over its successor."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest

from adapters.store_api import FencedError, StoreError
from adapters.store_pg import PgStore
from bridge.effects import Persist


def _lease(url: str, station: str) -> tuple[str, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT owner, epoch FROM leases WHERE station = %s", (station,)
        ).fetchone()
    return None if row is None else (row[0], int(row[1]))


def test_a_lease_is_taken_kept_and_taken_over_with_a_new_epoch(
    pg_url: str, replicas: Callable[..., PgStore]
) -> None:
    first, second = replicas(), replicas()
    assert first.owner != second.owner
    assert first.take_lease("CP1") == 1
    assert first.take_lease("CP1") == 1  # held: only renewed
    assert _lease(pg_url, "CP1") == (first.owner, 1)
    assert second.take_lease("CP1", force=False) is None  # live and not ours
    assert second.take_lease("CP1") == 2  # a charger connected there: taken over
    assert (second.lease_takeovers, first.lease_takeovers) == (1, 0)
    lost: list[str] = []
    first.on_lease_lost = lost.append
    assert first.renew_leases() == ["CP1"]
    assert lost == ["CP1"] and first.leases_lost == 1 and first.leases_held() == 0
    assert second.renew_leases() == [] and second.leases_held() == 1
    assert first.take_lease("CP1") == 3  # and back: every change of owner a new epoch


def test_an_expired_lease_is_taken_without_force(
    pg_url: str, replicas: Callable[..., PgStore]
) -> None:
    first, second = replicas(lease_seconds=0.3), replicas()
    assert first.take_lease("CP1") == 1
    deadline = time.monotonic() + 10
    while (taken := second.take_lease("CP1", force=False)) is None:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert taken == 2 and _lease(pg_url, "CP1") == (second.owner, 2)


def test_a_write_after_a_takeover_is_refused_and_leaves_the_successors_state(
    replicas: Callable[..., PgStore],
) -> None:
    first, second = replicas(), replicas()
    first.take_lease("CP1")
    first.apply("CP1", [Persist("tx", "1", {"by": "first"})])
    second.take_lease("CP1")
    assert second.load("CP1") == {"tx": {"1": {"by": "first"}}}  # everything allowed is there
    second.apply("CP1", [Persist("tx", "1", {"by": "second"})])
    lost: list[str] = []
    first.on_lease_lost = lost.append
    with pytest.raises(FencedError, match=r"CP1: fenced: its lease is held by .* at epoch 2"):
        first.apply("CP1", [Persist("tx", "1", {"by": "first, too late"})])
    assert first.fencing_refusals == 1 and lost == ["CP1"] and first.leases_held() == 0
    assert second.load("CP1") == {"tx": {"1": {"by": "second"}}}


async def test_a_refused_batch_fails_only_its_station_in_a_group(
    replicas: Callable[..., PgStore],
) -> None:
    first, second = replicas(), replicas()
    for station in ("CP1", "CP2", "CP3"):
        first.take_lease(station)
    loop = asyncio.get_running_loop()
    answers: dict[str, asyncio.Future[StoreError | None]] = {}
    with first._db_lock:  # the writer waits: the three batches are submitted under epoch 1
        for station in ("CP1", "CP2", "CP3"):
            answers[station] = loop.create_future()
            first.submit(station, [Persist("t", "k", station)], answers[station].set_result)
        second.take_lease("CP2")  # taken over while they wait
    results = {station: await asyncio.wait_for(answer, 30) for station, answer in answers.items()}
    assert results["CP1"] is None and results["CP3"] is None
    assert isinstance(results["CP2"], StoreError) and "fenced" in str(results["CP2"])
    assert first.fencing_refusals == 1
    assert second.load("CP2") == {}  # nothing of the stale batch
    assert second.load("CP1") == {"t": {"k": "CP1"}}


def test_with_leases_required_a_station_without_one_is_not_written(
    replicas: Callable[..., PgStore],
) -> None:
    store = replicas(require_leases=True)
    with pytest.raises(FencedError, match="CP1: no lease held for this station: fenced"):
        store.apply("CP1", [Persist("t", "k", 1)])
    assert store.fencing_refusals == 1
    store.take_lease("CP1")
    store.apply("CP1", [Persist("t", "k", 1)])
    assert store.load("CP1") == {"t": {"k": 1}}


def test_closing_releases_the_leases(pg_url: str, replicas: Callable[..., PgStore]) -> None:
    store = replicas()
    store.take_lease("CP1")
    store.take_lease("CP2")
    store.release_lease("CP1")
    assert _lease(pg_url, "CP1") is None and store.leases_held() == 1
    store.close()
    assert _lease(pg_url, "CP2") is None


_PAUSED_REPLICA = """
import sys
from adapters.store_api import FencedError, StoreError
from adapters.store_pg import PgStore
from bridge.effects import Persist
store = PgStore(sys.argv[1], lease_seconds=2)
print(store.take_lease("CP1"), flush=True)
n = 0
while True:
    n += 1
    try:
        store.apply("CP1", [Persist("tx", "1", {"by": "paused", "n": n})])
    except StoreError as exc:
        print("refused", n, exc, flush=True)
        break
    print("wrote", n, flush=True)
store.close()
"""


def test_a_paused_replica_never_writes_over_its_successor(pg_url: str) -> None:
    """Replica A writes CP1 in a loop; it is paused (SIGSTOP), replica B takes CP1 over and writes;
    A resumes: its next write is refused, and B's row is what stays (issue 20 item 2)."""
    paused = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_REPLICA, pg_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    successor: PgStore | None = None
    try:
        assert paused.stdout is not None
        assert paused.stdout.readline().strip() == "1"  # epoch 1
        for _ in range(20):  # it writes
            assert paused.stdout.readline().startswith("wrote")
        os.kill(paused.pid, signal.SIGSTOP)
        successor = PgStore(pg_url)
        # waits at most lease_seconds for a transaction the paused one may be in the middle of
        assert successor.take_lease("CP1") == 2
        before = successor.load("CP1")["tx"]["1"]
        assert before["by"] == "paused"
        successor.apply("CP1", [Persist("tx", "1", {"by": "successor"})])
        os.kill(paused.pid, signal.SIGCONT)
        out, err = paused.communicate(timeout=60)
        assert paused.returncode == 0, err
        lines = out.strip().splitlines()
        refused = [line for line in lines if line.startswith("refused")]
        assert len(refused) == 1 and "fenced" in refused[0], lines[-3:]
        # at most the write it was making when paused may have landed, and only before the takeover
        assert int(refused[0].split()[1]) <= before["n"] + 2
        assert successor.load("CP1") == {"tx": {"1": {"by": "successor"}}}
        assert successor.fencing_refusals == 0
    finally:
        if paused.poll() is None:
            os.kill(paused.pid, signal.SIGCONT)
            paused.kill()
            paused.communicate(timeout=30)
        if successor is not None:
            successor.close()


def test_live_replicas_are_counted_from_their_heartbeats_and_a_closed_one_leaves_at_once(
    replicas: Callable[..., PgStore],
) -> None:
    """The dial-out spreading's inputs (adapters/leases.py): how many replicas are live, and which
    stations' leases are free or expired."""
    first, second = replicas(lease_seconds=0.3), replicas()
    assert first.heartbeat() == 1  # alone so far
    assert second.heartbeat() == 2
    deadline = time.monotonic() + 10
    while second.heartbeat() != 1:  # first stopped beating: its row expires
        assert time.monotonic() < deadline, "a replica that stopped beating stayed live"
        time.sleep(0.05)
    assert first.heartbeat() == 2
    first.close()
    assert second.heartbeat() == 1  # a bridge that stops deletes its row


def test_free_leases_are_those_nobody_holds_or_that_expired(
    replicas: Callable[..., PgStore],
) -> None:
    first, second = replicas(lease_seconds=0.3), replicas()
    first.take_lease("CP1")
    second.take_lease("CP2")
    assert second.free(["CP1", "CP2", "CP3"]) == ["CP3"]  # its own is not listed either
    deadline = time.monotonic() + 10
    while second.free(["CP1", "CP2", "CP3"]) != ["CP1", "CP3"]:  # first stopped renewing
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert second.holds("CP2") and not second.holds("CP1")
