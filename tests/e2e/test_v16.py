"""OCPP 1.6J chargers as 2.0.1 stations, end to end on loopback.

The `ocpp` package plays both independent peers: a 1.6J charger below the bridge (`Charger16`) and a
2.0.1 CSMS above it (`Csms`). Every frame either peer receives is checked against its official schema by
`FrameOracle` (pure-Python jsonschema, independent of the bridge's validator). Test names carry the
OCPP 2.0.1 use case they exercise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.peers import Charger16, Csms, connected_charger16, now_iso, running_csms

STATION = "CP16-1"
FAST_RECONNECT = {
    "retry_backoff_wait_minimum": 0.05,
    "retry_backoff_random_range": 0.05,
    "retry_backoff_repeat_times": 0,
}


def config16(csms: Csms, store: str = ":memory:", **station: Any) -> Any:
    return bridge_config(
        csms.url,
        [{"id": STATION, "protocol": "ocpp1.6", **station}],
        bridge={"store": store},
        csms=FAST_RECONNECT,
    )


async def boot(charger: Charger16) -> Any:
    return await charger.call(
        call16.BootNotification(
            charge_point_vendor="Acme", charge_point_model="Volt-16", firmware_version="1.2.3"
        )
    )


async def status(charger: Charger16, connector: int, state: str, error: str = "NoError") -> None:
    await charger.call(
        call16.StatusNotification(
            connector_id=connector, error_code=error, status=state, timestamp=now_iso()
        )
    )


def events(csms: Csms, kind: str | None = None) -> list[dict[str, Any]]:
    found = [
        payload
        for session in csms.history
        if session.station_id == STATION
        for payload in session.charge_point.payloads("TransactionEvent")
    ]
    return [e for e in found if kind is None or e["event_type"] == kind]


def assert_clean(csms: Csms, oracle: Any) -> None:
    assert csms.problems() == []
    assert oracle.problems == []


async def test_b01_g01_boot_and_status_reach_the_csms_as_201() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        answer = await boot(charger)
        assert answer.status == "Accepted"
        assert answer.interval == 300  # the CSMS's interval, relayed
        session = await csms.session(STATION)
        boots = session.charge_point.payloads("BootNotification")
        assert boots[0]["charging_station"] == {
            "model": "Volt-16",
            "vendor_name": "Acme",
            "firmware_version": "1.2.3",
        }
        assert boots[0]["reason"] == "PowerUp"
        await status(charger, 1, "Preparing")
        await csms.wait_for(lambda: "StatusNotification" in session.charge_point.actions())
        sent = session.charge_point.payloads("StatusNotification")[-1]
        assert (sent["evse_id"], sent["connector_id"], sent["connector_status"]) == (
            1,
            1,
            "Occupied",
        )
        heartbeat = await charger.call(call16.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        assert "Heartbeat" not in session.charge_point.actions()  # answered by the bridge
        assert_clean(csms, oracle)


async def test_g01_connector_zero_fans_out_and_errors_become_notify_event() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        session = await csms.session(STATION)
        await status(charger, 1, "Available")
        await status(charger, 2, "Available")
        await status(charger, 0, "Unavailable")
        cp = session.charge_point
        await csms.wait_for(
            lambda: (
                sum(
                    p["connector_status"] == "Unavailable"
                    for p in cp.payloads("StatusNotification")
                )
                == 2
            )
        )
        unavailable = {
            p["evse_id"]
            for p in cp.payloads("StatusNotification")
            if p["connector_status"] == "Unavailable"
        }
        assert unavailable == {1, 2}
        await status(charger, 1, "Faulted", error="GroundFailure")
        await csms.wait_for(lambda: "NotifyEvent" in cp.actions())
        event = cp.payloads("NotifyEvent")[0]["event_data"][0]
        assert event["tech_code"] == "GroundFailure"
        assert event["component"]["evse"]["id"] == 1
        assert_clean(csms, oracle)


async def test_e01_e02_e06_local_transaction_with_meter_values() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        session = await csms.session(STATION)
        authorized = await charger.call(call16.Authorize(id_tag="04A2B3C4D5E6F7"))
        assert authorized.id_tag_info["status"] == "Accepted"
        assert session.charge_point.payloads("Authorize")[0]["id_token"] == {
            "id_token": "04A2B3C4D5E6F7",
            "type": "ISO14443",
        }
        start = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="04A2B3C4D5E6F7", meter_start=1000, timestamp=now_iso()
            )
        )
        assert isinstance(start.transaction_id, int)
        await charger.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=[
                    {
                        "timestamp": now_iso(),
                        "sampledValue": [
                            {
                                "value": "1.5",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "kWh",
                            },
                        ],
                    }
                ],
            )
        )
        await charger.call(
            call16.StopTransaction(
                transaction_id=start.transaction_id,
                meter_stop=2500,
                timestamp=now_iso(),
                reason="Local",
                id_tag="04A2B3C4D5E6F7",
            )
        )
        await csms.wait_for(lambda: len(events(csms)) == 3)
        started, updated, ended = events(csms)
        tx_id = started["transaction_info"]["transaction_id"]
        assert len(tx_id) <= 36
        assert [e["seq_no"] for e in (started, updated, ended)] == [0, 1, 2]
        assert {e["transaction_info"]["transaction_id"] for e in (updated, ended)} == {tx_id}
        assert started["trigger_reason"] == "Authorized"
        assert started["meter_value"][0]["sampled_value"][0]["value"] == 1000
        assert started["meter_value"][0]["sampled_value"][0]["context"] == "Transaction.Begin"
        sample = updated["meter_value"][0]["sampled_value"][0]
        assert sample["value"] == 1.5  # a number now, its unit carried over
        assert sample["unit_of_measure"]["unit"] == "kWh"
        assert ended["transaction_info"]["stopped_reason"] == "Local"
        end_register = ended["meter_value"][-1]["sampled_value"][0]
        assert (end_register["value"], end_register["context"]) == (2500, "Transaction.End")
        assert_clean(csms, oracle)


async def test_e01_resent_start_transaction_is_not_a_second_transaction() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        stamp = now_iso()
        request = call16.StartTransaction(
            connector_id=1, id_tag="TAG-1", meter_start=42, timestamp=stamp
        )
        first = await charger.call(request)
        again = await charger.call(request)  # the .conf was "lost": the charger resends
        assert again.transaction_id == first.transaction_id
        await charger.call(
            call16.StopTransaction(
                transaction_id=first.transaction_id, meter_stop=50, timestamp=now_iso()
            )
        )
        await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
        assert len(events(csms, "Started")) == 1
        assert_clean(csms, oracle)


async def test_f01_f03_remote_start_and_stop() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        session = await csms.session(STATION)
        long_token = "urn:emsp:token:0123456789abcdef-XYZ"  # 35 characters: no 1.6 idTag
        answer = await session.charge_point.call(
            call201.RequestStartTransaction(
                id_token={"id_token": long_token, "type": "Central"}, remote_start_id=77, evse_id=1
            )
        )
        assert answer.status == "Accepted"
        remote = charger.requested("RemoteStartTransaction")[0]
        alias = remote["id_tag"]
        assert len(alias) <= 20 and alias != long_token
        assert remote["connector_id"] == 1
        start = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag=alias, meter_start=0, timestamp=now_iso()
            )
        )
        await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
        started = events(csms, "Started")[0]
        assert started["trigger_reason"] == "RemoteStart"
        assert started["transaction_info"]["remote_start_id"] == 77
        assert started["id_token"] == {"id_token": long_token, "type": "Central"}
        tx_id = started["transaction_info"]["transaction_id"]
        stop = await session.charge_point.call(call201.RequestStopTransaction(transaction_id=tx_id))
        assert stop.status == "Accepted"
        assert (
            charger.requested("RemoteStopTransaction")[0]["transaction_id"] == start.transaction_id
        )
        unknown = await session.charge_point.call(
            call201.RequestStopTransaction(transaction_id="no-such-transaction")
        )
        assert unknown.status == "Rejected"
        assert_clean(csms, oracle)


async def test_b06_b05_b07_device_model_from_configuration_keys() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        cp = (await csms.session(STATION)).charge_point
        got = await cp.call(
            call201.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                    },
                    {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Nothing"}},
                ]
            )
        )
        results = got.get_variable_result
        assert results[0]["attribute_status"] == "Accepted"
        assert results[0]["attribute_value"] == "60"
        assert results[1]["attribute_status"] == "UnknownComponent"
        assert charger.requested("GetConfiguration")[0]["key"] == ["MeterValueSampleInterval"]
        changed = await cp.call(
            call201.SetVariables(
                set_variable_data=[
                    {
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                        "attribute_value": "30",
                    }
                ]
            )
        )
        assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
        assert charger.configuration["MeterValueSampleInterval"] == "30"
        report = await cp.call(call201.GetBaseReport(request_id=5, report_base="FullInventory"))
        assert report.status == "Accepted"
        await csms.wait_for(lambda: "NotifyReport" in cp.actions())
        parts = cp.payloads("NotifyReport")
        assert parts[0]["request_id"] == 5
        names = {
            (d["component"]["name"], d["variable"]["name"]) for p in parts for d in p["report_data"]
        }
        assert ("SampledDataCtrlr", "TxUpdatedInterval") in names
        assert ("ChargingStation", "Model") in names  # from the boot identity
        assert_clean(csms, oracle)


async def test_k01_set_charging_profile_is_converted() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        cp = (await csms.session(STATION)).charge_point
        answer = await cp.call(
            call201.SetChargingProfile(
                evse_id=1,
                charging_profile={
                    "id": 9,
                    "stack_level": 1,
                    "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Absolute",
                    "charging_schedule": [
                        {
                            "id": 1,
                            "charging_rate_unit": "A",
                            "start_schedule": now_iso(),
                            "charging_schedule_period": [{"start_period": 0, "limit": 16.0}],
                        }
                    ],
                },
            )
        )
        assert answer.status == "Accepted"
        sent = charger.requested("SetChargingProfile")[0]
        assert sent["connector_id"] == 1
        profile = sent["cs_charging_profiles"]
        assert profile["charging_profile_purpose"] == "TxDefaultProfile"
        assert profile["charging_schedule"]["charging_schedule_period"][0]["limit"] == 16.0
        listed = await cp.call(
            call201.GetChargingProfiles(request_id=3, charging_profile={"stack_level": 1})
        )
        assert listed.status == "Accepted"
        assert_clean(csms, oracle)


async def test_b12_reset_on_idle_waits_for_the_transaction_to_end() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        cp = (await csms.session(STATION)).charge_point
        start = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TAG-2", meter_start=0, timestamp=now_iso()
            )
        )
        answer = await cp.call(call201.Reset(type="OnIdle"))
        assert answer.status == "Scheduled"
        assert charger.requested("Reset") == []
        await charger.call(
            call16.StopTransaction(
                transaction_id=start.transaction_id, meter_stop=10, timestamp=now_iso()
            )
        )
        reset = await charger.wait_for("Reset")
        assert reset == {"type": "Soft"}
        assert_clean(csms, oracle)


async def test_not_supported_requests_get_a_truthful_answer() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        cp = (await csms.session(STATION)).charge_point
        monitoring = await cp.call(call201.GetMonitoringReport(request_id=1), suppress=False)
        assert monitoring.status == "NotSupported"
        status_answer = await cp.call(call201.GetTransactionStatus(transaction_id="nope"))
        assert status_answer.ongoing_indicator is False
        assert status_answer.messages_in_queue is False
        assert_clean(csms, oracle)


async def test_bad_16_frame_gets_the_16_callerror_and_is_not_forwarded() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, connection, oracle),
    ):
        await boot(charger)
        session = await csms.session(STATION)
        before = len(session.charge_point.calls)
        # The ocpp package's reader is running: use a raw frame and read the answer it records.
        await connection.send('[2,"bad-1","StatusNotification",{"connectorId":"one"}]')
        async with asyncio.timeout(5):
            while not any(f[0] == 4 and f[1] == "bad-1" for f in oracle.received):
                await asyncio.sleep(0.02)
        error = next(f for f in oracle.received if f[0] == 4 and f[1] == "bad-1")
        assert error[2] in ("TypeConstraintViolation", "FormationViolation", "ProtocolError")
        await asyncio.sleep(0.1)
        assert len(session.charge_point.calls) == before
        assert_clean(csms, oracle)


async def test_e01_e06_bridge_restart_between_start_and_stop(tmp_path: Path) -> None:
    store = str(tmp_path / "bridge.db")
    async with running_csms() as csms:
        async with (
            running_bridge(config16(csms, store)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, _),
        ):
            await boot(charger)
            start = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG-3", meter_start=100, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
        async with (
            running_bridge(config16(csms, store)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            await charger.call(
                call16.StopTransaction(
                    transaction_id=start.transaction_id, meter_stop=900, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
            started = events(csms, "Started")[0]
            ended = events(csms, "Ended")[0]
            assert (
                ended["transaction_info"]["transaction_id"]
                == started["transaction_info"]["transaction_id"]
            )
            assert ended["seq_no"] == 1
            assert_clean(csms, oracle)


async def test_e05_a_start_the_csms_deauthorizes_is_answered_invalid_to_the_charger() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        csms.token_status["BLOCKED-1"] = "Blocked"
        start = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="BLOCKED-1", meter_start=0, timestamp=now_iso()
            )
        )
        assert start.id_tag_info["status"] == "Blocked"  # the CSMS's verdict, not a local guess
        assert len(events(csms, "Started")) == 1
        await csms.stop()  # the CSMS goes away: the bridge answers from what it said before
        await csms.wait_for(lambda: csms.sessions[STATION].closed.is_set())
        authorized = await charger.call(call16.Authorize(id_tag="BLOCKED-1"))
        assert authorized.id_tag_info["status"] == "Blocked"
        unknown = await charger.call(call16.Authorize(id_tag="NEVER-SEEN"))
        assert unknown.id_tag_info["status"] == "Invalid"  # offline_authorize is off
        assert_clean(csms, oracle)


async def test_e04_transactions_while_the_csms_is_down_arrive_later_marked_offline() -> None:
    async with (
        running_csms() as csms,
        running_bridge(config16(csms)) as bridge,
        connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
    ):
        await boot(charger)
        port = csms.port
        await csms.stop()
        await csms.wait_for(lambda: csms.sessions[STATION].closed.is_set())
        start = await charger.call(
            call16.StartTransaction(
                connector_id=2, id_tag="TAG-9", meter_start=10, timestamp=now_iso()
            )
        )
        assert start.id_tag_info["status"] == "Accepted"  # the charger keeps charging
        await charger.call(
            call16.StopTransaction(
                transaction_id=start.transaction_id, meter_stop=20, timestamp=now_iso()
            )
        )
        await csms.start(port=port)
        await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=20)
        delivered = events(csms)
        assert [e["event_type"] for e in delivered] == ["Started", "Ended"]
        assert all(e["offline"] is True for e in delivered)
        assert [e["seq_no"] for e in delivered] == [0, 1]
        assert_clean(csms, oracle)


async def test_g01_e12_charger_gone_past_grace_is_unavailable_then_resumes_its_transaction() -> (
    None
):
    async with running_csms() as csms, running_bridge(config16(csms, offline_grace=0.2)) as bridge:
        url = south_url(bridge)
        async with connected_charger16(url, STATION) as (charger, _, oracle):
            await boot(charger)
            await status(charger, 1, "Charging")
            start = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG-5", meter_start=5, timestamp=now_iso()
                )
            )
        cp = (await csms.session(STATION)).charge_point

        def last_status() -> str:
            return cp.payloads("StatusNotification")[-1]["connector_status"]

        await csms.wait_for(lambda: last_status() == "Unavailable")
        assert not csms.sessions[STATION].closed.is_set()  # the CSMS still sees the station
        async with connected_charger16(url, STATION) as (charger, _, oracle):
            await charger.call(call16.Heartbeat())
            trigger = await charger.wait_for("TriggerMessage")
            assert trigger["requested_message"] == "StatusNotification"
            await status(charger, 1, "Charging")
            await csms.wait_for(lambda: last_status() == "Occupied")
            await charger.call(
                call16.StopTransaction(
                    transaction_id=start.transaction_id, meter_stop=55, timestamp=now_iso()
                )
            )
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
            assert len(events(csms, "Started")) == 1
            started, ended = events(csms, "Started")[0], events(csms, "Ended")[0]
            assert (
                ended["transaction_info"]["transaction_id"]
                == started["transaction_info"]["transaction_id"]
            )
            assert_clean(csms, oracle)
