"""`adapters.connection.Connection`: the same contract from the WebSocket connections and from the
in-memory one the driver's tests use, so a test double cannot drift from what it stands for.

The WebSocket peer is websockets' own client (an independent RFC 6455 implementation) against the
bridge's server connection, and websockets' own server against the bridge's client connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed

from adapters.connection import Connection, ConnectionEnded, MemoryConnection
from adapters.driver import CoreDriver
from adapters.ocpp.ws_direct import DirectServerConnection, connect, serve
from bridge.effects import Effect, Send, Side

HOST = "127.0.0.1"


class Peer(Protocol):
    """The other end, as the test plays it."""

    async def send(self, text: str) -> None: ...

    async def recv(self) -> str: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def closed_with(self) -> int | None: ...


class MemoryPeer:
    def __init__(self, connection: MemoryConnection) -> None:
        self._connection = connection
        self._read = 0

    async def send(self, text: str) -> None:
        self._connection.deliver(text)

    async def recv(self) -> str:
        while len(self._connection.sent) <= self._read:
            await asyncio.sleep(0)
        self._read += 1
        return self._connection.sent[self._read - 1]

    async def close(self, code: int, reason: str) -> None:
        self._connection.end(code, reason)

    async def closed_with(self) -> int | None:
        closed = self._connection.closed or self._connection.dropped
        return closed[0] if closed is not None else None


class WebsocketsPeer:
    def __init__(self, connection: ServerConnection | ClientConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        await self._connection.send(text)

    async def recv(self) -> str:
        message = await self._connection.recv()
        assert isinstance(message, str)
        return message

    async def close(self, code: int, reason: str) -> None:
        await self._connection.close(code, reason)

    async def closed_with(self) -> int | None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self._connection.recv()
        return self._connection.protocol.close_code


@contextlib.asynccontextmanager
async def memory_pair() -> AsyncIterator[tuple[Connection, Peer]]:
    connection = MemoryConnection()
    yield connection, MemoryPeer(connection)


@contextlib.asynccontextmanager
async def server_pair() -> AsyncIterator[tuple[Connection, Peer]]:
    """The bridge's server connection; websockets' client is the peer."""
    accepted: asyncio.Queue[DirectServerConnection] = asyncio.Queue()

    async def handler(connection: DirectServerConnection) -> None:
        await accepted.put(connection)
        await connection.wait_closed()

    async with await serve(handler, HOST, 0, close_timeout=1) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with websockets_connect(f"ws://{HOST}:{port}/CP", close_timeout=1) as client:
            async with asyncio.timeout(5):
                connection = await accepted.get()
            yield connection, WebsocketsPeer(client)


@contextlib.asynccontextmanager
async def client_pair() -> AsyncIterator[tuple[Connection, Peer]]:
    """The bridge's client connection; websockets' server is the peer."""
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(connection: ServerConnection) -> None:
        await accepted.put(connection)
        await connection.wait_closed()

    async with websockets_serve(handler, HOST, 0, close_timeout=1) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        connection = await connect(f"ws://{HOST}:{port}/CP", close_timeout=1)
        try:
            async with asyncio.timeout(5):
                peer = await accepted.get()
            yield connection, WebsocketsPeer(peer)
        finally:
            await connection.close()


PAIRS = {"memory": memory_pair, "server": server_pair, "client": client_pair}


@pytest.fixture(params=sorted(PAIRS))
def pair(
    request: pytest.FixtureRequest,
) -> contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]]:
    return PAIRS[request.param]()


async def test_messages_before_listen_are_kept_in_order_then_handed_over_on_arrival(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        got: list[str] = []
        await peer.send("one")
        await peer.send("two")
        await asyncio.sleep(0.05)  # they arrive while nobody listens
        connection.listen(got.append)
        assert got == ["one", "two"]
        await peer.send("three")
        async with asyncio.timeout(5):
            while len(got) < 3:
                await asyncio.sleep(0.001)
        assert got == ["one", "two", "three"]
        connection.stop_listening()


async def test_written_frames_reach_the_peer_in_order(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        assert connection.is_open
        assert connection.write_buffer_size() <= connection.write_high_water
        connection.write_text('[2,"1","Heartbeat",{}]')
        await connection.send_text('[3,"1",{}]')
        async with asyncio.timeout(5):
            assert await peer.recv() == '[2,"1","Heartbeat",{}]'
            assert await peer.recv() == '[3,"1",{}]'


async def test_the_peer_closing_ends_the_connection_and_send_text_raises_connection_ended(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        await peer.close(4000, "bye")
        async with asyncio.timeout(5):
            await connection.wait_closed()
        assert not connection.is_open
        assert connection.close_code == 4000
        assert connection.close_reason == "bye"
        with pytest.raises(ConnectionEnded):
            await connection.send_text("late")
        connection.write_text("skipped")  # never raises once closed


async def test_close_sends_the_code_to_the_peer(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        async with asyncio.timeout(5):
            await connection.close(1001, "going away")
            assert await peer.closed_with() == 1001
            await connection.wait_closed()
        assert not connection.is_open


async def test_drop_closes_with_the_code_without_waiting(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        connection.drop(1008, "not reading")
        assert not connection.is_open
        async with asyncio.timeout(5):
            assert await peer.closed_with() == 1008


async def test_ping_now_only_while_open(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        assert connection.ping_now()
        await peer.close(1000, "")
        async with asyncio.timeout(5):
            await connection.wait_closed()
        assert not connection.ping_now()


class _Echo:
    """A core that answers every frame on the side it came from."""

    def __init__(self) -> None:
        self._effects: list[Effect] = []

    def connection_made(self, side: Side, now: float, wall: float) -> None: ...

    def connection_lost(self, side: Side, now: float, wall: float) -> None: ...

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        self._effects.append(Send(side, f"echo {data!s}"))

    def handle_timer(self, now: float, wall: float) -> None: ...

    def next_deadline(self) -> float | None:
        return None

    def effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects


async def test_the_driver_serves_any_connection_the_same_way(
    pair: contextlib.AbstractAsyncContextManager[tuple[Connection, Peer]],
) -> None:
    async with pair as (connection, peer):
        driver = CoreDriver(_Echo(), {side: _NoLog() for side in Side})
        driver.attach(Side.SOUTH, connection)
        serving = asyncio.create_task(driver.serve(Side.SOUTH))
        await peer.send("hello")
        async with asyncio.timeout(5):
            assert await peer.recv() == "echo hello"
            await peer.close(1000, "")
            await serving


class _NoLog:
    def __getattr__(self, level: str) -> object:
        return lambda *args, **fields: None
