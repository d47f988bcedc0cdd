"""Stations another replica serves, seen from this one (issue 20, leases on a real PostgreSQL, tests/pg.py).

- Two bridges (in-process `Runtime`s, each with its own `/metrics`, `/ready` and status page), two
  dial-out IEC 104 chargers (c104 servers, tests/e2e/iec104_charger.py): each bridge serves one. The
  other station is neither up nor down on a bridge: `ocpp_bridge_iec104_links{state="elsewhere"}`, not
  "down" (the shipped "104 link down" alert reads state="down": it fires only where a station is
  served), /ready counts it as `elsewhere`, the status page says so and leaves it out of "problems".
- A hand-over is no outage: bridge A serves a 104 station; bridge B takes its lease over (as a charger
  that moved would make it); A closes its link with kind `lease_lost` (not "bridge stopping") and its
  core is not told of that close: no "Unavailable" queued (after `link_grace`) for the CSMS, nor
  written (refused by fencing); B reports what its own link finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from adapters.config import Iec104Station
from adapters.iec104.station import iec104_host, load_table
from adapters.leases import LeaseKeeper
from adapters.ocpp.north import CsmsConnector, Pacer
from adapters.ops.logs import station_logger
from adapters.ops.metrics import BridgeMetrics
from adapters.runtime import Runtime
from adapters.store_pg import PgStore
from adapters.translated import TranslatedHost
from bridge.effects import Side
from bridge.north.backoff import BackoffPolicy
from bridge.stations.iec104.core import Station104, Station104Settings
from tests.adapters.test_health import http_get, parse_metrics, value
from tests.e2e.conftest import _SCHEMAS, bridge_config, running_bridge
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import Csms, running_csms

LINKS = "ocpp_bridge_iec104_links"


async def _until(check: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def _get(runtime: Runtime, path: str) -> Any:
    assert runtime.health_address is not None
    answer = await http_get(runtime.health_address[1], path)
    return answer


async def _links(runtime: Runtime) -> dict[str, float]:
    answer = await _get(runtime, "/metrics")
    samples = parse_metrics(answer.body.decode())
    return {
        state: value(samples, LINKS, state=state) or 0.0 for state in ("up", "down", "elsewhere")
    }


def _served(runtime: Runtime) -> list[str]:
    return sorted(i for i, kind in runtime.iec104_links.items() if kind.link.is_up)


async def test_a_104_station_served_by_another_replica_is_neither_up_nor_down_here(
    pg_url: str,
) -> None:
    async with running_csms() as csms, idle_charger() as first, idle_charger() as second:
        stations = [station_entry("CP104-1", first.port), station_entry("CP104-2", second.port)]
        config = bridge_config(
            csms.url,
            stations,
            bridge={
                "store": pg_url,
                "leases": True,
                "lease_seconds": 1.0,
                "health": "127.0.0.1:0",
                "status_page": True,
            },
        )
        async with running_bridge(config) as a:
            await _until(lambda: len(_served(a)) == 2)  # alone: both
            async with running_bridge(config) as b:
                await _until(lambda: len(_served(a)) == 1 and len(_served(b)) == 1)
                assert _served(a) != _served(b)
                for replica in (a, b):
                    # the gauge settles at the next tick (the lease keeper's look at the leases)
                    async with asyncio.timeout(10):
                        while await _links(replica) != {"up": 1, "down": 0, "elsewhere": 1}:
                            await asyncio.sleep(0.1)
                    ready = (await _get(replica, "/ready")).json()["stations"]
                    assert (ready["total"], ready["up"], ready["down"]) == (2, 1, 0), ready
                    assert ready["elsewhere"] == 1 and ready["leases_held"] == 1, ready
                    assert ready["listed"] == [], ready
                    page = (await _get(replica, "/status.json")).json()
                    links = {row["id"]: row["charger"]["link"] for row in page["stations"]}
                    (here,) = _served(replica)
                    (there,) = set(links) - {here}
                    assert links == {here: "up", there: "elsewhere"}, links
                    problems = (await _get(replica, "/status.json?problems=1")).json()
                    assert [row["id"] for row in problems["stations"]] == [], problems
                    html = (await _get(replica, "/status")).body.decode()
                    assert "served by another replica" in html
                given_up = a.metrics.iec104_drops.labels("given_up")._value.get()
                assert given_up == 1  # its own reason, not "stopping" (uncounted)
    assert csms.problems() == []


@contextlib.asynccontextmanager
async def _replica(
    pg_url: str, station: Iec104Station, csms: Csms
) -> AsyncIterator[tuple[TranslatedHost[Station104], PgStore, BridgeMetrics]]:
    """One bridge's 104 station under leases, built as adapters/runtime.py builds it, with a short
    `link_grace` (after which a link down is reported Unavailable) so a false report would show."""
    config = bridge_config(csms.url, [])
    store = PgStore(pg_url, lease_seconds=1.0, require_leases=True)
    metrics = BridgeMetrics()
    log = station_logger(station.id, Side.SOUTH, "iec104")
    keeper = LeaseKeeper(store, log)
    ids = itertools.count(1)
    owner = store.owner
    host = iec104_host(
        station,
        connector=CsmsConnector(config.csms, config.csms_password_for, None, Pacer(100, 100)),
        schemas=_SCHEMAS,
        store=store,
        new_message_id=lambda: f"{owner}-{next(ids)}",
        logs={side: station_logger(station.id, side, "iec104") for side in Side},
        table=load_table(station),
        settings=Station104Settings(link_grace=0.3, meter_wait=2.0),
        policy=BackoffPolicy(0.05, 0.05, 0),
        metrics=metrics,
        leases=keeper,
    )
    tasks = [asyncio.create_task(host.run()), asyncio.create_task(keeper.run())]
    keeper.kick()
    try:
        yield host, store, metrics
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        store.close()


def _statuses(csms: Csms, station_id: str) -> list[str]:
    return [
        p["connector_status"]
        for s in csms.history
        if s.station_id == station_id
        for p in s.charge_point.payloads("StatusNotification")
    ]


async def test_a_lost_lease_closes_the_104_link_as_lease_lost_and_reports_no_unavailable(
    pg_url: str,
) -> None:
    async with running_csms() as csms, idle_charger() as charger:
        station = Iec104Station.model_validate(station_entry("CP104-H", charger.port))
        async with _replica(pg_url, station, csms) as (host_a, store_a, metrics_a):
            await _until(lambda: host_a.kind.link.is_up)
            await csms.wait_for(lambda: "Available" in _statuses(csms, station.id), timeout=30)
            async with _replica(pg_url, station, csms) as (host_b, _, metrics_b):
                assert await host_b.admit()  # B takes the lease over (force), as a moved charger
                await _until(lambda: host_b.kind.link.is_up and not host_a.kind.link.is_up)
                await asyncio.sleep(1.5)  # well past link_grace and A's next ticks
                assert store_a.leases_lost == 1
                assert store_a.fencing_refusals == 0  # A wrote nothing after it lost the lease
                assert "Unavailable" not in _statuses(csms, station.id)
                # nor queued in A (the status its page shows): the hand-over's link close is no
                # news of the charger
                assert host_a.core.north.status_of(1) == "Available"
                assert metrics_a.iec104_drops.labels("lease_lost")._value.get() == 1
                assert host_a.kind.link.last_drop == "lease lost"
                links_a = parse_metrics(metrics_a.exposition().decode())
                assert value(links_a, LINKS, state="elsewhere") == 1
                assert (value(links_a, LINKS, state="down") or 0) == 0
                links_b = parse_metrics(metrics_b.exposition().decode())
                assert value(links_b, LINKS, state="up") == 1
                assert host_a.elsewhere and not host_b.elsewhere
    assert "Unavailable" not in _statuses(csms, station.id)
    assert csms.problems() == []


class _Log:
    """A logger that keeps what it was told (event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.records.append((event, fields))

    info = warning


async def test_replicas_of_different_station_lists_see_it_once_in_the_log_and_in_ready(
    pg_url: str,
) -> None:
    one = [{"id": "CP1", "protocol": "ocpp1.6"}]
    two = [*one, {"id": "CP2", "protocol": "ocpp1.6"}]
    leased = {"store": pg_url, "leases": True, "lease_seconds": 1.0, "health": "127.0.0.1:0"}
    async with running_csms() as csms:
        same = bridge_config(csms.url, one, bridge=leased)
        other = bridge_config(csms.url, two, bridge=leased)
        async with running_bridge(same) as a, running_bridge(same) as b:
            assert a.leases is not None and b.leases is not None
            await asyncio.sleep(1.0)  # a few ticks: each saw the other, of the same stations
            for replica in (a, b):
                ready = (await _get(replica, "/ready")).json()["stations"]
                assert ready["replicas_config_differs"] == [], ready
            async with running_bridge(other) as c:
                assert c.leases is not None and isinstance(c.store, PgStore)
                owner_c = c.store.owner
                await _until(lambda: a.leases is not None and a.leases.config_differs != [])
                ready = (await _get(a, "/ready")).json()["stations"]
                assert ready["replicas_config_differs"] == [owner_c], ready
                ready = (await _get(c, "/ready")).json()["stations"]
                assert len(ready["replicas_config_differs"]) == 2, ready
    # the keeper's log: once per (replica, hash), however many ticks saw it
    store_x = PgStore(pg_url, lease_seconds=1.0)
    store_y = PgStore(pg_url, lease_seconds=1.0)
    try:
        log = _Log()
        keeper = LeaseKeeper(store_x, log, "x" * 16)
        store_y.heartbeat("y" * 16)
        task = asyncio.create_task(keeper.run())
        try:
            for _ in range(3):
                keeper.kick()
                await asyncio.sleep(0.2)
                store_y.heartbeat("y" * 16)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        warned = [fields for event, fields in log.records if event == "lease.config_differs"]
        assert warned == [
            {
                "replicas": [store_y.owner],
                "theirs": ["y" * 16],
                "ours": "x" * 16,
                "detail": "replicas of one configuration must have the same stations",
            }
        ]
        assert keeper.config_differs == [store_y.owner]
    finally:
        store_x.close()
        store_y.close()
