"""Half-open links: a charger that stops answering WebSocket pings is dropped, and the CSMS sees it go.

The silent charger is a raw TCP client that completes the opening handshake by hand and then never reads
again, as a charger behind a dead mobile link would.
"""

from __future__ import annotations

import asyncio
import base64
import os

from tests.e2e.conftest import bridge_config, running_bridge
from tests.peers import running_csms

STATION = "CS-SILENT"


async def test_a_charger_that_stops_answering_pings_is_disconnected_on_both_sides() -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}],
            south={"ping_interval": 0.2, "ping_timeout": 0.3},
        )
        async with running_bridge(config) as bridge:
            assert bridge.south_address is not None
            reader, writer = await asyncio.open_connection("127.0.0.1", bridge.south_address[1])
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    f"GET /ocpp/{STATION} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
                ).encode()
            )
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 101")
            session = await csms.session(STATION)
            # From here on the charger is silent: no pong will ever come back.
            async with asyncio.timeout(10):
                await session.closed.wait()
                while bridge.connected_stations:
                    await asyncio.sleep(0.05)
            assert session.connection.close_code == 1001
            writer.close()
