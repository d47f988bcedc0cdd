"""After `bridge.stopping` no link reconnects (issue 18 item 11): the CSMS links' back-off loops and the
104 dial-outs stop first, so the shutdown of a bridge whose CSMS and 104 charger are unreachable logs no
reconnect wait, no connection attempt and no failure after `bridge.stopping`.

The shutdown is made to last: a 1.6 charger that stops reading keeps the charger listener's close
waiting for its closing handshake (3 s), during which, before the fix, the 1.6 station's CSMS link
(back-off 0.05 s) and the 104 dial-out (1-2 s) kept trying.
"""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from adapters.runtime import Runtime
from tests.adapters.test_ready_stations import closed_port
from tests.e2e.conftest import _SCHEMAS, bridge_config, south_url
from tests.e2e.iec104_charger import station_entry

RECONNECT_EVENTS = frozenset(
    {
        "csms.reconnect_wait",
        "csms.connect_failed",
        "csms.connected",
        "iec104.connect_failed",
        "iec104.unreachable",
        "iec104.connected",
    }
)


async def test_no_reconnect_line_after_bridge_stopping() -> None:
    config = bridge_config(
        f"ws://127.0.0.1:{closed_port()}/ocpp",  # the CSMS is unreachable
        [{"id": "Q-16", "protocol": "ocpp1.6"}, station_entry("Q-104", closed_port())],
        csms={"retry_backoff_wait_minimum": 0.05, "retry_backoff_random_range": 0.05},
        bridge={"shutdown_timeout": 10},
    )
    runtime = Runtime(config, schemas=_SCHEMAS)
    with capture_logs() as logs:
        await runtime.start()
        try:
            async with connect(
                f"{south_url(runtime)}/Q-16",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                open_timeout=10,
                close_timeout=1,
            ) as charger:
                # both links have tried and failed meanwhile
                async with asyncio.timeout(15):
                    while not {"csms.reconnect_wait", "iec104.connect_failed"} <= {
                        e["event"] for e in logs
                    }:
                        await asyncio.sleep(0.05)
                charger.transport.pause_reading()  # it will not answer the bridge's close
                started = time.monotonic()
                await runtime.stop()
                stop_took = time.monotonic() - started
        finally:
            await runtime.stop()
    events = [e["event"] for e in logs]
    assert "bridge.stopped" in events
    after = events[events.index("bridge.stopping") :]
    # the shutdown lasted long enough for the links' back-off to come round several times
    assert stop_took > 1.0, stop_took
    assert [e for e in after if e in RECONNECT_EVENTS] == [], after
