"""A 2.0.1 charger through the bridge to a 2.0.1 CSMS; both peers are the `ocpp` package (PyPI).

Every frame each peer receives is checked against the official schemas by an independent validator
(tests/peers.py). Test names cite the OCPP 2.0.1 use cases they exercise.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v201 import call
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.peers import connected_charger, now_iso, running_csms

STATION = "CS-201"
BOOT = call.BootNotification(
    charging_station={"model": "Wallbox X", "vendor_name": "Acme", "serial_number": "SN-1"},
    reason="PowerUp",
)


async def test_B01_G01_G02_C01_E01_a_session_reaches_the_csms_as_the_station_sent_it() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, charger_oracle),
        ):
            boot = await charger.call(BOOT)
            assert boot.status == "Accepted"
            session = await csms.session(STATION)
            await charger.call(
                call.StatusNotification(
                    timestamp=now_iso(), connector_status="Available", evse_id=1, connector_id=1
                )
            )
            heartbeat = await charger.call(call.Heartbeat())
            assert heartbeat.current_time.endswith("Z")
            token = {"id_token": "04A2B3C4D5E6F7", "type": "ISO14443"}
            authorized = await charger.call(call.Authorize(id_token=token))
            assert authorized.id_token_info["status"] == "Accepted"
            for seq, (event, trigger) in enumerate(
                [
                    ("Started", "Authorized"),
                    ("Updated", "MeterValuePeriodic"),
                    ("Ended", "StopAuthorized"),
                ]
            ):
                await charger.call(
                    call.TransactionEvent(
                        event_type=event,
                        timestamp=now_iso(),
                        trigger_reason=trigger,
                        seq_no=seq,
                        transaction_info={"transaction_id": "tx-1"},
                        evse={"id": 1, "connector_id": 1},
                        meter_value=[
                            {
                                "timestamp": now_iso(),
                                "sampled_value": [
                                    {"value": 1000.0 * seq, "unit_of_measure": {"unit": "Wh"}}
                                ],
                            }
                        ],
                    )
                )
            cp = session.charge_point
            assert cp.actions() == [
                "BootNotification",
                "StatusNotification",
                "Heartbeat",
                "Authorize",
                "TransactionEvent",
                "TransactionEvent",
                "TransactionEvent",
            ]
            boot_payload = cp.calls[0][1]
            assert boot_payload["charging_station"] == {
                "model": "Wallbox X",
                "vendor_name": "Acme",
                "serial_number": "SN-1",
            }
            events = [p for a, p in cp.calls if a == "TransactionEvent"]
            assert [e["seq_no"] for e in events] == [0, 1, 2]
            assert {e["transaction_info"]["transaction_id"] for e in events} == {"tx-1"}
            # The CSMS sees the charger under its own id, on the 2.0.1 subprotocol.
            assert session.connection.subprotocol == "ocpp2.0.1"
            assert session.connection.request.path == f"/ocpp/{STATION}"
        assert charger_oracle.problems == []
        assert csms.problems() == []


async def test_B06_get_variables_from_the_csms_reaches_the_charger_and_back() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, charger_oracle),
        ):
            await charger.call(BOOT)
            session = await csms.session(STATION)
            result = await session.charge_point.call(
                call.GetVariables(
                    get_variable_data=[
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ]
                )
            )
            assert result.get_variable_result[0]["attribute_value"] == "300"
            assert charger.requests[0][0] == "GetVariables"
        assert charger_oracle.problems == []
        assert csms.problems() == []


async def test_callerror_paths_both_ways() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, charger_oracle),
        ):
            await charger.call(BOOT)
            session = await csms.session(STATION)
            # The CSMS has no handler for DataTransfer: its CALLERROR reaches the charger unchanged.
            with pytest.raises(OcppNotImplemented):
                await charger.call(call.DataTransfer(vendor_id="acme"), suppress=False)
            # The charger has no handler for ClearCache: its CALLERROR reaches the CSMS unchanged.
            with pytest.raises(OcppNotImplemented):
                await session.charge_point.call(call.ClearCache(), suppress=False)
            # Both connections are still usable.
            assert (await charger.call(call.Heartbeat())).current_time
        errors = [f for f in charger_oracle.received if f[0] == 4]
        assert [f[2] for f in errors] == ["NotImplemented"]
        assert [f[2] for f in session.oracle.received if f[0] == 4] == ["NotImplemented"]
        assert charger_oracle.problems == []
        assert csms.problems() == []


async def test_the_csms_sees_the_station_go_offline_with_the_charger() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with running_bridge(config) as bridge:
            async with connected_charger(south_url(bridge), STATION) as (charger, connection, _):
                await charger.call(BOOT)
                session = await csms.session(STATION)
                await connection.close()
            async with asyncio.timeout(10):
                await session.closed.wait()
            assert session.connection.close_code == 1001
            # The charger comes back: a new CSMS connection for the same station.
            async with connected_charger(south_url(bridge), STATION) as (charger, _, _):
                await charger.call(call.Heartbeat())
                await csms.wait_for(lambda: len(csms.history) == 2)


async def test_the_charger_is_closed_when_the_csms_connection_goes() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, connection, _),
        ):
            await charger.call(BOOT)
            session = await csms.session(STATION)
            await session.connection.close(1001, "CSMS restarting")
            async with asyncio.timeout(10):
                await connection.wait_closed()
            assert connection.close_code == 1013


async def test_an_unreachable_csms_turns_the_charger_away_with_try_again_later() -> None:
    async with running_csms() as csms:
        url = csms.url
    # the CSMS is gone: nothing listens on its port any more
    config = bridge_config(url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
    async with (
        running_bridge(config) as bridge,
        connected_charger(south_url(bridge), STATION) as (_, connection, _),
    ):
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await connection.recv()
        assert connection.close_code == 1013


async def test_graceful_stop_closes_both_sides_with_going_away() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, connection, _),
        ):
            await charger.call(BOOT)
            session = await csms.session(STATION)
            await bridge.stop()
            async with asyncio.timeout(10):
                await connection.wait_closed()
                await session.closed.wait()
            assert connection.close_code == 1001
            assert session.connection.close_code == 1001
