"""Leases of stations served only while their charger is connected (OCPP 2.0.1 pass-through;
adapters/leases.py `ConnectionLeases`, issue 20 item 2) on a real PostgreSQL server (tests/pg.py);
another store stands for the next replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from adapters.leases import ConnectionLeases, LeaseKeeper
from adapters.ops.logs import station_logger
from adapters.store_pg import PgStore
from bridge.effects import Side


@pytest.fixture
def stores(replicas: Callable[..., PgStore]) -> tuple[PgStore, PgStore]:
    return replicas(lease_seconds=5.0, require_leases=True), replicas(
        lease_seconds=5.0, require_leases=True
    )


def _leases(stores: tuple[PgStore, PgStore]) -> ConnectionLeases:
    log = station_logger("-", Side.SOUTH, "ocpp2.0.1")
    leases = ConnectionLeases(LeaseKeeper(stores[0], log), log)
    leases.watch("CP201")
    return leases


async def test_a_charger_back_before_its_old_connection_ended_keeps_the_lease(
    stores: tuple[PgStore, PgStore],
) -> None:
    here, other = stores
    leases = _leases(stores)
    closed: list[str] = []
    old = await leases.take("CP201", lambda: closed.append("old"))
    new = await leases.take("CP201", lambda: closed.append("new"))
    assert old is not None and new is not None
    await leases.release("CP201", old)  # the old connection's end, after the new one came
    assert here.holds("CP201")
    assert other.take_lease("CP201", force=False) is None  # live, held here
    await leases.release("CP201", new)
    assert not here.holds("CP201")
    assert other.take_lease("CP201", force=False) is not None  # free once the last one ended
    assert closed == []


async def test_a_lease_lost_closes_the_newest_connection_and_its_end_releases_nothing(
    stores: tuple[PgStore, PgStore],
) -> None:
    here, other = stores
    leases = _leases(stores)
    closed: list[str] = []
    token = await leases.take("CP201", lambda: closed.append("connection"))
    assert token is not None
    epoch = other.take_lease("CP201", force=True)  # the charger connected to the next replica
    here.renew_leases()  # this replica's renewal finds it taken over
    async with asyncio.timeout(5):
        while not closed:
            await asyncio.sleep(0.01)
    assert closed == ["connection"]
    await leases.release("CP201", token)
    assert other.take_lease("CP201", force=False) == epoch  # the successor's lease untouched
