"""Behind a real CSMS (issue 16): one that answers late, restarts, stalls and sends date-times without an
offset. A scripted CSMS from the `ocpp` package (`RealCsms`); every frame both peers receive is checked
against the official schemas and against the ids that peer sent on that connection (`FrameOracle`).

Acceptance of issue 16 items 1-5 and 10: no (transactionId, seqNo) reaches the CSMS twice, no frame
answers a connection that did not ask, statuses never overtake the transaction events before them, the
latest status reaches the CSMS after its restart, and offset-less times register the station.
`RealCsms` is meant to grow: the password rotation and the device-model walk of the same issue belong
here as further scenarios against it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v201 import call_result
from websockets.asyncio.server import ServerConnection

from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import (
    Csms,
    CsmsChargePoint,
    CsmsSession,
    FrameOracle,
    Recording,
    connected_charger16,
    now_iso,
)

STATION = "CP16-REAL"
NAIVE_TIME = "2026-12-07T10:00:00.123"  # no offset: what the real CSMS sent
CALL_TIMEOUT = 0.5
LATE = 1.2  # past the bridge's call timeout, well within call_timeout + late_answer_wait


class RealCsmsChargePoint(CsmsChargePoint):
    """Answers with offset-less date-times; TransactionEvents late while `late_events` > 0."""

    csms: RealCsms

    @on("BootNotification")
    async def on_boot(self, **payload: Any) -> Any:
        self._record("BootNotification", **payload)
        return call_result.BootNotification(
            current_time=NAIVE_TIME, interval=300, status="Accepted"
        )

    @on("Heartbeat")
    async def on_heartbeat(self, **payload: Any) -> Any:
        self._record("Heartbeat", **payload)
        return call_result.Heartbeat(current_time=NAIVE_TIME)

    @on("TransactionEvent")
    async def on_transaction_event(self, **payload: Any) -> Any:
        self._record("TransactionEvent", **payload)
        if self.csms.late_events > 0:
            self.csms.late_events -= 1
            await asyncio.sleep(LATE)  # a CSMS busy restarting a worker, or a stalled process
        return call_result.TransactionEvent()


class RealCsms(Csms):
    def __init__(self) -> None:
        super().__init__()
        self.late_events = 0

    async def _handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rsplit("/", 1)[-1]
        oracle = FrameOracle()
        charge_point = RealCsmsChargePoint(station_id, Recording(connection, oracle), self)
        session = CsmsSession(station_id, connection, charge_point, oracle)
        self.sessions[station_id] = session
        self.history.append(session)
        self.changed.set()
        try:
            await charge_point.start()
        except Exception:  # the connection ended, which is what the test observes
            pass
        finally:
            session.closed.set()
            self.changed.set()

    def received(self, action: str) -> list[dict[str, Any]]:
        return [p for s in self.history for p in s.charge_point.payloads(action)]

    def order(self) -> list[str]:
        """TransactionEvents and StatusNotifications in the order the CSMS got them."""
        return [
            f"{a}:{p.get('event_type') or p.get('connector_status')}"
            for s in self.history
            for a, p in s.charge_point.calls
            if a in ("TransactionEvent", "StatusNotification")
        ]


async def _status(charger: Any, state: str) -> None:
    await charger.call(
        call16.StatusNotification(
            connector_id=1, error_code="NoError", status=state, timestamp=now_iso()
        )
    )


async def test_e02_e13_g01_b01_a_16_station_behind_a_late_restarting_offset_less_csms() -> None:
    csms = RealCsms()
    await csms.start()
    config = bridge_config(
        csms.url,
        [{"id": STATION, "protocol": "ocpp1.6"}],
        csms={
            "call_timeout": CALL_TIMEOUT,
            "late_answer_wait": 30,
            "retry_backoff_wait_minimum": 0.05,
            "retry_backoff_random_range": 0.05,
            "retry_backoff_repeat_times": 0,
        },
    )
    oracles: list[FrameOracle] = []
    try:
        async with running_bridge(config) as bridge:
            url = south_url(bridge)
            async with connected_charger16(url, STATION) as (charger, _, oracle):
                oracles.append(oracle)
                booted = await charger.call(
                    call16.BootNotification(charge_point_vendor="Acme", charge_point_model="R")
                )
                assert booted.status == "Accepted"  # item 10: offset-less currentTime read as UTC
                await _status(charger, "Preparing")
                csms.late_events = 2  # the Started and the Updated are answered late (item 1)
                start = await charger.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="TAG1", meter_start=0, timestamp=now_iso()
                    )
                )
                await _status(charger, "Charging")
                await csms.wait_for(lambda: len(csms.received("TransactionEvent")) >= 2, 15)
                await asyncio.sleep(LATE + CALL_TIMEOUT)  # both late answers came in
            # The CSMS restarts while the charger ends its transaction (items 3 and 4).
            await csms.stop()
            async with connected_charger16(url, STATION) as (charger, _, oracle):
                oracles.append(oracle)
                await charger.call(
                    call16.StopTransaction(
                        transaction_id=start.transaction_id, meter_stop=500, timestamp=now_iso()
                    )
                )
                await _status(charger, "Available")
                await csms.start(csms.port)
                await csms.wait_for(
                    lambda: csms.order()[-1:] == ["StatusNotification:Available"], 20
                )
    finally:
        await csms.stop()

    events = csms.received("TransactionEvent")
    keys = [(e["transaction_info"]["transaction_id"], e["seq_no"]) for e in events]
    assert len(keys) == len(set(keys)), f"a (transactionId, seqNo) reached the CSMS twice: {keys}"
    assert [e["event_type"] for e in events] == ["Started", "Updated", "Ended"]
    order = csms.order()
    assert order.index("TransactionEvent:Ended") < order.index("StatusNotification:Available")
    assert [p for o in oracles for p in o.problems] == []  # no answer on the wrong connection
    assert csms.problems() == []


STATION104 = "GB104-REAL"
PLUG, HOLSTERED, CHARGING, ENERGY = 0x0021, 0x0022, 0x0023, 0x6401


def _statuses(csms: RealCsms) -> list[str]:
    return [p["connector_status"] for p in csms.received("StatusNotification")]


async def _run_104_scenario() -> RealCsms:
    """A 104 station through a late, restarting, offset-less CSMS; returns the CSMS when the Ended and
    the final Available have both reached it."""
    csms = RealCsms()
    await csms.start()
    try:
        async with idle_charger() as charger:
            config = bridge_config(
                csms.url,
                [station_entry(STATION104, charger.port)],
                csms={
                    "call_timeout": CALL_TIMEOUT,
                    "late_answer_wait": 30,
                    "retry_backoff_wait_minimum": 0.05,
                    "retry_backoff_random_range": 0.05,
                    "retry_backoff_repeat_times": 0,
                },
            )
            async with running_bridge(config):
                await csms.wait_for(lambda: "Available" in _statuses(csms), 15)  # booted (item 10)
                csms.late_events = 2  # the Started and what follows are answered late (item 1)
                await charger.update(HOLSTERED, False)
                await charger.update(PLUG, True)
                await csms.wait_for(lambda: "Occupied" in _statuses(csms), 15)
                await charger.update(CHARGING, True)
                await csms.wait_for(lambda: len(csms.received("TransactionEvent")) >= 1, 15)
                await charger.update(ENERGY, 100_500)
                await asyncio.sleep(LATE * 2 + CALL_TIMEOUT)  # the late answers came in
                # The CSMS restarts while the session ends and the gun goes back (items 3 and 4).
                await csms.stop()
                await charger.update(CHARGING, False)
                await charger.update(PLUG, False)
                await charger.update(HOLSTERED, True)
                await asyncio.sleep(0.5)
                await csms.start(csms.port)
                await csms.wait_for(
                    lambda: (
                        "TransactionEvent:Ended" in csms.order()
                        and _statuses(csms).count("Available") >= 2
                    ),
                    20,
                )
    finally:
        await csms.stop()
    return csms


async def test_e02_e13_g01_b01_a_104_station_behind_a_late_restarting_offset_less_csms() -> None:
    csms = await _run_104_scenario()
    events = csms.received("TransactionEvent")
    keys = [(e["transaction_info"]["transaction_id"], e["seq_no"]) for e in events]
    assert len(keys) == len(set(keys)), f"a (transactionId, seqNo) reached the CSMS twice: {keys}"
    assert events[0]["event_type"] == "Started" and events[-1]["event_type"] == "Ended"
    assert csms.problems() == []


async def test_e04_a_104_stations_available_never_overtakes_its_ended() -> None:
    csms = await _run_104_scenario()
    order = csms.order()
    assert order.index("TransactionEvent:Ended") < len(order) - 1, order
