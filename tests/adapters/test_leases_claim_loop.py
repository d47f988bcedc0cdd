"""A dial-out claim loop longer than a lease (adapters/leases.py, issue 20; a real PostgreSQL server,
tests/pg.py): a replica claiming thousands of dial-out stations, one round trip each, must keep the
leases it took first. bench/replicas.py found it: 3 replicas, 5,000 stations, `lease_seconds = 5`: the
first replica's early leases expired while it still claimed, the others claimed them, the links flapped
between the replicas and every lease ran out. Here the loop is made long by the claims themselves
(each dials for 0.1 s), 20 stations against a 0.6 s lease; another store stands for the next replica."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from adapters.leases import LeaseKeeper
from adapters.ops.logs import station_logger
from adapters.store_api import StoreError
from adapters.store_pg import PgStore
from bridge.effects import Persist, Side

STATIONS = [f"CP-{n:02d}" for n in range(20)]


@pytest.fixture
def stores(replicas: Callable[..., PgStore]) -> tuple[PgStore, PgStore]:
    return replicas(lease_seconds=0.6, require_leases=True), replicas(
        lease_seconds=0.6, require_leases=True
    )


async def test_a_claim_loop_longer_than_a_lease_keeps_every_lease_it_took(
    stores: tuple[PgStore, PgStore],
) -> None:
    here, other = stores
    keeper = LeaseKeeper(here, station_logger("-", Side.SOUTH, "iec104"))
    claimed: list[tuple[str, int]] = []
    states: dict[str, dict[str, dict[str, Any]]] = {}
    # what the previous owner of CP-07 left in the store (read in the claim's batch)
    other.take_lease("CP-07")
    other.apply("CP-07", [Persist("tx", "1", {"seq_no": 4})])
    other.release_lease("CP-07")

    async def serve(station: str, epoch: int, state: dict[str, dict[str, Any]]) -> bool:
        """As a 104 host serves a claimed station: its core built from `state`, then the dial
        (slow here)."""
        assert here.holds(station)
        claimed.append((station, epoch))
        states[station] = state
        await asyncio.sleep(0.1)
        return True

    async def give_up() -> None:
        raise AssertionError("alone, this replica's share is every station")

    for station in STATIONS:
        keeper.dial_out(station, functools.partial(serve, station), give_up)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await keeper._balance()  # one tick's claims (the tick itself renews only before and after)
    assert sorted(claimed) == [(station, 1) for station in STATIONS]
    assert states["CP-07"] == {"tx": {"1": {"seq_no": 4}}}
    assert all(states[s] == {} for s in STATIONS if s != "CP-07")
    assert loop.time() - started > 3 * here.lease_seconds  # the loop outlasted the lease
    # the next replica finds none of them free: every lease was kept alive during the loop
    taken_by_other = [s for s in STATIONS if other.take_lease(s, force=False) is not None]
    assert taken_by_other == []
    assert here.leases_held() == len(STATIONS)


async def test_claims_take_free_and_expired_leases_in_one_statement_and_leave_live_ones(
    stores: tuple[PgStore, PgStore], pg_url: str
) -> None:
    """`take_free_leases`: free ones at epoch 1, an expired one of another replica at its epoch + 1
    (a takeover), one held here kept at its epoch, a live one of another replica left out."""
    here, other = stores
    other.take_lease("CP-00")  # live, the other replica's
    other.take_lease("CP-01")
    here.take_lease("CP-02")  # held here already
    with psycopg.connect(pg_url) as conn:  # CP-01's lease ran out (its replica died)
        conn.execute("UPDATE leases SET expires = now() - interval '1 s' WHERE station = 'CP-01'")
    taken = here.take_free_leases(["CP-00", "CP-01", "CP-02", "CP-03"])
    assert taken == {"CP-01": 2, "CP-02": 1, "CP-03": 1}
    assert here.lease_takeovers == 1
    assert here.leases_held() == 3 and not here.holds("CP-00")
    assert other.take_lease("CP-00", force=False) == 1  # still the other's
    assert other.take_lease("CP-03", force=False) is None  # live, here
    lost = other.renew_leases()
    assert lost == ["CP-01"]


async def test_claims_whose_state_cannot_be_read_give_their_leases_back(
    pg_url: str, replicas: Callable[..., PgStore]
) -> None:
    """The store answered the batch's lease statement, then failed (PostgreSQL restarting): nothing
    is served, the leases are not kept (nor renewed), another replica may claim them at once."""

    class Failing(PgStore):
        def load_many(self, stations: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
            raise StoreError("postgresql://bridge@127.0.0.1/db: server closed the connection")

    here = Failing(pg_url, lease_seconds=5.0, require_leases=True)
    other = replicas(lease_seconds=5.0, require_leases=True)
    try:
        keeper = LeaseKeeper(here, station_logger("-", Side.SOUTH, "iec104"))

        async def serve(station: str, epoch: int, state: dict[str, dict[str, Any]]) -> bool:
            raise AssertionError("nothing is served without its state")

        async def give_up() -> None:
            raise AssertionError("nothing is held")

        for station in STATIONS[:3]:
            keeper.dial_out(station, functools.partial(serve, station), give_up)
        with pytest.raises(StoreError):
            await keeper._balance()
        assert here.leases_held() == 0
        assert [other.take_lease(s, force=False) for s in STATIONS[:3]] == [1, 1, 1]
    finally:
        here.close()
