"""Half-open links on both sides of a translated (1.6J) station: noticed by WebSocket pings in time.

A half-open link is one whose peer is gone without a close frame or a TCP reset (a dead mobile link, a
NAT that forgot the flow): here the peer simply stops reading, so no pong ever comes back. The bridge
must notice within ping_interval + ping_timeout + two keepalive ticks + the closing handshake's
CLOSE_TIMEOUT (45 s with the defaults, so within 60 s), on the charger's side and on the CSMS's side. A 1.6 charger that vanishes
mid-transaction and comes back resumes the same transaction: no second Started, seqNo contiguous.

The quick tests scale the pings down; the one with the default pings runs with --run-slow (about 45 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ocpp.v16 import call as call16

from adapters.ocpp.keepalive import MAX_TICK
from adapters.ocpp.south import CLOSE_TIMEOUT
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.peers import Charger16, Csms, connected_charger16, now_iso, running_csms

STATION = "CP16-HALF"
FAST_RECONNECT = {
    "retry_backoff_wait_minimum": 0.05,
    "retry_backoff_random_range": 0.05,
    "retry_backoff_repeat_times": 0,
}
PING = 0.3  # the quick tests' ping interval and timeout, both sides


def config(csms: Csms, ping: float | None) -> Any:
    pings = {} if ping is None else {"ping_interval": ping, "ping_timeout": ping}
    return bridge_config(
        csms.url,
        [{"id": STATION, "protocol": "ocpp1.6"}],
        csms={**FAST_RECONNECT, **pings},
        south=pings,
    )


def events(csms: Csms, kind: str | None = None) -> list[dict[str, Any]]:
    found = [
        payload
        for session in csms.history
        for payload in session.charge_point.payloads("TransactionEvent")
    ]
    return [e for e in found if kind is None or e["event_type"] == kind]


async def boot_and_start(charger: Charger16) -> int:
    await charger.call(
        call16.BootNotification(charge_point_vendor="Acme", charge_point_model="Half-16")
    )
    start = await charger.call(
        call16.StartTransaction(
            connector_id=1, id_tag="TAG-H", meter_start=100, timestamp=now_iso()
        )
    )
    return int(start.transaction_id)


async def meter(charger: Charger16, transaction_id: int, wh: int) -> None:
    await charger.call(
        call16.MeterValues(
            connector_id=1,
            transaction_id=transaction_id,
            meter_value=[
                {
                    "timestamp": now_iso(),
                    "sampledValue": [
                        {"value": str(wh), "measurand": "Energy.Active.Import.Register"}
                    ],
                }
            ],
        )
    )


async def wait_until(predicate: Any, timeout: float) -> float:
    """Seconds until `predicate()` held; TimeoutError after `timeout`."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("comes_back", ["after-the-bridge-noticed", "before-the-bridge-noticed"])
async def test_a_16_charger_that_vanishes_mid_transaction_resumes_it(comes_back: str) -> None:
    bound = 2 * PING + CLOSE_TIMEOUT + 6.0  # generous: these machines are often busy
    async with running_csms() as csms, running_bridge(config(csms, PING)) as bridge:
        url = south_url(bridge)
        async with connected_charger16(url, STATION) as (charger, connection, oracle1):
            transaction_id = await boot_and_start(charger)
            await meter(charger, transaction_id, 150)
            await csms.wait_for(lambda: len(events(csms)) == 2)
            connection.transport.pause_reading()  # gone: no pong, no close frame, no reset
            if comes_back == "after-the-bridge-noticed":
                noticed = await wait_until(lambda: not bridge.connected_stations, bound)
                assert noticed <= bound
            async with connected_charger16(url, STATION) as (again, _, oracle2):
                await meter(again, transaction_id, 180)
                await again.call(
                    call16.StopTransaction(
                        transaction_id=transaction_id, meter_stop=200, timestamp=now_iso()
                    )
                )
                await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
            connection.transport.abort()
        delivered = events(csms)
        assert [e["event_type"] for e in delivered] == ["Started", "Updated", "Updated", "Ended"]
        assert len({e["transaction_info"]["transaction_id"] for e in delivered}) == 1
        assert [e["seq_no"] for e in delivered] == [0, 1, 2, 3]
        end = delivered[-1]["meter_value"][-1]["sampled_value"][0]
        assert (end["value"], end["context"]) == (200, "Transaction.End")
        assert csms.problems() == [] and oracle1.problems == [] and oracle2.problems == []


async def test_a_silent_csms_is_noticed_and_the_station_reconnects() -> None:
    bound = 2 * PING + CLOSE_TIMEOUT + 6.0  # generous: these machines are often busy
    async with running_csms() as csms, running_bridge(config(csms, PING)) as bridge:
        async with connected_charger16(south_url(bridge), STATION) as (charger, _, oracle):
            transaction_id = await boot_and_start(charger)
            first = await csms.session(STATION)
            first.connection.transport.pause_reading()  # the CSMS is gone without a word
            reconnected = await wait_until(lambda: len(csms.history) >= 2, bound)
            assert reconnected <= bound
            await charger.call(
                call16.StopTransaction(
                    transaction_id=transaction_id, meter_stop=300, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
            first.connection.transport.abort()
        assert len(events(csms, "Started")) == 1
        assert csms.problems() == [] and oracle.problems == []


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_half_open_links_are_noticed_within_60_s_with_the_default_pings() -> None:
    """Both links go silent at once; with ping_interval = ping_timeout = 20 s (the defaults) each is
    noticed within 45 s: the charger's is dropped, the CSMS's is replaced by a new connection."""
    async with running_csms() as csms, running_bridge(config(csms, None)) as bridge:
        assert bridge.config.south.ping_interval == bridge.config.csms.ping_interval == 20
        async with connected_charger16(south_url(bridge), STATION) as (charger, connection, _):
            await boot_and_start(charger)
            session = await csms.session(STATION)
            connection.transport.pause_reading()
            session.connection.transport.pause_reading()
            south, north = await asyncio.gather(
                wait_until(lambda: not bridge.connected_stations, 60),
                wait_until(lambda: len(csms.history) >= 2, 60),
            )
            print(f"half-open noticed after: charger side {south:.1f} s, CSMS side {north:.1f} s")
            assert south <= 20 + 20 + 2 * MAX_TICK + CLOSE_TIMEOUT + 1
            assert north <= 20 + 20 + 2 * MAX_TICK + CLOSE_TIMEOUT + 1
            connection.transport.abort()
            session.connection.transport.abort()
