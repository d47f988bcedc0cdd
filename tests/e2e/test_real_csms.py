"""Behind a real CSMS (issue 16): one that answers late, restarts, stalls and sends date-times without an
offset. A scripted CSMS from the `ocpp` package (`RealCsms`); every frame both peers receive is checked
against the official schemas and against the ids that peer sent on that connection (`FrameOracle`).

Acceptance of issue 16 items 1-5 and 10: no (transactionId, seqNo) reaches the CSMS twice, no frame
answers a connection that did not ask, statuses never overtake the transaction events before them, the
latest status reaches the CSMS after its restart, and offset-less times register the station.
The same CSMS rotates a 104 station's password (A01: stored durably, used on the next connection, also
after a bridge restart) and walks its device model (B07 FullInventory, then B06 GetVariables of every
variable the report lists and every variable the appendices require, in requests no larger than the
station's ItemsPerMessage[GetVariables]; B08 GetReport); the 1.6 versions are in test_device_model.py.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import OccurrenceConstraintViolationError
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from tests.core.test_issue16_device_model import REQUIRED_104
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.e2e.test_device_model import wire
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
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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


# --- A 104 station: password rotation (A01) and the device-model walk (B06-B08) ---------------------

OLD_PASSWORD, NEW_PASSWORD = "initial-Password-0104", "rotated-Password-0104"


def _basic(station: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{station}:{password}".encode()).decode()


def _key(data: dict[str, Any]) -> tuple[str, str, str | None, int | None, int | None]:
    evse = data["component"].get("evse", {})
    return (
        data["component"]["name"],
        data["variable"]["name"],
        data["variable"].get("instance"),
        evse.get("id"),
        evse.get("connector_id"),
    )


async def _report(csms: RealCsms, cp: Any, request: Any) -> tuple[str, list[dict[str, Any]]]:
    """Ask for a report; its status and every reportData of its NotifyReport parts."""
    answer = await cp.call(request)
    if answer.status != "Accepted":
        return answer.status, []
    rid = request.request_id
    await csms.wait_for(
        lambda: any(
            p["request_id"] == rid and not p.get("tbc") for p in cp.payloads("NotifyReport")
        )
    )
    parts = [p for p in cp.payloads("NotifyReport") if p["request_id"] == rid]
    assert [p["seq_no"] for p in parts] == list(range(len(parts)))
    return answer.status, [d for p in parts for d in p["report_data"]]


async def _get_all(cp: Any, entries: list[Any], per_message: int) -> list[dict[str, Any]]:
    """GetVariables of `entries`, in requests of at most `per_message` items, as a CSMS must (B06.FR.05)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(entries), per_message):
        chunk = [wire(entry) for entry in entries[start : start + per_message]]
        got = await cp.call(call201.GetVariables(get_variable_data=chunk))
        results += got.get_variable_result
    return results


async def test_a01_b06_b07_b08_a_104_station_rotates_its_password_and_walks_its_device_model(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    def check(request: Request) -> int | None:
        header = request.headers.get("Authorization", "")
        seen.append(header)
        allowed = {_basic(STATION104, OLD_PASSWORD), _basic(STATION104, NEW_PASSWORD)}
        return None if header in allowed else 401

    csms = RealCsms(check_request=check)
    await csms.start()
    try:
        async with idle_charger() as charger:
            entry = {**station_entry(STATION104, charger.port), "csms_password": OLD_PASSWORD}
            config = bridge_config(
                csms.url,
                [entry],
                bridge={"store": str(tmp_path / "bridge.db")},
                csms={
                    "security_profile": 1,
                    "retry_backoff_wait_minimum": 0.05,
                    "retry_backoff_random_range": 0.05,
                    "retry_backoff_repeat_times": 0,
                },
            )
            async with running_bridge(config):
                await csms.wait_for(lambda: "Available" in _statuses(csms), 15)
                cp = (await csms.session(STATION104)).charge_point

                # B07: the full inventory, then every variable it lists and every required one
                status, full = await _report(
                    csms, cp, call201.GetBaseReport(request_id=1, report_base="FullInventory")
                )
                assert status == "Accepted"
                listed = {_key(d): d for d in full}
                assert [e for e in REQUIRED_104 if e not in listed] == []
                per_message = int(
                    listed[("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables", None, None)][
                        "variable_attribute"
                    ][0]["value"]
                )
                readable = [
                    key
                    for key, d in listed.items()
                    if d["variable_attribute"][0]["mutability"] != "WriteOnly"
                ]
                assert len(readable) > per_message  # the walk needs several requests
                results = await _get_all(cp, readable + REQUIRED_104, per_message)
                refused = [
                    (r["component"], r["variable"], r["attribute_status"])
                    for r in results
                    if r["attribute_status"] != "Accepted"
                ]
                assert refused == []  # nothing UnknownComponent / UnknownVariable
                # B06.FR.16: one item more than ItemsPerMessage is refused, not half served
                with pytest.raises(OccurrenceConstraintViolationError):
                    await cp.call(
                        call201.GetVariables(
                            get_variable_data=[wire(e) for e in readable[: per_message + 1]]
                        ),
                        suppress=False,
                    )

                # B08: a custom report, selected as the CSMS asks
                status, evse = await _report(
                    csms,
                    cp,
                    call201.GetReport(
                        request_id=2,
                        component_criteria=["Available"],
                        component_variable=[
                            {
                                "component": {"name": "EVSE", "evse": {"id": 1}},
                                "variable": {"name": "AvailabilityState"},
                            }
                        ],
                    ),
                )
                assert status == "Accepted"
                assert [_key(d) for d in evse] == [("EVSE", "AvailabilityState", None, 1, None)]

                # B05: owned values apply at once: a 1 s HeartbeatInterval (the boot said 300 s)
                beats = len(cp.payloads("Heartbeat"))
                changed = await cp.call(
                    call201.SetVariables(
                        set_variable_data=[
                            {
                                "component": {"name": "OCPPCommCtrlr"},
                                "variable": {"name": "HeartbeatInterval"},
                                "attribute_value": "1",
                            }
                        ]
                    )
                )
                assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
                await csms.wait_for(lambda: len(cp.payloads("Heartbeat")) >= beats + 2, 15)

                # A01: the CSMS rotates the password; the next connection uses it
                changed = await cp.call(
                    call201.SetVariables(
                        set_variable_data=[
                            {
                                "component": {"name": "SecurityCtrlr"},
                                "variable": {"name": "BasicAuthPassword"},
                                "attribute_value": NEW_PASSWORD,
                            }
                        ]
                    )
                )
                assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
                assert seen == [_basic(STATION104, OLD_PASSWORD)]
                await csms.sessions[STATION104].connection.close()
                await csms.wait_for(lambda: len(csms.history) >= 2, 15)
                assert seen[-1] == _basic(STATION104, NEW_PASSWORD)
            # A bridge restart: the stored password, not the configuration's, opens the connection
            del csms.sessions[STATION104]
            async with running_bridge(config):
                await csms.wait_for(lambda: len(csms.history) >= 3, 15)
                cp = (await csms.session(STATION104)).charge_point
                await csms.wait_for(lambda: "BootNotification" in cp.actions(), 15)
            assert seen[2:] and set(seen[2:]) == {_basic(STATION104, NEW_PASSWORD)}
    finally:
        await csms.stop()
    assert csms.problems() == []
