"""`adapters.keepalive`: one timer pings every connection of a side; a silent peer is failed with 1011."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from adapters.keepalive import Keepalive, keepalive_options


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[int, list[ServerConnection]]]:
    accepted: list[ServerConnection] = []

    async def handler(connection: ServerConnection) -> None:
        accepted.append(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **keepalive_options()) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield port, accepted


async def test_every_watched_connection_is_pinged_from_one_timer() -> None:
    keepalive = Keepalive(0.05, 1.0, side="north")
    async with echo_server() as (port, _):
        clients: list[ClientConnection] = [
            await connect(f"ws://127.0.0.1:{port}/", **keepalive_options()) for _ in range(5)
        ]
        try:
            for client in clients:
                keepalive.watch(client)
            # websockets measures `latency` from its ping to the pong: it moves off 0 once both ran
            async with asyncio.timeout(5):
                while not all(client.latency > 0 for client in clients):
                    await asyncio.sleep(0.02)
            assert keepalive.watched == 5
        finally:
            for client in clients:
                await client.close()
            keepalive.close()


async def test_closed_connections_are_forgotten() -> None:
    keepalive = Keepalive(0.02, 1.0, side="north")
    async with echo_server() as (port, _):
        client = await connect(f"ws://127.0.0.1:{port}/", **keepalive_options())
        keepalive.watch(client)
        await client.close()
        async with asyncio.timeout(5):
            while keepalive.watched:
                await asyncio.sleep(0.02)
        keepalive.close()


async def test_a_peer_that_never_answers_pings_is_failed_with_1011() -> None:
    """The server completes the handshake by hand and then never reads again (a dead link)."""
    silent: list[asyncio.StreamWriter] = []

    async def half_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        silent.append(writer)  # kept open, never read: no pong ever comes back

    server = await asyncio.start_server(half_open, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    keepalive = Keepalive(0.1, 0.2, side="north")
    try:
        client = await connect(f"ws://127.0.0.1:{port}/", close_timeout=0.3, **keepalive_options())
        keepalive.watch(client)
        async with asyncio.timeout(5):  # interval + timeout + close timeout = 0.6 s
            await client.wait_closed()
        sent = client.protocol.close_sent  # what the bridge side said; the peer said nothing (1006)
        assert sent is not None
        assert (sent.code, sent.reason) == (1011, "keepalive ping timeout")
        assert client.close_code == 1006
    finally:
        keepalive.close()
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_server_side_connections_pinged_in_one_tick_each_get_their_pong() -> None:
    keepalive = Keepalive(0.05, 1.0, side="south")
    async with echo_server() as (port, accepted):
        client = await connect(f"ws://127.0.0.1:{port}/", **keepalive_options())
        other = await connect(f"ws://127.0.0.1:{port}/", **keepalive_options())
        try:
            async with asyncio.timeout(5):
                while len(accepted) < 2:
                    await asyncio.sleep(0.01)
            for connection in accepted:
                keepalive.watch(connection)
            async with asyncio.timeout(5):
                while not all(connection.latency > 0 for connection in accepted):
                    await asyncio.sleep(0.02)
        finally:
            await client.close()
            await other.close()
            keepalive.close()
