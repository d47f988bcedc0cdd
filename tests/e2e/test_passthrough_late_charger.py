"""Issue 16 item 1, CSMS → charger in pass-through: a 2.0.1 charger that answers after `[south]
call_timeout` has its answer forwarded to the CSMS; the bridge does not answer InternalError for it.

Both peers are the `ocpp` package; every frame each receives is checked against the official schemas.
"""

from __future__ import annotations

from ocpp.v201 import call

from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.test_passthrough import BOOT, STATION
from tests.peers import connected_charger, running_csms

CHARGER_TIMEOUT = 0.5
LATE = 1.5  # past [south] call_timeout, well within it + late_answer_wait


async def test_b06_a_late_charger_answer_reaches_the_csms() -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}],
            south={"call_timeout": CHARGER_TIMEOUT},
            csms={"late_answer_wait": 30},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, charger_oracle),
        ):
            await charger.call(BOOT)
            session = await csms.session(STATION)
            charger.answer_delay = LATE
            wanted = {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
            result = await session.charge_point.call(
                call.GetVariables(get_variable_data=[wanted]), suppress=False
            )
            assert result.get_variable_result[0]["attribute_value"] == "300"
            charger.answer_delay = 0.0
            again = await session.charge_point.call(call.GetVariables(get_variable_data=[wanted]))
            assert again.get_variable_result[0]["attribute_status"] == "Accepted"
        assert [f for f in session.oracle.received if f[0] == 4] == []  # no CALLERROR for the CSMS
        assert charger_oracle.problems == []
        assert csms.problems() == []
