"""IEC 104 chargers as 2.0.1 stations, end to end on loopback.

The charger is a c104 `Server` laid out per mappings/gb-dc-charger.yaml (`Charger104`); the CSMS is the
`ocpp` package (`Csms`), whose `FrameOracle` checks every frame it receives against the official 2.0.1
schemas. Between them runs the real station: `iec104_host`'s `TranslatedHost` (c104 client, core, driver, CSMS
client). Test names carry the OCPP 2.0.1 use case they exercise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call as call201

from adapters.config import ConfigError, Iec104Station
from adapters.iec104.station import iec104_host, load_table
from adapters.ocpp.north import CsmsConnector, Pacer
from adapters.ops.logs import station_logger
from adapters.runtime import Runtime
from adapters.store import Store
from adapters.translated import TranslatedHost
from bridge.effects import Side
from bridge.north.backoff import BackoffPolicy
from bridge.stations.iec104.core import Station104, Station104Settings
from tests.e2e.conftest import _SCHEMAS, bridge_config, running_bridge
from tests.e2e.iec104_charger import Charger104
from tests.peers import Csms, now_iso, running_csms

STATION = "GB104-1"
MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "gb-dc-charger.yaml"
PLUG, HOLSTERED, CHARGING = 0x0021, 0x0022, 0x0023
WORK_STATUS, ENERGY = 0x400F, 0x6401
START_STOP, CURRENT_LIMIT = 0x6001, 0x6202
IDLE = {HOLSTERED: True, WORK_STATUS: 2.0, 0x0025: 1, ENERGY: 100_000}


def station_config(port: int) -> Iec104Station:
    return Iec104Station.model_validate(
        {
            "id": STATION,
            "protocol": "iec104",
            "host": "127.0.0.1",
            "port": port,
            "connectors": 1,
            "mapping": str(MAPPING),
        }
    )


@contextlib.asynccontextmanager
async def running_station(
    csms: Csms, charger: Charger104
) -> AsyncIterator[TranslatedHost[Station104]]:
    station = station_config(charger.port)
    config = bridge_config(csms.url, [])
    connector = CsmsConnector(config.csms, config.csms_password_for, None, Pacer(100, 100))
    store = Store(":memory:")
    ids = itertools.count(1)
    host = iec104_host(
        station,
        connector=connector,
        schemas=_SCHEMAS,
        store=store,
        new_message_id=lambda: f"b{next(ids)}",
        logs={side: station_logger(STATION, side, "iec104") for side in Side},
        table=load_table(station),
        settings=Station104Settings(link_grace=0.5, meter_wait=2.0),
        policy=BackoffPolicy(0.05, 0.05, 0),
    )
    task = asyncio.create_task(host.run())
    try:
        yield host
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


@contextlib.asynccontextmanager
async def running_charger(initial: dict[int, Any] | None = None) -> AsyncIterator[Charger104]:
    charger = Charger104(load_table(station_config(2404)), initial or IDLE)
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


def payloads(csms: Csms, action: str) -> list[dict[str, Any]]:
    return [p for s in csms.history for p in s.charge_point.payloads(action)]


def events(csms: Csms, kind: str | None = None) -> list[dict[str, Any]]:
    found = payloads(csms, "TransactionEvent")
    return [e for e in found if kind is None or e["event_type"] == kind]


def statuses(csms: Csms) -> list[str]:
    return [p["connector_status"] for p in payloads(csms, "StatusNotification")]


async def wait_status(csms: Csms, status: str, count: int = 1) -> None:
    await csms.wait_for(lambda: statuses(csms).count(status) >= count)


async def test_b01_g01_e02_f01_f03_k01_a_remote_session_on_a_104_charger() -> None:
    async with (
        running_csms() as csms,
        running_charger() as charger,
        running_station(csms, charger),
    ):
        session = await csms.session(STATION)
        cp = session.charge_point
        await csms.wait_for(lambda: "BootNotification" in cp.actions())
        boot = cp.payloads("BootNotification")[0]
        assert boot["charging_station"] == {"vendor_name": "Generic GB/T", "model": "GB-DC"}
        await wait_status(csms, "Available")

        changed = await cp.call(
            call201.SetVariables(
                set_variable_data=[
                    {
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                        "attribute_value": "1",
                    }
                ]
            )
        )
        assert changed.set_variable_result[0]["attribute_status"] == "Accepted"

        await charger.update(PLUG, True)
        await wait_status(csms, "Occupied")

        answer = await cp.call(
            call201.RequestStartTransaction(
                id_token={"id_token": "04A2B3C4", "type": "ISO14443"}, remote_start_id=42, evse_id=1
            )
        )
        assert answer.status == "Accepted"
        assert charger.sent_to(START_STOP) == [True]
        await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
        started = events(csms, "Started")[0]
        assert started["trigger_reason"] == "RemoteStart"
        assert started["transaction_info"]["remote_start_id"] == 42
        assert started["id_token"] == {"id_token": "04A2B3C4", "type": "ISO14443"}
        begin = started["meter_value"][0]["sampled_value"][0]
        assert begin["context"] == "Transaction.Begin"
        assert begin["value"] == 1_000_000  # 100,000 counts × 10 Wh
        tx_id = started["transaction_info"]["transaction_id"]

        await charger.update(CHARGING, True)
        await charger.update(0x4002, 32.5)  # output current, A
        await charger.update(ENERGY, 100_250)
        await csms.wait_for(
            lambda: any(
                sv["measurand"] == "Energy.Active.Import.Register" and sv["value"] == 1_002_500
                for e in events(csms, "Updated")
                for mv in e.get("meter_value", [])
                for sv in mv["sampled_value"]
            )
        )
        updated = events(csms, "Updated")
        assert updated[0]["trigger_reason"] == "ChargingStateChanged"
        assert updated[0]["transaction_info"]["charging_state"] == "Charging"
        assert any(e["trigger_reason"] == "MeterValuePeriodic" for e in updated)

        profile = await cp.call(
            call201.SetChargingProfile(
                evse_id=1,
                charging_profile={
                    "id": 3,
                    "stack_level": 0,
                    "charging_profile_purpose": "TxProfile",
                    "charging_profile_kind": "Absolute",
                    "transaction_id": tx_id,
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
        assert profile.status == "Accepted", profile.status_info
        assert charger.sent_to(CURRENT_LIMIT) == [16.0]

        stop = await cp.call(call201.RequestStopTransaction(transaction_id=tx_id))
        assert stop.status == "Accepted"
        assert charger.sent_to(START_STOP) == [True, False]
        charger.set(ENERGY, 100_400)  # the final register, read by the counter interrogation
        await charger.update(CHARGING, False)
        await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
        ended = events(csms, "Ended")[0]
        assert ended["transaction_info"]["stopped_reason"] == "Remote"
        assert ended["trigger_reason"] == "RemoteStop"
        end = ended["meter_value"][0]["sampled_value"][0]
        assert (end["context"], end["value"]) == ("Transaction.End", 1_004_000)
        seq_nos = [e["seq_no"] for e in events(csms)]
        assert seq_nos == list(range(len(seq_nos)))

        await charger.update(PLUG, False)
        await wait_status(csms, "Available", 2)
        assert csms.problems() == []


async def test_e02_link_drop_mid_transaction_continues_without_a_second_started() -> None:
    async with (
        running_csms() as csms,
        running_charger({**IDLE, PLUG: True}) as charger,
        running_station(csms, charger) as host,
    ):
        await wait_status(csms, "Occupied")
        await charger.update(CHARGING, True)
        await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
        started = events(csms, "Started")[0]
        assert started["trigger_reason"] == "ChargingStateChanged"

        await charger.stop()  # the charger's 104 server goes away
        await wait_status(csms, "Unavailable")
        assert not host.kind.link.is_up
        await charger.start()  # back, still charging
        await wait_status(csms, "Occupied", 2)
        await charger.update(ENERGY, 100_900)
        await charger.update(CHARGING, False)
        await csms.wait_for(lambda: len(events(csms, "Ended")) == 1)
        assert len(events(csms, "Started")) == 1
        ids = {e["transaction_info"]["transaction_id"] for e in events(csms)}
        assert ids == {started["transaction_info"]["transaction_id"]}
        seq_nos = [e["seq_no"] for e in events(csms)]
        assert seq_nos == list(range(len(seq_nos)))
        assert events(csms, "Ended")[0]["transaction_info"]["stopped_reason"] == "Local"
        assert csms.problems() == []


async def test_b01_the_runtime_runs_a_configured_104_station() -> None:
    async with running_csms() as csms, running_charger() as charger:
        station = station_config(charger.port).model_dump(mode="json")
        config = bridge_config(csms.url, [station])
        async with running_bridge(config):
            session = await csms.session(STATION)
            await csms.wait_for(lambda: "BootNotification" in session.charge_point.actions())
            await wait_status(csms, "Available")
        await csms.wait_for(lambda: session.closed.is_set())
        assert session.connection.close_code == 1001
        assert csms.problems() == []


def test_a_broken_mapping_table_is_refused_at_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("extends: gb-dc-charger\nstation: {time_zone: Asia/Shangai}\n")
    station = {**station_config(2404).model_dump(mode="json"), "mapping": str(broken)}
    with pytest.raises(ConfigError) as refused:
        Runtime(bridge_config("ws://127.0.0.1:9/ocpp", [station]))
    assert f"{broken}:2:" in str(refused.value)
    assert "Asia/Shangai" in str(refused.value)


def test_a_shipped_table_is_named_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no mappings/ folder here
    named = {**station_config(2404).model_dump(mode="json"), "mapping": "gb-dc-charger"}
    runtime = Runtime(bridge_config("ws://127.0.0.1:9/ocpp", [named]))
    assert runtime.config.stations[0].protocol == "iec104"

    # the contract's spelling, from a folder without mappings/: the installed package's file
    contract = {**named, "mapping": "mappings/gb-dc-charger.yaml"}
    Runtime(bridge_config("ws://127.0.0.1:9/ocpp", [contract]))

    elsewhere = {**named, "mapping": "tables/gb-dc-charger.yaml"}
    with pytest.raises(ConfigError) as missing:
        Runtime(bridge_config("ws://127.0.0.1:9/ocpp", [elsewhere]))
    assert 'the shipped table is mapping = "gb-dc-charger"' in str(missing.value)

    unknown = {**named, "mapping": "gb-dc-chargr"}
    with pytest.raises(ConfigError) as refused:
        Runtime(bridge_config("ws://127.0.0.1:9/ocpp", [unknown]))
    assert "no shipped table of that name" in str(refused.value)
    assert "gb-ac-charger" in str(refused.value)
