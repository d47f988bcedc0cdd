"""A bridge on a PostgreSQL store (a real server, tests/pg.py), end to end: what one bridge process
acknowledged, the next one started on the same database continues, with the same transaction ids and
nothing lost or sent twice."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from ocpp.v16 import call as call16

from bridge.effects import CLOSE_TRY_AGAIN_LATER
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.test_v16 import FAST_RECONNECT, STATION, assert_clean, boot, config16, events
from tests.peers import connected_charger16, now_iso, running_csms
from tests.pg import PgServer


async def test_e01_e04_e06_a_restarted_bridge_delivers_what_the_first_queued_in_postgresql(
    pg_url: str,
) -> None:
    async with running_csms() as csms:
        async with (
            running_bridge(config16(csms, pg_url)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            await boot(charger)
            start = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG-3", meter_start=100, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
            port = csms.port
            await csms.stop()  # the CSMS goes away: the stop is queued, in PostgreSQL
            await csms.wait_for(lambda: csms.sessions[STATION].closed.is_set())
            stopped = await charger.call(
                call16.StopTransaction(
                    transaction_id=start.transaction_id, meter_stop=900, timestamp=now_iso()
                )
            )
            assert stopped.id_tag_info is None or stopped.id_tag_info["status"] == "Accepted"
            assert_clean(csms, oracle)
        # the first bridge is gone; its queue is rows of the shared database
        assert _queued(pg_url) >= 1
        await csms.start(port=port)
        async with (
            running_bridge(config16(csms, pg_url)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=20)
            started, ended = events(csms, "Started"), events(csms, "Ended")
            assert len(started) == 1 and len(ended) == 1  # nothing lost, nothing twice
            assert (
                ended[0]["transaction_info"]["transaction_id"]
                == started[0]["transaction_info"]["transaction_id"]
            )
            assert [started[0]["seq_no"], ended[0]["seq_no"]] == [0, 1]
            assert ended[0]["offline"] is True
            # the CSMS's answer removes the entry from the queue in the database
            async with asyncio.timeout(20):
                while _queued(pg_url) != 0:
                    await asyncio.sleep(0.05)
            assert_clean(csms, oracle)


def _queued(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM state WHERE station = %s AND tbl = 'outbox'", (STATION,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _replica_config(csms_url: str, url: str) -> Any:
    return bridge_config(
        csms_url,
        [{"id": STATION, "protocol": "ocpp1.6"}],
        bridge={"store": url, "leases": True, "lease_seconds": 1.0},
        csms=FAST_RECONNECT,
    )


async def test_e01_e06_a_charger_that_moves_to_another_replica_takes_its_station_along(
    pg_url: str,
) -> None:
    """Two replicas (issue 20 item 2): the charger starts a transaction through A, then connects to B
    (its load balancer sent it there). B takes the lease over and rebuilds the station from the store;
    A loses the lease at its next renewal and closes the charger's old connection (1013) and its CSMS
    link; the transaction ends through B with the same transaction id and the next seqNo."""
    async with running_csms() as csms:
        config = _replica_config(csms.url, pg_url)
        async with running_bridge(config) as first, running_bridge(config) as second:
            assert first.leases is not None and second.leases is not None
            async with connected_charger16(south_url(first), STATION) as (charger, old, oracle):
                await boot(charger)
                start = await charger.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="TAG-7", meter_start=100, timestamp=now_iso()
                    )
                )
                await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
                assert (first.leases.held(), second.leases.held()) == (1, 0)
                async with connected_charger16(south_url(second), STATION) as (moved, _, oracle2):
                    async with asyncio.timeout(10):
                        await old.wait_closed()  # A let go at its next renewal
                    assert old.close_code == CLOSE_TRY_AGAIN_LATER
                    await moved.call(
                        call16.StopTransaction(
                            transaction_id=start.transaction_id,
                            meter_stop=900,
                            timestamp=now_iso(),
                        )
                    )
                    await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=20)
                    assert (first.leases.held(), second.leases.held()) == (0, 1)
                    assert second.stations_report()["leases_held"] == 1  # /ready
                    assert first.stations_report()["leases_held"] == 0
                    assert second.leases.takeovers() == 1 and first.leases.lost() == 1
                    assert_clean(csms, oracle2)
            started, ended = events(csms, "Started"), events(csms, "Ended")
            assert len(started) == 1 and len(ended) == 1
            assert (
                ended[0]["transaction_info"]["transaction_id"]
                == started[0]["transaction_info"]["transaction_id"]
            )
            assert [started[0]["seq_no"], ended[0]["seq_no"]] == [0, 1]
            assert oracle.problems == []


async def test_e01_e06_a_replica_keeps_serving_across_a_postgresql_restart(
    pg_server: PgServer,
) -> None:
    """PostgreSQL restarts under a replica holding a lease (issue 20 item 4's store restart): the
    store opens a new session, the lease row survived, and the transaction goes on through the same
    bridge with nothing lost."""
    url = pg_server.database()
    async with running_csms() as csms, running_bridge(_replica_config(csms.url, url)) as bridge:
        assert bridge.leases is not None
        async with connected_charger16(south_url(bridge), STATION) as (charger, _, oracle):
            await boot(charger)
            start = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG-4", meter_start=100, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
            await asyncio.to_thread(pg_server.restart)
            await asyncio.sleep(1.0)  # a renewal tick or more on the new server
            await charger.call(
                call16.StopTransaction(
                    transaction_id=start.transaction_id, meter_stop=900, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=20)
            assert bridge.leases.held() == 1 and bridge.leases.lost() == 0
            assert bridge.leases.refusals() == 0
            started, ended = events(csms, "Started"), events(csms, "Ended")
            assert (
                ended[0]["transaction_info"]["transaction_id"]
                == started[0]["transaction_info"]["transaction_id"]
            )
            assert ended[0]["seq_no"] == 1
            assert_clean(csms, oracle)
