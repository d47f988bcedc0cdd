"""Issue 16: the device model of a translated 1.6 station walked by an `ocpp` CSMS, end to end.

B06 GetVariables of every required variable, B07 GetBaseReport (FullInventory, SummaryInventory), B05
SetVariables of the bridge-owned values then a restart proving them durable, and A01 BasicAuthPassword
rotation then a reconnect with the new password (security profile 1 toward a CSMS checking Basic auth).
Every frame the CSMS receives is validated against the official schemas (tests.peers.FrameOracle).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ocpp.v201 import call as call201
from websockets.http11 import Request

from tests.core.test_issue16_device_model import CONFIGURATION_16, OWNED_WRITES, REQUIRED
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.test_v16 import FAST_RECONNECT, STATION, boot, config16, status
from tests.peers import connected_charger16, running_csms

OLD, NEW = "initial-Password-0001", "rotated-Password-0002"


def wire(entry: tuple[str, str, str | None, int | None, int | None]) -> dict[str, Any]:
    component, variable, instance, evse, connector = entry
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = (
            {"id": evse} if connector is None else {"id": evse, "connector_id": connector}
        )
    var: dict[str, Any] = {"name": variable}
    if instance is not None:
        var["instance"] = instance
    return {"component": comp, "variable": var}


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"{STATION}:{password}".encode()).decode()


async def test_b06_b07_b05_device_model_walk_and_durable_owned_values(tmp_path: Path) -> None:
    store = str(tmp_path / "bridge.db")
    async with running_csms() as csms:
        async with (
            running_bridge(config16(csms, store)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            # the 1.6 Core profile's required keys, and a firmware's vendor key
            charger.configuration.update(
                {e["key"]: e["value"] for e in CONFIGURATION_16["configurationKey"]}
            )
            charger.configuration["NumberOfConnectors"] = "1"
            await boot(charger)
            await status(charger, 1, "Available")
            cp = (await csms.session(STATION)).charge_point
            got = await cp.call(
                call201.GetVariables(get_variable_data=[wire(entry) for entry in REQUIRED])
            )
            unknown = [r for r in got.get_variable_result if r["attribute_status"] != "Accepted"]
            assert unknown == []
            for base, request_id in (("FullInventory", 1), ("SummaryInventory", 2)):
                answer = await cp.call(
                    call201.GetBaseReport(request_id=request_id, report_base=base)
                )
                assert answer.status == "Accepted"
                await csms.wait_for(
                    lambda rid=request_id: any(
                        p["request_id"] == rid and not p.get("tbc")
                        for p in cp.payloads("NotifyReport")
                    )
                )
            full = [
                d
                for p in cp.payloads("NotifyReport")
                if p["request_id"] == 1
                for d in p["report_data"]
            ]
            found = {
                (
                    d["component"]["name"],
                    d["variable"]["name"],
                    d["variable"].get("instance"),
                    d["component"].get("evse", {}).get("id"),
                    d["component"].get("evse", {}).get("connector_id"),
                ): d
                for d in full
            }
            assert [entry for entry in REQUIRED if entry not in found] == []
            backend = found[("OCPP16LegacyCtrlr", "Cst_BackendUrl", None, None, None)]
            assert backend["variable_attribute"][0]["mutability"] == "ReadOnly"
            summary = [
                d["variable"]["name"]
                for p in cp.payloads("NotifyReport")
                if p["request_id"] == 2
                for d in p["report_data"]
            ]
            assert summary and set(summary) == {"AvailabilityState"}
            writes = [
                {**wire((c, v, i, None, None)), "attribute_value": value}
                for (c, v, i), value in OWNED_WRITES.items()
            ]
            changed = await cp.call(call201.SetVariables(set_variable_data=writes))
            assert {r["attribute_status"] for r in changed.set_variable_result} == {"Accepted"}
            assert csms.problems() == [] and oracle.problems == []
        async with (
            running_bridge(config16(csms, store)) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            await boot(charger)
            cp = (await csms.session(STATION)).charge_point
            await csms.wait_for(lambda: "BootNotification" in cp.actions())
            keys = list(OWNED_WRITES)[1:]  # HeartbeatInterval: the new boot's interval (B01)
            got = await cp.call(
                call201.GetVariables(
                    get_variable_data=[wire((c, v, i, None, None)) for (c, v, i) in keys]
                )
            )
            assert [r["attribute_value"] for r in got.get_variable_result] == [
                OWNED_WRITES[key] for key in keys
            ]
            assert csms.problems() == [] and oracle.problems == []


async def test_a01_password_rotation_then_a_reconnect_with_the_new_password() -> None:
    seen: list[str] = []

    def check(request: Request) -> int | None:
        header = request.headers.get("Authorization", "")
        seen.append(header)
        return None if header in (basic(OLD), basic(NEW)) else 401

    async with running_csms(check_request=check) as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp1.6", "csms_password": OLD}],
            csms={**FAST_RECONNECT, "security_profile": 1},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger16(south_url(bridge), STATION) as (charger, _, oracle),
        ):
            await boot(charger)
            session = await csms.session(STATION)
            changed = await session.charge_point.call(
                call201.SetVariables(
                    set_variable_data=[
                        {
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                            "attribute_value": NEW,
                        }
                    ]
                )
            )
            assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
            await session.connection.close()
            await csms.wait_for(lambda: len(csms.history) >= 2, timeout=15)
            assert seen[0] == basic(OLD)
            assert seen[-1] == basic(NEW)
            assert csms.problems() == [] and oracle.problems == []
