"""`adapters.ocpp.keepalive`: quiet connections are pinged from one timer per side; a talking one is not; a
silent peer is failed with 1011.

The peers are websockets' own server and client (which answer pings with pongs by themselves) and a
raw socket that completes the handshake and then never reads again (a dead link).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator

from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve

from adapters.connection import MemoryConnection
from adapters.ocpp.keepalive import PER_TURN, Keepalive, keepalive_options
from adapters.ocpp.ws_direct import DirectClientConnection, DirectServerConnection, connect, serve


@contextlib.asynccontextmanager
async def websockets_server(
    chatty: float | None = None,
) -> AsyncIterator[int]:
    """websockets' own server; with `chatty`, it sends a message every `chatty` seconds."""

    async def handler(connection: ServerConnection) -> None:
        while chatty is not None:
            await connection.send("news")
            await asyncio.sleep(chatty)
        await connection.wait_closed()

    async with websockets_serve(handler, "127.0.0.1", 0, **keepalive_options()) as server:
        yield next(iter(server.sockets)).getsockname()[1]


async def _direct_client(port: int, **options: object) -> DirectClientConnection:
    connection = await connect(f"ws://127.0.0.1:{port}/", **options)  # type: ignore[arg-type]
    connection.listen(lambda message: None)
    return connection


async def test_quiet_connections_are_pinged_and_their_pongs_count_as_life() -> None:
    keepalive = Keepalive(0.1, 1.0, side="north")
    async with websockets_server() as port:
        clients = [await _direct_client(port) for _ in range(5)]
        try:
            for client in clients:
                keepalive.watch(client)
            async with asyncio.timeout(5):
                while keepalive.pings < 10:  # every one of them, twice
                    await asyncio.sleep(0.02)
            assert all(client.protocol.state.name == "OPEN" for client in clients)
            assert keepalive.watched == 5
        finally:
            for client in clients:
                await client.close()
            keepalive.close()


async def test_a_connection_that_receives_messages_is_never_pinged() -> None:
    keepalive = Keepalive(0.1, 1.0, side="north")
    async with websockets_server(chatty=0.02) as port:
        client = await _direct_client(port)
        try:
            keepalive.watch(client)
            await asyncio.sleep(0.6)  # six intervals
            assert keepalive.pings == 0
            assert client.protocol.state.name == "OPEN"
        finally:
            await client.close()
            keepalive.close()


async def test_closed_connections_are_forgotten() -> None:
    keepalive = Keepalive(0.02, 1.0, side="north")
    async with websockets_server() as port:
        client = await _direct_client(port)
        keepalive.watch(client)
        await client.close()
        async with asyncio.timeout(5):
            while keepalive.watched:
                await asyncio.sleep(0.02)
        assert keepalive.pings == 0
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
        client = await _direct_client(port, close_timeout=0.3)
        keepalive.watch(client)
        # interval + timeout + 2 ticks (0.025 s each) + close timeout: under a second
        async with asyncio.timeout(5):
            await client.wait_closed()
        # the peer never answered the close: the connection reports what the bridge's side said
        # (websockets alone would say 1006, abnormal closure)
        assert (client.close_code, client.close_reason) == (1011, "keepalive ping timeout")
        assert keepalive.pings == 1
    finally:
        keepalive.close()
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_charger_connections_are_pinged_and_a_websockets_client_answers() -> None:
    keepalive = Keepalive(0.05, 1.0, side="south")
    accepted: list[DirectServerConnection] = []

    async def handler(connection: DirectServerConnection) -> None:
        connection.listen(lambda message: None)
        accepted.append(connection)
        keepalive.watch(connection)
        await connection.wait_closed()

    server = await serve(handler, "127.0.0.1", 0)
    async with server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with websockets_connect(f"ws://127.0.0.1:{port}/", **keepalive_options()) as client:
            async with asyncio.timeout(5):
                while keepalive.pings < 3:
                    await asyncio.sleep(0.02)
            # the client's pongs came back: the server side is not waiting on a ping any more
            # than one tick after the last one
            await asyncio.sleep(0.03)
            assert client.protocol.state.name == "OPEN"
            assert accepted[0].last_received > 0
    keepalive.close()


class _QuietLink(MemoryConnection):
    """A connection that has been quiet for a while; notes the loop turn of its ping."""

    def __init__(self, quiet_since: float, turns: list[int]) -> None:
        super().__init__()
        self.last_received = quiet_since
        self.pinged_on_turn: int | None = None
        self._turns = turns

    def ping_now(self) -> bool:
        self.pinged_on_turn = self._turns[0]
        return super().ping_now()


async def test_links_that_went_quiet_together_are_pinged_a_few_hundred_per_loop_turn() -> None:
    loop = asyncio.get_running_loop()
    turns = [0]

    def count_turns() -> None:
        turns[0] += 1
        if turns[0] < 10_000:
            loop.call_soon(count_turns)

    keepalive = Keepalive(0.05, 10.0, side="south")
    links = [_QuietLink(loop.time() - 1.0, turns) for _ in range(3 * PER_TURN + 10)]
    for link in links:
        keepalive.watch(link)
    loop.call_soon(count_turns)
    try:
        async with asyncio.timeout(5):
            while keepalive.pings < len(links):
                await asyncio.sleep(0.01)
        per_turn = Counter(link.pinged_on_turn for link in links)
        assert max(per_turn.values()) <= PER_TURN
        assert len(per_turn) >= 4  # spread over four turns at least, other callbacks between them
    finally:
        keepalive.close()
