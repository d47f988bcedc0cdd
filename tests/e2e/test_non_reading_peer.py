"""A peer that sends but never reads (issue 17 item 1): what the bridge holds for it stays bounded, it
is dropped with 1008, logged and counted, and the other stations go on.

The flooding peers are raw websockets connections that stop reading at once (`max_queue=1`, a 4 KiB
socket receive buffer); every loop is bounded by a count of frames, never by the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

from ocpp.v201 import call
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.runtime import Runtime
from bridge.effects import Side
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.peers import connected_charger, running_csms

FLOOD, CONTROL = "CS-FLOOD", "CS-CONTROL"
LIMITS = {"max_queued_frames": 64, "max_queued_bytes": 16384}
BATCH = 100
# 100,000 frames: the bridge's socket send buffer (autotuned up to net.ipv4.tcp_wmem's 4 MiB by
# default) takes about 12,000 answers before anything waits in the bridge
MAX_BATCHES = 1000
# an unknown action: the bridge answers each call with a CALLERROR itself, about 300 bytes
UNKNOWN = "Make" + "Coffee" * 40


def _call(batch: int, n: int) -> str:
    return f'[2,"{batch}-{n}","{UNKNOWN}",{{}}]'


def _stations() -> list[dict[str, Any]]:
    return [{"id": FLOOD, "protocol": "ocpp2.0.1"}, {"id": CONTROL, "protocol": "ocpp2.0.1"}]


def _small_receive_buffer() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@contextlib.asynccontextmanager
async def _not_reading(url: str, port: int) -> AsyncIterator[ClientConnection]:
    sock = _small_receive_buffer()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    async with connect(
        url,
        sock=sock,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        max_queue=1,  # websockets stops reading the socket once one message waits for recv()
        open_timeout=10,
    ) as connection:
        yield connection


def _dropped(bridge: Runtime, side: str, reason: str) -> float:
    value = bridge.metrics.registry.get_sample_value(
        "ocpp_bridge_connections_dropped_total", {"side": side, "reason": reason}
    )
    assert value is not None
    return value


async def _drained_close_code(connection: ClientConnection) -> int | None:
    """Read what the bridge had sent until the connection ends; the close code it sent."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(30):
            async for _ in connection:
                pass
    return connection.close_code


async def test_a_charger_that_never_reads_is_dropped_with_1008_and_the_others_go_on() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, _stations(), south=LIMITS)
        with capture_logs() as logs:
            async with (
                running_bridge(config) as bridge,
                connected_charger(south_url(bridge), CONTROL) as (control, _, oracle),
            ):
                assert bridge.south_address is not None
                url = f"{south_url(bridge)}/{FLOOD}"
                async with _not_reading(url, bridge.south_address[1]) as flooder:
                    heartbeats = 0
                    for batch in range(MAX_BATCHES):
                        for n in range(BATCH):
                            await flooder.send(_call(batch, n))
                            if n % 10 == 9 and _dropped(bridge, "south", "queue_full"):
                                break  # (the bridge reads no more of it: its buffers would fill)
                        queued = bridge.metrics.send_queue_size(Side.SOUTH)
                        assert queued <= LIMITS["max_queued_bytes"], (batch, queued)
                        answer = await control.call(call.Heartbeat())
                        assert answer.current_time
                        heartbeats += 1
                        if _dropped(bridge, "south", "queue_full"):
                            break
                    else:
                        raise AssertionError(f"not dropped after {MAX_BATCHES * BATCH} frames")
                    assert await _drained_close_code(flooder) == 1008
                # the control charger is still served, and nothing of the flood reached the CSMS
                for _ in range(3):
                    assert (await control.call(call.Heartbeat())).current_time
                assert bridge.metrics.send_queue_size(Side.SOUTH) == 0
                assert _dropped(bridge, "south", "queue_full") == 1
                assert _dropped(bridge, "south", "write_timeout") == 0
        assert heartbeats >= 1
        assert oracle.problems == []
        assert csms.sessions[FLOOD].charge_point.actions() == []
        assert csms.sessions[CONTROL].charge_point.actions().count("Heartbeat") == heartbeats + 3
    dropped = [line for line in logs if line["event"] == "connection.dropped"]
    assert len(dropped) == 1
    assert dropped[0]["station_id"] == FLOOD
    assert dropped[0]["side"] == "south"
    assert dropped[0]["reason"] == "queue_full"


async def test_a_write_that_waits_past_write_timeout_drops_the_charger() -> None:
    async with running_csms() as csms:
        limits = {"max_queued_frames": 1_000_000, "max_queued_bytes": 1 << 30, "write_timeout": 0.2}
        config = bridge_config(csms.url, _stations(), south=limits)
        async with running_bridge(config) as bridge:
            assert bridge.south_address is not None
            url = f"{south_url(bridge)}/{FLOOD}"
            async with _not_reading(url, bridge.south_address[1]) as flooder:
                for batch in range(MAX_BATCHES):
                    for n in range(BATCH):
                        await flooder.send(_call(batch, n))
                    if _dropped(bridge, "south", "write_timeout"):
                        break
                    await asyncio.sleep(0.05)  # lets the write wait: the bound is time here
                else:
                    raise AssertionError("not dropped")
                assert await _drained_close_code(flooder) == 1008
            assert _dropped(bridge, "south", "queue_full") == 0
            assert bridge.metrics.send_queue_size(Side.SOUTH) == 0


async def test_a_csms_that_never_reads_is_dropped_with_1008_and_the_other_stations_go_on() -> None:
    """The same bound toward the CSMS: a CSMS connection that floods CALLs earning CALLERRORs and never
    reads is dropped; another station's CSMS connection carries its heartbeats all along."""
    control_heartbeats = 0
    flood_close: list[int | None] = []
    bridge_ref: list[Runtime] = []
    batches, flood_done = asyncio.Event(), asyncio.Event()

    async def csms(connection: ServerConnection) -> None:
        nonlocal control_heartbeats
        assert connection.request is not None
        station = connection.request.path.rsplit("/", 1)[-1]
        if station == CONTROL:
            async for message in connection:
                frame = json.loads(message)
                if frame[0] == 2:
                    control_heartbeats += 1
                    answer = [3, frame[1], {"currentTime": "2026-12-07T10:00:00Z"}]
                    await connection.send(json.dumps(answer))
            return

        async def flood() -> None:
            for batch in range(MAX_BATCHES * BATCH // 10):
                for n in range(10):
                    await connection.send(_call(batch, n))
                if batch % 10 == 9:
                    batches.set()  # the control charger's next heartbeat

        try:
            # the flood stops as soon as the bridge dropped it, even in a send waiting for the
            # bridge to read (it reads a dropped connection no more, nor while it works through
            # what it read): reading the bridge's close must not wait behind that send
            sending = asyncio.create_task(flood())
            while not sending.done() and not _dropped(bridge_ref[0], "north", "queue_full"):
                await asyncio.sleep(0.001)
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            flood_close.append(await _drained_close_code(connection))  # type: ignore[arg-type]
        finally:
            flood_done.set()
            batches.set()

    listening = _small_receive_buffer()  # accepted sockets inherit its receive buffer
    listening.bind(("127.0.0.1", 0))
    async with serve(
        csms,
        sock=listening,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        max_queue=1,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        config = bridge_config(f"ws://127.0.0.1:{port}/ocpp", _stations(), csms=LIMITS)
        async with running_bridge(config) as bridge:
            bridge_ref.append(bridge)
            async with (
                connected_charger(south_url(bridge), CONTROL) as (control, _, oracle),
                connected_charger(south_url(bridge), FLOOD) as (_, flood_charger, _),
            ):
                answered = 0
                async with asyncio.timeout(120):
                    while not flood_done.is_set():  # a heartbeat per 100 frames of the flood
                        await batches.wait()
                        batches.clear()
                        assert (await control.call(call.Heartbeat())).current_time
                        answered += 1
                # the pass-through session of the dropped CSMS connection ends its charger's too
                async with asyncio.timeout(30):
                    await flood_charger.wait_closed()
                assert (await control.call(call.Heartbeat())).current_time
            assert flood_close == [1008]
            assert _dropped(bridge, "north", "queue_full") == 1
            assert _dropped(bridge, "south", "queue_full") == 0
            assert bridge.metrics.send_queue_size(Side.NORTH) == 0
            assert control_heartbeats == answered + 1
            assert oracle.problems == []
